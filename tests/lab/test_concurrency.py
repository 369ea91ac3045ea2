"""Several runs of the role at once on one real kernel: the host lock makes them take turns.

Two playbooks, a timer and a person can run the role on one host at the same time. Without
a lock their live writes and file writes interleave; one interleaving, done by hand, ended
in mode 2 with ratio 50 and no drop-in: locked out. Here rounds of parallel role runs over
SSH - present at two priorities with different limits (ratio, kbytes), and absent - race on
one guest. After every round the guest must be in a state that one finished run leaves, and
anyone must still be able to start a process and log in.

A module run spends most of its ~5 s starting Python in the slow guest and well under a
second inside the lock, so runs started together often do not meet there. In some rounds
the test therefore holds the host lock itself (as a run in progress would) while the runs
start: they all queue behind it, and at its release race for the lock at the same instant.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from helpers import LOCK_FILE, consistency_problems, lockout_problems, read_overcommit_state
from role_runner import RoleRun, run_role
from umlab import Lab

HOST = "swap"   # 768 MiB + 256 MiB swap: both a ratio and a kbytes plan are real choices
LOCK_TIMEOUT_MESSAGE = "another dbfleet.memory run holds"
LOCK_POLL_S = 0.1   # _host.lock polls this often: waiting at least that long means it found the lock held


@dataclass(frozen=True)
class Run:
    """One role run of a round: what it asks for."""

    state: str
    priority: int = 90
    prefer: str = "ratio"
    lock_timeout_s: int = 60

    def extra_vars(self) -> dict:
        return dict(overcommit_state=self.state, overcommit_dropin_priority=self.priority,
                    lab_profile="postgresql", lab_prefer={HOST: self.prefer},
                    overcommit_lock_timeout=self.lock_timeout_s)

    def __str__(self) -> str:
        what = "absent" if self.state == "absent" else f"present@{self.priority}/{self.prefer}"
        return what if self.lock_timeout_s == 60 else f"{what} (lock_timeout {self.lock_timeout_s})"


PRESENT_90 = Run("present", 90, "ratio")
PRESENT_95 = Run("present", 95, "kbytes")
ABSENT = Run("absent")
# Every round mixes present and absent; the two priorities carry different limits, so a
# drop-in of one with the live values of the other shows as an inconsistency. A run
# with lock_timeout 0 gives up at once when the lock is held: the clear failure is allowed.
# HOLD_S covers the time from starting ansible-playbook to the module asking for the lock
# (measured 4-7 s on 2 cores), so every run of a held round arrives while it is held.
HOLD_S = 12


@dataclass(frozen=True)
class Round:
    runs: tuple[Run, ...]
    hold_s: int = 0   # the test holds the lock this long while the runs start


ROUNDS = (
    Round((PRESENT_90, PRESENT_95, ABSENT)),
    Round((ABSENT, PRESENT_90, PRESENT_95), hold_s=HOLD_S),
    Round((PRESENT_95, ABSENT, Run("present", 90, "ratio", lock_timeout_s=0)), hold_s=HOLD_S),
    Round((Run("present", 90, "kbytes"), Run("present", 95, "ratio"), Run("absent", lock_timeout_s=0))),
    Round((PRESENT_95, PRESENT_90, ABSENT), hold_s=HOLD_S),
    Round((ABSENT, PRESENT_95, PRESENT_90)),
)


@dataclass
class Outcome:
    run: Run
    role: RoleRun
    seconds: float

    @property
    def result(self) -> dict:
        return self.role.apply(HOST)

    @property
    def succeeded(self) -> bool:
        return self.role.returncode == 0 and not self.role.failed(HOST)

    @property
    def lock_timed_out(self) -> bool:
        return self.role.failed(HOST) and LOCK_TIMEOUT_MESSAGE in str(self.result.get("msg", ""))

    @property
    def waited_for_lock(self) -> bool:
        return self.succeeded and self.result.get("lock_waited_s", 0) >= LOCK_POLL_S

    def __str__(self) -> str:
        if self.succeeded:
            how = f"ok, changed={self.role.changed(HOST)}, waited {self.result.get('lock_waited_s')} s for the lock"
        elif self.lock_timed_out:
            how = "lock timeout: " + self.result["msg"].split(";")[0]
        else:
            how = f"FAILED: {self.result.get('msg', self.role.output[-2000:])}"
        return f"{str(self.run):34} {self.seconds:5.1f} s  {how}"


def hold_host_lock(lab: Lab, seconds: int) -> None:
    """Takes the module's host lock on the guest for `seconds`, in the background, and
    returns once it is held."""
    lab.run(HOST, f"setsid -f flock {LOCK_FILE} sleep {seconds} </dev/null >/dev/null 2>&1")
    deadline = time.monotonic() + 10
    while lab.run(HOST, f"flock --nonblock {LOCK_FILE} true", check=False).returncode == 0:
        assert time.monotonic() < deadline, "flock(1) on the guest did not take the host lock"
        time.sleep(0.1)


def run_round(lab: Lab, this: Round) -> list[Outcome]:
    """Starts the runs' ansible-playbook processes together and waits for all of them."""
    runs = this.runs
    if this.hold_s:
        hold_host_lock(lab, this.hold_s)
    start = threading.Barrier(len(runs))

    def one(run: Run) -> Outcome:
        start.wait()
        began = time.monotonic()
        role = run_role(lab, HOST, **run.extra_vars())
        return Outcome(run, role, time.monotonic() - began)

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(one, runs))


