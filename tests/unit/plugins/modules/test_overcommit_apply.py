"""dbfleet.memory.overcommit_apply: plan, render and apply in one run, on a fake host.

The fake host has 4000000 kB of RAM, 1000000 kB of swap and Committed_AS 1000000 kB.
By hand: upper bound 4000000 - 400000 + 1000000 = 4600000 kB; ratio 90 gives
1000000 pages * 90 // 100 = 900000 pages + 250000 swap pages = 4600000 kB.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils.dropin_text import render_dropin
from ansible_collections.dbfleet.memory.plugins.modules import overcommit_apply
from fake_kernel import BOOT, snapshot

DROPIN = "etc/sysctl.d/90-dbfleet-overcommit.conf"
PLANNED = {"overcommit_memory": "2", "overcommit_ratio": "90", "overcommit_kbytes": "0", "admin_reserve_kbytes": "131072"}


def test_plans_renders_and_applies_in_one_run(kernel, run_module):
    failed, result = run_module(overcommit_apply.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    assert result["changed"] and result["file_changed"]
    assert result["plan"]["sysctl"] == {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90",
                                        "vm.overcommit_memory": "2"}
    assert result["plan"]["commit_limit_kb"] == 4600000 == result["commit_limit_kb"]
    assert kernel.live() == PLANNED
    # entering mode 2: reserve, then the limit, then the mode
    assert [key for key, _value in kernel.writes] == ["vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_memory"]
    text = (kernel.root / DROPIN).read_text()
    assert text == render_dropin(result["plan"])
    assert "vm.overcommit_ratio = 90\n" in text and "CommitLimit 4600000" in text


def test_second_run_changes_nothing(kernel, run_module):
    run_module(overcommit_apply.main, {"profile": ["postgresql"]})
    writes = len(kernel.writes)
    failed, result = run_module(overcommit_apply.main, {"profile": ["postgresql"]})
    assert not failed and not result["changed"]
    assert result["live_changes"] == [] and len(kernel.writes) == writes


def test_a_hand_edited_dropin_is_restored(kernel, run_module):
    run_module(overcommit_apply.main, {"profile": ["postgresql"]})
    path = kernel.root / DROPIN
    rendered = path.read_text()
    path.write_text(rendered.replace("vm.overcommit_ratio = 90", "vm.overcommit_ratio = 100"))
    writes = len(kernel.writes)
    failed, result = run_module(overcommit_apply.main, {"profile": ["postgresql"]})
    assert not failed and result["changed"] and result["file_changed"]
    assert path.read_text() == rendered
    assert result["live_changes"] == [] and len(kernel.writes) == writes   # the live values were right


def test_check_mode_predicts_and_changes_nothing(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_apply.main, {"profile": ["postgresql"], "_ansible_check_mode": True,
                                                        "_ansible_diff": True})
    assert not failed and result["changed"]
    assert snapshot(kernel.root) == before and kernel.writes == []
    assert "vm.overcommit_ratio = 90" in result["diff"][0]["after"]


def test_unsafe_plan_fails_before_anything_changes(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_apply.main, {"workload_commit_mb": 5000})
    assert failed
    assert result["msg"].startswith("Unsafe overcommit plan, nothing changed:")
    assert "of swap" in result["msg"] and result["plan"]["safe"] is False
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_report_only_never_fails_on_an_unsafe_plan_and_changes_nothing(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_apply.main, {"workload_commit_mb": 5000, "report_only": True})
    assert not failed
    assert result["changed"] is False and result["would_change"] is True
    assert result["plan"]["verdict"] == "unsafe"
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_a_shadowing_file_fails_the_run_or_is_reported(kernel, run_module):
    (kernel.root / "etc/sysctl.d/99-zz-tuning.conf").write_text("vm.overcommit_ratio = 40\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_apply.main, {})
    assert failed and "99-zz-tuning.conf" in result["msg"] and snapshot(kernel.root) == before
    failed, report = run_module(overcommit_apply.main, {"report_only": True})
    assert not failed and report["shadowing"]["vm.overcommit_ratio"]["status"] == "shadowed"
    assert snapshot(kernel.root) == before


def test_redis_sets_mode_1_only(kernel, run_module):
    failed, result = run_module(overcommit_apply.main, {"profile": ["redis"]})
    assert not failed
    assert kernel.live() == dict(BOOT, overcommit_memory="1")
    assert "vm.overcommit_memory = 1\n" in (kernel.root / DROPIN).read_text()


def test_absent_removes_the_dropin_and_returns_to_the_defaults(kernel, run_module):
    run_module(overcommit_apply.main, {"profile": ["postgresql"], "dropin_priority": 60})
    assert (kernel.root / "etc/sysctl.d/60-dbfleet-overcommit.conf").exists()
    failed, result = run_module(overcommit_apply.main, {"state": "absent", "dropin_priority": 60})
    assert not failed and result["changed"]
    assert not (kernel.root / "etc/sysctl.d/60-dbfleet-overcommit.conf").exists()
    assert kernel.live() == BOOT


@pytest.mark.parametrize(
    "args, message",
    [
        ({"dropin_priority": 5}, "dropin_priority: must be between 10 and 98 (a two-digit file name prefix), got 5"),
        ({"dropin_priority": 99}, "dropin_priority: must be between 10 and 98"),
        ({"profile": ["postgresql", "valkey"]}, "profile: conflicting profiles on one host"),
        ({"headroom_pct": 101}, "headroom_pct: must be between 0 and 100, got 101"),
        ({"live": "sometimes"}, "value of live must be one of: auto, always, never"),
        ({"shadowing": "ignore"}, "value of shadowing must be one of: fail, warn"),
        ({"state": "gone"}, "value of state must be one of: present, absent"),
    ],
)
def test_bad_input_fails_naming_the_option_and_changes_nothing(kernel, run_module, args, message):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_apply.main, args)
    assert failed and message in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
