# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The next boot, judged: what the kernel will hold and what memory it will have, and whether
every way there leaves a process without CAP_SYS_ADMIN room to start.

    kernel defaults + the command line (sysctl.*, hugepages=)   start values      BootModel.start
    the boot tool replays the sysctl files (every version)      sysctl_replay.replay
    tuned writes its profile, then re-applies some files        BootModel.after_boot_tool
    the memory of that boot: swap that comes back, huge pages   BootModel.memory_at_boot
    each end state                                              planner.check_commit_state

Besides the boot, a later ``sysctl --system`` (from the live values) and a tuned restart are
judged the same way. ``order_changes`` then puts a run's file changes in an order in which a
run killed after any step still leaves a host that boots safe.

Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import writes as sw
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import FileChange
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    KEY_MODE,
    CommitStateInputError,
    CommitStateVerdict,
    PlanOptions,
    check_commit_state,
)

if TYPE_CHECKING:  # loaded only on a host with tuned (transaction.read_tuned_writer): a run pays for what it needs
    from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm

T = TypeVar("T")

WHEN_BOOT = "boot"
WHEN_RERUN = "rerun"  # a later sysctl --system, from the live values
WHEN_TUNED_RESTART = "tuned restart"  # tuned applies again on every restart or profile switch

# A source a tool reads but we could not: the prediction would leave it out, and the real tool does not.
_UNPREDICTABLE_KINDS = (sf.KIND_TOO_LARGE, sf.KIND_UNREADABLE)


def real_path(src: sf.SysctlSource) -> str:
    """The file a source's bytes come from: /etc/sysctl.d/99-sysctl.conf is /etc/sysctl.conf."""
    return src.target or src.path


def sources_after(sources: Mapping[str, sf.SysctlSource], changes: Sequence[FileChange]) -> Dict[str, sf.SysctlSource]:
    """The sysctl files as the next boot would find them once ``changes`` are made."""
    out = dict(sources)
    for change in changes:
        readers = [p for p, src in sources.items() if real_path(src) == change.path] or [change.path]
        for logical in readers:
            if change.after is None:
                out.pop(logical, None)
            else:
                out[logical] = sf.SysctlSource(logical, change.after, sf.STATUS_FILE,
                                               None if change.after else "empty file",
                                               target=sources[logical].target if logical in sources else None)
    return out


def full_state(values: Mapping[str, Optional[str]]) -> Dict[str, str]:
    """The managed keys, each as read or, where unread, as the kernel boots it."""
    return dict((k, values.get(k) if values.get(k) is not None else sk.KERNEL_BOOT_DEFAULTS[k])
                for k in sk.MANAGED_KEYS)


@dataclass(frozen=True)
class BootMemory:
    """The memory the next boot will have, as far as the lower bound may count on it
    (_boot.memory holds the rules: which swap comes back, which huge pages are reserved)."""

    swap: bm.BootSwap
    params: Tuple[bm.Param, ...] = ()  # the kernel command line
    default_huge_page_kb: Optional[int] = None  # Hugepagesize now; None without hugetlb
    hugetlb_supported: bool = False
    huge_page_sizes_kb: Tuple[int, ...] = ()

    def huge_pages(self, end: Mapping[str, str]) -> bm.BootHugePages:
        """The huge pages a boot that leaves ``end`` reserves (vm.nr_hugepages as it ends there)."""
        return bm.boot_hugetlb(self.params, end.get(sk.NR_HUGEPAGES), self.default_huge_page_kb,
                               self.hugetlb_supported, self.huge_page_sizes_kb or None)

    def shape(self, now: MemoryShape, end: Mapping[str, str]) -> MemoryShape:
        return bm.next_boot_memory(now, self.swap, self.huge_pages(end))

    @property
    def uncounted(self) -> List[str]:
        """Swap active now that the next boot will not have, each with why and the fix."""
        return ["%s (%d kB, %s): %s" % (item.what, item.size_kb or 0, item.source, item.why)
                for item in self.swap.items if not item.counted and item.size_kb]


