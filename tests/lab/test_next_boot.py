"""The next boot, on a real kernel: a run cut short at any step, then a power cycle, and the host
still boots safe: a database unit that commits its memory at start comes up, a process as nobody
starts, and the kernel holds what overcommit_info predicted for that boot.

The database stand-in is a systemd unit (memhog.py as nobody) that commits, at every start, a
little more than mode 2 at the kernel's ratio 50 lets non-root commit on this guest, and less than
the role's plan does. So a boot into the seed's half-taken advice (mode 2, ratio 50) fails it with
ENOMEM, and a boot into the plan does not.
"""

from __future__ import annotations

import shlex
from typing import Any, Iterator

import pytest

import dbunit
from helpers import expected_commit_limit_kb, lockout_problems, read_overcommit
from killing import assert_killed_where_asked, exploded_payload, kill_module
from role_runner import DROPIN, run_info, run_role
from umlab import Lab

HOST = "plain"   # 512 MiB, no swap
ROLE_VARS = dict(lab_profile="postgresql", overcommit_headroom_pct=0)
SEED_ADVICE = "# copied from a blog post\nvm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n"
MODE_ELSEWHERE = "/etc/sysctl.d/10-mode.conf"
BOOT_WAY = "systemd-252 boot"   # how a Debian 12 guest boots: systemd-sysctl 252


def settle(lab: Lab) -> None:
    """What the test planted reaches the disk, as if it had been there for long: only the module's
    own writes (which it fsyncs) are then at stake in a power cycle."""
    lab.run(HOST, "sync")


@pytest.fixture
def database_unit(lab: Lab) -> Iterator[int]:
    """The stand-in unit, enabled and running, sized from this guest's numbers."""
    mb = dbunit.mb_just_over_ratio_50(lab, HOST)
    dbunit.install(lab, HOST, mb)
    yield mb
    dbunit.remove(lab, HOST, f"rm -f {DROPIN} {MODE_ELSEWHERE} /etc/sysctl.d/.dbfleet-*.tmp; "
                             "sed -i '/dbfleet.memory overcommit takeover/d; /copied from a blog post/d; "
                             "/^vm.overcommit/d' /etc/sysctl.conf")


@pytest.fixture(scope="module")
def payload(lab: Lab) -> str:
    return exploded_payload(lab, HOST, ROLE_VARS)


def predicted_boot(lab: Lab) -> dict[str, Any]:
    """What overcommit_info says the next boot leaves: the end values and CommitLimit of this guest's way."""
    info = run_info(lab, HOST, profile="postgresql", headroom_pct=0)
    assert info.returncode == 0, info.why()
    return info.apply(HOST)["boot_now"][BOOT_WAY]


def power_cycle_and_compare(lab: Lab, predicted: dict[str, Any]) -> None:
    """Pull the plug, boot, and hold the kernel to the prediction; the database and nobody must start."""
    lab.power_cycle(HOST)
    db = dbunit.wait_ready(lab, HOST)
    live = read_overcommit(lab, HOST)
    meminfo = lab.meminfo(HOST)
    print(f"after the power cycle: database {db}, live {live}, CommitLimit {meminfo['CommitLimit']} kB, "
          f"SwapTotal {meminfo['SwapTotal']} kB; predicted {predicted}")
    assert db == "active", dbunit.journal(lab, HOST)
    assert not lockout_problems(lab, HOST)
    for key in ("vm.overcommit_memory", "vm.overcommit_ratio", "vm.overcommit_kbytes", "vm.admin_reserve_kbytes"):
        assert str(live[key]) == predicted["end"][key], (key, live[key], predicted)
    # The boot's memory as predicted (a UML guest's MemTotal moves by a few hundred kB from boot to
    # boot: CommitLimit is held to the formula with this boot's MemTotal, not to the old number).
    assert meminfo["SwapTotal"] == predicted["swaptotal_kb"] and meminfo.get("Hugetlb", 0) == predicted["hugetlb_kb"]
    assert meminfo["CommitLimit"] == expected_commit_limit_kb(
        meminfo, ratio=int(predicted["end"]["vm.overcommit_ratio"]), kbytes=int(predicted["end"]["vm.overcommit_kbytes"]))


