from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import (
    commit_limit_kb,
    explain_commit_limit,
    largest_kbytes_within,
    largest_ratio_within,
    ratio_step_kb,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_meminfo


@pytest.mark.parametrize(
    "fixture, ratio_pct",
    [
        ("small-vm-2g-noswap", 50),
        ("db-host-256g-swap", 50),
        ("oracle-hugepages-300g", 50),
        ("multi-hugepage-sizes", 50),
        ("already-mode2-ratio80", 80),
        ("el7-kernel-no-hugetlb-line", 50),
    ],
)
def test_formula_reproduces_the_commit_limit_the_kernel_printed(meminfo_text, fixture, ratio_pct):
    shape = memory_from_meminfo(meminfo_text(fixture))
    assert commit_limit_kb(shape.memtotal_kb, shape.hugetlb_kb, shape.swaptotal_kb, ratio_pct) == shape.commit_limit_kb


def test_ratio_works_in_pages_with_integer_division():
    # 1001 pages * 33 / 100 = 330.33 -> 330 pages; + 3 swap pages = 333 pages = 1332 kB
    assert commit_limit_kb(memtotal_kb=4004, hugetlb_kb=0, swaptotal_kb=12, overcommit_ratio_pct=33) == 1332


def test_partial_pages_of_memtotal_and_swap_are_dropped():
    # 4006 kB is 1001 pages and a half; 14 kB of swap is 3 pages and a half
    assert commit_limit_kb(4006, 0, 14, overcommit_ratio_pct=100) == (1001 + 3) * 4


def test_huge_pages_leave_the_ratio_base():
    # 10 GiB RAM, 6 GiB huge pages: ratio 100 allows only the other 4 GiB
    assert commit_limit_kb(10485760, 6291456, 0, overcommit_ratio_pct=100) == 4194304


def test_kbytes_replaces_the_ratio_and_is_rounded_down_to_pages():
    assert commit_limit_kb(10485760, 0, 2048, overcommit_ratio_pct=50, overcommit_kbytes=1023) == 1020 + 2048


def test_ratio_may_exceed_100():
    assert commit_limit_kb(4000, 0, 0, overcommit_ratio_pct=150) == 6000


def test_ratio_step_is_one_percent_of_non_huge_ram():
    assert ratio_step_kb(memtotal_kb=1073741824, hugetlb_kb=0) == 10737418  # 1 TiB host: ~10 GiB a step


@pytest.mark.parametrize("limit_kb", [4000, 4003, 4004, 12345, 400000, 399999])
def test_largest_ratio_within_is_the_largest_that_fits(limit_kb):
    memtotal_kb, hugetlb_kb, swap_kb = 200000, 0, 1000
    ratio = largest_ratio_within(limit_kb, memtotal_kb, hugetlb_kb, swap_kb)
    assert commit_limit_kb(memtotal_kb, hugetlb_kb, swap_kb, ratio) <= limit_kb
    assert commit_limit_kb(memtotal_kb, hugetlb_kb, swap_kb, ratio + 1) > limit_kb


def test_largest_ratio_within_finds_ratios_that_round_down_onto_the_budget():
    # base 50 pages, budget 1 page: ratios 2 and 3 both give floor(50 * r / 100) = 1
    assert largest_ratio_within(limit_kb=4, memtotal_kb=200, hugetlb_kb=0, swaptotal_kb=0) == 3


def test_no_ratio_fits_below_swap_alone():
    assert largest_ratio_within(limit_kb=1000, memtotal_kb=8000, hugetlb_kb=0, swaptotal_kb=2000) is None


def test_kbytes_within_is_page_aligned_and_never_zero():
    assert largest_kbytes_within(limit_kb=10003, swaptotal_kb=2000) == 8000
    assert largest_kbytes_within(limit_kb=2003, swaptotal_kb=2000) is None


def test_explanation_shows_the_numbers_and_the_result():
    text = explain_commit_limit(16370300, 0, 4194300, overcommit_ratio_pct=80)
    assert text == (
        "CommitLimit = (MemTotal 16370300 kB - hugetlb 0 kB) * overcommit_ratio 80 / 100 + SwapTotal 4194300 kB "
        "= 17290540 kB (in 4 kB pages, rounded down)"
    )
    assert "overcommit_kbytes 8000 kB" in explain_commit_limit(16000, 0, 0, overcommit_kbytes=8000)
