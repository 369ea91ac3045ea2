"""The planner against real meminfo texts, with expectations worked out by hand.

Defaults: headroom 20 %, kernel reserve 10 % of non-huge RAM, admin reserve 128 MiB
(131072 kB), user reserve 128 MiB (131072 kB, the kernel's cap for vm.user_reserve_kbytes),
4 kB pages. upper = (MemTotal - hugetlb) - reserve + swap; the chosen limit is the largest
the kernel can express at or below it. lower = demand + headroom + admin reserve + user
reserve + one page (HOLD below).
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape, memory_from_meminfo
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    CommitStateInputError,
    PlanInputError,
    PlanOptions,
    check_commit_state,
    plan_overcommit,
)


# What a non-root process can never commit: admin reserve + user reserve + one page.
HOLD = 131072 + 131072 + 4


@pytest.mark.parametrize(
    "fixture, expected_sysctl, upper_kb, commit_limit_kb, lower_kb",
    [
        # 2014124 - 201412 = 1812712 kB can be backed; ratio 90: 503531 pages * 90 // 100 = 453177 pages
        ("small-vm-2g-noswap", {"vm.overcommit_ratio": "90"}, 1812712, 1812708, 612340 + 122468 + HOLD),
        # one ratio step is 2.5 GiB -> kbytes; (254248466 // 4 - 4194303) pages = 59367813 pages
        ("db-host-256g-swap", {"vm.overcommit_kbytes": "237471252"}, 254248466, 254248464,
         98765432 + 19753086 + HOLD),
        # 300 GiB of huge pages leave the budget: non-huge 213702236 kB, reserve 21370223 kB
        ("oracle-hugepages-300g", {"vm.overcommit_kbytes": "192332012"}, 209109225, 209109224,
         40000000 + 8000000 + HOLD),
        # Hugetlb (2 MiB and 1 GiB pages) = 18874368 kB; step 1129673 kB > 1 GiB -> kbytes
        ("multi-hugepage-sizes", {"vm.overcommit_kbytes": "101670596"}, 110059203, 110059200,
         30000000 + 6000000 + HOLD),
        # currently mode 2 with ratio 80; the plan does not depend on that
        ("already-mode2-ratio80", {"vm.overcommit_ratio": "90"}, 18927570, 18927568, 9876543 + 1975308 + HOLD),
        ("el7-kernel-no-hugetlb-line", {"vm.overcommit_ratio": "90"}, 55871948, 55871944,
         12000000 + 2400000 + HOLD),
    ],
)
def test_mode_2_plans_for_real_hosts(meminfo_text, fixture, expected_sysctl, upper_kb, commit_limit_kb, lower_kb):
    plan = plan_overcommit(memory_from_meminfo(meminfo_text(fixture)), PlanOptions(profiles=("postgresql",)))
    assert plan.sysctl == dict(expected_sysctl, **{"vm.overcommit_memory": "2", "vm.admin_reserve_kbytes": "131072"})
    assert plan.bounds.upper_kb == upper_kb
    assert plan.bounds.lower_kb == lower_kb
    assert plan.commit_limit_kb == commit_limit_kb
    assert plan.safe and plan.verdict == "safe"


def test_sysctl_keys_are_ordered_for_entering_mode_2():
    plan = plan_overcommit(memory_from_meminfo(SMALL), PlanOptions())
    assert list(plan.sysctl) == ["vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_memory"]


def test_infeasible_host_is_unsafe_and_says_by_how_much_and_what_fixes_it(meminfo_text):
    # 4 GiB, no swap, Committed_AS 5 GiB: lower 5242880 + 1048576 + 131072 + 131072 + 4 = 6553604 kB,
    # best limit 3625412 kB -> short by 2928192 kB (2859.6 MiB)
    plan = plan_overcommit(memory_from_meminfo(meminfo_text("vm-4g-overcommitted")), PlanOptions())
    assert not plan.safe
    assert plan.verdict == "unsafe"
    assert plan.commit_limit_kb == 3625412
    verdict = plan.reasons[-1]
    assert "No safe mode-2 limit" in verdict
    assert "by 2859 MiB" in verdict
    assert "add at least 2860 MiB of swap" in verdict
    # demand that fits: (3625412 - 131072 - 131072 - 4) * 100 // 120 = 2802720 kB;
    # 5242880 - 2802720 = 2440160 kB (2383.0 MiB)
    assert "reduce the committed memory by 2383 MiB" in verdict


def test_adding_the_suggested_swap_makes_the_same_host_safe(meminfo_text):
    text = meminfo_text("vm-4g-overcommitted").replace("SwapTotal:             0 kB", "SwapTotal:       %d kB" % (2860 * 1024))
    assert plan_overcommit(memory_from_meminfo(text), PlanOptions()).safe


def test_workload_peak_raises_the_lower_bound_above_committed_as(meminfo_text):
    memory = memory_from_meminfo(meminfo_text("small-vm-2g-noswap"))
    plan = plan_overcommit(memory, PlanOptions(workload_commit_kb=1500 * 1024))
    assert plan.bounds.demand_kb == 1536000
    assert plan.bounds.lower_kb == 1536000 + 307200 + HOLD
    assert not plan.safe


def test_the_chosen_value_does_not_depend_on_committed_as(meminfo_text):
    text = meminfo_text("small-vm-2g-noswap")
    busier = text.replace("Committed_AS:     612340 kB", "Committed_AS:    1000000 kB")
    assert busier != text
    assert plan_overcommit(memory_from_meminfo(busier), PlanOptions()).sysctl == plan_overcommit(
        memory_from_meminfo(text), PlanOptions()
    ).sysctl


@pytest.mark.parametrize("profile", ["redis", "valkey"])
def test_redis_and_valkey_plan_mode_1_and_keep_the_limit_as_shown(meminfo_text, profile):
    plan = plan_overcommit(memory_from_meminfo(meminfo_text("db-host-256g-swap")), PlanOptions(profiles=(profile,)))
    assert plan.sysctl == {"vm.overcommit_memory": "1"}
    assert plan.mode == 1 and plan.limit_by is None
    assert plan.commit_limit_kb == 148705684
    assert plan.safe


def test_mode_1_warns_when_demand_exceeds_what_memory_can_back(meminfo_text):
    plan = plan_overcommit(memory_from_meminfo(meminfo_text("vm-4g-overcommitted")), PlanOptions(profiles=("redis",)))
    assert plan.safe
    assert any("OOM killer" in reason for reason in plan.reasons)


@pytest.mark.parametrize(
    "prefer, key, value, commit_limit_kb",
    [
        ("ratio", "vm.overcommit_ratio", "90", 1812708),
        # kbytes reaches the upper bound (1812712 kB) to the page, the ratio only to its step
        ("kbytes", "vm.overcommit_kbytes", "1812712", 1812712),
    ],
)
def test_prefer_forces_ratio_or_kbytes(meminfo_text, prefer, key, value, commit_limit_kb):
    plan = plan_overcommit(memory_from_meminfo(meminfo_text("small-vm-2g-noswap")), PlanOptions(prefer=prefer))
    assert plan.sysctl[key] == value
    assert plan.commit_limit_kb == commit_limit_kb


def test_kbytes_falls_back_to_ratio_when_the_budget_is_zero():
    # every byte is in huge pages: only swap can be committed, and kbytes=0 would mean "use the ratio"
    text = "MemTotal: 8000 kB\nSwapTotal: 400 kB\nCommitted_AS: 10 kB\nHugetlb: 8000 kB\n"
    plan = plan_overcommit(memory_from_meminfo(text), PlanOptions(prefer="kbytes"))
    assert plan.sysctl["vm.overcommit_ratio"] == "0"
    assert plan.commit_limit_kb == 400
    assert any("cannot express a budget of zero" in reason for reason in plan.reasons)


def test_reasons_let_a_reader_redo_the_arithmetic(meminfo_text):
    plan = plan_overcommit(memory_from_meminfo(meminfo_text("small-vm-2g-noswap")), PlanOptions())
    assert plan.formula == (
        "CommitLimit = (MemTotal 2014124 kB - hugetlb 0 kB) * overcommit_ratio 90 / 100 + SwapTotal 0 kB "
        "= 1812708 kB (in 4 kB pages, rounded down)"
    )
    assert "upper bound" in plan.reasons[0] and "lower bound" in plan.reasons[1]


def test_unknown_committed_as_is_said_plainly():
    memory = MemoryShape(memtotal_kb=8388608, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=None)
    plan = plan_overcommit(memory, PlanOptions())
    assert plan.bounds.demand_kb == 0
    assert "Committed_AS is unknown" in plan.reasons[0]


@pytest.mark.parametrize(
    "options, option, message",
    [
        (PlanOptions(profiles=()), "profile", "at least one profile"),
        (PlanOptions(profiles=("postgres",)), "profile", "unknown profile\\(s\\) postgres \\(choices: generic, postgresql"),
        (PlanOptions(profiles=("postgresql", "redis")), "profile",
         "postgresql needs vm.overcommit_memory=2; redis needs vm.overcommit_memory=1"),
        (PlanOptions(profiles=("valkey", "mysql")), "profile", "conflicting profiles"),
        (PlanOptions(workload_commit_kb=-1024), "workload_commit_mb", "must be 0 or more"),
        (PlanOptions(headroom_pct=-1), "headroom_pct", "between 0 and 100, got -1"),
        (PlanOptions(headroom_pct=101), "headroom_pct", "between 0 and 100, got 101"),
        (PlanOptions(kernel_reserve_pct=51), "kernel_reserve_pct", "between 0 and 50, got 51"),
        (PlanOptions(admin_reserve_kb=4096), "admin_reserve_mb", "at least 8"),
        (PlanOptions(prefer="pages"), "prefer", "one of auto, ratio, kbytes"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_what_is_allowed(options, option, message):
    with pytest.raises(PlanInputError, match=message) as raised:
        plan_overcommit(memory_from_meminfo(SMALL), options)
    assert raised.value.option == option
    assert str(raised.value).startswith(option + ": ")


def test_compatible_mode_2_profiles_combine():
    plan = plan_overcommit(memory_from_meminfo(SMALL), PlanOptions(profiles=("postgresql", "mysql")))
    assert plan.mode == 2 and plan.safe


def test_as_dict_has_the_module_result_keys():
    result = plan_overcommit(memory_from_meminfo(SMALL), PlanOptions()).as_dict()
    assert {"sysctl", "commit_limit_kb", "committed_as_kb", "safe", "verdict", "reasons", "memory", "bounds",
            "formula", "limit_by", "mode", "profile", "options"} <= set(result)
    assert result["committed_as_kb"] == 612340
    assert result["memory"]["memtotal_kb"] == 2014124


SMALL = "MemTotal: 2014124 kB\nSwapTotal: 0 kB\nCommitted_AS: 612340 kB\nCommitLimit: 1007060 kB\n"


# ---------------------------------------------------------------------------------------
# check_commit_state: the one lower-bound rule, on end states of the four managed keys.
# mm/util.c __vm_enough_memory(), mode 2, non-root: grant iff
#   Committed_AS (with the request) < CommitLimit - admin_reserve - min(total_vm/32, user_reserve)
# in pages. We hold back the whole user reserve (any process may ask), so a non-root process can
# commit CommitLimit - admin - user - 1 page in total.
# ---------------------------------------------------------------------------------------

GIB_HOST = dict(memtotal_kb=1048576, swaptotal_kb=0, hugetlb_kb=0)  # 262144 pages of 4 kB


def _state(mode, ratio="0", kbytes="0", admin="8192"):
    return {"vm.overcommit_memory": mode, "vm.overcommit_ratio": ratio, "vm.overcommit_kbytes": kbytes,
            "vm.admin_reserve_kbytes": admin}


@pytest.mark.parametrize(
    "case, memory, values, options, safe, commit_limit_kb, room_kb, shortfall_kb",
    [
        ("mode 0 compares nothing with CommitLimit, even far over it",
         MemoryShape(committed_as_kb=50 * 1048576, **GIB_HOST), {"vm.overcommit_memory": "0"},
         PlanOptions(), True, None, None, 0),
        ("mode 1 grants every request",
         MemoryShape(committed_as_kb=50 * 1048576, **GIB_HOST), _state("1", ratio="0"),
         PlanOptions(), True, None, None, 0),
        # room = 524288 - 8192 - 131072 - 4 = 385020 kB
        ("mode 2, need exactly the room: safe (the >= at the boundary)",
         MemoryShape(committed_as_kb=385020, **GIB_HOST), _state("2", kbytes="524288"),
         PlanOptions(headroom_pct=0), True, 524288, 385020, 0),
        ("mode 2, need one kB more than the room: unsafe",
         MemoryShape(committed_as_kb=385021, **GIB_HOST), _state("2", kbytes="524288"),
         PlanOptions(headroom_pct=0), False, 524288, 385020, 1),
        ("mode 2, CommitLimit one page lower: unsafe",
         MemoryShape(committed_as_kb=385020, **GIB_HOST), _state("2", kbytes="524284"),
         PlanOptions(headroom_pct=0), False, 524284, 385016, 4),
        ("demand is the workload peak when it is above Committed_AS; headroom on top",
         MemoryShape(committed_as_kb=300000, **GIB_HOST), _state("2", kbytes="524288"),
         PlanOptions(workload_commit_kb=320000, headroom_pct=20), True, 524288, 385020, 0),
        ("kbytes end state: kbytes decides, the ratio left in the state is ignored, partial pages dropped",
         MemoryShape(committed_as_kb=385020, **GIB_HOST), _state("2", ratio="50", kbytes="524290"),
         PlanOptions(headroom_pct=0), True, 524288, 385020, 0),
        ("ratio 0 with no swap: CommitLimit 0, the reserves alone exceed it, nothing can be committed",
         MemoryShape(committed_as_kb=100000, **GIB_HOST), _state("2", ratio="0"),
         PlanOptions(headroom_pct=0), False, 0, -139268, 100000 + 139268),
        ("the admin reserve counts in whole pages, as the kernel shifts it",
         MemoryShape(committed_as_kb=385020, **GIB_HOST), _state("2", kbytes="524288", admin="8195"),
         PlanOptions(headroom_pct=0), True, 524288, 385020, 0),
        ("the user reserve counts in whole pages, as the kernel shifts it",
         MemoryShape(committed_as_kb=385020, **GIB_HOST), _state("2", kbytes="524288"),
         PlanOptions(headroom_pct=0, user_reserve_kb=131075), True, 524288, 385020, 0),
        # 2 GiB host, ratio 90: CommitLimit 1812708 kB; admin 131072
        ("headroom 0: the user reserve alone makes it unsafe",
         MemoryShape(memtotal_kb=2014124, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=1600000),
         _state("2", ratio="90", admin="131072"), PlanOptions(headroom_pct=0),
         False, 1812708, 1812708 - 131072 - 131072 - 4, 1600000 - (1812708 - 262148)),
        ("the same state is safe on a host whose vm.user_reserve_kbytes is 0",
         MemoryShape(memtotal_kb=2014124, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=1600000),
         _state("2", ratio="90", admin="131072"), PlanOptions(headroom_pct=0, user_reserve_kb=0),
         True, 1812708, 1812708 - 131072 - 4, 0),
    ],
)
def test_check_commit_state(case, memory, values, options, safe, commit_limit_kb, room_kb, shortfall_kb):
    verdict = check_commit_state(memory, values, options)
    assert (verdict.safe, verdict.commit_limit_kb, verdict.room_kb, verdict.shortfall_kb) == (
        safe, commit_limit_kb, room_kb, shortfall_kb), case
    assert verdict.mode == int(values["vm.overcommit_memory"])
    assert verdict.as_dict()["safe"] is safe


def test_a_headroom_0_plan_that_refuses_the_next_allocation_is_unsafe(meminfo_text):
    """Issue 8, item 5. Fails on the planner before the user reserve (it called this plan safe).

    2 GiB host, Committed_AS 1600000 kB, headroom 0: ratio 90 gives CommitLimit 1812708 kB.
    The old lower bound, Committed_AS + admin reserve = 1731072 kB, fits. But the kernel lets
    a non-root process commit only 1812708 - 131072 (admin) - 131072 (user) - 4 = 1550560 kB.
    """
    text = meminfo_text("small-vm-2g-noswap").replace("Committed_AS:     612340 kB", "Committed_AS:    1600000 kB")
    plan = plan_overcommit(memory_from_meminfo(text), PlanOptions(headroom_pct=0))
    assert plan.commit_limit_kb == 1812708
    assert not plan.safe
    assert plan.commit_state.shortfall_kb == 1600000 - 1550560
    assert "user reserve 128 MiB" in plan.reasons[1]


def test_the_plan_is_judged_by_check_commit_state_on_its_end_state(meminfo_text):
    memory = memory_from_meminfo(meminfo_text("small-vm-2g-noswap"))
    plan = plan_overcommit(memory, PlanOptions())
    assert plan.end_state == {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "90",
                              "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": "131072"}
    assert plan.commit_state == check_commit_state(memory, plan.end_state, PlanOptions())
    assert plan.as_dict()["commit_state"]["room_kb"] == 1812708 - 131072 - 131072 - 4


def test_a_refusal_reason_gives_the_numbers_in_mib_and_the_formula():
    memory = MemoryShape(committed_as_kb=100000, **GIB_HOST)
    reason = check_commit_state(memory, _state("2", ratio="0"), PlanOptions(headroom_pct=0)).reason
    assert reason.startswith("vm.overcommit_memory=2 with vm.overcommit_ratio=0: CommitLimit = (MemTotal 1048576 kB")
    assert "A process without CAP_SYS_ADMIN may commit nothing (CommitLimit 0 MiB - admin reserve 8 MiB" in reason
    assert "user reserve 128 MiB - 1 page" in reason
    assert "234 MiB short of the max(Committed_AS 97 MiB, workload peak 0 MiB) + headroom 0 % (0 MiB)" in reason
    assert "fail with ENOMEM" in reason


@pytest.mark.parametrize(
    "values, key, message",
    [
        ({"vm.overcommit_memory": "2", "vm.overcommit_ratio": "50", "vm.admin_reserve_kbytes": "8192"},
         "vm.overcommit_kbytes", "lacks this key"),
        ({}, "vm.overcommit_memory", "lacks this key"),
        (_state("3"), "vm.overcommit_memory", "must be 0, 1 or 2"),
        (_state("2", ratio="0 # default"), "vm.overcommit_ratio", "canonical decimal"),
        # Judged only in the one spelling we write: the kernel reads "087" and "+87" as EINVAL and
        # " 87" is not what any of our readers return; "\u00b2" made int() raise a ValueError.
        (_state("2", ratio=" 087"), "vm.overcommit_ratio", "canonical decimal"),
        (_state("2", ratio="087"), "vm.overcommit_ratio", "canonical decimal"),
        (_state("2", ratio="+87"), "vm.overcommit_ratio", "canonical decimal"),
        (_state("2", ratio="87\n"), "vm.overcommit_ratio", "canonical decimal"),
        (_state("2", ratio="\u00b2"), "vm.overcommit_ratio", "canonical decimal"),
    ],
)
def test_a_malformed_end_state_is_refused_naming_the_key(values, key, message):
    with pytest.raises(CommitStateInputError, match=message) as raised:
        check_commit_state(MemoryShape(committed_as_kb=0, **GIB_HOST), values, PlanOptions())
    assert raised.value.key == key
