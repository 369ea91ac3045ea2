"""dbfleet.memory.overcommit cut short: every prefix of a run's steps is a state a kill (or a power
loss) can leave the host in, and each must boot, and run, no worse than the host was found.

A kill is played by stopping the run after N steps with no rollback (SIGKILL runs none). The host
left behind is then judged as its next boot would leave it: the sysctl files as they are on the
fake root, replayed by every modelled boot tool from a fresh kernel (the replay is checked against
the real tools in the lab), and the end state put to the one lower-bound rule.

Fake host as in fake_kernel.py: 4000000 kB RAM, 1000000 kB swap.
"""

from __future__ import annotations

from typing import Dict, List

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import transaction as apply_transaction
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_meminfo
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import PlanOptions, check_commit_state
from ansible_collections.dbfleet.memory.plugins.modules import overcommit
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import DEBIAN_SYSCTL_CONF, USER_RESERVE_KB, no_systemd

PG = {"profile": ["postgresql"]}
# Committed so that mode 2 at ratio 50 (CommitLimit 3000000 kB) locks non-root out, while the
# plan (ratio 90, 4600000 kB) and ratio 100 (5000000 kB) leave room.
COMMITTED_KB = 2900000


class Killed(BaseException):
    """What SIGKILL does to the module: it stops, and nothing after runs (no rollback)."""


def request(**options) -> apply_transaction.Request:
    args = dict(state="present", priority=90, live_mode="auto", shadowing="fail")
    args.update(options)
    return apply_transaction.Request(options=PlanOptions(profiles=("postgresql",)), **args)


def kill_after(monkeypatch, steps: int) -> List[str]:
    """Cut the next run off after ``steps`` steps: a file written or removed, or the block of live writes."""
    done: List[str] = []
    real_write, real_remove = files.write_file_atomic, files.remove_file
    real_live = apply_transaction._apply_live  # pylint: disable=protected-access

    def step(name, real, *args, **kwargs):
        if len(done) == steps:
            raise Killed(name)
        real(*args, **kwargs)
        done.append(name)

    monkeypatch.setattr(files, "write_file_atomic", lambda path, *a, **kw: step(
        "write " + path, real_write, path, *a, **kw))
    monkeypatch.setattr(files, "remove_file", lambda path: step("remove " + path, real_remove, path))
    monkeypatch.setattr(apply_transaction, "_apply_live", lambda *a: step("live", real_live, *a))

    def no_rollback(*_args):
        raise Killed("no rollback after a kill")

    monkeypatch.setattr(apply_transaction, "_rollback", no_rollback)
    return done


def boot_verdicts(kernel) -> Dict[str, bool]:
    """Per modelled boot tool: is the next boot of the host as the fake root now holds it safe?"""
    root = str(kernel.root)
    sources = sf.read_sysctl_sources(lambda path: root + path)
    memory = memory_from_meminfo((kernel.root / "proc/meminfo").read_text())
    out = {}
    for rules in sr.RULE_SETS:
        end = sr.replay(sources, rules, sk.KERNEL_BOOT_DEFAULTS).end
        out[rules.name] = check_commit_state(memory, end, PlanOptions(user_reserve_kb=int(USER_RESERVE_KB))).safe
    return out


def every_prefix(kernel, monkeypatch, run, steps_max=6):
    """Run ``run`` cut off after 0, 1, 2, ... steps on a copy of the host, until it completes; the
    boot verdicts of each prefix, with the steps it made."""
    import shutil
    import tempfile
    pristine = tempfile.mkdtemp(prefix="kill-windows-")
    shutil.rmtree(pristine)
    shutil.copytree(kernel.root, pristine, symlinks=True)
    prefixes = []
    for steps in range(steps_max):
        shutil.rmtree(kernel.root)
        shutil.copytree(pristine, kernel.root, symlinks=True)
        kernel.writes.clear()
        with monkeypatch.context() as patch:
            done = kill_after(patch, steps)
            try:
                run()
                finished = True
            except Killed:
                finished = False
        prefixes.append((list(done), boot_verdicts(kernel)))
        if finished:
            break
    shutil.rmtree(pristine)
    return prefixes


def unsafe(prefixes):
    return [(done, [name for name, safe in verdicts.items() if not safe]) for done, verdicts in prefixes
            if not all(verdicts.values())]


def test_a_takeover_cut_short_never_boots_the_half_taken_seed_advice(kernel, monkeypatch):
    """Failed before the fix: killed after commenting out the ratio line of /etc/sysctl.conf and before
    our drop-in, the agreeing 'vm.overcommit_memory = 2' line stayed: mode 2 at ratio 50 at the next boot."""
    kernel.set_committed(COMMITTED_KB)
    (kernel.root / "etc/sysctl.conf").write_text(DEBIAN_SYSCTL_CONF + "vm.overcommit_memory = 2\n"
                                                 "vm.overcommit_ratio = 100\n")
    assert all(boot_verdicts(kernel).values())  # the seed's advice itself boots safe here (ratio 100)
    prefixes = every_prefix(kernel, monkeypatch, lambda: apply_transaction.run(
        request(shadowing="takeover"), False, False, 5, lambda _msg: None))
    assert len(prefixes) >= 3 and unsafe(prefixes) == []


