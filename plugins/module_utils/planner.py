# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan vm.overcommit_* for one host from its memory shape.

The plan sits between two bounds:

* lower bound (keeps the host alive): CommitLimit must cover the larger of today's
  Committed_AS and the expected database peak, plus headroom, plus the admin reserve
  that lets root log in and recover when users have used up the budget;
* upper bound (keeps the OOM killer away): CommitLimit must not exceed what RAM, less
  huge pages and a reserve for the kernel and page cache, plus swap can really back.

We pick the largest limit the kernel can express at or below the upper bound; the
choice depends on the memory shape and options only, so repeated runs render the same
file. Committed_AS only decides the verdict. Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils.commit_limit import (
    KERNEL_DEFAULT_RATIO_PCT,
    commit_limit_kb,
    explain_commit_limit,
    largest_kbytes_within,
    largest_ratio_within,
    ratio_step_kb,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MemoryShape

# The overcommit mode each database asks for. Redis and Valkey fork for BGSAVE and
# replication and want mode 1; the others want mode 2 with a computed limit.
PROFILE_MODES: Dict[str, int] = {
    "generic": 2,
    "postgresql": 2,
    "mysql": 2,
    "mariadb": 2,
    "oracle": 2,
    "redis": 1,
    "valkey": 1,
}
PREFER_CHOICES = ("auto", "ratio", "kbytes")

KIB_PER_MIB = 1024
# Beyond this, one percent of overcommit_ratio is too coarse a step: use overcommit_kbytes.
RATIO_STEP_LIMIT_KB = 1024 * KIB_PER_MIB
# The kernel docs size the admin reserve for sshd or login + bash + top under mode 2
# at about 128 MiB on x86_64; the boot default (at most 8 MiB) is too small for that.
DEFAULT_ADMIN_RESERVE_MB = 128
MIN_ADMIN_RESERVE_MB = 8
DEFAULT_HEADROOM_PCT = 20
DEFAULT_KERNEL_RESERVE_PCT = 10
HEADROOM_PCT_RANGE = (0, 100)
KERNEL_RESERVE_PCT_RANGE = (0, 50)

KEY_MODE = "vm.overcommit_memory"
KEY_RATIO = "vm.overcommit_ratio"
KEY_KBYTES = "vm.overcommit_kbytes"
KEY_ADMIN_RESERVE = "vm.admin_reserve_kbytes"


class PlanInputError(ValueError):
    """An option is out of range or inconsistent; the message names it and what is allowed."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__("%s: %s" % (option, message))
        self.option = option


@dataclass(frozen=True)
class PlanOptions:
    profiles: Tuple[str, ...] = ("generic",)
    workload_commit_kb: int = 0
    headroom_pct: int = DEFAULT_HEADROOM_PCT
    kernel_reserve_pct: int = DEFAULT_KERNEL_RESERVE_PCT
    admin_reserve_kb: int = DEFAULT_ADMIN_RESERVE_MB * KIB_PER_MIB
    prefer: str = "auto"


@dataclass(frozen=True)
class Bounds:
    demand_kb: int  # max(Committed_AS, workload peak)
    headroom_kb: int
    admin_reserve_kb: int
    lower_kb: int  # demand + headroom + admin reserve
    kernel_reserve_kb: int
    usable_ram_kb: int  # MemTotal - hugetlb - kernel reserve
    upper_kb: int  # usable RAM + swap


@dataclass(frozen=True)
class Plan:
    profiles: Tuple[str, ...]
    mode: int
    limit_by: Optional[str]  # "ratio", "kbytes", or None when the mode ignores the limit
    sysctl: Dict[str, str]
    commit_limit_kb: int
    safe: bool
    reasons: Tuple[str, ...]
    memory: MemoryShape
    bounds: Bounds
    formula: str
    options: PlanOptions = field(repr=False, default_factory=PlanOptions)

    @property
    def verdict(self) -> str:
        return "safe" if self.safe else "unsafe"

    def as_dict(self) -> Dict[str, Any]:
        """The plan as a module returns it: plain types, units in the key names."""
        return {
            "profile": list(self.profiles),
            "mode": self.mode,
            "limit_by": self.limit_by,
            "sysctl": dict(self.sysctl),
            "commit_limit_kb": self.commit_limit_kb,
            "formula": self.formula,
            "committed_as_kb": self.memory.committed_as_kb,
            "safe": self.safe,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "memory": self.memory.as_dict(),
            "bounds": asdict(self.bounds),
            "options": {
                "workload_commit_kb": self.options.workload_commit_kb,
                "headroom_pct": self.options.headroom_pct,
                "kernel_reserve_pct": self.options.kernel_reserve_pct,
                "admin_reserve_kb": self.options.admin_reserve_kb,
                "prefer": self.options.prefer,
            },
        }


def _mib(kb: int) -> str:
    return "%d MiB" % (kb // KIB_PER_MIB)


def mode_for_profiles(profiles: Sequence[str]) -> int:
    """The one overcommit mode the profiles agree on; refuses unknown or conflicting ones."""
    if not profiles:
        raise PlanInputError("profile", "at least one profile is required (choices: %s)" % ", ".join(PROFILE_MODES))
    unknown = [name for name in profiles if name not in PROFILE_MODES]
    if unknown:
        raise PlanInputError(
            "profile", "unknown profile(s) %s (choices: %s)" % (", ".join(unknown), ", ".join(PROFILE_MODES))
        )
    modes = {name: PROFILE_MODES[name] for name in profiles}
    if len(set(modes.values())) > 1:
        wants = "; ".join("%s needs vm.overcommit_memory=%d" % (name, mode) for name, mode in modes.items())
        raise PlanInputError(
            "profile",
            "conflicting profiles on one host: %s. One kernel has one overcommit mode: "
            "run these databases on separate hosts or plan for one of them." % wants,
        )
    return next(iter(modes.values()))


def validate_options(options: PlanOptions) -> int:
    """Check every option; return the mode the profiles ask for."""
    mode = mode_for_profiles(options.profiles)
    if options.workload_commit_kb < 0:
        raise PlanInputError("workload_commit_mb", "must be 0 or more, got %d" % (options.workload_commit_kb // KIB_PER_MIB))
    low, high = HEADROOM_PCT_RANGE
    if not low <= options.headroom_pct <= high:
        raise PlanInputError("headroom_pct", "must be between %d and %d, got %d" % (low, high, options.headroom_pct))
    low, high = KERNEL_RESERVE_PCT_RANGE
    if not low <= options.kernel_reserve_pct <= high:
        raise PlanInputError(
            "kernel_reserve_pct", "must be between %d and %d, got %d" % (low, high, options.kernel_reserve_pct)
        )
    if options.admin_reserve_kb < MIN_ADMIN_RESERVE_MB * KIB_PER_MIB:
        raise PlanInputError(
            "admin_reserve_mb",
            "must be at least %d (the kernel's boot default; less leaves root no way back in), got %d"
            % (MIN_ADMIN_RESERVE_MB, options.admin_reserve_kb // KIB_PER_MIB),
        )
    if options.prefer not in PREFER_CHOICES:
        raise PlanInputError("prefer", "must be one of %s, got %r" % (", ".join(PREFER_CHOICES), options.prefer))
    return mode


def compute_bounds(memory: MemoryShape, options: PlanOptions) -> Bounds:
    demand_kb = max(memory.committed_as_kb or 0, options.workload_commit_kb)
    headroom_kb = demand_kb * options.headroom_pct // 100
    lower_kb = demand_kb + headroom_kb + options.admin_reserve_kb
    non_huge_kb = memory.memtotal_kb - memory.hugetlb_kb
    kernel_reserve_kb = non_huge_kb * options.kernel_reserve_pct // 100
    usable_ram_kb = non_huge_kb - kernel_reserve_kb
    return Bounds(
        demand_kb=demand_kb,
        headroom_kb=headroom_kb,
        admin_reserve_kb=options.admin_reserve_kb,
        lower_kb=lower_kb,
        kernel_reserve_kb=kernel_reserve_kb,
        usable_ram_kb=usable_ram_kb,
        upper_kb=usable_ram_kb + memory.swaptotal_kb,
    )


def _choose_limit(memory: MemoryShape, bounds: Bounds, prefer: str) -> Tuple[str, int, List[str]]:
    """Pick ratio or kbytes and its value: the largest the kernel can express within the upper bound."""
    notes: List[str] = []
    step_kb = ratio_step_kb(memory.memtotal_kb, memory.hugetlb_kb)
    use_kbytes = prefer == "kbytes" or (prefer == "auto" and step_kb > RATIO_STEP_LIMIT_KB)
    if use_kbytes:
        kbytes = largest_kbytes_within(bounds.upper_kb, memory.swaptotal_kb, memory.page_size_kb)
        if kbytes is not None:
            if prefer == "auto":
                notes.append(
                    "vm.overcommit_kbytes is used because one step of vm.overcommit_ratio is %s on this "
                    "host, too coarse to place the limit precisely." % _mib(step_kb)
                )
            return "kbytes", kbytes, notes
        notes.append(
            "vm.overcommit_kbytes cannot express a budget of zero (0 means 'use the ratio'), "
            "so the ratio is used."
        )
    ratio = largest_ratio_within(
        bounds.upper_kb, memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb, memory.page_size_kb
    )
    return "ratio", ratio if ratio is not None else 0, notes


def plan_overcommit(memory: MemoryShape, options: PlanOptions) -> Plan:
    """Compute the sysctl values, the CommitLimit they produce and a verdict with reasons."""
    mode = validate_options(options)
    bounds = compute_bounds(memory, options)
    reasons: List[str] = []
    committed_known = memory.committed_as_kb is not None

    demand_text = "workload peak %s" % _mib(options.workload_commit_kb)
    if committed_known:
        demand_text = "max(Committed_AS %s, %s)" % (_mib(memory.committed_as_kb or 0), demand_text)
    else:
        reasons.append(
            "Committed_AS is unknown (gathered facts do not include it): the lower bound covers only "
            "workload_commit_mb. Run the overcommit_plan module on the host before applying."
        )
    upper_text = "RAM %s - hugetlb %s - kernel reserve %d %% (%s) + swap %s can back %s (upper bound)" % (
        _mib(memory.memtotal_kb), _mib(memory.hugetlb_kb), options.kernel_reserve_pct,
        _mib(bounds.kernel_reserve_kb), _mib(memory.swaptotal_kb), _mib(bounds.upper_kb),
    )
    lower_text = "%s + headroom %d %% (%s) + admin reserve %s = %s needed (lower bound)" % (
        demand_text, options.headroom_pct, _mib(bounds.headroom_kb),
        _mib(bounds.admin_reserve_kb), _mib(bounds.lower_kb),
    )

    if mode == 1:
        # Mode 1 never refuses an allocation, so nobody can be locked out; CommitLimit keeps
        # whatever the current ratio gives and only matters again in mode 2.
        limit_kb = memory.commit_limit_kb
        formula = "CommitLimit stays as the kernel shows it (%s kB); it matters only in mode 2" % limit_kb
        if limit_kb is None:
            limit_kb = commit_limit_kb(
                memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb,
                KERNEL_DEFAULT_RATIO_PCT, 0, memory.page_size_kb,
            )
            formula = explain_commit_limit(memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb,
                                           KERNEL_DEFAULT_RATIO_PCT, 0, memory.page_size_kb)
        reasons.append(
            "Profile %s asks for vm.overcommit_memory=1 (always overcommit, for fork-based "
            "snapshots); no allocation is refused, so no one is locked out." % ", ".join(options.profiles)
        )
        if bounds.demand_kb > bounds.upper_kb:
            reasons.append(
                "Warning: demand %s already exceeds what RAM and swap can back (%s): in mode 1 the "
                "OOM killer will act when it is touched." % (_mib(bounds.demand_kb), _mib(bounds.upper_kb))
            )
        return Plan(
            profiles=tuple(options.profiles), mode=1, limit_by=None,
            sysctl={KEY_MODE: "1"}, commit_limit_kb=limit_kb, safe=True,
            reasons=tuple(reasons), memory=memory, bounds=bounds, formula=formula, options=options,
        )

    limit_by, value, notes = _choose_limit(memory, bounds, options.prefer)
    ratio_pct, kbytes = (0, value) if limit_by == "kbytes" else (value, 0)
    limit_key = KEY_KBYTES if limit_by == "kbytes" else KEY_RATIO
    shape = (memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb, ratio_pct, kbytes, memory.page_size_kb)
    planned_kb = commit_limit_kb(*shape)
    formula = explain_commit_limit(*shape)
    # Keys in the order they must be written when entering mode 2: reserve, limit, mode.
    sysctl = {
        KEY_ADMIN_RESERVE: str(options.admin_reserve_kb),
        limit_key: str(value),
        KEY_MODE: "2",
    }
    reasons.append(upper_text + ".")
    reasons.append(lower_text + ".")
    reasons.extend(notes)
    safe = planned_kb >= bounds.lower_kb
    if safe:
        reasons.append(
            "%s=%d gives CommitLimit %s, between the lower and upper bound: allocations past it fail "
            "with ENOMEM instead of waking the OOM killer, and root keeps %s to log in."
            % (limit_key, value, _mib(planned_kb), _mib(options.admin_reserve_kb))
        )
    else:
        shortfall_kb = bounds.lower_kb - planned_kb
        # Demand that would fit: demand * (1 + h) + admin <= planned
        fitting_demand_kb = max(0, (planned_kb - options.admin_reserve_kb) * 100 // (100 + options.headroom_pct))
        excess_demand_kb = bounds.demand_kb - fitting_demand_kb
        reasons.append(
            "No safe mode-2 limit exists: the lower bound %s exceeds the most RAM and swap can back "
            "(CommitLimit %s with %s=%d) by %s. Mode 2 here would make new processes, shells and SSH "
            "logins fail. Fix: add at least %s of swap, or reduce the committed memory by %s "
            "(smaller database buffers or fewer processes), or lower headroom_pct/kernel_reserve_pct."
            % (_mib(bounds.lower_kb), _mib(planned_kb), limit_key, value, _mib(shortfall_kb),
               _mib(shortfall_kb + KIB_PER_MIB - 1), _mib(excess_demand_kb + KIB_PER_MIB - 1))
        )
    return Plan(
        profiles=tuple(options.profiles), mode=2, limit_by=limit_by, sysctl=sysctl,
        commit_limit_kb=planned_kb, safe=safe, reasons=tuple(reasons),
        memory=memory, bounds=bounds, formula=formula, options=options,
    )
