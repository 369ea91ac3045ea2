from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.filter.overcommit_plan import FilterModule, overcommit_plan
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import PlanOptions, plan_overcommit

# As `setup` reports a 16 GiB host with 4 GiB of swap
FACTS = {"memtotal_mb": 16384, "swaptotal_mb": 4096, "memory_mb": {"real": {"total": 16384}, "swap": {"total": 4096}}}


def test_the_filter_is_registered_under_its_documented_name():
    assert FilterModule().filters()["overcommit_plan"] is overcommit_plan


def test_plans_from_ansible_facts_with_the_same_core_as_the_module():
    result = overcommit_plan(FACTS, profile="postgresql", workload_commit_mb=8192)
    core = plan_overcommit(
        MemoryShape(memtotal_kb=16384 * 1024, swaptotal_kb=4096 * 1024, hugetlb_kb=0, committed_as_kb=None),
        PlanOptions(profiles=("postgresql",), workload_commit_kb=8192 * 1024),
    ).as_dict()
    assert result == dict(core, source="facts", reasons=core["reasons"] + [result["reasons"][-1]])
    # (16777216 - 1677721) + 4194304 = 19293799 kB can be backed; ratio 90 -> 15099494 + 4194304
    assert result["sysctl"]["vm.overcommit_ratio"] == "90"
    assert result["commit_limit_kb"] == 19293796
    assert result["committed_as_kb"] is None
    assert any("Committed_AS is unknown" in reason for reason in result["reasons"])


def test_says_it_assumes_the_kernels_default_user_reserve():
    result = overcommit_plan(FACTS)
    assert result["options"]["user_reserve_kb"] == 131072
    assert result["bounds"]["user_reserve_kb"] == 131072
    assert "vm.user_reserve_kbytes is not in the facts" in result["reasons"][-1]
    assert "131072 kB (128 MiB)" in result["reasons"][-1]


def test_reads_hostvars_with_the_ansible_prefix_and_the_memory_mb_dict():
    hostvars = {"ansible_memory_mb": {"real": {"total": 16384}, "swap": {"total": 4096}}}
    assert overcommit_plan(hostvars)["commit_limit_kb"] == overcommit_plan(FACTS)["commit_limit_kb"]


def test_huge_pages_given_by_hand_leave_the_budget():
    without = overcommit_plan(FACTS)["bounds"]["upper_kb"]
    with_huge = overcommit_plan(FACTS, hugetlb_mb=8192)["bounds"]["upper_kb"]
    # non-huge RAM minus its 10 % kernel reserve, plus 4 GiB of swap
    assert without == (16777216 - 1677721) + 4194304
    assert with_huge == (8388608 - 838860) + 4194304


@pytest.mark.parametrize(
    "facts, kwargs, message",
    [
        ({}, {}, "facts lack memtotal_mb/swaptotal_mb"),
        ("not facts", {}, "input must be a host's facts"),
        (FACTS, {"profile": ["postgresql", "redis"]}, "conflicting profiles"),
        (FACTS, {"headroom_pct": 500}, "headroom_pct: must be between 0 and 100"),
        (FACTS, {"hugetlb_mb": 999999}, "hugetlb_mb must be between 0 and memtotal_mb"),
        ({"memtotal_mb": "lots", "swaptotal_mb": 0}, {}, "must be integers in MiB"),
    ],
)
def test_bad_input_raises_a_filter_error_naming_the_problem(facts, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        overcommit_plan(facts, **kwargs)
