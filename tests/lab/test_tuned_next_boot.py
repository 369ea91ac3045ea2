"""tuned at the next boot, on a real kernel and a real power cycle.

One guest of the "tuned" flavour (Debian 12 with its tuned 2.20 package), in a lab of this module's
own, with the database stand-in unit of dbunit.py (commits at every start a little more than mode 2
at ratio 50 lets non-root commit). A profile of the admin's sets mode 2 with a small ratio in its
[sysctl]; it is planted without restarting tuned, so it decides only the next boot, as a profile
someone edited last week does. The two situations of the issue:

- reapply_sysctl = 0: tuned writes after systemd-sysctl and wins. The role refuses, naming the
  profile; with shadowing=takeover it comments the profile's lines out, and after a power cycle the
  kernel holds the plan, the database starts and so does a process of nobody's.
- reapply_sysctl = 1 (Debian's default): our drop-in is written again after the profile, so the
  role applies; state=absent would hand the boot to the profile's mode 2 and is refused; after a
  power cycle the kernel holds the plan.

Each time the kernel after the power cycle is held to what overcommit_info predicted for the guest's
way to boot (systemd-sysctl 252, then tuned 2.20).
"""

from __future__ import annotations

import shlex
import time
from typing import Any, Iterator

import pytest

import dbunit
from helpers import expected_commit_limit_kb, install_memhog, lockout_problems, read_overcommit
from role_runner import DROPIN, run_info, run_role
from umlab import GuestSpec, Lab, check_host

HOST = "tunedboot"
PROFILE = "/etc/tuned/dbfleet-pg/tuned.conf"   # tuned 2.20 reads /etc/tuned/NAME/tuned.conf
BOOT_WAY = "systemd-252 + tuned-2.20 boot"
ROLE_VARS = dict(lab_profile="postgresql", overcommit_headroom_pct=0)
TUNED_ACTIVE_TIMEOUT_S = 240   # tuned reached "active" 7-60 s after boot in UML, depending on the load


def main_conf(reapply: int) -> str:
    return ("daemon = 1\ndynamic_tuning = 0\nsleep_interval = 1\nupdate_interval = 10\nrecommend_command = 1\n"
            "reapply_sysctl = %d\ndefault_instance_priority = 0\n" % reapply)


def profile(ratio: int) -> str:
    return ("# Database hosts, strict overcommit, copied from a tuning guide\n[main]\nsummary=PostgreSQL, strict\n"
            "include=postgresql\n\n[sysctl]\nvm.overcommit_memory = 2\nvm.overcommit_ratio = %d\n" % ratio)


@pytest.fixture(scope="module")
def tuned_lab() -> Iterator[Lab]:
    """A lab of this module's own (not "lab": the suite's guests and their per-test restore are not ours)."""
    check_host()
    # 640 MiB: tuned itself (a Python daemon) commits about 50 MiB, which a 512 MiB guest cannot spare
    # between ratio 50 and the plan with a database stand-in above ratio 50.
    with Lab([GuestSpec(HOST, mem_mb=640, flavour="tuned")]) as the_lab:
        install_memhog(the_lab, HOST)
        yield the_lab


@pytest.fixture
def database(tuned_lab: Lab) -> Iterator[None]:
    lab = tuned_lab
    dbunit.install(lab, HOST, dbunit.mb_just_over_ratio_50(lab, HOST))
    yield
    dbunit.remove(lab, HOST, f"rm -rf {DROPIN} {shlex.quote(PROFILE.rsplit('/', 1)[0])} /etc/sysctl.d/.dbfleet-*.tmp; "
                             "printf '' > /etc/tuned/active_profile; systemctl restart tuned")


def plant(lab: Lab, reapply: int, ratio: int) -> None:
    """The profile and tuned's settings, for the next boot only (tuned is not restarted), on disk."""
    lab.run(HOST, "mkdir -p %s" % shlex.quote(PROFILE.rsplit("/", 1)[0]))
    lab.put(HOST, PROFILE, profile(ratio))
    lab.put(HOST, "/etc/tuned/tuned-main.conf", main_conf(reapply))
    lab.run(HOST, "echo dbfleet-pg > /etc/tuned/active_profile && echo manual > /etc/tuned/profile_mode && sync")


def predicted(lab: Lab) -> dict[str, Any]:
    info = run_info(lab, HOST, profile="postgresql", headroom_pct=0)
    assert info.returncode == 0, info.why()
    result = info.apply(HOST)
    assert any(w.startswith("tuned-2.20 after the boot tool: profile dbfleet-pg") for w in result["next_boot"]["writers"])
    return result["boot_now"][BOOT_WAY]