@dataclass(frozen=True)
class TunedWriter:
    """tuned as a writer after the boot tool: at its start at boot, and at each restart later.

    ``rules`` are the modelled versions that may be installed (one when its version.py says).
    ``resolved`` maps each profile file's logical path to the file at the end of its links, the
    path a takeover edits: a run's changes reach the model through it.
    """

    host: tm.TunedHost
    rules: Tuple[tm.TunedRules, ...]
    resolved: Mapping[str, str] = field(default_factory=dict)

    def _host_after(self, changes: Sequence[FileChange]) -> tm.TunedHost:
        edited = {change.path: change.after for change in changes}
        if not edited:
            return self.host
        files = {path: edited.get(self.resolved.get(path, path), data) for path, data in self.host.profile_files.items()}
        return replace(self.host, profile_files={p: d for p, d in files.items() if d is not None})

    def starts(self, sources: Mapping[str, sf.SysctlSource], changes: Sequence[FileChange] = ()) -> List[tm.TunedStart]:
        from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm  # pylint: disable=import-outside-toplevel
        host = self._host_after(changes)
        return [tm.tuned_boot_writes(host, rules, sources) for rules in self.rules]

    def after_boot_tool(self, replay: sr.Replay, sources: Mapping[str, sf.SysctlSource],
                        changes: Sequence[FileChange]) -> List[sr.Replay]:
        from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm  # pylint: disable=import-outside-toplevel
        starts = [start for start in self.starts(sources, changes) if start.runs]
        return [tm.apply_tuned(replay, start) for start in starts] or [replay]

    def before_reapply(self, replay: sr.Replay, sources: Mapping[str, sf.SysctlSource],
                       changes: Sequence[FileChange]) -> List[sr.Replay]:
        """The moment at boot after tuned wrote its profile and before it wrote the files again
        (reapply_sysctl = 1): a state the host holds for that moment, while other units start."""
        from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm  # pylint: disable=import-outside-toplevel
        out = []
        for start in self.starts(sources, changes):
            if start.runs and start.reapply:
                profile_only = replace(start, writes=tuple(w for w in start.writes if w.origin == tm.ORIGIN_PROFILE))
                out.append(tm.apply_tuned(replay, profile_only))
        return out

    def restarts(self, live: Mapping[str, str], sources: Mapping[str, sf.SysctlSource],
                 changes: Sequence[FileChange]) -> List[sr.Replay]:
        # A restart (or a profile switch) writes again from the live values; no boot tool runs first.
        from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm  # pylint: disable=import-outside-toplevel
        nothing = sr.replay({}, sr.SYSTEMD_257, live)
        return [tm.apply_tuned(nothing, start) for start in self.starts(sources, changes) if start.runs]


@dataclass(frozen=True)
class BootModel:
    """Everything besides the sysctl files that decides the next boot (see the module docstring).

    Built by the host reader from the command line, the swap and huge page configuration and
    tuned; the default is a boot with today's memory and no other writer, which is all a saved
    memory shape (overcommit_info's meminfo option) can say.
    """

    start: Mapping[str, str] = field(default_factory=lambda: dict(sk.KERNEL_BOOT_DEFAULTS))
    memory: Optional[BootMemory] = None  # None: the next boot has today's memory
    tuned: Optional[TunedWriter] = None  # None: no tuned installed
    writers: Tuple[str, ...] = ()  # every boot-time writer of the keys seen, for the reports
    unmodelled: Tuple[str, ...] = ()  # writers seen whose effect cannot be modelled: reported, never trusted
    notes: Tuple[str, ...] = ()  # what the model assumed where it could not read or tell (the safe side)
    unpredictable: Tuple[str, ...] = ()  # what makes the boot impossible to predict: a refusal

    def as_dict(self) -> Dict[str, Any]:
        memory = self.memory
        return {
            "writers": list(self.writers), "unmodelled": list(self.unmodelled), "notes": list(self.notes),
            "unpredictable": list(self.unpredictable), "start": dict(self.start),
            "memory": None if memory is None else {
                "swap": memory.swap.as_dict(), "huge_pages": memory.huge_pages(self.start).as_dict(),
                "kernel_command_line": bm.format_cmdline(memory.params).decode("utf-8", "backslashreplace")},
        }

    def after_boot_tool(self, replay: sr.Replay, sources: Mapping[str, sf.SysctlSource],
                        changes: Sequence[FileChange]) -> List[sr.Replay]:
        """The boot tool's replay continued by the writers after it, one replay per modelled version."""
        return self.tuned.after_boot_tool(replay, sources, changes) if self.tuned else [replay]

    def moments(self, replay: sr.Replay, sources: Mapping[str, sf.SysctlSource],
                changes: Sequence[FileChange]) -> List[sr.Replay]:
        """States the boot passes through after the boot tool's and before its end (tuned's profile
        before its re-apply)."""
        return self.tuned.before_reapply(replay, sources, changes) if self.tuned else []

    def restarts(self, live: Mapping[str, str], sources: Mapping[str, sf.SysctlSource],
                 changes: Sequence[FileChange]) -> List[sr.Replay]:
        """Later writes of those writers from the live values (a tuned restart)."""
        return self.tuned.restarts(live, sources, changes) if self.tuned else []

    def memory_at_boot(self, now: MemoryShape, end: Mapping[str, str]) -> MemoryShape:
        return now if self.memory is None else self.memory.shape(now, end)

    def memory_after_rerun(self, now: MemoryShape, live: Mapping[str, str], end: Mapping[str, str]) -> MemoryShape:
        """Today's memory, with the default-size huge pages a re-run sets (more pages: less CommitLimit)."""
        if self.memory is None or not self.memory.hugetlb_supported or not self.memory.default_huge_page_kb:
            return now
        added = int(end.get(sk.NR_HUGEPAGES, "0")) - int(live.get(sk.NR_HUGEPAGES, "0") or 0)
        return replace(now, hugetlb_kb=min(now.memtotal_kb,
                                           now.hugetlb_kb + max(0, added) * self.memory.default_huge_page_kb))