def test_parallel_present_and_absent_runs_always_end_consistent_and_never_lock_anyone_out(lab: Lab) -> None:
    boot_values = lab.boot_defaults[HOST]  # type: ignore[attr-defined]
    outcomes: list[Outcome] = []
    waiting_together = 0   # most runs of one round that found the lock held
    began = time.monotonic()
    try:
        for number, this in enumerate(ROUNDS, 1):
            round_began = time.monotonic()
            round_outcomes = run_round(lab, this)
            outcomes += round_outcomes
            state = read_overcommit_state(lab, HOST)
            held = f", lock held by the test for the first {this.hold_s} s" if this.hold_s else ""
            print(f"round {number} ({time.monotonic() - round_began:.1f} s{held}):")
            for outcome in round_outcomes:
                print(f"  {outcome}")
            print(f"  end: {state.describe()}")

            # Each run did its whole transaction or, at most, gave up clearly on the lock.
            for outcome in round_outcomes:
                assert outcome.succeeded or outcome.lock_timed_out, (
                    f"round {number}: {outcome.run} neither succeeded nor timed out on the lock:\n{outcome}")
            waiting_together = max(waiting_together, sum(o.waited_for_lock for o in round_outcomes))
            problems = consistency_problems(state, boot_values)
            assert not problems, f"round {number} ended inconsistent: {problems}\n{state.dropins}"
            locked_out = lockout_problems(lab, HOST)
            assert not locked_out, f"round {number} locked someone out: {locked_out}"

        # Not vacuous: runs really met at the lock. Two runs of one round that both found it
        # held were queued at the same time and raced for it; a run with lock_timeout 0 gave up.
        waited = [o for o in outcomes if o.waited_for_lock]
        timed_out = [o for o in outcomes if o.lock_timed_out]
        print(f"{len(outcomes)} runs in {len(ROUNDS)} rounds, {time.monotonic() - began:.0f} s: "
              f"{len(waited)} waited for the lock (at most {waiting_together} in one round), "
              f"{len(timed_out)} gave up on it (lock_timeout 0), {sum(o.succeeded for o in outcomes)} succeeded")
        assert waiting_together >= 2, "no two runs ever queued for the lock together: the test proved nothing"
        assert timed_out, "no run with lock_timeout 0 ever found the lock held: the timeout path was not shown"
        assert any(o.succeeded and o.run.state == "present" for o in outcomes), "no present run succeeded"
        assert any(o.succeeded and o.run.state == "absent" for o in outcomes), "no absent run succeeded"
    finally:
        lab.run(HOST, "rm -f /etc/sysctl.d/[0-9][0-9]-dbfleet-overcommit.conf")
