"""dbfleet.memory.sysctl_apply against a fake /proc and sysctl.d tree.

The fake kernel behaves like mm/util.c where it matters: writing the ratio zeroes
kbytes and vice versa, CommitLimit follows the values, and it can refuse a write.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.dbfleet.memory.plugins.modules import sysctl_apply
from fake_kernel import BOOT, CONTENT, PATH, PLAN, PLAN_LIMIT_KB, snapshot


def dropin(kernel):
    return kernel.root / PATH.lstrip("/")


def run(args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            sysctl_apply.main()
    return exc.value.code


@pytest.fixture
def result(capsys):
    def call(args, **kw):
        code = run(args, **kw)
        out = json.loads(capsys.readouterr().out)
        out["rc"] = code
        return out

    return call


PRESENT = {"path": PATH, "content": CONTENT, "values": PLAN, "expect_commit_limit_kb": PLAN_LIMIT_KB}


def test_present_writes_live_in_safe_order_then_the_file(kernel, result):
    r = result(PRESENT)
    assert r["rc"] == 0 and r["changed"] and r["file_changed"] and r["live_applied"]
    assert kernel.writes == [("vm.admin_reserve_kbytes", "131072"), ("vm.overcommit_ratio", "87"),
                             ("vm.overcommit_memory", "2")]
    assert r["live_changes"][0] == {"key": "vm.admin_reserve_kbytes", "before": "8192", "after": "131072"}
    assert dropin(kernel).read_text() == CONTENT
    assert stat.S_IMODE(dropin(kernel).stat().st_mode) == 0o644
    assert r["commit_limit_kb"] == PLAN_LIMIT_KB
    assert r["container"] is None and r["live_skipped_reason"] is None
    assert {k: v["status"] for k, v in r["shadowing"].items()} == dict.fromkeys(PLAN, "ours")
    assert not [n for n in os.listdir(dropin(kernel).parent) if n.startswith(".dbfleet-")]


def test_second_run_changes_nothing(kernel, result):
    result(PRESENT)
    kernel.writes.clear()
    r = result(PRESENT)
    assert (r["changed"], r["file_changed"], r["live_changes"], kernel.writes) == (False, False, [], [])
    assert r["live_applied"] is True


def test_content_without_final_newline_is_stored_with_one(kernel, result):
    result(dict(PRESENT, content=CONTENT.rstrip("\n")))
    assert dropin(kernel).read_text() == CONTENT
    assert result(PRESENT)["changed"] is False


def test_wrong_mode_is_fixed_and_reported(kernel, result):
    result(PRESENT)
    os.chmod(dropin(kernel), 0o600)
    r = result(PRESENT)
    assert r["changed"] and r["file_changed"] and r["live_changes"] == []
    assert stat.S_IMODE(dropin(kernel).stat().st_mode) == 0o644


def test_check_mode_changes_nothing_and_predicts_the_writes(kernel, result):
    before = snapshot(kernel.root)
    r = result(PRESENT, check_mode=True)
    assert snapshot(kernel.root) == before and kernel.writes == []
    assert r["changed"] and r["file_changed"] and not r["live_applied"]
    assert [c["key"] for c in r["live_changes"]] == [
        "vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_memory"]
    assert r["live_skipped_reason"] == "check mode"


def test_check_mode_on_a_converged_host_reports_no_change(kernel, result):
    result(PRESENT)
    r = result(PRESENT, check_mode=True)
    assert r["changed"] is False and r["live_changes"] == []


def test_diff_shows_file_and_live_values(kernel, result):
    r = result(PRESENT, diff=True, check_mode=True)
    file_diff, live_diff = r["diff"]
    assert (file_diff["before"], file_diff["after"], file_diff["after_header"]) == ("", CONTENT, PATH)
    assert "vm.overcommit_memory = 0\n" in live_diff["before"]
    assert "vm.overcommit_memory = 2\n" in live_diff["after"]
    assert "vm.overcommit_ratio = 87\n" in live_diff["after"]


def test_container_stays_file_only(kernel, result):
    (kernel.root / "run").mkdir()
    (kernel.root / "run" / ".containerenv").write_text('engine="podman-4.3.1"\n')
    r = result(PRESENT)
    assert kernel.writes == [] and kernel.live() == BOOT
    assert r["container"] == "podman" and r["live_applied"] is False and r["live_changes"] == []
    assert "not namespaced" in r["live_skipped_reason"]
    assert dropin(kernel).read_text() == CONTENT
    assert result(PRESENT)["changed"] is False  # idempotent although the host kernel differs


def test_live_never_manages_the_file_only(kernel, result):
    r = result(dict(PRESENT, live="never"))
    assert kernel.writes == [] and r["live_skipped_reason"] == "live=never: file only"
    assert dropin(kernel).exists()


def test_switch_from_kbytes_writes_only_the_ratio(kernel, result):
    kernel.write("vm.overcommit_kbytes", "3000000")
    kernel.writes.clear()
    result(PRESENT)
    assert "vm.overcommit_kbytes" not in [key for key, _value in kernel.writes]
    assert kernel.get("overcommit_kbytes") == "0" and kernel.get("overcommit_ratio") == "87"


@pytest.mark.parametrize(
    "name, text, winner",
    [
        ("etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_memory = 0\n", "/etc/sysctl.d/99-zz-tuning.conf:1"),
        ("etc/sysctl.conf", "vm.overcommit_ratio=50\n", "/etc/sysctl.conf:1"),
    ],
)
def test_shadowed_dropin_fails_before_changing_anything(kernel, result, name, text, winner):
    (kernel.root / name).write_text(text)
    before = snapshot(kernel.root)
    r = result(PRESENT)
    assert r["rc"] == 1 and r["failed"]
    assert winner in r["msg"] and "Nothing changed" in r["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_shadowing_warn_applies_and_warns(kernel, result):
    (kernel.root / "etc/sysctl.d/99-zz-tuning.conf").write_text("vm.overcommit_memory = 0\n")
    r = result(dict(PRESENT, shadowing="warn"))
    assert r["rc"] == 0 and dropin(kernel).exists()
    # ansible-core 2.19+ returns structured warnings; the text is what matters here.
    assert "applies /etc/sysctl.d/99-zz-tuning.conf:1 last, setting vm.overcommit_memory = 0" in json.dumps(r["warnings"])
    assert r["shadowing"]["vm.overcommit_memory"]["status"] == "shadowed"


def test_refused_write_rolls_back_live_values_and_keeps_the_file(kernel, result):
    dropin(kernel).write_text("# an older version\nvm.overcommit_memory = 0\n")
    kernel.refuse.add("vm.overcommit_memory")
    r = result(dict(PRESENT, shadowing="warn"))
    assert r["rc"] == 1 and "the kernel refused vm.overcommit_memory = 2" in r["msg"] and "rolled back" in r["msg"]
    assert kernel.live() == BOOT
    assert kernel.writes[-2:] == [("vm.overcommit_ratio", "50"), ("vm.admin_reserve_kbytes", "8192")]
    assert dropin(kernel).read_text() == "# an older version\nvm.overcommit_memory = 0\n"


def test_commit_limit_mismatch_rolls_back(kernel, result):
    r = result(dict(PRESENT, expect_commit_limit_kb=PLAN_LIMIT_KB + 100))
    assert r["rc"] == 1 and "CommitLimit is %d kB" % PLAN_LIMIT_KB in r["msg"]
    assert kernel.live() == BOOT and not dropin(kernel).exists()


def test_commit_limit_within_one_page_is_accepted(kernel, result):
    assert result(dict(PRESENT, expect_commit_limit_kb=PLAN_LIMIT_KB + 4))["rc"] == 0


def test_failed_file_write_restores_file_and_live_values(kernel, result, monkeypatch):
    old = "# previous\nvm.overcommit_ratio = 60\n"
    dropin(kernel).write_text(old)
    kernel.write("vm.overcommit_kbytes", "2500000")  # kbytes governs before: rollback must restore it

    def broken_move(self, src, dest, **kw):
        os.unlink(src)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(basic.AnsibleModule, "atomic_move", broken_move)
    before_live = kernel.live()
    r = result(dict(PRESENT, shadowing="warn"))
    assert r["rc"] == 1 and "No space left on device" in r["msg"]
    assert kernel.live() == before_live
    assert dropin(kernel).read_text() == old
    assert r["rollback_problems"] == []


def test_absent_removes_dropin_and_returns_to_kernel_defaults(kernel, result):
    result(PRESENT)
    kernel.writes.clear()
    r = result({"path": PATH, "state": "absent"})
    assert r["changed"] and r["file_changed"] and not dropin(kernel).exists()
    assert kernel.live() == BOOT
    assert [key for key, _value in kernel.writes] == [
        "vm.overcommit_memory", "vm.admin_reserve_kbytes", "vm.overcommit_ratio"]
    assert result({"path": PATH, "state": "absent"})["changed"] is False


def test_absent_returns_to_what_the_remaining_files_say(kernel, result):
    result(PRESENT)
    (kernel.root / "usr/lib/sysctl.d/30-vendor.conf").write_text("vm.overcommit_memory = 1\nvm.overcommit_ratio = 70\n")
    result({"path": PATH, "state": "absent"})
    assert kernel.live() == dict(BOOT, overcommit_memory="1", overcommit_ratio="70")
    assert (kernel.root / "usr/lib/sysctl.d/30-vendor.conf").exists()


def test_absent_without_dropin_touches_nothing(kernel, result):
    kernel.write("vm.overcommit_memory", "1")  # someone else's live tuning
    kernel.writes.clear()
    before = snapshot(kernel.root)
    r = result({"path": PATH, "state": "absent"})
    assert r["changed"] is False and kernel.writes == [] and snapshot(kernel.root) == before


def test_absent_check_mode(kernel, result):
    result(PRESENT)
    before = snapshot(kernel.root)
    r = result({"path": PATH, "state": "absent"}, check_mode=True)
    assert r["changed"] and snapshot(kernel.root) == before


BAD = [
    ({"path": "/etc/sysctl.conf"}, "path must be a file directly in /etc/sysctl.d"),
    ({"path": "/etc/sysctl.d/../sysctl.d/x.conf"}, "path must be a file directly in /etc/sysctl.d"),
    ({"path": "/usr/lib/sysctl.d/90-x.conf"}, "path must be a file directly in /etc/sysctl.d"),
    ({"path": "etc/sysctl.d/90-x.conf"}, "path must be a file directly in /etc/sysctl.d"),
    ({"path": "/etc/sysctl.d/90-x.cnf"}, "path must name a '.conf' file"),
    ({"content": None}, "content is required with state=present"),
    ({"values": {}}, "values is required with state=present"),
    ({"values": dict(PLAN, **{"vm.overcommit_kbytes": "1"})}, "exclude each other"),
    ({"values": {"vm.overcommit_kbytes": "0"}, "content": "vm.overcommit_kbytes = 0\n"}, "swap only"),
    ({"values": {"vm.swappiness": "1"}}, "unsupported key(s) vm.swappiness"),
    ({"values": dict(PLAN, **{"vm.overcommit_memory": "3"})}, "must be 0, 1 or 2"),
    ({"values": dict(PLAN, **{"vm.overcommit_ratio": "eighty"})}, "not a non-negative integer"),
    ({"content": CONTENT.replace("= 87", "= 86")}, "content sets vm.overcommit_ratio = 86 (line 3) but values says 87"),
    ({"content": CONTENT + "vm.overcommit_ratio = 87\n"}, "exactly once, found 2 times"),
    ({"content": CONTENT.replace("vm.overcommit_memory = 2\n", "")}, "vm.overcommit_memory exactly once, found 0"),
    ({"content": CONTENT + "vm.overcommit_kbytes = 5\n"}, "content sets vm.overcommit_kbytes (line 5) but values"),
    ({"expect_commit_limit_kb": -1}, "expect_commit_limit_kb must be a positive"),
    ({"state": "absent"}, "content is only used with state=present"),
    ({"state": "gone"}, "value of state must be one of: present, absent"),
    ({"live": "sometimes"}, "value of live must be one of: auto, always, never"),
    ({"shadowing": "ignore"}, "value of shadowing must be one of: fail, warn"),
    ({"bogus": 1}, "Unsupported parameters"),
]


@pytest.mark.parametrize("change, fragment", BAD, ids=[fragment for _change, fragment in BAD])
def test_bad_input_fails_clearly_and_changes_nothing(kernel, result, change, fragment):
    before = snapshot(kernel.root)
    r = result(dict(PRESENT, **change))
    assert r["rc"] == 1 and r["failed"] and fragment in r["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
