"""The worked example of the "Choosing the numbers" guide is what the planner computes.

The guide (docs/docsite/rst/guide_numbers.rst) quotes numbers for one host; these tests plan
that host and check each quoted number against both the planner and the guide's text, so
neither can change without the other.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    KEY_ADMIN_RESERVE,
    KEY_KBYTES,
    KEY_MODE,
    KEY_RATIO,
    PlanOptions,
    check_commit_state,
    plan_overcommit,
)

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "docsite" / "rst" / "guide_numbers.rst"

# The guide's host: 64 GiB RAM, 8 GiB swap, 20 GiB committed, PostgreSQL peak 40 GiB, defaults otherwise.
HOST = MemoryShape(memtotal_kb=65842364, swaptotal_kb=8388604, hugetlb_kb=0, committed_as_kb=21474836, page_size_kb=4)
OPTIONS = PlanOptions(profiles=("postgresql",), workload_commit_kb=40960 * 1024, user_reserve_kb=131072)


@pytest.fixture(scope="module")
def guide_numbers():
    """Every integer the guide quotes, as text."""
    return set(re.findall(r"\d+", GUIDE.read_text()))


@pytest.fixture(scope="module")
def plan():
    return plan_overcommit(HOST, OPTIONS)


def test_the_guide_quotes_the_planners_bounds(plan, guide_numbers):
    bounds = plan.bounds
    quoted = {
        "kernel reserve": bounds.kernel_reserve_kb, "usable RAM": bounds.usable_ram_kb, "upper": bounds.upper_kb,
        "demand": bounds.demand_kb, "headroom": bounds.headroom_kb, "lower": bounds.lower_kb,
    }
    assert quoted == {
        "kernel reserve": 6584236, "usable RAM": 59258128, "upper": 67646732,
        "demand": 41943040, "headroom": 8388608, "lower": 50593796,
    }
    assert {str(value) for value in quoted.values()} <= guide_numbers


def test_the_guide_quotes_the_planned_values_and_commit_limit(plan, guide_numbers):
    assert plan.safe
    assert plan.sysctl == {KEY_ADMIN_RESERVE: "131072", KEY_RATIO: "90", KEY_MODE: "2"}
    assert plan.commit_limit_kb == 67646728
    assert plan.commit_state.room_kb == 67384580
    assert plan.commit_state.needed_kb == 50331648
    assert {"67646728", "67384580", "50331648", "16460591", "14814531", "59258124"} <= guide_numbers
    text = GUIDE.read_text()
    assert "vm.admin_reserve_kbytes = 131072\n    vm.overcommit_ratio = 90\n    vm.overcommit_memory = 2" in text


def test_one_ratio_step_more_would_pass_the_upper_bound_as_the_guide_says(plan, guide_numbers):
    ratio_91 = {KEY_MODE: "2", KEY_RATIO: "91", KEY_KBYTES: "0", KEY_ADMIN_RESERVE: "131072"}
    limit_kb = check_commit_state(HOST, ratio_91, OPTIONS).commit_limit_kb
    assert limit_kb == 68305152 > plan.bounds.upper_kb
    assert str(limit_kb) in guide_numbers


def test_the_copied_ratio_50_falls_short_by_what_the_guide_says(guide_numbers):
    copied = {KEY_MODE: "2", KEY_RATIO: "50", KEY_KBYTES: "0", KEY_ADMIN_RESERVE: "8192"}
    verdict = check_commit_state(HOST, copied, OPTIONS)
    assert not verdict.safe
    assert (verdict.commit_limit_kb, verdict.room_kb, verdict.shortfall_kb) == (41309784, 41170516, 9161132)
    assert {"41309784", "41170516", "9161132"} <= guide_numbers
