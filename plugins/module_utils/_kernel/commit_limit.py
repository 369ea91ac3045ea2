# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel's CommitLimit formula, and its inverses. The one place this rule lives.

mm/util.c vm_commit_limit() works in pages with integer division:

    allowed = overcommit_kbytes >> (PAGE_SHIFT - 10)                 if overcommit_kbytes
            = (totalram_pages - hugetlb_total_pages) * ratio / 100   otherwise
    CommitLimit = allowed + total_swap_pages

and /proc/meminfo shows CommitLimit, MemTotal and SwapTotal as those page counts in kB.
Reproducing the page arithmetic is what makes a prediction exact to one page.
"""

from __future__ import annotations

from typing import Optional

KERNEL_DEFAULT_RATIO_PCT = 50


def commit_limit_kb(
    memtotal_kb: int,
    hugetlb_kb: int,
    swaptotal_kb: int,
    overcommit_ratio_pct: int = KERNEL_DEFAULT_RATIO_PCT,
    overcommit_kbytes: int = 0,
    page_size_kb: int = 4,
) -> int:
    """CommitLimit in kB exactly as the kernel computes it for these sysctl values."""
    totalram_pages = memtotal_kb // page_size_kb
    hugetlb_pages = hugetlb_kb // page_size_kb
    swap_pages = swaptotal_kb // page_size_kb
    if overcommit_kbytes:
        allowed_pages = overcommit_kbytes // page_size_kb
    else:
        allowed_pages = (totalram_pages - hugetlb_pages) * overcommit_ratio_pct // 100
    return (allowed_pages + swap_pages) * page_size_kb


def ratio_step_kb(memtotal_kb: int, hugetlb_kb: int) -> int:
    """How much CommitLimit moves per percent of overcommit_ratio on this host."""
    return (memtotal_kb - hugetlb_kb) // 100


def largest_ratio_within(
    limit_kb: int, memtotal_kb: int, hugetlb_kb: int, swaptotal_kb: int, page_size_kb: int = 4
) -> Optional[int]:
    """The largest overcommit_ratio whose CommitLimit does not exceed limit_kb.

    None when even ratio 0 (CommitLimit = swap) is above the limit, or when the host has
    no non-huge RAM for a ratio to act on.
    """
    budget_pages = limit_kb // page_size_kb - swaptotal_kb // page_size_kb
    base_pages = memtotal_kb // page_size_kb - hugetlb_kb // page_size_kb
    if budget_pages < 0 or base_pages <= 0:
        return None
    # floor(base * r / 100) <= budget  <=>  base * r < (budget + 1) * 100
    return ((budget_pages + 1) * 100 - 1) // base_pages


def largest_kbytes_within(limit_kb: int, swaptotal_kb: int, page_size_kb: int = 4) -> Optional[int]:
    """The largest page-aligned overcommit_kbytes whose CommitLimit does not exceed limit_kb.

    Page-aligned so the value written equals what the kernel keeps. None when the budget
    is below one page: overcommit_kbytes=0 does not mean "nothing", it means "use the ratio".
    """
    budget_pages = limit_kb // page_size_kb - swaptotal_kb // page_size_kb
    if budget_pages <= 0:
        return None
    return budget_pages * page_size_kb


def explain_commit_limit(
    memtotal_kb: int,
    hugetlb_kb: int,
    swaptotal_kb: int,
    overcommit_ratio_pct: int = KERNEL_DEFAULT_RATIO_PCT,
    overcommit_kbytes: int = 0,
    page_size_kb: int = 4,
) -> str:
    """The formula with this host's numbers filled in, so a reader can redo it by hand."""
    result_kb = commit_limit_kb(
        memtotal_kb, hugetlb_kb, swaptotal_kb, overcommit_ratio_pct, overcommit_kbytes, page_size_kb
    )
    if overcommit_kbytes:
        return "CommitLimit = overcommit_kbytes %d kB + SwapTotal %d kB = %d kB (in %d kB pages, rounded down)" % (
            overcommit_kbytes, swaptotal_kb, result_kb, page_size_kb)
    return ("CommitLimit = (MemTotal %d kB - hugetlb %d kB) * overcommit_ratio %d / 100 + SwapTotal %d kB "
            "= %d kB (in %d kB pages, rounded down)" % (
                memtotal_kb, hugetlb_kb, overcommit_ratio_pct, swaptotal_kb, result_kb, page_size_kb))