def power_cycle_until_tuned_applied(lab: Lab) -> None:
    """Power-cycles and waits until tuned is active, one `systemctl is-active` per poll. With
    headroom_pct 0 the plan leaves no room for transients, and tuned's start (a Python daemon, as
    root) can take the admin reserve for a moment: a poll that cannot fork is counted and printed,
    not fatal. What the boot must give, the database and a process of nobody's, is asserted after."""
    lab.power_cycle(HOST)
    deadline, state, refused = time.monotonic() + TUNED_ACTIVE_TIMEOUT_S, "", 0
    while time.monotonic() < deadline and state not in ("active", "failed"):
        poll = lab.run(HOST, "systemctl is-active tuned", check=False, timeout=60)
        state = poll.stdout.strip()
        if "Cannot allocate memory" in poll.stderr:
            refused += 1
        time.sleep(1)
    print(f"tuned {state or 'unknown'} after the power cycle; polls refused with ENOMEM while it started: {refused}")
    assert state == "active", lab.run(HOST, "journalctl -q -b -u tuned | tail -20", check=False).stdout


def assert_boot_as_predicted_and_the_database_starts(lab: Lab, way: dict[str, Any]) -> None:
    live = read_overcommit(lab, HOST)
    meminfo = lab.meminfo(HOST)
    print(f"after the power cycle and tuned: live {live}, CommitLimit {meminfo['CommitLimit']} kB; predicted {way}")
    for key in ("vm.overcommit_memory", "vm.overcommit_ratio", "vm.overcommit_kbytes", "vm.admin_reserve_kbytes"):
        assert str(live[key]) == way["end"][key], (key, live[key], way)
    assert meminfo["CommitLimit"] == expected_commit_limit_kb(
        meminfo, ratio=int(way["end"]["vm.overcommit_ratio"]), kbytes=int(way["end"]["vm.overcommit_kbytes"]))
    # The unit started at boot, maybe before tuned wrote: start it again under the values tuned left.
    assert dbunit.restart(lab, HOST) == "active", dbunit.journal(lab, HOST)
    assert not lockout_problems(lab, HOST)


def test_a_profile_that_would_win_at_boot_is_refused_then_taken_over_and_the_boot_holds_the_plan(
        tuned_lab: Lab, database: None) -> None:
    lab = tuned_lab
    plant(lab, reapply=0, ratio=40)
    refused = run_role(lab, HOST, **ROLE_VARS)
    assert refused.failed(HOST), refused.why()
    msg = refused.apply(HOST)["msg"]
    assert "vm.overcommit_ratio would end at 40" in msg and f"{PROFILE}:8" in msg, msg
    assert read_overcommit(lab, HOST)["vm.overcommit_memory"] == 0  # nothing changed

    taken = run_role(lab, HOST, overcommit_shadowing="takeover", **ROLE_VARS)
    assert taken.returncode == 0, taken.why()
    assert "# dbfleet.memory overcommit takeover, was: vm.overcommit_ratio = 40" in lab.run(HOST, f"cat {PROFILE}").stdout
    way = predicted(lab)
    assert way["end"]["vm.overcommit_ratio"] == taken.plan(HOST)["sysctl"]["vm.overcommit_ratio"]
    power_cycle_until_tuned_applied(lab)
    assert_boot_as_predicted_and_the_database_starts(lab, way)


def test_with_reapply_on_the_drop_in_holds_and_absent_that_would_hand_the_boot_to_tuned_is_refused(
        tuned_lab: Lab, database: None) -> None:
    lab = tuned_lab
    plant(lab, reapply=1, ratio=30)
    applied = run_role(lab, HOST, **ROLE_VARS)
    assert applied.returncode == 0, applied.why()
    absent = run_role(lab, HOST, overcommit_state="absent", **ROLE_VARS)
    assert absent.failed(HOST), absent.why()
    msg = absent.apply(HOST)["msg"]
    assert "would leave an unsafe mode 2" in msg and f"tuned-2.20 from {PROFILE}:8" in msg, msg
    way = predicted(lab)
    assert way["end"]["vm.overcommit_ratio"] == applied.plan(HOST)["sysctl"]["vm.overcommit_ratio"]
    power_cycle_until_tuned_applied(lab)
    assert_boot_as_predicted_and_the_database_starts(lab, way)
