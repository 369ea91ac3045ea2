"""The databases' configured peaks in the one lower-bound rule (planner.check_commit_state).

A 2 GiB host without swap, Committed_AS 400 MiB, of which the databases commit 300 MiB now:
everything else is 100 MiB (102400 kB). Defaults: headroom 20 %, kernel reserve 10 %, admin and
user reserve 128 MiB each. The plan is ratio 90: CommitLimit 524288 pages x 90 // 100 = 471859
pages = 1887436 kB, and non-root processes may commit 1887436 - 131072 - 131072 - 4 = 1625288 kB.
The largest demand that fits: 1354407 kB (1354407 + 20 % rounded down = 1625288).
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    NO_DATABASE_PEAK,
    DatabaseDemand,
    PlanInputError,
    PlanOptions,
    demand_kb,
    largest_demand_within,
    needed_kb,
    plan_overcommit,
    room_for_more_kb,
    swap_for_demand_kb,
)

MIB = 1024
MEMORY = MemoryShape(memtotal_kb=2048 * MIB, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=400 * MIB)
ROOM_KB = 1625288
FITTING = DatabaseDemand(charged_kb=300 * MIB, peaks_kb=1200 * MIB, servers=("postgresql 15/main",))
TOO_BIG = DatabaseDemand(charged_kb=300 * MIB, peaks_kb=1300 * MIB, servers=("postgresql 15/main",))


def options(databases=None, database_peak="warn", **kwargs) -> PlanOptions:
    return PlanOptions(profiles=("postgresql",), databases=databases, database_peak=database_peak, **kwargs)


def test_the_largest_fitting_demand_is_the_rule_solved_exactly_with_its_rounding():
    assert largest_demand_within(ROOM_KB, 20) == 1354407  # 1625288 x 100 // 120 = 1354406: one short
    assert needed_kb(1354407, 20) == ROOM_KB and needed_kb(1354408, 20) == ROOM_KB + 1
    assert largest_demand_within(-5, 20) == 0 and largest_demand_within(ROOM_KB, 0) == ROOM_KB


@pytest.mark.parametrize("shortfall_kb, headroom_pct, swap_kb", [
    (100 * MIB, 20, 120 * MIB), (1, 20, 2), (500, 0, 500), (79193, 20, 95032)])
def test_swap_makes_up_a_demand_shortfall_grossed_up_by_the_headroom(shortfall_kb, headroom_pct, swap_kb):
    assert swap_for_demand_kb(shortfall_kb, headroom_pct) == swap_kb


@pytest.mark.parametrize("databases, database_peak, workload_kb, expected_kb", [
    (None, "enforce", 0, 400 * MIB),  # no databases read: Committed_AS alone
    (FITTING, "warn", 0, 400 * MIB),  # warn: the peaks stay out of the demand
    (FITTING, "enforce", 0, 100 * MIB + 1200 * MIB),  # everything else + the peaks
    (FITTING, "enforce", 1500 * MIB, 1500 * MIB),  # workload_commit_mb stays an override
    (DatabaseDemand(charged_kb=450 * MIB, peaks_kb=10 * MIB), "enforce", 0, 400 * MIB),  # Committed_AS wins
])
def test_the_demand_is_the_largest_of_committed_as_the_workload_and_everything_else_plus_the_peaks(
        databases, database_peak, workload_kb, expected_kb):
    assert demand_kb(MEMORY, options(databases, database_peak, workload_commit_kb=workload_kb)) == expected_kb


def test_everything_else_is_never_negative_when_a_server_grew_between_the_readings():
    assert DatabaseDemand(charged_kb=500 * MIB, peaks_kb=0).everything_else_kb(400 * MIB) == 0
    assert DatabaseDemand(charged_kb=0, peaks_kb=7).everything_else_kb(None) == 0


def test_without_databases_the_plan_has_no_database_verdict_and_no_database_line():
    plan = plan_overcommit(MEMORY, options())
    assert plan.database_verdict is None
    assert not [r for r in plan.reasons if "databases" in r]
    assert plan.commit_state.room_kb == ROOM_KB  # the worked numbers above hold


def test_databases_read_with_no_known_peak_add_nothing_and_the_plan_says_so():
    plan = plan_overcommit(MEMORY, options(DatabaseDemand(charged_kb=0, peaks_kb=0), "enforce"))
    assert plan.safe and plan.database_verdict is None and plan.bounds.demand_kb == 400 * MIB
    assert plan.reasons[-1] == NO_DATABASE_PEAK


def test_peaks_that_fit_say_so_with_the_demand_they_make():
    plan = plan_overcommit(MEMORY, options(FITTING))
    verdict = plan.database_verdict
    assert plan.safe and verdict.safe
    assert (verdict.demand_kb, verdict.needed_kb, verdict.room_kb) == (1331200, 1597440, ROOM_KB)
    assert room_for_more_kb(verdict, 20) == 1354407 - 1331200
    assert plan.reasons[-1].startswith("The databases' configured peaks fit (postgresql 15/main): the demand "
                                       "with them, 1300 MiB, plus headroom needs 1560 MiB of the 1587 MiB")


def test_warn_keeps_the_verdict_and_says_by_how_much_the_peaks_do_not_fit():
    plan = plan_overcommit(MEMORY, options(TOO_BIG, "warn"))
    verdict = plan.database_verdict
    assert plan.safe and plan.commit_state.demand_kb == 400 * MIB
    assert not verdict.safe and verdict.demand_kb == 1433600 and verdict.shortfall_kb == 1720320 - ROOM_KB
    assert room_for_more_kb(verdict, 20) == -79193  # 1433600 - 1354407
    line = plan.reasons[-1]
    assert plan.database_reason == line  # the line a warning quotes, as data, not found again in prose
    assert "do not fit (postgresql 15/main), warning only (database_peak=warn" in line
    assert "lower their peaks by 78 MiB in total" in line and "add at least 93 MiB of swap" in line


def test_enforce_makes_the_same_shortfall_the_plans_verdict():
    plan = plan_overcommit(MEMORY, options(TOO_BIG, "enforce"))
    assert not plan.safe and plan.database_verdict is plan.commit_state
    assert plan.commit_state.shortfall_kb == 1720320 - ROOM_KB
    assert plan.bounds.demand_kb == 1433600
    assert "enforced (database_peak=enforce): the plan is unsafe" in plan.reasons[-1]
    assert "everything else 100 MiB (Committed_AS 400 MiB - the databases' charge now 300 MiB)" in \
        plan.commit_state.reason


def test_enforce_with_peaks_that_fit_leaves_a_safe_plan_safe():
    assert plan_overcommit(MEMORY, options(FITTING, "enforce")).safe


def test_a_mode_1_plan_judges_no_database_peak():
    plan = plan_overcommit(MEMORY, PlanOptions(profiles=("redis",), databases=TOO_BIG, database_peak="enforce"))
    assert plan.safe and plan.database_verdict is None


def test_database_peak_takes_only_warn_or_enforce():
    with pytest.raises(PlanInputError, match="database_peak: must be one of warn, enforce, got 'strict'"):
        plan_overcommit(MEMORY, options(database_peak="strict"))
