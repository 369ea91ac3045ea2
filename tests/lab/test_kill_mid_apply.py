"""The module killed in the middle of its apply step, on a real kernel.

A run can die at any instruction: `kill -9`, the OOM killer, a lost SSH session taking
the process group, a power cut. No rollback runs then. What must hold anyway:
  - every state between two steps lets anyone start a process and log in (the safe
    order of live writes: reserve, limit, mode when entering mode 2; mode first when
    leaving it), even while a database commits more than the old limit allowed;
  - the host lock dies with its holder, so the next run does not wait;
  - the next normal run repairs: drop-in and live values match its plan, and a run
    after it changes nothing.

The module runs as Ansible ships it: the AnsiballZ payload of a real role run, exploded
on the guest, started by guest/kill_at.py, which SIGKILLs it right after the chosen call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from helpers import (
    LOCK_FILE,
    MANAGED_KEYS,
    MIB_KB,
    OvercommitState,
    consistency_problems,
    expected_commit_limit_kb,
    lockout_problems,
    read_overcommit,
    read_overcommit_state,
    start_holder,
)
from killing import Killed, assert_killed_where_asked, exploded_payload
from killing import kill_module as kill_module_on
from role_runner import DROPIN, run_role
from umlab import Lab, LabError

HOST = "plain"   # 512 MiB, no swap: the database stand-in decides who can commit
# The role's request in every run of this file; the kill runs get the same arguments.
ROLE_VARS = dict(lab_profile="postgresql", overcommit_headroom_pct=0)
LOCK_POLL_S = 0.1   # _host.lock polls this often: a run that found the lock free waited less


@pytest.fixture(scope="module")
def payload(lab: Lab) -> str:
    """The module exactly as Ansible sends it to HOST (killing.exploded_payload)."""
    return exploded_payload(lab, HOST, ROLE_VARS)


def kill_module(lab: Lab, payload: str, step: str, nth: int, **module_args: object) -> Killed:
    return kill_module_on(lab, HOST, payload, step, nth, **module_args)


@pytest.fixture
def database(lab: Lab) -> Iterator[None]:
    """A stand-in committing a little more than mode 2 with the kernel's ratio 50 allows,
    so any in-between state with mode 2 and the old limit would lock everyone out; the
    role's plan (headroom 0) still leaves room for it plus root's and the user reserve.
    It runs as nobody, like a real server."""
    meminfo = lab.meminfo(HOST)
    limit_at_ratio_50_kb = expected_commit_limit_kb(meminfo, ratio=50, kbytes=0)
    # 8 MiB over ratio 50's limit: on this 512 MiB guest our plan leaves non-root only ~48 MiB above
    # that limit, and the module's own process commits 17-24 MiB while it plans (test_role_on_kernel).
    target_committed_kb = limit_at_ratio_50_kb + 8 * MIB_KB
    holder = start_holder(lab, HOST, (target_committed_kb - meminfo["Committed_AS"]) // MIB_KB, tag="db")
    assert lab.meminfo(HOST)["Committed_AS"] > limit_at_ratio_50_kb, "precondition: ratio 50 would lock this host out"
    print(f"database stand-in: pid {holder.pid}, {holder.mb} MiB, Committed_AS {lab.meminfo(HOST)['Committed_AS']} kB "
          f"> {limit_at_ratio_50_kb} kB allowed at ratio 50")
    yield
    # restore_guests (conftest) ends the stand-in and resets the live values; the files are ours.
    # A guest a failed test left locked out is power-cycled first.
    remove_ours = "rm -f /etc/sysctl.d/[0-9][0-9]-dbfleet-overcommit.conf /etc/sysctl.d/.dbfleet-*.tmp"
    try:
        lab.run(HOST, remove_ours, timeout=30)
    except LabError:
        lab.power_cycle(HOST)
        lab.run(HOST, remove_ours)


def state_after_kill(lab: Lab) -> OvercommitState:
    """The in-between state the killed run left. If even root's commands over SSH cannot
    start there, that state locked everyone out: say so instead of a bare SSH error."""
    try:
        return read_overcommit_state(lab, HOST)
    except LabError as exc:
        pytest.fail(f"locked out: after the kill no command starts on {HOST} ({exc})")


def assert_nobody_locked_out_and_lock_free(lab: Lab) -> None:
    lock = lab.run(HOST, f"flock --nonblock {LOCK_FILE} true", check=False)
    assert lock.returncode == 0, f"the killed run's lock is still held: {lock.stderr}"
    locked_out = lockout_problems(lab, HOST)
    assert not locked_out, locked_out


def assert_repaired(lab: Lab, state: str, between: OvercommitState) -> None:
    """A normal role run converges without waiting for the dead run's lock, and names the
    temporary files it removes; one more run changes nothing."""
    repair = run_role(lab, HOST, overcommit_state=state, **ROLE_VARS)
    assert repair.returncode == 0, repair.why()
    assert repair.apply(HOST)["lock_waited_s"] < LOCK_POLL_S, repair.apply(HOST)
    removed = {f["path"] for f in repair.apply(HOST)["files"] if f["action"] == "remove"}
    assert {f"/etc/sysctl.d/{name}" for name in between.temp_files} <= removed, repair.apply(HOST)["files"]
    after = read_overcommit_state(lab, HOST)
    problems = consistency_problems(after, lab.boot_defaults[HOST])  # type: ignore[attr-defined]
    assert not problems, f"after the repair run: {problems}"
    if state == "present":
        plan = repair.plan(HOST)
        assert list(after.dropins) == [Path(DROPIN).name]
        assert {key: str(after.live[key]) for key in plan["sysctl"]} == plan["sysctl"]
        assert after.commit_limit_kb == plan["commit_limit_kb"]
    else:
        assert not after.dropins
    again = run_role(lab, HOST, overcommit_state=state, **ROLE_VARS)
    assert again.returncode == 0 and again.changed(HOST) == 0, again.why()
    print(f"repair run: changed={repair.changed(HOST)} (files {repair.apply(HOST)['files']}, "
          f"live {repair.apply(HOST)['live_changes']}); then {after.describe()}; the next run changed nothing")


def test_the_kill_wrapper_lets_an_unkilled_module_finish(lab: Lab, payload: str) -> None:
    """The wrapper itself changes nothing: with the kill point never reached, the module
    prints its normal result (here: absent on a clean guest, nothing to do)."""
    finished = kill_module(lab, payload, "write_live", 99, state="absent")
    assert finished.status == 0, str(finished)
    result = json.loads(finished.stdout)
    assert result["changed"] is False and not result.get("failed"), result
    assert not any(call.startswith("KILL") for call in finished.calls), str(finished)


# Entering mode 2 from the kernel's defaults: admin reserve, limit, mode (three live
# writes, each read back), then the drop-in through a temporary file renamed into place.
ENTERING_MODE_2 = [
    pytest.param("write_live", 1, "write_live #1 vm.admin_reserve_kbytes=", False, id="after-the-admin-reserve-write"),
    pytest.param("write_live", 2, "write_live #2 vm.overcommit_ratio=", False, id="after-the-limit-write"),
    pytest.param("write_live", 3, "write_live #3 vm.overcommit_memory=2", False, id="after-the-mode-write"),
    # The worst place for a reboot: mode 2 live, no drop-in, a temporary file in sysctl.d.
    pytest.param("rename", 1, "rename #1 /etc/sysctl.d/90-dbfleet-overcommit.conf", True,
                 id="temp-file-written-not-renamed-then-reboot"),
    pytest.param("write_file_atomic", 1, "write_file_atomic #1 /etc/sysctl.d/90-dbfleet-overcommit.conf", False,
                 id="after-the-drop-in-was-renamed-into-place"),
]


@pytest.mark.parametrize("step,nth,last_call,reboot", ENTERING_MODE_2)
def test_killed_while_entering_mode_2_nobody_is_locked_out_and_the_next_run_repairs(
        lab: Lab, payload: str, database: None, step: str, nth: int, last_call: str, reboot: bool) -> None:
    before = read_overcommit_state(lab, HOST)
    assert not before.dropins and before.live["vm.overcommit_memory"] == 0, before.describe()

    killed = kill_module(lab, payload, step, nth, state="present")
    between = state_after_kill(lab)
    print(f"killed: {killed}\nin between: {between.describe()}")
    assert_killed_where_asked(killed, last_call, f"before rename #{nth} of" if step == "rename" else f"after {step} #{nth}")
    assert_nobody_locked_out_and_lock_free(lab)

    if reboot:
        lab.reboot(HOST)
        booted = read_overcommit_state(lab, HOST)
        print(f"after a reboot: {booted.describe()}")
        # systemd-sysctl reads only *.conf: the temporary file is ignored, the guest boots its defaults.
        assert not booted.dropins and booted.temp_files == between.temp_files
        boot_values = lab.boot_defaults[HOST]  # type: ignore[attr-defined]
        assert {key: booted.live[key] for key in MANAGED_KEYS} == {key: boot_values[key] for key in MANAGED_KEYS}
        assert not lockout_problems(lab, HOST)

    assert_repaired(lab, "present", between)


def test_killed_right_after_absent_left_mode_2_nobody_is_locked_out_and_the_next_run_finishes(
        lab: Lab, payload: str, database: None) -> None:
    applied = run_role(lab, HOST, overcommit_state="present", **ROLE_VARS)
    assert applied.returncode == 0, applied.why()
    assert read_overcommit(lab, HOST)["vm.overcommit_memory"] == 2

    # Leaving mode 2 writes the mode first, then the reserve and the ratio, then removes the file.
    killed = kill_module(lab, payload, "write_live", 1, state="absent")
    between = state_after_kill(lab)
    print(f"killed: {killed}\nin between: {between.describe()}")
    assert_killed_where_asked(killed, "write_live #1 vm.overcommit_memory=0", "after write_live #1")
    assert list(between.dropins) == [Path(DROPIN).name], between.describe()
    assert_nobody_locked_out_and_lock_free(lab)

    assert_repaired(lab, "absent", between)


def test_killed_between_writing_the_new_priority_and_removing_the_old_the_next_run_keeps_one_drop_in(
        lab: Lab, payload: str, database: None) -> None:
    moved_from = run_role(lab, HOST, overcommit_state="present", overcommit_dropin_priority=95, **ROLE_VARS)
    assert moved_from.returncode == 0, moved_from.why()

    # Same plan, new priority: no live write; the 90 file is renamed into place, then the 95 file removed.
    killed = kill_module(lab, payload, "write_file_atomic", 1, state="present", dropin_priority=90)
    between = state_after_kill(lab)
    print(f"killed: {killed}\nin between: {between.describe()}")
    assert_killed_where_asked(killed, f"write_file_atomic #1 {DROPIN}", "after write_file_atomic #1")
    assert sorted(between.dropins) == ["90-dbfleet-overcommit.conf", "95-dbfleet-overcommit.conf"]
    assert_nobody_locked_out_and_lock_free(lab)

    assert_repaired(lab, "present", between)   # the role's priority is 90: the 95 file is ours and goes
