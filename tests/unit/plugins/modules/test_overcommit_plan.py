from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils import dropin_apply
from ansible_collections.dbfleet.memory.plugins.modules import overcommit_plan

NOT_MEMINFO = str(Path(__file__).resolve().parents[2] / "conftest.py")


@pytest.fixture
def meminfo_file(tmp_path, meminfo_text):
    def write(name):
        path = tmp_path / "meminfo"
        path.write_text(meminfo_text(name))
        return str(path)

    return write


def test_plans_from_a_meminfo_file_and_reports_the_numbers(run_module, meminfo_file):
    failed, result = run_module(overcommit_plan.main, {"profile": ["postgresql"], "meminfo_path": meminfo_file("small-vm-2g-noswap")})
    assert not failed
    assert result["changed"] is False
    assert result["sysctl"] == {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90", "vm.overcommit_memory": "2"}
    assert result["commit_limit_kb"] == 1812708
    assert result["committed_as_kb"] == 612340
    assert result["safe"] is True and result["verdict"] == "safe"
    assert result["bounds"]["upper_kb"] == 1812712
    assert result["memory"]["memtotal_kb"] == 2014124
    assert result["formula"].endswith("= 1812708 kB (in 4 kB pages, rounded down)")
    assert result["source"].endswith("meminfo")


def test_meminfo_option_overrides_the_file_for_what_if_plans(run_module):
    failed, result = run_module(
        overcommit_plan.main,
        {"meminfo": {"MemTotal": "2014124", "SwapTotal": 0, "Committed_AS": "612340 kB"}, "meminfo_path": "/nonexistent"},
    )
    assert not failed
    assert result["source"] == "meminfo option"
    assert result["commit_limit_kb"] == 1812708


def test_unsafe_plan_fails_with_reasons(run_module, meminfo_file):
    failed, result = run_module(overcommit_plan.main, {"meminfo_path": meminfo_file("vm-4g-overcommitted")})
    assert failed
    assert result["msg"].startswith("Unsafe overcommit plan:")
    assert "add at least 2860 MiB of swap" in result["msg"]
    assert result["safe"] is False and result["sysctl"]["vm.overcommit_memory"] == "2"


def test_unsafe_plan_is_returned_when_only_the_report_is_wanted(run_module, meminfo_file):
    failed, result = run_module(overcommit_plan.main, {"meminfo_path": meminfo_file("vm-4g-overcommitted"), "report_only": True})
    assert not failed
    assert result["safe"] is False and result["verdict"] == "unsafe"


def test_redis_plans_mode_1(run_module, meminfo_file):
    failed, result = run_module(overcommit_plan.main, {"profile": ["redis"], "meminfo_path": meminfo_file("db-host-256g-swap")})
    assert not failed
    assert result["sysctl"] == {"vm.overcommit_memory": "1"}
    assert result["mode"] == 1


def test_live_values_are_reported_when_readable(run_module, meminfo_file, tmp_path, monkeypatch):
    vm = tmp_path / "proc" / "sys" / "vm"
    vm.mkdir(parents=True)
    for name, value in {"overcommit_memory": "0", "overcommit_ratio": "50", "overcommit_kbytes": "0"}.items():
        (vm / name).write_text(value + "\n")
    monkeypatch.setattr(dropin_apply, "_ROOT", str(tmp_path))
    failed, result = run_module(overcommit_plan.main, {"meminfo_path": meminfo_file("small-vm-2g-noswap")})
    assert not failed
    assert result["live_sysctl"] == {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0"}


@pytest.mark.parametrize(
    "args, message",
    [
        ({"profile": ["postgres"]}, "value of profile must be one or more of: generic, postgresql, mysql, mariadb, oracle, redis, valkey"),
        ({"profile": ["postgresql", "redis"]}, "profile: conflicting profiles on one host"),
        ({"profile": ["postgresql", "redis"], "report_only": True}, "profile: conflicting profiles on one host"),
        ({"prefer": "pages"}, "value of prefer must be one of: auto, ratio, kbytes"),
        ({"headroom_pct": 150}, "headroom_pct: must be between 0 and 100, got 150"),
        ({"headroom_pct": "lots"}, "headroom_pct"),
        ({"kernel_reserve_pct": 60}, "kernel_reserve_pct: must be between 0 and 50, got 60"),
        ({"workload_commit_mb": -1}, "workload_commit_mb: must be 0 or more"),
        ({"admin_reserve_mb": 1}, "admin_reserve_mb: must be at least 8"),
        ({"report_only": "perhaps"}, "report_only"),
        ({"meminfo": {"MemTotal": "a lot", "SwapTotal": 0, "Committed_AS": 0}}, "meminfo.MemTotal must be a non-negative integer in kB"),
        ({"meminfo": {"MemTotal": 1024}}, "meminfo: meminfo lacks required field(s) SwapTotal, Committed_AS"),
        ({"meminfo_path": "/nonexistent/meminfo"}, "meminfo_path: cannot read /nonexistent/meminfo"),
        ({"meminfo_path": NOT_MEMINFO}, "meminfo: meminfo line 1 is malformed"),
        ({"no_such_option": 1}, "Unsupported parameters"),
    ],
)
def test_every_bad_input_fails_with_a_message_naming_the_option(run_module, args, message):
    failed, result = run_module(overcommit_plan.main, args)
    assert failed
    assert message in result["msg"]
    assert "sysctl" not in result
