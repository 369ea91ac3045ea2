"""dbfleet.memory.overcommit: plan, apply and verify in one locked run, on a fake host.

The fake host (fake_kernel.py) has 4000000 kB of RAM, 1000000 kB of swap and Committed_AS
1000000 kB. By hand: upper bound 4000000 - 400000 + 1000000 = 4600000 kB; ratio 90 gives
1000000 pages * 90 // 100 = 900000 pages + 250000 swap pages = 4600000 kB.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import live
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.dropin import render_dropin
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LOCK_PATH, HostLock
from ansible_collections.dbfleet.memory.plugins.modules import overcommit
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import BOOT, snapshot

DROPIN = "etc/sysctl.d/90-dbfleet-overcommit.conf"
PLANNED = {"overcommit_memory": "2", "overcommit_ratio": "90", "overcommit_kbytes": "0", "admin_reserve_kbytes": "131072"}
PG = {"profile": ["postgresql"]}


def dropin(kernel, name=DROPIN):
    return kernel.root / name


def tmp_files(kernel):
    return [n for n in os.listdir(kernel.root / "etc/sysctl.d") if n.startswith(".dbfleet-")]


def test_plans_renders_and_applies_in_one_run(kernel, run_module):
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result.get("msg")
    assert result["changed"] and result["file_changed"] and result["live_applied"]
    assert result["plan"]["sysctl"] == {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90",
                                        "vm.overcommit_memory": "2"}
    assert result["plan"]["commit_limit_kb"] == 4600000 == result["commit_limit_kb"]
    assert kernel.live() == PLANNED
    # entering mode 2: reserve, then the limit, then the mode
    assert [key for key, _value in kernel.writes] == ["vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_memory"]
    text = dropin(kernel).read_text()
    assert text == render_dropin(result["plan"])
    assert "vm.overcommit_ratio = 90\n" in text and "CommitLimit 4600000" in text
    assert stat.S_IMODE(dropin(kernel).stat().st_mode) == 0o644
    assert result["files"] == [{"path": "/" + DROPIN, "action": "create", "why": "the planned drop-in"}]


def test_the_real_write_path_reaches_proc_sys(kernel):
    """The module's own write_live, not a stand-in, writes the value (a no-op write_live passed before)."""
    kernel.real_write_live("vm.overcommit_ratio", "77")
    assert (kernel.vm / "overcommit_ratio").read_text() == "77\n"


def test_every_write_is_read_back_and_a_silent_kernel_is_caught(kernel, run_module, monkeypatch):
    """A write the kernel accepts but does not keep is an error, and is rolled back."""
    real = kernel.write

    def forgetful(key, value):
        real(key, value)
        if key == "vm.overcommit_ratio":
            kernel.set("overcommit_ratio", "50")

    monkeypatch.setattr(live, "write_live", forgetful)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "vm.overcommit_ratio reads back 50 after writing 90" in result["msg"]
    assert kernel.live() == BOOT and not dropin(kernel).exists()


def test_second_run_changes_nothing(kernel, run_module):
    run_module(overcommit.main, PG)
    writes = len(kernel.writes)
    failed, result = run_module(overcommit.main, PG)
    assert not failed and not result["changed"]
    assert result["live_changes"] == [] and result["files"] == [] and len(kernel.writes) == writes


def test_a_hand_edited_dropin_is_restored(kernel, run_module):
    run_module(overcommit.main, PG)
    rendered = dropin(kernel).read_text()
    dropin(kernel).write_text(rendered.replace("vm.overcommit_ratio = 90", "vm.overcommit_ratio = 100"))
    writes = len(kernel.writes)
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["changed"] and result["file_changed"]
    assert dropin(kernel).read_text() == rendered
    assert result["live_changes"] == [] and len(kernel.writes) == writes   # the live values were right


def test_a_wrong_file_mode_is_repaired(kernel, run_module):
    run_module(overcommit.main, PG)
    os.chmod(dropin(kernel), 0o600)
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["changed"] and result["files"][0]["action"] == "update"
    assert stat.S_IMODE(dropin(kernel).stat().st_mode) == 0o644