def test_an_agreeing_mode_line_in_another_file_puts_our_drop_in_before_the_takeover(kernel, monkeypatch):
    """The agreeing mode line is in a file the takeover does not edit: commenting out the ratio first
    would boot mode 2 at ratio 50. Failed before the fix (takeover edits always came first)."""
    kernel.set_committed(COMMITTED_KB)
    (kernel.root / "etc/sysctl.d/10-mode.conf").write_text("vm.overcommit_memory = 2\n")
    (kernel.root / "etc/sysctl.conf").write_text(DEBIAN_SYSCTL_CONF + "vm.overcommit_ratio = 100\n")
    prefixes = every_prefix(kernel, monkeypatch, lambda: apply_transaction.run(
        request(shadowing="takeover"), False, False, 5, lambda _msg: None))
    assert unsafe(prefixes) == []
    assert prefixes[-1][0][:2] == ["live", "write /etc/sysctl.d/90-dbfleet-overcommit.conf"]


def test_absent_cut_short_never_boots_the_taken_lines_half_restored(kernel, monkeypatch, run_module):
    """Failed before the fix: killed after removing our drop-in and before putting the taken-over
    lines back, the host booted mode 2 (the other file's line) at ratio 50."""
    kernel.set_committed(COMMITTED_KB)
    (kernel.root / "etc/sysctl.d/10-mode.conf").write_text("vm.overcommit_memory = 2\n")
    (kernel.root / "etc/sysctl.conf").write_text(DEBIAN_SYSCTL_CONF + "vm.overcommit_ratio = 100\n")
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert not failed, result["msg"]
    prefixes = every_prefix(kernel, monkeypatch, lambda: apply_transaction.run(
        request(state="absent"), False, False, 5, lambda _msg: None))
    assert unsafe(prefixes) == []
    # The taken-over ratio comes back while our drop-in still holds mode 2 with a safe limit.
    assert prefixes[-1][0][:2] == ["live", "write /etc/sysctl.conf"]


@pytest.mark.parametrize("live, first", [
    pytest.param({"overcommit_ratio": "80", "admin_reserve_kbytes": "8192"}, "vm.overcommit_ratio",
                 id="the-limit-rises-before-the-reserve"),
    pytest.param({"overcommit_ratio": "95", "admin_reserve_kbytes": "262144"}, "vm.admin_reserve_kbytes",
                 id="the-reserve-falls-before-the-limit"),
])
def test_inside_mode_2_the_write_that_gives_room_goes_first(kernel, run_module, live, first):
    """Failed before the fix for the rising limit: the reserve was raised first, so every re-plan passed
    through a state with less room for non-root than either end (and a kill could leave it there)."""
    kernel.set_committed(COMMITTED_KB)
    kernel.set("overcommit_memory", "2")
    for name, value in live.items():
        kernel.set(name, value)
    kernel.update_meminfo()
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    assert kernel.writes[0][0] == first and len(kernel.writes) == 2


# --- state=absent judges its live end state too --------------------------------------------------

def test_absent_leaves_mode_2_when_the_tools_disagree_about_the_mode(kernel, run_module):
    """Failed before the fix (rc 0, mode 2 live at ratio 50, CommitLimit below what is committed):
    the remaining files set ratio 50 for every tool, but systemd-sysctl ends in mode 1 and sysctl
    --system (which also reads /lib/sysctl.d) in mode 0. With the boot tool unknown the mode was left
    live as it was, 2, while the limit was restored: every boot was safe, the running host was not."""
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    kernel.set_committed(COMMITTED_KB)
    (kernel.root / "etc/sysctl.d/20-mode.conf").write_text("vm.overcommit_memory = 1\n")
    (kernel.root / "etc/sysctl.d/30-ratio.conf").write_text("vm.overcommit_ratio = 50\n")
    (kernel.root / "lib/sysctl.d").mkdir(parents=True)
    (kernel.root / "lib/sysctl.d/99-z.conf").write_text("vm.overcommit_memory = 0\n")
    no_systemd(kernel.root)  # the boot tool cannot be told: no guess between the two
    kernel.writes.clear()
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert kernel.get("overcommit_memory") == "0" and kernel.get("overcommit_ratio") == "50"
    assert kernel.writes[0] == ("vm.overcommit_memory", "0")  # leaving mode 2 is the first write
    assert any("left mode 2" in w for w in str(result.get("warnings")).split("', '"))


def test_absent_file_only_is_refused_when_a_later_sysctl_system_would_lock_out(kernel, run_module):
    """live=never leaves mode 2 at ratio 90 running; without our drop-in a sysctl --system from there
    sets ratio 50 from another file and keeps mode 2: the one way that shows it is the re-run."""
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    kernel.set_committed(COMMITTED_KB)
    (kernel.root / "etc/sysctl.d/30-ratio.conf").write_text("vm.overcommit_ratio = 50\n")
    failed, result = run_module(overcommit.main, {"state": "absent", "live": "never"})
    assert failed and "rerun" in result["msg"] and "30-ratio.conf:1" in result["msg"]
    assert (kernel.root / "etc/sysctl.d/90-dbfleet-overcommit.conf").exists()


def test_the_next_boot_holds_back_the_user_reserve_a_host_of_this_size_boots_with(kernel, run_module):
    """Failed before the fix on every small host (a 512 MiB lab guest refused every plan): the boot
    was judged with the 128 MiB cap of vm.user_reserve_kbytes, while the kernel boots it at
    min(free / 32, 128 MiB), about 15 MiB there."""
    from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import MEMTOTAL_KB
    host = apply_transaction.read_host()
    assert host.boot.start[sk.USER_RESERVE] == str(min(MEMTOTAL_KB // 32, 131072)) == "125000"