@dataclass(frozen=True)
class Judged:
    """One way to an end state (a tool version at boot, a re-run, a tuned restart), judged."""

    label: str  # e.g. "systemd-252 boot", "systemd-252 + tuned-2.20 boot", "procps-4.0.4 rerun"
    replay: sr.Replay
    memory: MemoryShape  # the memory that way leaves the host with
    verdict: CommitStateVerdict


@dataclass
class BootCheck:
    """Every way to the next end state, judged by the one lower-bound rule."""

    judged: List[Judged]
    differences: List[str]  # end values that differ from the expected ones, with the file that decides
    unsafe: List[str]  # end states in mode 2 that fail the lower-bound check
    decisive: List[sr.ReplayWrite]  # the writes that make the end differ
    unpredictable: List[str]  # files a tool reads that we could not, and what else makes the boot unknowable
    # Unsafe states the boot holds for a moment on its way to a safe end (tuned's profile before its
    # re-apply): warned about, since units starting at that moment can be refused memory.
    moments_unsafe: List[str] = field(default_factory=list)

    @property
    def replays(self) -> List[Tuple[str, sr.Replay]]:
        return [(j.label, j.replay) for j in self.judged]

    def shortfall_kb(self) -> Dict[str, int]:
        """Per way: how far below the lower bound its end state is (0 when safe)."""
        return {j.label: j.verdict.shortfall_kb for j in self.judged}

    def as_dict(self) -> Dict[str, Any]:
        return {j.label: {"end": dict(j.replay.end), "problems": [str(p) for p in j.replay.problems],
                          "safe": j.verdict.safe, "commit_limit_kb": j.verdict.commit_limit_kb,
                          "swaptotal_kb": j.memory.swaptotal_kb, "hugetlb_kb": j.memory.hugetlb_kb}
                for j in self.judged}


def _user_reserve(options: PlanOptions, end: Mapping[str, str]) -> PlanOptions:
    """The options with the user reserve that end state holds: a file may set it."""
    value = end.get(sk.USER_RESERVE)
    return replace(options, user_reserve_kb=int(value)) if value is not None else options


def _unpredictable(sources: Mapping[str, sf.SysctlSource]) -> List[str]:
    """Files a modelled tool reads that we could not read whole: their lines would be missed."""
    read_by_a_tool = {src.path for rules in sr.RULE_SETS for src in sr.select_files(sources, rules)}
    return ["%s cannot be read here (%s), but the boot tools read it: the next boot cannot be predicted"
            % (path, sources[path].note) for path in sorted(read_by_a_tool)
            if sources[path].status == sf.STATUS_SKIPPED and sources[path].kind in _UNPREDICTABLE_KINDS]


