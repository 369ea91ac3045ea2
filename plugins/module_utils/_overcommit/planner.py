# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan vm.overcommit_* for one host from its memory shape.

The plan sits between two bounds:

* lower bound (keeps the host alive): a process without CAP_SYS_ADMIN must still be able
  to commit the demand plus headroom, under the kernel's own check (see check_commit_state,
  the one place that rule lives): CommitLimit less the admin reserve that lets root log in,
  less the user reserve hold, less one page for the strict comparison;
* upper bound (keeps the OOM killer away): CommitLimit must not exceed what RAM, less
  huge pages and a reserve for the kernel and page cache, plus swap can really back.

We pick the largest limit the kernel can express at or below the upper bound; the
choice depends on the memory shape and options only, so repeated runs render the same
file. Committed_AS only decides the verdict. Pure Python, no Ansible import.

The demand is the largest of today's Committed_AS, the hand-written workload peak, and, when
the databases on the host were read and database_peak is "enforce", everything else committed
now plus the databases' configured peaks (demand_kb). With "warn" the same rule is run once more
with the databases' peaks in it (database_verdict): its answer is a warning, not the verdict.

check_commit_state() judges any end state of the four managed keys (a plan's, what the
sysctl files would set at the next boot, a rollback target) by that same rule, so every
path that can leave a host in mode 2 passes one check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._common.profiles import PROFILE_MODES
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import keys
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import (
    KERNEL_DEFAULT_RATIO_PCT,
    commit_limit_kb,
    explain_commit_limit,
    largest_kbytes_within,
    largest_ratio_within,
    ratio_step_kb,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape

PREFER_CHOICES = ("auto", "ratio", "kbytes")
# The databases were read and none has a known peak: nothing to add, and the plan says so.
NO_DATABASE_PEAK = ("No database's configured peak is known on this host (none was found, or none could be read): "
                    "the demand is Committed_AS as it is.")
# What a database's configured peak that does not fit does to the plan: a warning with the
# numbers and the fix (warn), or a part of the demand, so that the plan is unsafe (enforce).
DATABASE_PEAK_CHOICES = ("warn", "enforce")

KIB_PER_MIB = 1024
# Beyond this, one percent of overcommit_ratio is too coarse a step: use overcommit_kbytes.
RATIO_STEP_LIMIT_KB = 1024 * KIB_PER_MIB
# The kernel docs size the admin reserve for sshd or login + bash + top under mode 2
# at about 128 MiB on x86_64; the boot default (at most 8 MiB) is too small for that.
DEFAULT_ADMIN_RESERVE_MB = 128
MIN_ADMIN_RESERVE_MB = 8
# The kernel caps the boot default of vm.user_reserve_kbytes at 128 MiB (mm/mmap.c
# init_user_reserve: min(free/32, 128 MiB)); the module passes the live value instead.
DEFAULT_USER_RESERVE_KB = 128 * KIB_PER_MIB
DEFAULT_HEADROOM_PCT = 20
DEFAULT_KERNEL_RESERVE_PCT = 10
HEADROOM_PCT_RANGE = (0, 100)
KERNEL_RESERVE_PCT_RANGE = (0, 50)

KEY_MODE = keys.MODE
KEY_RATIO = keys.RATIO
KEY_KBYTES = keys.KBYTES
KEY_ADMIN_RESERVE = keys.ADMIN_RESERVE
PLAIN_DECIMAL = keys.PLAIN_DECIMAL


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
    database_peak: str = "warn"
    # The host's vm.user_reserve_kbytes. Not a module option: it is read from the host,
    # because the kernel holds it back from every non-root request (check_commit_state).
    user_reserve_kb: int = DEFAULT_USER_RESERVE_KB
    # What the host's databases commit now and at their configured peaks. Not a module option:
    # read from the host (the _db layer); None when no one read them (cached facts, the filter).
    databases: Optional["DatabaseDemand"] = None


@dataclass(frozen=True)
class DatabaseDemand:
    """The host's databases as the lower bound sees them: all of them together."""

    charged_kb: int  # what their processes commit now: a part of Committed_AS
    peaks_kb: int  # the sum of their configured peaks (each estimated by _db)
    servers: Tuple[str, ...] = ()  # "postgresql 15/main", for the reasons

    def demand_kb(self, committed_as_kb: Optional[int]) -> int:
        """Everything else committed now (Committed_AS less the databases' own charge) + their peaks."""
        return self.everything_else_kb(committed_as_kb) + self.peaks_kb

    def everything_else_kb(self, committed_as_kb: Optional[int]) -> int:
        # Never negative: a server that grew between the two readings is not a negative rest.
        return max(0, (committed_as_kb or 0) - self.charged_kb)

    def text(self, committed_as_kb: Optional[int]) -> str:
        return "everything else %s (Committed_AS %s - the databases' charge now %s) + the databases' " \
               "configured peaks %s" % (_mib(self.everything_else_kb(committed_as_kb)), _mib(committed_as_kb or 0),
                                        _mib(self.charged_kb), _mib(self.peaks_kb))


@dataclass(frozen=True)
class Bounds:
    demand_kb: int  # max(Committed_AS, workload peak[, everything else + database peaks])
    headroom_kb: int
    admin_reserve_kb: int
    user_reserve_kb: int  # the hold: vm.user_reserve_kbytes in whole pages (check_commit_state)
    lower_kb: int  # demand + headroom + admin reserve + user reserve + one page (reserves in whole pages)
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
    # The one lower-bound check (check_commit_state) on end_state; it decides `safe`.
    commit_state: Optional["CommitStateVerdict"] = None
    # The same check with the databases' configured peaks in the demand, whatever database_peak
    # says; None when no databases were read. With "enforce" it is commit_state itself.
    database_verdict: Optional["CommitStateVerdict"] = None
    database_reason: Optional[str] = None  # its line among the reasons, for a warning to quote

    @property
    def verdict(self) -> str:
        return "safe" if self.safe else "unsafe"

    @property
    def end_state(self) -> Dict[str, str]:
        """The managed keys as the kernel holds them once this plan is written.

        Mode 2 names all four: writing the ratio sets overcommit_kbytes to 0 and the reverse
        (the mm/util.c handlers). Mode 1 writes only the mode; the limit keys keep whatever
        they are and do not matter there.
        """
        if self.mode != 2:
            return {KEY_MODE: str(self.mode)}
        return _mode2_end_state(int(self.sysctl.get(KEY_RATIO, "0")), int(self.sysctl.get(KEY_KBYTES, "0")),
                                int(self.sysctl[KEY_ADMIN_RESERVE]))

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
            "commit_state": self.commit_state.as_dict() if self.commit_state else None,
            "database_verdict": self.database_verdict.as_dict() if self.database_verdict else None,
            "options": {
                "workload_commit_kb": self.options.workload_commit_kb,
                "headroom_pct": self.options.headroom_pct,
                "kernel_reserve_pct": self.options.kernel_reserve_pct,
                "admin_reserve_kb": self.options.admin_reserve_kb,
                "prefer": self.options.prefer,
                "database_peak": self.options.database_peak,
                "user_reserve_kb": self.options.user_reserve_kb,
            },
        }


