"""The fleet audit report: risk per host, order, and the four renderings.

Plan results are made by the real planner (as the overcommit_plan module returns them), so
these tests also pin that the report reads the module's result keys correctly.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from ansible_collections.dbfleet.memory.plugins.filter.audit_row import audit_row
from ansible_collections.dbfleet.memory.plugins.filter.fleet_report import fleet_report
from ansible_collections.dbfleet.memory.plugins.filter.overcommit_plan import overcommit_plan as plan_from_facts
from ansible_collections.dbfleet.memory.plugins.module_utils.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils.fleet_report import (
    CACHED_LABEL,
    CSV_COLUMNS,
    assess,
    order_by_risk,
    render,
    row_from_results,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import memory_from_fields
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import PlanOptions, plan_overcommit

GIB_KB = 1024 * 1024
BOOT_ADMIN_RESERVE_KB = 8192


def module_result(memtotal_kb, swaptotal_kb, committed_as_kb, live_mode=0, live_ratio_pct=50, hugetlb_kb=0,
                  admin_reserve_kb=BOOT_ADMIN_RESERVE_KB):
    """What overcommit_info returns for a host in this state."""
    live_limit_kb = commit_limit_kb(memtotal_kb, hugetlb_kb, swaptotal_kb, live_ratio_pct)
    memory = memory_from_fields({"MemTotal": memtotal_kb, "SwapTotal": swaptotal_kb, "Hugetlb": hugetlb_kb,
                                 "Committed_AS": committed_as_kb, "CommitLimit": live_limit_kb})
    result = plan_overcommit(memory, PlanOptions(profiles=("postgresql",))).as_dict()
    result["live_values"] = {"vm.overcommit_memory": str(live_mode), "vm.overcommit_ratio": str(live_ratio_pct),
                             "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": str(admin_reserve_kb)}
    result["changed"] = False
    return result


# name: (module result, expected level, locked out by ratio=100)
CASES = {
    # 4 GiB, mode 2 at the default ratio 50: CommitLimit 2 GiB below 2.5 GiB committed.
    "mode2-locked-out-now": (module_result(4 * GIB_KB, 0, int(2.5 * GIB_KB), live_mode=2), "critical", False),
    # 4 GiB, mode 0, 5 GiB promised: RAM can back 3.6 GiB.
    "mode0-overcommitted": (module_result(4 * GIB_KB, 0, 5 * GIB_KB), "critical", True),
    # 3.4 GiB of 3.6 GiB backable: 5.6 % left.
    "mode0-tight": (module_result(4 * GIB_KB, 0, int(3.4 * GIB_KB)), "high", False),
    # 2.9 GiB of 3.6 GiB: 19 % left.
    "mode0-watch": (module_result(4 * GIB_KB, 0, int(2.9 * GIB_KB)), "watch", False),
    # mode 2 at ratio 200 has room, but ratio=100 (4 GiB) is below 5 GiB committed.
    "mode2-ratio200-ratio100-would-lock-out": (
        module_result(4 * GIB_KB, 0, 5 * GIB_KB, live_mode=2, live_ratio_pct=200), "watch", True),
    "mode2-healthy": (module_result(16 * GIB_KB, 0, 4 * GIB_KB, live_mode=2, live_ratio_pct=80), "ok", False),
    "mode0-healthy-big-swap": (module_result(64 * GIB_KB, 16 * GIB_KB, 20 * GIB_KB), "ok", False),
    "unreachable": ({"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused"},
                    "unknown", None),
}


@pytest.mark.parametrize("host", sorted(CASES))
def test_risk_level_and_ratio100_lockout_per_host_state(host):
    result, level, locked = CASES[host]
    risk = assess(row_from_results(host, result))
    assert (risk.level, risk.locked_out_by_ratio100) == (level, locked)


def test_hosts_are_ordered_worst_first_then_by_smallest_headroom():
    rows = [row_from_results(host, result) for host, (result, _level, _locked) in sorted(CASES.items())]
    assert [row.host for row, _risk in order_by_risk(rows)] == [
        "mode0-overcommitted",  # -1.4 GiB of 3.6: -38.9 %
        "mode2-locked-out-now",  # -0.5 GiB of 2 GiB: -25.4 %
        "mode0-tight",
        "mode0-watch",
        "mode2-ratio200-ratio100-would-lock-out",
        "mode2-healthy",  # 68.7 % left of CommitLimit
        "mode0-healthy-big-swap",  # 72.8 % left of what RAM + swap can back
        "unreachable",
    ]


def test_mode2_headroom_leaves_out_the_admin_reserve_root_alone_may_use():
    risk = assess(row_from_results("db", module_result(16 * GIB_KB, 0, 4 * GIB_KB, live_mode=2, live_ratio_pct=80,
                                                       admin_reserve_kb=131072)))
    limit_kb = commit_limit_kb(16 * GIB_KB, 0, 0, 80)
    assert risk.headroom_kb == limit_kb - 131072 - 4 * GIB_KB


def test_ratio100_limit_is_the_kernel_formula_with_huge_pages_left_out():
    result = module_result(64 * GIB_KB, 2 * GIB_KB, 30 * GIB_KB, hugetlb_kb=40 * GIB_KB)
    risk = assess(row_from_results("oracle", result))
    assert risk.ratio100_commit_limit_kb == commit_limit_kb(64 * GIB_KB, 40 * GIB_KB, 2 * GIB_KB, 100)
    assert risk.locked_out_by_ratio100 is True  # 24 + 2 GiB < 30 GiB + reserve


def test_shadowed_drop_in_is_a_finding_and_raises_ok_to_watch():
    info = dict(CASES["mode2-healthy"][0], shadowing={
        "vm.overcommit_memory": {"status": "shadowed", "message": "vm.overcommit_memory is shadowed by 99-x.conf"},
        "vm.overcommit_ratio": {"status": "ours", "message": ""}})
    row = row_from_results("db", info)
    risk = assess(row)
    assert row.shadowed == ("vm.overcommit_memory is shadowed by 99-x.conf",)
    assert risk.level == "watch"
    assert "vm.overcommit_memory is shadowed by 99-x.conf" in risk.findings


def _all_rows():
    rows = [audit_row(result, host=host) for host, (result, _l, _k) in sorted(CASES.items())]
    facts = {"ansible_memtotal_mb": 8192, "ansible_swaptotal_mb": 1024}
    rows.append(audit_row(None, host="cached-only", cached_plan=plan_from_facts(facts), cache_only=True))
    rows.append(audit_row({"unreachable": True, "msg": "timed out"}, host="down-but-cached",
                          cached_plan=plan_from_facts(facts)))
    return rows


@pytest.mark.parametrize("fmt", ["markdown", "html", "json", "csv"])
def test_every_format_lists_unreachable_and_cached_hosts(fmt):
    text = fleet_report(_all_rows(), format=fmt)
    for host in ("unreachable", "cached-only", "down-but-cached"):
        assert host in text
    if fmt == "json":
        hosts = {h["host"]: h for h in json.loads(text)["hosts"]}
        assert hosts["unreachable"]["status"] == "unreachable"
        assert hosts["down-but-cached"]["source"] == "cached_facts"
        assert hosts["cached-only"]["risk"]["level"] == "unknown"
    elif fmt == "csv":
        by_host = {r["host"]: r for r in csv.DictReader(io.StringIO(text))}
        assert by_host["down-but-cached"]["status"] == "unreachable"
        assert by_host["cached-only"]["source"] == "cached_facts"
    else:
        assert text.count(CACHED_LABEL) >= 2


def test_cached_rows_carry_memory_but_no_committed_as_and_say_so():
    rows = {row["host"]: row for row in _all_rows()}
    cached = rows["down-but-cached"]
    assert (cached["memtotal_kb"], cached["committed_as_kb"]) == (8192 * 1024, None)
    assert CACHED_LABEL in cached["message"]


def test_html_is_self_contained_with_one_chart_group_per_host():
    rows = _all_rows()
    page = fleet_report(rows, format="html", generated_at="2026-01-01T00:00:00Z")
    assert page.count("<svg") == 1
    groups = re.findall(r'<g class="host" data-host="([^"]+)"', page)
    assert sorted(groups) == sorted(row["host"] for row in rows)
    assert groups[0] == "mode0-overcommitted"  # the chart is in risk order too
    assert not re.search(r"<script|<link|src=|https?://(?!www\.w3\.org/2000/svg)", page)


def test_csv_has_a_fixed_header_and_one_line_per_host():
    text = fleet_report(_all_rows(), format="csv")
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 1 + len(_all_rows())


def test_unknown_format_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="markdown, html, json, csv"):
        render([], "pdf")


def test_a_targeted_host_without_a_row_is_reported_as_failed_not_dropped():
    rows = [audit_row(CASES["mode2-healthy"][0], host="db1")]
    report = json.loads(fleet_report(rows, format="json", hosts=["db1", "db2"]))
    assert [(h["host"], h["status"]) for h in report["hosts"]] == [("db1", "ok"), ("db2", "failed")]