def test_a_wrong_file_owner_is_repaired(kernel, run_module):
    if os.geteuid() != 0:
        pytest.fail("this test needs root (chown); make test runs as root")
    run_module(overcommit.main, PG)
    os.chown(dropin(kernel), 1000, 1000)
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["changed"] and result["files"][0]["action"] == "update"
    st = dropin(kernel).stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_check_mode_on_a_fresh_host_predicts_the_changes_and_changes_nothing(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, dict(PG, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed and result["changed"]
    assert snapshot(kernel.root) == before and kernel.writes == []
    assert result["live_skipped_reason"] == "check mode"
    file_diff, live_diff = result["diff"]
    assert file_diff["before"] == "" and "vm.overcommit_ratio = 90" in file_diff["after"]
    assert "vm.overcommit_memory = 0\n" in live_diff["before"] and "vm.overcommit_memory = 2\n" in live_diff["after"]
    # What check mode predicted is what the real run then does.
    _failed, real = run_module(overcommit.main, PG)
    assert real["live_changes"] == result["live_changes"] and real["files"] == result["files"]


def test_unsafe_plan_fails_before_anything_changes(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {"workload_commit_mb": 5000})
    assert failed
    assert result["msg"].startswith("Unsafe overcommit plan, nothing changed:")
    assert "of swap" in result["msg"] and result["plan"]["safe"] is False
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_a_shadowing_file_fails_the_run_or_is_warned_about(kernel, run_module):
    (kernel.root / "etc/sysctl.d/99-zz-tuning.conf").write_text("vm.overcommit_ratio = 40\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {})
    assert failed and "99-zz-tuning.conf" in result["msg"]
    # tuned is named only when it is among the writers that decide (molecule sysctl_files matches this text).
    assert result["msg"].startswith("Nothing changed: another sysctl file would change the plan at the next boot")
    assert snapshot(kernel.root) == before and kernel.writes == []
    failed, result = run_module(overcommit.main, {"shadowing": "warn"})
    assert not failed and "99-zz-tuning.conf" in str(result["warnings"])


def test_redis_sets_mode_1_only(kernel, run_module):
    failed, result = run_module(overcommit.main, {"profile": ["redis"]})
    assert not failed
    assert kernel.live() == dict(BOOT, overcommit_memory="1")
    assert "vm.overcommit_memory = 1\n" in dropin(kernel).read_text()


def test_container_stays_file_only_and_says_why(kernel, run_module):
    (kernel.root / "run" / ".containerenv").write_text('engine="podman-4.3.1"\n')
    failed, result = run_module(overcommit.main, PG)
    assert not failed and kernel.writes == [] and kernel.live() == BOOT
    assert result["container"] == "podman" and result["live_applied"] is False and result["live_changes"] == []
    assert "not namespaced" in result["live_skipped_reason"]
    assert dropin(kernel).exists()
    assert run_module(overcommit.main, PG)[1]["changed"] is False  # idempotent although the host kernel differs


def test_a_kubernetes_pod_on_cgroup_v2_is_a_container(kernel, run_module):
    """Finding 9: no container=, no /.dockerenv and cgroup 0::/ was taken for a host: live=auto wrote the node."""
    (kernel.root / "proc/1/environ").write_bytes(b"PATH=/usr/bin\0KUBERNETES_SERVICE_HOST=10.96.0.1\0")
    (kernel.root / "proc/1/cgroup").write_text("0::/\n")
    failed, result = run_module(overcommit.main, PG)
    assert not failed and kernel.writes == [] and kernel.live() == BOOT
    assert result["container"] == "kubernetes"
    assert result["container_evidence"] == "/proc/1/environ: KUBERNETES_SERVICE_HOST=10.96.0.1"


def test_a_host_says_why_it_is_not_a_container(kernel, run_module):
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["container"] is None and result["live_applied"]
    assert "kthreadd" in result["container_evidence"]


def test_live_always_writes_in_a_container(kernel, run_module):
    (kernel.root / "run" / ".containerenv").write_text("")
    failed, result = run_module(overcommit.main, dict(PG, live="always"))
    assert not failed and result["live_applied"] and kernel.live() == PLANNED


def test_live_never_manages_the_file_only(kernel, run_module):
    failed, result = run_module(overcommit.main, dict(PG, live="never"))
    assert not failed and kernel.writes == [] and result["live_skipped_reason"] == "live=never: file only"
    assert dropin(kernel).exists()


def test_switch_from_kbytes_writes_only_the_ratio(kernel, run_module):
    kernel.write("vm.overcommit_kbytes", "3000000")
    kernel.writes.clear()
    run_module(overcommit.main, PG)
    assert "vm.overcommit_kbytes" not in [key for key, _value in kernel.writes]
    assert kernel.get("overcommit_kbytes") == "0" and kernel.get("overcommit_ratio") == "90"


def test_refused_write_rolls_back_and_reads_back_that_it_did(kernel, run_module):
    dropin(kernel).write_text("# an older version\nvm.overcommit_memory = 0\n")
    kernel.refuse.add("vm.overcommit_memory")
    failed, result = run_module(overcommit.main, dict(PG, shadowing="warn"))
    assert failed and "the kernel refused vm.overcommit_memory = 2" in result["msg"]
    assert "rolled back (every value and file read back as before)" in result["msg"]
    assert result["rollback"] == {"complete": True, "left": [], "problems": [], "unsafe_before": None}
    assert result["changed"] is False
    assert kernel.live() == BOOT
    assert kernel.writes[-2:] == [("vm.overcommit_ratio", "50"), ("vm.admin_reserve_kbytes", "8192")]
    assert dropin(kernel).read_text() == "# an older version\nvm.overcommit_memory = 0\n"


def test_a_write_that_took_effect_but_reported_an_error_is_rolled_back(kernel, run_module):
    kernel.error_after_effect.add("vm.overcommit_ratio")
    failed, result = run_module(overcommit.main, PG)
    assert failed and "the kernel refused vm.overcommit_ratio = 90" in result["msg"]
    assert kernel.live() == BOOT and result["rollback"]["complete"] is True


def test_an_incomplete_rollback_says_what_is_left_and_reports_changed(kernel, run_module, monkeypatch):
    real = kernel.write

    def stuck_ratio(key, value):
        if key == "vm.overcommit_ratio" and value == "50":  # the rollback's write
            raise OSError(16, "Device or resource busy")
        real(key, value)

    monkeypatch.setattr(live, "write_live", stuck_ratio)
    kernel.refuse.add("vm.overcommit_memory")
    failed, result = run_module(overcommit.main, PG)
    assert failed and "ROLLBACK INCOMPLETE" in result["msg"]
    assert result["changed"] is True and result["rollback"]["complete"] is False
    assert result["rollback"]["left"] == ["vm.overcommit_ratio is 90, was 50"]
    assert "restoring vm.overcommit_ratio = 50" in result["rollback"]["problems"][0]


def test_a_rollback_never_restores_an_unsafe_mode_2(kernel, run_module):
    """The rollback passes the lower-bound check too: a host that was locked out (mode 2, ratio 50,
    more committed than that allows) is left in mode 0, not returned to the lockout."""
    kernel.set_committed(2900000)
    kernel.write("vm.overcommit_memory", "2")
    kernel.writes.clear()
    kernel.refuse.add("vm.overcommit_ratio")
    failed, result = run_module(overcommit.main, PG)
    assert failed and "the host was in an unsafe mode 2 before the run" in result["msg"]
    assert result["changed"] is True and result["rollback"]["complete"] is True
    assert kernel.live() == BOOT   # mode 0, the reserve and the ratio as before
    # Inside mode 2 the limit rises before the reserve: the refused ratio write comes first and the
    # reserve was never written; the rollback leaves mode 2.
    assert kernel.writes == [("vm.overcommit_ratio", "90"), ("vm.overcommit_memory", "0")]


@pytest.mark.parametrize("skew_kb, accepted", [(0, True), (4, True), (-4, True), (5, False), (100, False)])
def test_commit_limit_must_match_the_plan_to_one_page(kernel, run_module, skew_kb, accepted):
    kernel.commit_limit_skew_kb = skew_kb
    failed, result = run_module(overcommit.main, PG)
    assert failed is not accepted
    if not accepted:
        assert "CommitLimit is %d kB after applying, the plan expected 4600000 kB" % (4600000 + skew_kb) in result["msg"]
        assert kernel.live() == BOOT and not dropin(kernel).exists()


def test_failed_file_write_restores_file_and_live_values_and_leaves_no_temporary_file(kernel, run_module, monkeypatch):
    old = "# previous\nvm.overcommit_ratio = 60\n"
    dropin(kernel).write_text(old)
    kernel.write("vm.overcommit_kbytes", "2500000")  # kbytes governs before: rollback must restore it
    real_rename = os.rename

    def full_disk(src, dst):
        if ".dbfleet-" in src and dst.endswith(DROPIN):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", full_disk)
    before_live = kernel.live()
    failed, result = run_module(overcommit.main, dict(PG, shadowing="warn"))
    assert failed and "No space left on device" in result["msg"]
    assert kernel.live() == before_live
    assert dropin(kernel).read_text() == old
    assert result["rollback"]["complete"] is True
    assert tmp_files(kernel) == []


def test_a_module_exit_in_the_middle_still_rolls_back(kernel, run_module, monkeypatch):
    """Finding 6: fail_json inside atomic_move (a SystemExit) used to bypass the rollback."""

    def exits(path, data, keep_attrs=False):
        raise SystemExit(1)

    monkeypatch.setattr(files, "write_file_atomic", exits)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "SystemExit" in result["msg"] and "rolled back" in result["msg"]
    assert kernel.live() == BOOT and not dropin(kernel).exists()


def test_our_dropin_at_another_priority_is_replaced_in_the_same_run(kernel, run_module):
    """Finding 8: moving from priority 90 to 95 left the 90 file, and absent then restored its plan."""
    run_module(overcommit.main, dict(PG, dropin_priority=90))
    failed, result = run_module(overcommit.main, dict(PG, dropin_priority=95, _ansible_diff=True))
    assert not failed
    assert not dropin(kernel).exists() and dropin(kernel, "etc/sysctl.d/95-dbfleet-overcommit.conf").exists()
    assert {"path": "/" + DROPIN, "action": "remove",
            "why": "our drop-in at another priority; /etc/sysctl.d/95-dbfleet-overcommit.conf replaces it"} in result["files"]
    assert any(d["before_header"] == "/" + DROPIN and d["after"] == "" for d in result["diff"])
    failed, result = run_module(overcommit.main, {"state": "absent", "dropin_priority": 95})
    assert not failed and kernel.live() == BOOT
    assert not [n for n in os.listdir(kernel.root / "etc/sysctl.d") if "dbfleet" in n]


def test_absent_removes_the_dropin_and_returns_to_the_defaults(kernel, run_module):
    run_module(overcommit.main, dict(PG, dropin_priority=60))
    kernel.writes.clear()
    failed, result = run_module(overcommit.main, {"state": "absent", "dropin_priority": 60})
    assert not failed and result["changed"]
    assert not dropin(kernel, "etc/sysctl.d/60-dbfleet-overcommit.conf").exists()
    assert kernel.live() == BOOT
    # leaving mode 2: the mode first
    assert [key for key, _value in kernel.writes] == ["vm.overcommit_memory", "vm.admin_reserve_kbytes",
                                                      "vm.overcommit_ratio"]
    assert run_module(overcommit.main, {"state": "absent"})[1]["changed"] is False


def test_absent_returns_to_what_the_remaining_files_say(kernel, run_module):
    run_module(overcommit.main, PG)
    (kernel.root / "usr/lib/sysctl.d/30-vendor.conf").write_text("vm.overcommit_memory = 1\nvm.overcommit_ratio = 70\n")
    run_module(overcommit.main, {"state": "absent"})
    assert kernel.live() == dict(BOOT, overcommit_memory="1", overcommit_ratio="70")


def test_absent_without_dropin_touches_nothing(kernel, run_module):
    kernel.write("vm.overcommit_memory", "1")  # someone else's live tuning
    kernel.writes.clear()
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed and result["changed"] is False and kernel.writes == [] and snapshot(kernel.root) == before


def test_absent_check_mode_changes_nothing(kernel, run_module):
    run_module(overcommit.main, PG)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {"state": "absent", "_ansible_check_mode": True})
    assert not failed and result["changed"] and snapshot(kernel.root) == before


def test_a_second_run_waits_for_the_lock_and_fails_clearly(kernel, run_module):
    """Finding 3: two runs on one host interleaved their writes; now the second waits, bounded."""
    with HostLock(str(kernel.root) + LOCK_PATH, timeout_s=1):
        before = snapshot(kernel.root)
        failed, result = run_module(overcommit.main, dict(PG, lock_timeout=0))
    assert failed and "another dbfleet.memory run holds" in result["msg"] and "pid %d" % os.getpid() in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["lock_waited_s"] < 1


@pytest.mark.parametrize("plant, kind", [
    pytest.param(lambda tree: tree.link(LOCK_PATH, "/etc/sysctl.conf"), "symlink", id="symlink"),
    pytest.param(lambda tree: tree.directory(LOCK_PATH), "directory", id="directory"),
    pytest.param(lambda tree: tree.fifo(LOCK_PATH), "fifo", id="fifo"),
])
def test_a_lock_path_that_is_not_a_regular_file_fails_clearly_and_changes_nothing(kernel, host_tree, run_module,
                                                                                  deadline, plant, kind):
    plant(host_tree)
    before = snapshot(kernel.root)
    with deadline(10):
        failed, result = run_module(overcommit.main, PG)
    assert failed and result["msg"].startswith(
        "Nothing changed: the host lock %s is a %s, not a regular file" % (host_tree.path(LOCK_PATH), kind))
    assert snapshot(kernel.root) == before and kernel.writes == []


@pytest.fixture
def dropin_removed_by_another_run(monkeypatch):
    """The real drop-in path as another run leaves it after our lock is released: it still
    exists when it is looked up and is gone when it is stat'ed (a concurrent state=absent).
    Only the real path, as ansible-core's exit code spells it (bytes); the fake host is elsewhere."""
    real = b"/" + DROPIN.encode()
    exists, lstat = os.path.exists, os.lstat
    monkeypatch.setattr(os.path, "exists", lambda p: True if p == real else exists(p))

    def vanished(p, *args, **kwargs):
        if p == real:
            raise FileNotFoundError(2, "No such file or directory", p)
        return lstat(p, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", vanished)


@pytest.mark.parametrize("args", [PG, {"state": "absent"}, {"workload_commit_mb": 5000}],
                         ids=["present", "absent", "refused"])
def test_the_result_is_not_read_from_the_host_after_the_lock_is_released(kernel, run_module,
                                                                         dropin_removed_by_another_run, args):
    """Found in the lab's concurrency test (1 run in about 4): a present run finished its
    transaction, released the lock, and then failed with "[Errno 2] No such file or directory:
    b'/etc/sysctl.d/95-dbfleet-overcommit.conf'". ansible-core's exit_json and fail_json stat a
    result's ``path`` (adding owner, mode and ``state: file``) after our lock is gone, so a
    concurrent absent run made a finished run report a failure. The drop-in's path is
    ``dropin_path`` now, which nothing outside the transaction reads."""
    failed, result = run_module(overcommit.main, args)
    assert failed == ("workload_commit_mb" in args), result.get("msg")
    assert result["dropin_path"] == "/" + DROPIN
    assert not {"path", "dest", "owner", "uid", "mode", "state", "size"} & set(result), sorted(result)


def test_a_temporary_file_left_by_a_killed_run_is_removed(kernel, run_module):
    (kernel.root / "etc/sysctl.d/.dbfleet-abc123.tmp").write_text("vm.overcommit_ratio = 1\n")
    failed, _result = run_module(overcommit.main, PG)
    assert not failed and tmp_files(kernel) == []


def test_removing_a_killed_runs_temporary_file_is_a_change_that_check_mode_predicts(kernel, run_module):
    """A run killed before its rename leaves a temporary file in /etc/sysctl.d (the lab's kill
    suite shows it on a real kernel). On an otherwise converged host the next run removes it:
    that changes the host, so the run says changed and names the file, and check mode says
    the same without removing it."""
    run_module(overcommit.main, PG)
    leftover = kernel.root / "etc/sysctl.d/.dbfleet-abc123.tmp"
    leftover.write_text("vm.overcommit_ratio = 1\n")
    removal = {"path": "/etc/sysctl.d/.dbfleet-abc123.tmp", "action": "remove",
               "why": "temporary file of a run that was killed"}

    failed, predicted = run_module(overcommit.main, dict(PG, _ansible_check_mode=True))
    assert not failed and predicted["changed"] and predicted["files"] == [removal] and leftover.exists()

    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["changed"] and result["files"] == [removal] and result["live_changes"] == []
    assert tmp_files(kernel) == []


def test_a_fifo_named_conf_does_not_hang_the_module(kernel, run_module, deadline):
    """Finding 7: a FIFO named *.conf made the module block forever in open().

    Now it is never opened; and since the real boot tools would block on it and apply nothing,
    the run is refused, naming it."""
    os.mkfifo(kernel.root / "etc/sysctl.d/50-pipe.conf")
    with deadline(20):
        failed, result = run_module(overcommit.main, PG)
    assert failed and "systemd-sysctl hangs on /etc/sysctl.d/50-pipe.conf and applies nothing" in result["msg"]
    assert kernel.writes == [] and not dropin(kernel).exists()


@pytest.mark.parametrize("where", ["etc/sysctl.d/90-dbfleet-overcommit.conf", "etc/sysctl.d/10-latin1.conf"])
def test_sysctl_files_that_are_not_utf8_give_no_traceback(kernel, run_module, where):
    """Finding 10: non-UTF-8 bytes in our drop-in or another sysctl file raised UnicodeDecodeError."""
    (kernel.root / where).write_bytes(b"# caf\xe9\nkernel.domainname = x\n")
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result.get("msg")
    assert dropin(kernel).read_text() == render_dropin(result["plan"])


@pytest.mark.parametrize(
    "args, message",
    [
        ({"dropin_priority": 5}, "dropin_priority: must be between 10 and 98 (a two-digit file name prefix), got 5"),
        ({"dropin_priority": 99}, "dropin_priority: must be between 10 and 98"),
        ({"profile": ["postgresql", "valkey"]}, "profile: conflicting profiles on one host"),
        ({"headroom_pct": 101}, "headroom_pct: must be between 0 and 100, got 101"),
        ({"admin_reserve_mb": 2}, "admin_reserve_mb: must be at least 8"),
        ({"lock_timeout": -1}, "lock_timeout: must be 0 or more seconds, got -1"),
        ({"live": "sometimes"}, "value of live must be one of: auto, always, never"),
        ({"shadowing": "ignore"}, "value of shadowing must be one of: fail, warn, takeover"),
        ({"state": "gone"}, "value of state must be one of: present, absent"),
        ({"bogus": 1}, "Unsupported parameters"),
    ],
)
def test_bad_input_fails_naming_the_option_and_changes_nothing(kernel, run_module, args, message):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, args)
    assert failed and message in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
    assert not (kernel.root / "run/dbfleet-memory-overcommit.lock").exists()


def test_a_negative_live_ratio_is_read_as_the_kernel_holds_it(kernel, run_module):
    """Failed before the fix: /proc/sys was read with _kernel.writes.canonical, which knows no
    negative number, so a live overcommit_ratio of -5 (proc_dointvec stores it as given) read as
    missing and the run was refused: "cannot read vm.overcommit_ratio from /proc/sys"."""
    kernel.set("overcommit_ratio", "-5")
    assert live.read_live(["vm.overcommit_ratio"]) == {"vm.overcommit_ratio": "-5"}
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    assert {"key": "vm.overcommit_ratio", "before": "-5", "after": "90"} in result["live_changes"]
    assert kernel.live() == PLANNED


def test_a_rollback_from_a_mode_2_it_cannot_judge_leaves_mode_0(kernel, run_module):
    """Mode 2 with a negative ratio is a state the lower-bound check cannot judge (it takes
    canonical non-negative values). A rollback must not stop half-way on it: it leaves mode 0,
    which locks no one out, and says why."""
    kernel.set("overcommit_memory", "2")
    kernel.set("overcommit_ratio", "-5")
    kernel.refuse.add("vm.overcommit_ratio")
    failed, result = run_module(overcommit.main, PG)
    assert failed and result["msg"].startswith("Apply failed, rolled back")
    assert "the host's state before the run cannot be judged" in result["rollback"]["unsafe_before"]
    assert kernel.get("overcommit_memory") == "0" and kernel.get("overcommit_ratio") == "-5"


# --- behaviours a mutation review found no test for --------------------------------------------

def test_a_kbytes_plan_is_applied_live_and_in_the_file_and_holds_on_a_second_run(kernel, run_module):
    """No test applied a kbytes plan: an end state that made every kbytes plan refuse would have passed."""
    failed, result = run_module(overcommit.main, dict(PG, prefer="kbytes"))
    assert not failed, result["msg"]
    assert result["plan"]["sysctl"]["vm.overcommit_kbytes"] == "3600000"
    assert kernel.live() == {"overcommit_memory": "2", "overcommit_ratio": "0", "overcommit_kbytes": "3600000",
                             "admin_reserve_kbytes": "131072"}
    assert result["commit_limit_kb"] == 4600000 == result["plan"]["commit_limit_kb"]
    assert "vm.overcommit_kbytes = 3600000\n" in dropin(kernel).read_text()
    assert run_module(overcommit.main, dict(PG, prefer="kbytes"))[1]["changed"] is False


def test_commit_limit_that_cannot_be_read_after_the_writes_fails_and_rolls_back(kernel, run_module, monkeypatch):
    """The verification must not pass when /proc/meminfo cannot be read back: that is no proof."""
    real = kernel.write

    def meminfo_gone_after_the_mode(key, value):
        real(key, value)
        if key == "vm.overcommit_memory" and value == "2":
            (kernel.root / "proc/meminfo").unlink()

    monkeypatch.setattr(live, "write_live", meminfo_gone_after_the_mode)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "CommitLimit is None kB after applying" in result["msg"]
    assert kernel.live() == BOOT and not dropin(kernel).exists()


def test_check_mode_reports_a_live_drift_as_a_change(kernel, run_module):
    """The drop-in is right and only the live ratio drifted: check mode must say changed."""
    assert not run_module(overcommit.main, PG)[0]
    kernel.write("vm.overcommit_ratio", "85")
    kernel.writes.clear()
    failed, result = run_module(overcommit.main, dict(PG, _ansible_check_mode=True))
    assert not failed and result["changed"] is True and result["files"] == []
    assert result["live_changes"] == [{"key": "vm.overcommit_ratio", "before": "85", "after": "90"}]
    assert kernel.writes == []


def test_a_failure_after_a_takeover_edit_puts_the_edited_file_back(kernel, run_module, monkeypatch):
    """The rollback must restore files already changed, not only the live values: the drop-in's write
    fails after /etc/sysctl.conf was edited."""
    conf = kernel.root / "etc/sysctl.conf"
    original = "vm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n"
    conf.write_text(original)
    real_rename = os.rename

    def dropin_on_a_full_disk(src, dst):
        if dst.endswith("90-dbfleet-overcommit.conf"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", dropin_on_a_full_disk)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert failed and result["rollback"]["complete"] is True, result["msg"]
    assert {"path": "/etc/sysctl.conf", "action": "update",
            "why": "takeover: conflicting overcommit lines commented out"} in result["files"]
    assert conf.read_text() == original and kernel.live() == BOOT
