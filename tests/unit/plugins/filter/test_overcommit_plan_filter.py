from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.filter.overcommit_plan import FilterModule, overcommit_plan
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import PlanOptions, plan_overcommit

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
    assert result == dict(core, source="facts", reasons=core["reasons"] + result["reasons"][-2:], databases=None)
    # (16777216 - 1677721) + 4194304 = 19293799 kB can be backed; ratio 90 -> 15099494 + 4194304
    assert result["sysctl"]["vm.overcommit_ratio"] == "90"
    assert result["commit_limit_kb"] == 19293796
    assert result["committed_as_kb"] is None
    assert any("Committed_AS is unknown" in reason for reason in result["reasons"])


def test_says_it_assumes_the_kernels_default_user_reserve():
    result = overcommit_plan(FACTS)
    assert result["options"]["user_reserve_kb"] == 131072
    assert result["bounds"]["user_reserve_kb"] == 131072
    assert "vm.user_reserve_kbytes is not in the facts" in result["reasons"][-2]
    assert "131072 kB (128 MiB)" in result["reasons"][-2]


@pytest.mark.parametrize("database_peak", ["warn", "enforce"])
def test_facts_know_no_database_and_the_plan_says_so_instead_of_judging_one(database_peak):
    result = overcommit_plan(FACTS, profile="postgresql", database_peak=database_peak)
    assert result["databases"] is None and result["database_verdict"] is None
    assert result["reasons"][-1].startswith(
        "No databases are known from facts: their configured peaks were not read or judged here (database_peak=%s"
        % database_peak)
    assert result["options"]["database_peak"] == database_peak


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
        ({"memtotal_mb": "lots", "swaptotal_mb": 0}, {}, "memtotal_mb must be a whole number of MiB"),
        # Were a bare TypeError: the audit's row then blamed the wrong thing.
        (FACTS, {"profile": 5}, "profile: must be a name or a list of names, got 5"),
        (FACTS, {"profile": [["postgresql"]]}, r"profile: must be a name or a list of names, got \[\['postgresql'\]\]"),
        (FACTS, {"profile": "postgres"}, "profile: must be one or more of generic, postgresql, .*, got 'postgres'"),
        (FACTS, {"workload_commit_mb": "lots"}, "workload_commit_mb: must be a whole number, got 'lots'"),
        (FACTS, {"headroom": 30}, "headroom: not a planner option; the options are profile, workload_commit_mb"),
    ],
)
def test_bad_input_raises_a_filter_error_naming_the_problem(facts, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        overcommit_plan(facts, **kwargs)


MIB_FORM = "must be a whole number of MiB, 0 or more (an integer or ASCII digits), got "


@pytest.mark.parametrize("facts, message", [
    # A JSON fact cache keeps Infinity and NaN; int(inf) raised OverflowError, a traceback.
    ({"memtotal_mb": 16384, "swaptotal_mb": float("inf")}, "swaptotal_mb " + MIB_FORM + "inf"),
    ({"memtotal_mb": 16384, "swaptotal_mb": float("-inf")}, "swaptotal_mb " + MIB_FORM + "-inf"),
    ({"memtotal_mb": 16384, "swaptotal_mb": float("nan")}, "swaptotal_mb " + MIB_FORM + "nan"),
    ({"memtotal_mb": float("inf"), "swaptotal_mb": 0}, "memtotal_mb " + MIB_FORM + "inf"),
    # Were planned with: a negative swap lowers CommitLimit, True is 1 MiB, 1.5 was cut to 1.
    ({"memtotal_mb": 16384, "swaptotal_mb": -4096}, "swaptotal_mb " + MIB_FORM + "-4096"),
    ({"memtotal_mb": 16384, "swaptotal_mb": True}, "swaptotal_mb " + MIB_FORM + "True"),
    ({"memtotal_mb": 16384, "swaptotal_mb": 1.5}, "swaptotal_mb " + MIB_FORM + "1.5"),
    ({"memtotal_mb": 16384, "swaptotal_mb": "\u0661\u0662"}, "swaptotal_mb " + MIB_FORM),
    ({"memtotal_mb": 16384, "swaptotal_mb": "1_0"}, "swaptotal_mb " + MIB_FORM + "'1_0'"),
    ({"memtotal_mb": -5, "swaptotal_mb": 0}, "memtotal_mb " + MIB_FORM + "-5"),
    ({"memtotal_mb": 0, "swaptotal_mb": 0}, "memtotal_mb must be more than 0, got 0"),
    ({"memory_mb": {"real": {"total": 16384}, "swap": {"total": float("inf")}}}, "memory_mb.swap.total " + MIB_FORM),
    # An AttributeError before: .get() on a str or an int.
    ({"memory_mb": "16384"}, "memory_mb must be a dict, got str"),
    ({"memory_mb": {"real": 16384, "swap": {"total": 0}}}, "memory_mb.real must be a dict, got int"),
])
def test_memory_facts_that_are_no_whole_number_of_mib_are_refused_naming_the_fact(facts, message):
    with pytest.raises(AnsibleFilterError) as refused:
        overcommit_plan(facts)
    assert str(refused.value).startswith("overcommit_plan: " + message)


@pytest.mark.parametrize("kwargs, message", [
    ({"hugetlb_mb": float("inf")}, "hugetlb_mb " + MIB_FORM + "inf"),
    ({"hugetlb_mb": -1}, "hugetlb_mb " + MIB_FORM + "-1"),
    ({"workload_commit_mb": float("inf")}, "workload_commit_mb: must be a whole number, got inf"),
    ({"headroom_pct": float("nan")}, "headroom_pct: must be a whole number, got nan"),
    ({"admin_reserve_mb": True}, "admin_reserve_mb: must be a whole number, got True"),
    ({"kernel_reserve_pct": "10.5"}, "kernel_reserve_pct: must be a whole number, got '10.5'"),
])
def test_planner_options_that_are_no_whole_number_are_refused_naming_the_option(kwargs, message):
    with pytest.raises(AnsibleFilterError) as refused:
        overcommit_plan(FACTS, **kwargs)
    assert str(refused.value) == "overcommit_plan: " + message


@pytest.mark.parametrize("facts, kwargs, swaptotal_kb", [
    ({"memtotal_mb": 16384, "swaptotal_mb": 0}, {}, 0),
    ({"memtotal_mb": "16384", "swaptotal_mb": "4096"}, {}, 4096 * 1024),  # a cache that keeps text
    ({"memtotal_mb": 16384, "swaptotal_mb": 4096}, {"workload_commit_mb": 8192.0, "headroom_pct": "10"}, 4096 * 1024),
])
def test_whole_numbers_in_any_of_their_plain_spellings_are_planned_with(facts, kwargs, swaptotal_kb):
    assert overcommit_plan(facts, **kwargs)["memory"]["swaptotal_kb"] == swaptotal_kb


# overcommit_info's facts (facts=true) for a 2 GiB host; the module test checks they plan as the module did.
CACHED = {"dbfleet_overcommit": {
    "schema": 1, "gathered_at": "2026-11-30T05:00:00Z", "source": "/proc/meminfo",
    "memory": {"memtotal_kb": 2014124, "swaptotal_kb": 0, "hugetlb_kb": 0, "committed_as_kb": 612340,
               "commit_limit_kb": 1007060, "page_size_kb": 4},
    "live_values": {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0",
                    "vm.admin_reserve_kbytes": "8192", "vm.user_reserve_kbytes": "65536"},
    "live_commit_state": {"safe": True}, "boot_now_unsafe": [], "container": None,
}}


def test_overcommit_info_facts_win_over_setup_facts_and_keep_committed_as_and_the_user_reserve():
    result = overcommit_plan(dict(FACTS, **CACHED), profile="postgresql")
    assert result["source"] == "overcommit_info facts"
    assert result["committed_as_kb"] == 612340 and result["memory"]["memtotal_kb"] == 2014124
    assert result["options"]["user_reserve_kb"] == 65536
    assert not any("vm.user_reserve_kbytes is not in the facts" in r for r in result["reasons"])
    assert not any("Committed_AS is unknown" in r for r in result["reasons"])
    assert result["live_values"] == CACHED["dbfleet_overcommit"]["live_values"]
    assert result["gathered_at"] == "2026-11-30T05:00:00Z"


def test_setup_facts_alone_keep_the_rough_path():
    assert overcommit_plan(FACTS)["source"] == "facts"


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        ({"schema": 2}, {}, "has schema 2, this collection reads 1"),
        ({"memory": {"memtotal_kb": "lots"}}, {}, "memory.memtotal_kb must be an integer"),
        ({"memory": dict(CACHED["dbfleet_overcommit"]["memory"], hugetlb_kb=9999999)}, {}, "cannot come from one host"),
        ({}, {"hugetlb_mb": 512}, "hugetlb_mb is for setup facts"),
        # Was a bare ValueError from int().
        ({"live_values": {"vm.user_reserve_kbytes": "lots"}}, {}, "live_values.vm.user_reserve_kbytes must be"),
        ({"live_values": {"vm.user_reserve_kbytes": " 087"}}, {}, "live_values.vm.user_reserve_kbytes must be"),
        ({"live_values": "none"}, {}, "live_values must be a dict"),
    ],
)
def test_bad_cached_facts_raise_a_filter_error_naming_the_problem(change, kwargs, message):
    cached = dict(CACHED["dbfleet_overcommit"], **change)
    with pytest.raises(AnsibleFilterError, match=message):
        overcommit_plan({"dbfleet_overcommit": cached}, **kwargs)


def test_options_given_by_position_are_refused_naming_the_way_to_give_them():
    with pytest.raises(AnsibleFilterError, match=r"give the options by name, for example overcommit_plan\(profile='postgresql'\)"):
        overcommit_plan(FACTS, "postgresql")