def check_boot(found: Mapping[str, sf.SysctlSource], changes: Sequence[FileChange],
               expected: Optional[Mapping[str, str]], rerun_from: Mapping[str, str], memory: MemoryShape,
               options: PlanOptions, model: Optional[BootModel] = None) -> BootCheck:
    """Replay the files (as ``found``, with ``changes`` made) as every modelled tool version does at
    the next boot (from the model's start values, then the writers after the boot tool), on a
    later ``sysctl --system`` and on a tuned restart (both from ``rerun_from``, the live values),
    and judge each end state.

    Every end state passes check_commit_state, the one lower-bound rule, with the memory that way
    leaves the host (the next boot's swap and huge pages) and the user reserve it holds;
    ``expected`` (the plan's end state) must also be what every way ends with.
    """
    model = model or BootModel()
    sources = sources_after(found, changes)
    check = BootCheck([], [], [], [], _unpredictable(sources) + list(model.unpredictable))
    differences: Dict[str, List[str]] = {}
    unsafe: Dict[str, List[str]] = {}
    ways: List[Tuple[str, sr.Replay, MemoryShape]] = []
    for rules in sr.RULE_SETS:
        booted = sr.replay(sources, rules, model.start)
        for replay in model.after_boot_tool(booted, sources, changes):
            ways.append(("%s %s" % (replay.label, WHEN_BOOT), replay, model.memory_at_boot(memory, replay.end)))
        for moment in model.moments(booted, sources, changes):
            verdict = check_commit_state(model.memory_at_boot(memory, moment.end), moment.end,
                                         _user_reserve(options, moment.end))
            if not verdict.safe:
                check.moments_unsafe.append("%s at boot, after its profile and before it writes the sysctl files "
                                            "again: %s: %s" % (moment.after[-1], _who_decides(moment), verdict.reason))
        rerun = sr.replay(sources, rules, rerun_from)
        ways.append(("%s %s" % (rerun.label, WHEN_RERUN), rerun, model.memory_after_rerun(memory, rerun_from, rerun.end)))
    for replay in model.restarts(rerun_from, sources, changes):
        ways.append(("%s %s" % (" + ".join(replay.after), WHEN_TUNED_RESTART), replay,
                     model.memory_after_rerun(memory, rerun_from, replay.end)))
    for label, replay, way_memory in ways:
        for key in sorted(expected or {}):
            if replay.end.get(key) == expected[key]:
                continue
            decided = sr.decided_by(replay, key)
            if decided.write is not None:
                check.decisive.append(decided.write)
            text = "%s would end at %s, not %s: %s" % (key, replay.end.get(key), expected[key], decided.message)
            differences.setdefault(text, []).append(label)
        verdict = check_commit_state(way_memory, replay.end, _user_reserve(options, replay.end))
        check.judged.append(Judged(label, replay, way_memory, verdict))
        if not verdict.safe:
            unsafe.setdefault("%s: %s" % (_who_decides(replay), verdict.reason), []).append(label)
    # One line per finding, with the ways that show it.
    check.differences = ["%s (%s)" % (text, ", ".join(labels)) for text, labels in differences.items()]
    check.unsafe = ["%s (%s)" % (text, ", ".join(labels)) for text, labels in unsafe.items()]
    return check


def _who_decides(replay: sr.Replay) -> str:
    """Which lines leave this end state in mode 2, and which set its limit."""
    limit_key = sw.limit_key_in_effect(replay.end)
    return "; ".join(sr.decided_by(replay, key).message for key in (KEY_MODE, limit_key))


def shadowing_report(check: BootCheck, expected: Mapping[str, str], ours: str) -> Dict[str, Any]:
    """Per planned key: who decides it under each way to the end state, and the status."""
    out: Dict[str, Any] = {}
    for key in sorted(expected):
        by_tool: Dict[str, Any] = {}
        status = "ours"
        messages = []
        for label, result in check.replays:
            decided = sr.decided_by(result, key)
            where = decided.write.where if decided.write is not None else None
            by_tool[label] = {"value": result.end.get(key), "decided_by": where,
                              "ours": decided.write is not None and decided.write.path == ours}
            if result.end.get(key) != expected[key]:
                status = "shadowed"
                messages.append(decided.message)
            elif decided.write is not None and not by_tool[label]["ours"] and status == "ours":
                # Another file's line decides, with our value. No deciding line at all (a re-run
                # that finds the value already in place writes nothing) says nothing against us.
                status = "agrees"
        out[key] = {"status": status, "by_tool": by_tool,
                    "message": ("%s = %s in %s is overridden: %s" % (key, expected[key], ours, messages[0])
                                if messages else None)}
    return out


