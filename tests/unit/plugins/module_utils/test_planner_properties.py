"""Properties of the planner over every memory shape hypothesis can think of."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dbfleet.memory.plugins.module_utils.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import (
    KEY_KBYTES,
    KEY_RATIO,
    PlanOptions,
    plan_overcommit,
)

MIB = 1024
PAGE_KB = 4

pages_kb = st.integers(min_value=16 * 1024, max_value=4 * 1024 * 1024 * 256).map(lambda pages: pages * PAGE_KB)


@st.composite
def memory_shapes(draw, memtotal_kb=None):
    memtotal = draw(pages_kb) if memtotal_kb is None else memtotal_kb
    hugetlb = draw(st.integers(min_value=0, max_value=memtotal // 2048)) * 2048
    swap = draw(st.integers(min_value=0, max_value=256 * 1024 * 256)) * PAGE_KB
    committed = draw(st.integers(min_value=0, max_value=2 * (memtotal + swap)))
    return MemoryShape(memtotal_kb=memtotal, swaptotal_kb=swap, hugetlb_kb=hugetlb, committed_as_kb=committed)


plan_options = st.builds(
    PlanOptions,
    profiles=st.sampled_from([("generic",), ("postgresql",), ("mysql", "mariadb"), ("oracle",)]),
    workload_commit_kb=st.integers(min_value=0, max_value=2 * 1024 * 1024 * 1024),
    headroom_pct=st.integers(min_value=0, max_value=100),
    kernel_reserve_pct=st.integers(min_value=0, max_value=50),
    admin_reserve_kb=st.integers(min_value=8, max_value=1024).map(lambda mb: mb * MIB),
    prefer=st.sampled_from(["auto", "ratio", "kbytes"]),
)


def _limit_from_sysctl(memory, sysctl):
    return commit_limit_kb(
        memory.memtotal_kb,
        memory.hugetlb_kb,
        memory.swaptotal_kb,
        overcommit_ratio_pct=int(sysctl.get(KEY_RATIO, 0)),
        overcommit_kbytes=int(sysctl.get(KEY_KBYTES, 0)),
    )


@settings(max_examples=400, deadline=None)
@given(memory_shapes(), plan_options)
def test_a_safe_plan_lies_within_both_bounds(memory, options):
    plan = plan_overcommit(memory, options)
    assert plan.commit_limit_kb <= plan.bounds.upper_kb
    if plan.safe:
        assert plan.commit_limit_kb >= plan.bounds.lower_kb
    else:
        assert plan.bounds.lower_kb > plan.commit_limit_kb


@settings(max_examples=400, deadline=None)
@given(memory_shapes(), plan_options)
def test_predicted_commit_limit_is_the_kernel_formula_of_the_planned_values(memory, options):
    plan = plan_overcommit(memory, options)
    assert plan.commit_limit_kb == _limit_from_sysctl(memory, plan.sysctl)


@settings(max_examples=400, deadline=None)
@given(memory_shapes(), plan_options)
def test_never_sets_both_ratio_and_kbytes(memory, options):
    plan = plan_overcommit(memory, options)
    assert not (KEY_RATIO in plan.sysctl and KEY_KBYTES in plan.sysctl)
    assert (KEY_RATIO in plan.sysctl) != (KEY_KBYTES in plan.sysctl)
    assert plan.sysctl.get(KEY_KBYTES) != "0"


@settings(max_examples=400, deadline=None)
@given(st.data(), plan_options, st.integers(min_value=1, max_value=64 * 1024 * 256))
def test_more_ram_never_yields_a_lower_commit_limit(data, options, extra_pages):
    memory = data.draw(memory_shapes())
    bigger = MemoryShape(
        memtotal_kb=memory.memtotal_kb + extra_pages * PAGE_KB,
        swaptotal_kb=memory.swaptotal_kb,
        hugetlb_kb=memory.hugetlb_kb,
        committed_as_kb=memory.committed_as_kb,
    )
    assert plan_overcommit(bigger, options).commit_limit_kb >= plan_overcommit(memory, options).commit_limit_kb


@settings(max_examples=200, deadline=None)
@given(memory_shapes(), plan_options)
def test_only_committed_memory_changes_the_verdict_never_the_values(memory, options):
    idle = MemoryShape(memory.memtotal_kb, memory.swaptotal_kb, memory.hugetlb_kb, committed_as_kb=0)
    assert plan_overcommit(memory, options).sysctl == plan_overcommit(idle, options).sysctl
