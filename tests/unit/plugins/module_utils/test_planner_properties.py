"""Properties of the planner, checked against an oracle written out again in this file.

The oracle does not import commit_limit or the planner's helpers. It restates, from the
kernel source (mm/util.c, Linux 6.1) and the README's bounds:

* vm_commit_limit(): CommitLimit in pages, with integer division;
* __vm_enough_memory(): the request is added to Committed_AS first, then in mode 2 a task
  without CAP_SYS_ADMIN is granted it only if
  Committed_AS < CommitLimit - admin_reserve - min(total_vm / 32, user_reserve) (pages, strict);
* the upper bound: (MemTotal - hugetlb) less kernel_reserve_pct of it, plus SwapTotal;
* the need: max(Committed_AS, workload peak) plus headroom_pct of it.

It finds the best value by brute force (every ratio from 0 to 1000) and judges a state by
simulating the kernel for processes of every size that matters.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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

MIB = 1024
PAGE_KB = 4
RATIOS = range(0, 1001)


# --- the oracle --------------------------------------------------------------------------

def oracle_commit_limit_pages(memory, ratio_pct, kbytes):
    """mm/util.c vm_commit_limit(), in pages."""
    if kbytes:
        allowed = kbytes // PAGE_KB
    else:
        allowed = (memory.memtotal_kb // PAGE_KB - memory.hugetlb_kb // PAGE_KB) * ratio_pct // 100
    return allowed + memory.swaptotal_kb // PAGE_KB


def oracle_grants(memory, mode, limit_pages, admin_reserve_kb, user_reserve_kb,
                  committed_pages, request_pages, total_vm_pages, cap_sys_admin):
    """mm/util.c __vm_enough_memory() for a task with an mm: True when the request is granted."""
    committed_pages += request_pages  # vm_acct_memory() comes before the check
    if mode == 1:
        return True
    if mode == 0:
        return request_pages <= memory.memtotal_kb // PAGE_KB + memory.swaptotal_kb // PAGE_KB
    allowed = limit_pages
    if not cap_sys_admin:
        allowed -= admin_reserve_kb // PAGE_KB
    allowed -= min(total_vm_pages // 32, user_reserve_kb // PAGE_KB)
    return committed_pages < allowed


def oracle_upper_kb(memory, options):
    non_huge_kb = memory.memtotal_kb - memory.hugetlb_kb
    return non_huge_kb - non_huge_kb * options.kernel_reserve_pct // 100 + memory.swaptotal_kb


def oracle_needed_kb(memory, options):
    demand_kb = max(memory.committed_as_kb or 0, options.workload_commit_kb)
    return demand_kb + demand_kb * options.headroom_pct // 100


def process_sizes_pages(needed_pages, user_reserve_kb):
    """total_vm of the process that asks: empty, tiny, as large as the need, around the size
    where total_vm / 32 reaches the user reserve, and huge (address space committing nothing)."""
    cap = 32 * (user_reserve_kb // PAGE_KB)
    return (0, 1, needed_pages, max(cap - 32, 0), cap, 1 << 40)


def oracle_nonroot_reaches_need(memory, options, mode, limit_pages, admin_reserve_kb):
    """Can a non-root process, whatever its size, take Committed_AS up to demand + headroom?

    Simulated as the request that brings Committed_AS to the need (its last page): in mode 2
    only the total counts, and in mode 0 no single request of the database is that large.
    """
    needed_pages = -(-oracle_needed_kb(memory, options) // PAGE_KB)
    before = max(needed_pages - 1, 0)
    return all(
        oracle_grants(memory, mode, limit_pages, admin_reserve_kb, options.user_reserve_kb,
                      before, needed_pages - before, total_vm, cap_sys_admin=False)
        for total_vm in process_sizes_pages(needed_pages, options.user_reserve_kb)
    )


def oracle_root_keeps_admin_reserve(memory, options, mode, limit_pages, admin_reserve_kb):
    """After non-root processes committed the need, root can still commit the admin reserve."""
    needed_pages = -(-oracle_needed_kb(memory, options) // PAGE_KB)
    return all(
        oracle_grants(memory, mode, limit_pages, admin_reserve_kb, options.user_reserve_kb,
                      needed_pages, admin_reserve_kb // PAGE_KB, total_vm, cap_sys_admin=True)
        for total_vm in process_sizes_pages(needed_pages, options.user_reserve_kb)
    )


def oracle_best_ratio(memory, options):
    """Brute force: the largest ratio whose CommitLimit stays within the upper bound."""
    upper_kb = oracle_upper_kb(memory, options)
    return max(r for r in RATIOS if oracle_commit_limit_pages(memory, r, 0) * PAGE_KB <= upper_kb)


# --- strategies --------------------------------------------------------------------------

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
    user_reserve_kb=st.one_of(st.just(128 * MIB), st.integers(min_value=0, max_value=256 * MIB)),
)


# --- the planner against the oracle ------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(memory_shapes(), plan_options)
def test_a_safe_plan_lets_a_non_root_process_commit_the_need_and_root_keeps_its_reserve(memory, options):
    plan = plan_overcommit(memory, options)
    state = plan.end_state
    limit_pages = oracle_commit_limit_pages(memory, int(state[KEY_RATIO]), int(state[KEY_KBYTES]))
    admin_kb = int(state[KEY_ADMIN_RESERVE])
    if plan.safe:
        assert oracle_nonroot_reaches_need(memory, options, 2, limit_pages, admin_kb)
        assert oracle_root_keeps_admin_reserve(memory, options, 2, limit_pages, admin_kb)


@settings(max_examples=300, deadline=None)
@given(memory_shapes(), plan_options)
def test_the_planned_value_is_the_largest_within_the_upper_bound(memory, options):
    plan = plan_overcommit(memory, options)
    upper_kb = oracle_upper_kb(memory, options)
    ratio, kbytes = int(plan.end_state[KEY_RATIO]), int(plan.end_state[KEY_KBYTES])
    assert plan.commit_limit_kb == oracle_commit_limit_pages(memory, ratio, kbytes) * PAGE_KB
    if plan.limit_by == "ratio":
        best = oracle_best_ratio(memory, options)
        if memory.memtotal_kb // PAGE_KB > memory.hugetlb_kb // PAGE_KB:
            assert ratio == best
        else:  # no RAM for a ratio to act on: every ratio gives the same CommitLimit
            assert plan.commit_limit_kb == oracle_commit_limit_pages(memory, best, 0) * PAGE_KB
        if options.prefer == "kbytes":  # fell back: not even one page of kbytes fits
            assert oracle_commit_limit_pages(memory, 0, PAGE_KB) * PAGE_KB > upper_kb
    else:
        assert options.prefer != "ratio"
        # CommitLimit grows with kbytes, so "largest" means: it fits and the next page does not.
        assert kbytes > 0 and kbytes % PAGE_KB == 0
        assert oracle_commit_limit_pages(memory, 0, kbytes) * PAGE_KB <= upper_kb
        assert oracle_commit_limit_pages(memory, 0, kbytes + PAGE_KB) * PAGE_KB > upper_kb


@settings(max_examples=300, deadline=None)
@given(memory_shapes(), plan_options)
def test_unsafe_exactly_when_no_value_within_the_upper_bound_meets_the_need(memory, options):
    plan = plan_overcommit(memory, options)
    upper_kb = oracle_upper_kb(memory, options)
    if plan.mode == 1:
        assert plan.safe
        return
    admin_kb = options.admin_reserve_kb
    if plan.limit_by == "ratio":
        limits = (oracle_commit_limit_pages(memory, r, 0) for r in RATIOS)
    else:
        # CommitLimit grows with kbytes, so the largest page-aligned value that fits decides:
        # kbytes / page + swap pages <= upper / page.
        best_kbytes = (upper_kb // PAGE_KB - memory.swaptotal_kb // PAGE_KB) * PAGE_KB
        limits = (oracle_commit_limit_pages(memory, 0, best_kbytes),)
    some_value_meets_the_need = any(
        oracle_nonroot_reaches_need(memory, options, 2, limit, admin_kb)
        for limit in limits if limit * PAGE_KB <= upper_kb
    )
    assert plan.safe == some_value_meets_the_need


@st.composite
def end_states(draw):
    mode = draw(st.sampled_from([0, 1, 2]))
    ratio = draw(st.integers(min_value=0, max_value=1000))
    kbytes = draw(st.one_of(st.just(0), st.integers(min_value=1, max_value=8 * 1024 * 1024 * 1024)))
    admin = draw(st.integers(min_value=0, max_value=4 * 1024 * MIB))
    return {KEY_MODE: str(mode), KEY_RATIO: str(ratio), KEY_KBYTES: str(kbytes), KEY_ADMIN_RESERVE: str(admin)}


@settings(max_examples=500, deadline=None)
@given(memory_shapes(), plan_options, end_states())
def test_check_commit_state_agrees_with_the_kernel_on_any_end_state(memory, options, state):
    verdict = check_commit_state(memory, state, options)
    mode = int(state[KEY_MODE])
    limit_pages = oracle_commit_limit_pages(memory, int(state[KEY_RATIO]), int(state[KEY_KBYTES]))
    admin_kb = int(state[KEY_ADMIN_RESERVE])
    assert verdict.safe == oracle_nonroot_reaches_need(memory, options, mode, limit_pages, admin_kb)
    if mode == 2:
        assert verdict.commit_limit_kb == limit_pages * PAGE_KB
        if verdict.safe:
            assert oracle_root_keeps_admin_reserve(memory, options, mode, limit_pages, admin_kb)


@settings(max_examples=300, deadline=None)
@given(memory_shapes(), end_states(), st.integers(min_value=0, max_value=512 * MIB),
       st.integers(min_value=-3, max_value=3), st.integers(min_value=0, max_value=PAGE_KB - 1))
def test_check_commit_state_agrees_with_the_kernel_at_the_boundary(memory, state, user_reserve_kb, pages_off, kb_off):
    """Committed_AS placed within a few pages of the last one the kernel grants, where an
    off-by-one (the strict '<', the page rounding of the reserves) would show."""
    state = dict(state, **{KEY_MODE: "2"})
    limit_pages = oracle_commit_limit_pages(memory, int(state[KEY_RATIO]), int(state[KEY_KBYTES]))
    admin_kb = int(state[KEY_ADMIN_RESERVE])
    last_granted_pages = limit_pages - admin_kb // PAGE_KB - user_reserve_kb // PAGE_KB - 1
    committed_kb = max(0, (last_granted_pages + pages_off) * PAGE_KB - kb_off)
    shape = MemoryShape(memory.memtotal_kb, memory.swaptotal_kb, memory.hugetlb_kb, committed_as_kb=committed_kb)
    options = PlanOptions(headroom_pct=0, user_reserve_kb=user_reserve_kb)
    verdict = check_commit_state(shape, state, options)
    assert verdict.safe == oracle_nonroot_reaches_need(shape, options, 2, limit_pages, admin_kb)


# --- shape of the plan -------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(memory_shapes(), plan_options)
def test_the_bounds_say_what_the_verdict_says(memory, options):
    plan = plan_overcommit(memory, options)
    assert plan.safe == plan.commit_state.safe
    assert plan.commit_limit_kb <= plan.bounds.upper_kb
    if plan.mode == 2:
        assert plan.safe == (plan.commit_limit_kb >= plan.bounds.lower_kb)


@settings(max_examples=300, deadline=None)
@given(memory_shapes(), plan_options)
def test_never_sets_both_ratio_and_kbytes(memory, options):
    plan = plan_overcommit(memory, options)
    if plan.mode == 1:
        assert plan.sysctl == {KEY_MODE: "1"}
        return
    assert (KEY_RATIO in plan.sysctl) != (KEY_KBYTES in plan.sysctl)
    assert plan.sysctl.get(KEY_KBYTES) != "0"


@settings(max_examples=300, deadline=None)
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