# --- kill windows -------------------------------------------------------------------------------
# Every prefix of a run's steps is a state a kill can leave the host in. Each must run and boot no
# worse than the host was found: safe, or (when the host was already in an unsafe state, the very
# state a run may come to fix) not further below the lower bound than it was.

def worse_than(before: BootCheck, after: BootCheck) -> List[str]:
    """The ways to an end state that ``after`` leaves unsafe and further below the lower bound
    than ``before`` did, each with the check's reason."""
    was = before.shortfall_kb()
    return ["%s: %s" % (j.label, j.verdict.reason) for j in after.judged
            if j.verdict.shortfall_kb > 0 and j.verdict.shortfall_kb > was.get(j.label, 0)]


def live_steps_worse(live: Mapping[str, str], writes: Sequence[sw.Write], memory: MemoryShape,
                     options: PlanOptions) -> List[str]:
    """The live writes after which a kill would leave the running host worse than it was found
    (every prefix but the full one: that end state is judged on its own, strictly)."""
    def shortfall(state: Mapping[str, str]) -> Tuple[float, str]:
        try:
            verdict = check_commit_state(memory, full_state(state), options)
        except CommitStateInputError as exc:
            # A state the check cannot judge (a negative ratio, as the kernel holds it) counts as
            # the worst: a run may leave it for a judged one, never enter it.
            return float("inf"), "it cannot be judged: %s" % exc
        return verdict.shortfall_kb, verdict.reason

    start_shortfall_kb, _why = shortfall(live)
    found = []
    for count in range(1, len(writes)):
        step_shortfall_kb, why = shortfall(sw.simulate(live, list(writes[:count])))
        if step_shortfall_kb > 0 and step_shortfall_kb > start_shortfall_kb:
            found.append("a run cut short after writing %s would leave the running host unsafe: %s"
                         % (", ".join("%s = %s" % (w.key, w.after) for w in writes[:count]), why))
    return found


# How many prefix states the search may judge: 2^n for n changes, and n stays small (our drop-in,
# our drop-ins at other priorities, a few files taken over).
_SEARCH_BUDGET = 256


def order_steps(steps: Sequence[T], worse_after: Callable[[Sequence[T]], List[str]],
                describe: Callable[[T], str]) -> Tuple[Optional[List[T]], List[str]]:
    """An order of ``steps`` in which no prefix leaves the host worse than it was found, preferring
    the given order; or (None, what the preferred order runs into).

    ``worse_after(applied)`` judges the host left with exactly the ``applied`` steps made (a run
    killed there) and names what is worse. Each step touches something no other step does (one
    file, or the live values), so a prefix's state depends only on which steps it holds. The full
    set is not asked: it is the end state, which the caller judges by the stricter rule (safe, not
    merely no worse than before).
    """
    n = len(steps)
    if n <= 1:
        return list(steps), []
    verdicts: Dict[FrozenSet[int], List[str]] = {}
    dead: Set[FrozenSet[int]] = set()
    first_problem: List[str] = []

    def acceptable(done: FrozenSet[int]) -> bool:
        if done not in verdicts:
            if len(verdicts) >= _SEARCH_BUDGET:
                return False
            found = verdicts[done] = worse_after([steps[i] for i in sorted(done)])
            if found and not first_problem:
                made = ", ".join(describe(steps[i]) for i in sorted(done))
                first_problem.extend("a run cut short after it did %s: %s" % (made, text) for text in found)
        return not verdicts[done]

    def search(done: FrozenSet[int], path: List[int]) -> Optional[List[int]]:
        if len(done) == n - 1:
            return path + [i for i in range(n) if i not in done]
        if done in dead:
            return None
        for i in range(n):
            if i not in done and acceptable(done | {i}):
                found = search(done | {i}, path + [i])
                if found is not None:
                    return found
        dead.add(done)
        return None

    order = search(frozenset(), [])
    if order is None:
        return None, first_problem
    return [steps[i] for i in order], []