def plant(lab: Lab, mode_elsewhere: bool) -> None:
    conf = "vm.overcommit_ratio = 100\n" if mode_elsewhere else SEED_ADVICE
    command = f"printf %s {shlex.quote(conf)} >> /etc/sysctl.conf"
    if mode_elsewhere:
        command += f" && echo 'vm.overcommit_memory = 2' > {MODE_ELSEWHERE}"
    lab.run(HOST, command)


# Where a takeover run can be cut: after its live writes, after its first file and after its last.
TAKEOVER_KILLS = [
    pytest.param(False, "write_live", 3, id="seed-advice-after-the-live-writes"),
    pytest.param(False, "write_file_atomic", 1, id="seed-advice-after-the-first-file"),
    pytest.param(True, "write_file_atomic", 1, id="mode-line-elsewhere-after-the-first-file"),
]


@pytest.mark.parametrize("mode_elsewhere, step, nth", TAKEOVER_KILLS)
def test_a_takeover_cut_short_and_a_power_cycle_boot_the_database(
        lab: Lab, payload: str, database_unit: int, mode_elsewhere: bool, step: str, nth: int) -> None:
    plant(lab, mode_elsewhere)
    settle(lab)
    killed = kill_module(lab, HOST, payload, step, nth, state="present", shadowing="takeover")
    assert_killed_where_asked(killed, step, f"after {step} #{nth}")
    print(f"killed: {killed}")
    power_cycle_and_compare(lab, predicted_boot(lab))
    repaired = run_role(lab, HOST, overcommit_shadowing="takeover", **ROLE_VARS)
    assert repaired.returncode == 0, repaired.why()


ABSENT_KILLS = [
    pytest.param("write_live", 1, id="after-the-first-live-write"),
    pytest.param("write_file_atomic", 1, id="after-the-first-file"),
]


@pytest.mark.parametrize("step, nth", ABSENT_KILLS)
def test_absent_cut_short_and_a_power_cycle_boot_the_database(
        lab: Lab, payload: str, database_unit: int, step: str, nth: int) -> None:
    plant(lab, mode_elsewhere=True)
    applied = run_role(lab, HOST, overcommit_shadowing="takeover", **ROLE_VARS)
    assert applied.returncode == 0, applied.why()
    settle(lab)
    killed = kill_module(lab, HOST, payload, step, nth, state="absent")
    assert_killed_where_asked(killed, step, f"after {step} #{nth}")
    print(f"killed: {killed}")
    power_cycle_and_compare(lab, predicted_boot(lab))


def test_a_plan_that_would_only_fit_with_swap_switched_on_by_hand_is_refused_and_the_boot_stays_safe(
        lab: Lab, database_unit: int) -> None:
    """The seed's first aid after an OOM kill: `swapon /swapfile`, not in /etc/fstab. A plan that
    counted it would have left a CommitLimit below the database after the next boot."""
    # Swap as large as the guest's RAM: with it any plan fits; without it, what the database commits
    # does not fit the plan at headroom 100 %, so the only way to fit is the swap that will be gone.
    lab.run(HOST, "fallocate -l 512M /swapfile && chmod 600 /swapfile && mkswap -q /swapfile && swapon /swapfile")
    try:
        refused = run_role(lab, HOST, lab_profile="postgresql", overcommit_headroom_pct=100)
        assert refused.failed(HOST), refused.why()
        msg = refused.apply(HOST)["msg"]
        assert "/swapfile" in msg and "fstab" in msg, msg
        assert read_overcommit(lab, HOST)["vm.overcommit_memory"] == 0
        lab.power_cycle(HOST)
        assert dbunit.wait_ready(lab, HOST) == "active" and not lockout_problems(lab, HOST)
        assert lab.meminfo(HOST)["SwapTotal"] == 0
    finally:
        lab.run(HOST, "swapoff /swapfile; rm -f /swapfile", check=False)