@dataclass(frozen=True)
class CommitStateVerdict:
    """Whether an end state of the managed keys lets non-root processes commit what they need."""

    safe: bool
    mode: int
    commit_limit_kb: Optional[int]  # None in modes 0 and 1: the kernel compares nothing with it
    needed_kb: int  # demand + headroom
    room_kb: Optional[int]  # what non-root processes may commit in total; None in modes 0 and 1
    shortfall_kb: int  # needed - room when unsafe, else 0
    reason: str
    demand_kb: int = 0  # max(Committed_AS, workload peak[, everything else + database peaks])
    headroom_kb: int = 0
    admin_reserve_kb: Optional[int] = None  # as the end state sets it
    user_reserve_kb: int = 0  # the hold: vm.user_reserve_kbytes in whole pages

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class CommitStateInputError(ValueError):
    """An end state lacks a managed key or holds a value the kernel would not accept."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__("%s: %s" % (key, message))
        self.key = key


def _mib(kb: int) -> str:
    return "%d MiB" % (kb // KIB_PER_MIB)


def _mib_up(kb: int) -> str:
    """MiB rounded up, for amounts that must be added: rounding down could say '0 MiB short'."""
    return "%d MiB" % -(-kb // KIB_PER_MIB)


def _whole_pages_kb(kb: int, page_size_kb: int) -> int:
    # The kernel turns the reserve sysctls into pages with `>> (PAGE_SHIFT - 10)`: rounded down.
    return kb // page_size_kb * page_size_kb


def nonroot_holdback_kb(admin_reserve_kb: int, user_reserve_kb: int, page_size_kb: int) -> int:
    """How much of CommitLimit a process without CAP_SYS_ADMIN can never commit.

    mm/util.c __vm_enough_memory() in mode 2, after adding the request to Committed_AS:

        allowed = CommitLimit - admin_reserve_kbytes - min(total_vm / 32, user_reserve_kbytes)
        grant if Committed_AS < allowed          (pages, strict)

    The hold min(total_vm / 32, user_reserve_kbytes) depends on the virtual size of the
    process that asks. We hold back all of user_reserve_kbytes, its largest value: total_vm
    counts address space that commits nothing (PROT_NONE reservations, glibc's 64 MiB
    malloc arenas, JVM and Go heaps reserved up front, read-only file maps), so a database
    process may be far larger than its share of Committed_AS, and the next request may come
    from any process. That makes the check true whoever asks, and it costs at most 128 MiB
    with the kernel's default. The strict '<' costs one more page: the total after the
    request must stay at least one page below `allowed`.
    """
    return sum((_whole_pages_kb(admin_reserve_kb, page_size_kb), _whole_pages_kb(user_reserve_kb, page_size_kb),
                page_size_kb))


def _mode2_end_state(ratio_pct: int, kbytes: int, admin_reserve_kb: int) -> Dict[str, str]:
    """The four keys once a mode-2 plan is written; the limit key not written reads 0."""
    return {KEY_MODE: "2", KEY_RATIO: str(ratio_pct), KEY_KBYTES: str(kbytes), KEY_ADMIN_RESERVE: str(admin_reserve_kb)}


def _counted_databases(options: PlanOptions) -> Optional[DatabaseDemand]:
    """The databases whose peaks are part of the demand: those read, with database_peak "enforce"."""
    return options.databases if options.database_peak == "enforce" else None


def demand_kb(memory: MemoryShape, options: PlanOptions) -> int:
    """What the lower bound starts from: max(Committed_AS, workload peak), and with database_peak
    "enforce" and the databases read, everything else committed now + their configured peaks."""
    demand = max(memory.committed_as_kb or 0, options.workload_commit_kb)
    databases = _counted_databases(options)
    if databases is not None:
        demand = max(demand, databases.demand_kb(memory.committed_as_kb))
    return demand


def needed_kb(demand: int, headroom_pct: int) -> int:
    """demand + headroom, as check_commit_state compares it with the room."""
    return demand + demand * headroom_pct // 100


def largest_demand_within(room_kb: int, headroom_pct: int) -> int:
    """The largest demand whose needed_kb fits ``room_kb`` (0 when nothing does): the rule solved for
    the demand, for the fixes that say how much less to commit."""
    if room_kb <= 0:
        return 0
    demand = room_kb * 100 // (100 + headroom_pct)
    while needed_kb(demand + 1, headroom_pct) <= room_kb:  # the rounding down of the headroom
        demand += 1
    return demand


def room_for_more_kb(verdict: "CommitStateVerdict", headroom_pct: int) -> Optional[int]:
    """How much more demand the verdict's end state takes before it is unsafe (negative: how much
    less it needs), None in modes 0 and 1, which compare nothing."""
    if verdict.room_kb is None:
        return None
    return largest_demand_within(verdict.room_kb, headroom_pct) - verdict.demand_kb


def swap_for_demand_kb(demand_kb_more: int, headroom_pct: int) -> int:
    """Swap that lets the demand grow by ``demand_kb_more``: CommitLimit, and so the room, grows by the
    swap's size, and the room must cover the demand's headroom too."""
    return needed_kb(demand_kb_more, headroom_pct) + (1 if demand_kb_more * headroom_pct % 100 else 0)


def _demand_text(memory: MemoryShape, options: PlanOptions) -> str:
    counted = _counted_databases(options)
    databases = "" if counted is None else ", %s" % counted.text(memory.committed_as_kb)
    if memory.committed_as_kb is None:
        return "max(workload peak %s%s) (Committed_AS unknown)" % (_mib(options.workload_commit_kb), databases)
    return "max(Committed_AS %s, workload peak %s%s)" % (
        _mib(memory.committed_as_kb), _mib(options.workload_commit_kb), databases)


def _end_state_int(values: Mapping[str, str], key: str) -> int:
    if key not in values:
        raise CommitStateInputError(key, "the end state lacks this key (a mode-2 state needs %s)" % ", ".join(
            (KEY_MODE, KEY_RATIO, KEY_KBYTES, KEY_ADMIN_RESERVE)))
    text = str(values[key])
    if not PLAIN_DECIMAL.match(text):
        raise CommitStateInputError(key, "must be a canonical decimal string, got %r" % (values[key],))
    return int(text)


def check_commit_state(memory: MemoryShape, values: Mapping[str, str], options: PlanOptions) -> CommitStateVerdict:
    """THE lower-bound rule: can a process without CAP_SYS_ADMIN commit demand + headroom here?

    `values` is an end state of the four managed keys as canonical strings (a plan's, what
    the sysctl files would set at the next boot, a rollback target). demand is demand_kb()
    (Committed_AS, the workload peak, the databases' configured peaks with database_peak
    "enforce"), headroom is headroom_pct of it, and
    options.user_reserve_kb is the host's vm.user_reserve_kbytes. Modes 0 and 1 never
    compare Committed_AS with CommitLimit, so they lock no one out. In mode 2 the state is
    safe when

        demand + headroom <= CommitLimit - admin reserve - user reserve - 1 page

    (nonroot_holdback_kb says why each term is there), with CommitLimit from
    commit_limit.commit_limit_kb, the one copy of the kernel's formula.
    """
    mode = _end_state_int(values, KEY_MODE)
    demand = demand_kb(memory, options)
    needed = needed_kb(demand, options.headroom_pct)
    headroom_kb = needed - demand
    page_kb = memory.page_size_kb
    hold_kb = _whole_pages_kb(options.user_reserve_kb, page_kb)
    if mode in (0, 1):
        what = ("always: the kernel grants every request" if mode == 1 else
                "heuristic: the kernel refuses only a single request larger than RAM plus swap")
        return CommitStateVerdict(
            safe=True, mode=mode, commit_limit_kb=None, needed_kb=needed, room_kb=None, shortfall_kb=0,
            reason="vm.overcommit_memory=%d (%s and never compares Committed_AS with CommitLimit), so commit "
                   "accounting refuses no new process and locks no one out." % (mode, what),
            demand_kb=demand, headroom_kb=headroom_kb, admin_reserve_kb=None, user_reserve_kb=hold_kb,
        )
    if mode != 2:
        raise CommitStateInputError(KEY_MODE, "must be 0, 1 or 2 (the kernel refuses anything else), got %d" % mode)

    ratio_pct = _end_state_int(values, KEY_RATIO)
    kbytes = _end_state_int(values, KEY_KBYTES)
    admin_reserve_kb = _end_state_int(values, KEY_ADMIN_RESERVE)
    shape = (memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb, ratio_pct, kbytes, page_kb)
    limit_kb = commit_limit_kb(*shape)
    room_kb = limit_kb - nonroot_holdback_kb(admin_reserve_kb, options.user_reserve_kb, page_kb)
    safe = needed <= room_kb
    shortfall_kb = 0 if safe else needed - room_kb
    setting = "%s=%d" % ((KEY_KBYTES, kbytes) if kbytes else (KEY_RATIO, ratio_pct))
    room_text = "CommitLimit %s - admin reserve %s - user reserve %s - 1 page = %s in total" % (
        _mib(limit_kb), _mib(admin_reserve_kb), _mib(hold_kb), _mib(room_kb))
    if room_kb < 0:
        room_text = "nothing (%s)" % room_text
    need_text = "%s + headroom %d %% (%s) = %s" % (
        _demand_text(memory, options), options.headroom_pct, _mib(headroom_kb), _mib(needed))
    head = ("vm.overcommit_memory=2 with %s: %s. A process without CAP_SYS_ADMIN may commit %s "
            "(the kernel's strict Committed_AS < limit in __vm_enough_memory)" % (
                setting, explain_commit_limit(*shape), room_text))
    if safe:
        reason = "%s, which covers the %s it needs." % (head, need_text)
    else:
        reason = ("%s, %s short of the %s it needs: new processes, shells and SSH logins of non-root users "
                  "would fail with ENOMEM." % (head, _mib_up(shortfall_kb), need_text))
    return CommitStateVerdict(
        safe=safe, mode=2, commit_limit_kb=limit_kb, needed_kb=needed, room_kb=room_kb,
        shortfall_kb=shortfall_kb, reason=reason, demand_kb=demand, headroom_kb=headroom_kb,
        admin_reserve_kb=admin_reserve_kb, user_reserve_kb=hold_kb,
    )


# The advice copied from blog posts: mode 2 with overcommit_ratio=100.
COPY_PASTE_RATIO_PCT = 100


def copied_advice_verdict(memory: MemoryShape, admin_reserve_kb: int, options: PlanOptions) -> CommitStateVerdict:
    """mode 2 at ratio 100 judged on this memory by the one rule, with this admin reserve and no
    headroom: would the copied advice lock non-root out today?"""
    state = {KEY_MODE: "2", KEY_RATIO: str(COPY_PASTE_RATIO_PCT), KEY_KBYTES: "0", KEY_ADMIN_RESERVE: str(admin_reserve_kb)}
    return check_commit_state(memory, state, replace(options, headroom_pct=0, workload_commit_kb=0, databases=None))


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
    if options.user_reserve_kb < 0:
        raise PlanInputError("user_reserve_kb", "vm.user_reserve_kbytes must be 0 or more, got %d" % options.user_reserve_kb)
    if options.prefer not in PREFER_CHOICES:
        raise PlanInputError("prefer", "must be one of %s, got %r" % (", ".join(PREFER_CHOICES), options.prefer))
    if options.database_peak not in DATABASE_PEAK_CHOICES:
        raise PlanInputError("database_peak", "must be one of %s, got %r" % (
            ", ".join(DATABASE_PEAK_CHOICES), options.database_peak))
    return mode


def compute_bounds(memory: MemoryShape, options: PlanOptions) -> Bounds:
    demand = demand_kb(memory, options)
    headroom_kb = needed_kb(demand, options.headroom_pct) - demand
    # The same terms check_commit_state holds back, so lower_kb <= CommitLimit <=> safe.
    lower_kb = demand + headroom_kb + nonroot_holdback_kb(
        options.admin_reserve_kb, options.user_reserve_kb, memory.page_size_kb)
    non_huge_kb = memory.memtotal_kb - memory.hugetlb_kb
    kernel_reserve_kb = non_huge_kb * options.kernel_reserve_pct // 100
    usable_ram_kb = non_huge_kb - kernel_reserve_kb
    return Bounds(
        demand_kb=demand,
        headroom_kb=headroom_kb,
        admin_reserve_kb=options.admin_reserve_kb,
        user_reserve_kb=_whole_pages_kb(options.user_reserve_kb, memory.page_size_kb),
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
    """Compute the sysctl values, the CommitLimit they produce and a verdict with reasons.

    `safe` is check_commit_state() on the end state the plan leaves: the one lower-bound rule.
    """
    mode = validate_options(options)
    bounds = compute_bounds(memory, options)
    reasons: List[str] = []

    if memory.committed_as_kb is None:
        reasons.append(
            "Committed_AS is unknown (gathered facts do not include it): the lower bound covers only "
            "workload_commit_mb. Run the overcommit_info module on the host before applying."
        )
    upper_text = "RAM %s - hugetlb %s - kernel reserve %d %% (%s) + swap %s can back %s (upper bound)" % (
        _mib(memory.memtotal_kb), _mib(memory.hugetlb_kb), options.kernel_reserve_pct,
        _mib(bounds.kernel_reserve_kb), _mib(memory.swaptotal_kb), _mib(bounds.upper_kb),
    )
    lower_text = (
        "%s + headroom %d %% (%s) + admin reserve %s + user reserve %s (vm.user_reserve_kbytes, which the "
        "kernel holds back from every non-root request) + 1 page (its comparison is strict) = %s needed "
        "(lower bound)" % (
            _demand_text(memory, options), options.headroom_pct, _mib(bounds.headroom_kb),
            _mib(bounds.admin_reserve_kb), _mib(bounds.user_reserve_kb), _mib(bounds.lower_kb),
        )
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
        sysctl = {KEY_MODE: "1"}
        commit_state = check_commit_state(memory, sysctl, options)
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
            sysctl=sysctl, commit_limit_kb=limit_kb, safe=commit_state.safe,
            reasons=tuple(reasons), memory=memory, bounds=bounds, formula=formula, options=options,
            commit_state=commit_state,
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
    commit_state = check_commit_state(memory, _mode2_end_state(ratio_pct, kbytes, options.admin_reserve_kb), options)
    reasons.append(upper_text + ".")
    reasons.append(lower_text + ".")
    reasons.extend(notes)
    if commit_state.safe:
        reasons.append(
            "%s=%d gives CommitLimit %s, between the lower and upper bound: non-root processes may commit "
            "%s, which covers the %s they need; allocations past it fail with ENOMEM instead of waking "
            "the OOM killer, and root keeps %s to log in."
            % (limit_key, value, _mib(planned_kb), _mib(commit_state.room_kb or 0),
               _mib(commit_state.needed_kb), _mib(options.admin_reserve_kb))
        )
    else:
        shortfall_kb = commit_state.shortfall_kb
        # Demand that would fit: demand * (1 + h) <= room
        excess_demand_kb = bounds.demand_kb - largest_demand_within(commit_state.room_kb or 0, options.headroom_pct)
        reasons.append(
            "No safe mode-2 limit exists: the lower bound %s exceeds the most RAM and swap can back "
            "(CommitLimit %s with %s=%d) by %s. Mode 2 here would make new processes, shells and SSH "
            "logins fail. Fix: add at least %s of swap, or reduce the committed memory by %s "
            "(smaller database buffers or fewer processes), or lower headroom_pct/kernel_reserve_pct."
            % (_mib(bounds.lower_kb), _mib(planned_kb), limit_key, value, _mib(shortfall_kb),
               _mib_up(shortfall_kb), _mib_up(excess_demand_kb))
        )
    database_verdict = database_reason = None
    databases = options.databases
    if databases is not None and not databases.servers:
        reasons.append(NO_DATABASE_PEAK)
    elif databases is not None:
        enforced = _counted_databases(options) is not None
        database_verdict = commit_state if enforced else check_commit_state(
            memory, _mode2_end_state(ratio_pct, kbytes, options.admin_reserve_kb),
            replace(options, database_peak="enforce"))
        database_reason = _database_reason(database_verdict, databases, enforced, options.headroom_pct)
        reasons.append(database_reason)
    return Plan(
        profiles=tuple(options.profiles), mode=2, limit_by=limit_by, sysctl=sysctl,
        commit_limit_kb=planned_kb, safe=commit_state.safe, reasons=tuple(reasons),
        memory=memory, bounds=bounds, formula=formula, options=options, commit_state=commit_state,
        database_verdict=database_verdict, database_reason=database_reason,
    )


def _database_reason(verdict: CommitStateVerdict, databases: DatabaseDemand, enforced: bool,
                     headroom_pct: int) -> str:
    """One line on whether the databases' configured peaks fit this plan, by the one rule."""
    names = ", ".join(databases.servers)
    if verdict.safe:
        return ("The databases' configured peaks fit (%s): the demand with them, %s, plus headroom needs %s of the "
                "%s non-root processes may commit."
                % (names, _mib(verdict.demand_kb), _mib(verdict.needed_kb), _mib(verdict.room_kb or 0)))
    more_kb = -(room_for_more_kb(verdict, headroom_pct) or 0)
    head = "enforced (database_peak=enforce): the plan is unsafe" if enforced else \
        "warning only (database_peak=warn: the verdict does not count them)"
    return ("The databases' configured peaks do not fit (%s), %s: the demand with them, %s, plus headroom needs %s, "
            "%s more than the %s non-root processes may commit. At their busy hour their memory requests would "
            "fail with ENOMEM. Fix: lower their peaks by %s in total (each database's line says how), or add at "
            "least %s of swap." % (names, head, _mib(verdict.demand_kb), _mib(verdict.needed_kb),
                                   _mib_up(verdict.shortfall_kb), _mib(verdict.room_kb or 0), _mib_up(more_kb),
                                   _mib_up(swap_for_demand_kb(more_kb, headroom_pct))))
