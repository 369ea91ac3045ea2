# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an overcommit run would do to a host, and whether it may: the decision, with no I/O.

    HostState (read under the lock) + Request -> Decision: the plan, the live writes in their
    safe order, the file changes in an order in which every prefix boots no worse than the host
    was found, the verdicts on the end state (live, at the next boot, on a later sysctl --system,
    on a tuned restart), and a refusal when any of them is not safe.

The transaction (_overcommit.transaction) reads the host, calls ``decide`` and carries the decision
out. Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import boot_check as bc
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import writes as sw
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import takeover
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.dropin import render_dropin
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import FileChange, Refused
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    KEY_MODE,
    CommitStateInputError,
    DatabaseDemand,
    Plan,
    PlanOptions,
    check_commit_state,
    plan_overcommit,
)

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.dbfleet.memory.plugins.module_utils._boot.sysctl_outcome import BootEnd

DROPIN_DIR = "/etc/sysctl.d"
OUR_SUFFIX = "-dbfleet-overcommit.conf"


def dropin_path(priority: int) -> str:
    return "%s/%02d%s" % (DROPIN_DIR, priority, OUR_SUFFIX)


@dataclass
class HostState:
    """Everything the decision needs, read under the lock."""

    live: Dict[str, Optional[str]]  # _kernel.writes.OBSERVED_KEYS; None where unreadable
    meminfo: Dict[str, int]
    memory: MemoryShape
    sources: Dict[str, sf.SysctlSource]  # every sysctl file a boot tool may read, as bytes
    ours: Dict[str, bytes]  # every NN-dbfleet-overcommit.conf in /etc/sysctl.d
    ours_attr_wrong: Dict[str, bool]
    container: Optional[str]
    container_evidence: Optional[str]
    stale_tmp: List[str]
    boot_tool: Optional[str] = None  # sysctl_replay.TOOL_*: what applies the files at boot, if it can be told
    boot_tool_evidence: str = "not read"
    boot: bc.BootModel = field(default_factory=bc.BootModel)  # what else decides the next boot
    # Files a takeover may edit, by fully resolved path under /etc: the sysctl files and tuned's
    # profiles there. Vendor files never appear here.
    editable: Dict[str, bytes] = field(default_factory=dict)
    # The databases on the host (_db.host.HostDatabases), read-only through their own clients, and
    # what they add to the lower bound's demand; None when they were not read.
    databases: Optional[Any] = None
    database_demand: Optional[DatabaseDemand] = None


@dataclass
class Request:
    state: str  # present | absent
    priority: int
    options: PlanOptions  # as asked; the decision's options add the host's own user reserve
    live_mode: str  # auto | always | never
    shadowing: str  # fail | warn | takeover


@dataclass
class Decision:
    request: Request
    host: HostState
    path: str
    plan: Optional[Plan]
    target: Dict[str, str]  # managed keys to hold live
    file_changes: List[FileChange]  # in the order they are made
    writes: List[sw.Write]  # in the order they are made
    skip_live: Optional[str]
    shadowing: Dict[str, Any]
    boot: Dict[str, Any]
    options: PlanOptions  # the one option set every check of this run uses
    warnings: List[str] = field(default_factory=list)
    refusal: Optional[str] = None  # set when the request must not be carried out
    boot_check: Optional[bc.BootCheck] = None
    live_at: int = 0  # how many of file_changes are made before the live writes
    # One line per database on the host (_overcommit.databases.DatabaseLine); None when not read.
    databases: Optional[Tuple[Any, ...]] = None

    @property
    def steps(self) -> List[Any]:
        """Every step in the order it is made: file changes, with LIVE_STEP where the writes go."""
        return self.file_changes[:self.live_at] + [LIVE_STEP] + self.file_changes[self.live_at:]

    @property
    def changed(self) -> bool:
        # Removing a killed run's temporary file from /etc/sysctl.d changes the host too.
        return bool(self.file_changes or self.writes or self.host.stale_tmp)


def live_skip(request: Request, host: HostState, keys) -> Optional[str]:
    if request.live_mode == "never":
        return "live=never: file only"
    if host.container and request.live_mode == "auto":
        return ("container (%s; %s): vm.* sysctls are not namespaced, a write would change the host kernel"
                % (host.container, host.container_evidence))
    missing = [k for k in keys if host.live.get(k) is None]
    if missing:
        raise Refused("Nothing changed: cannot read %s from /proc/sys; is this a Linux kernel that has them?"
                      % ", ".join(missing))
    return None


def plan_options_for(options: PlanOptions, host: HostState) -> PlanOptions:
    """The options with this host's own vm.user_reserve_kbytes: the kernel holds it back from
    every non-root request in mode 2, so the lower bound must too."""
    live = host.live.get(sw.USER_RESERVE)
    if live is not None:
        options = replace(options, user_reserve_kb=int(live))
    return replace(options, databases=host.database_demand) if host.database_demand is not None else options


def judge_databases(plan: Plan, host: HostState) -> Tuple[Plan, Optional[Tuple[Any, ...]]]:
    """Each database's line, judged by the plan's rule, added to the plan's reasons; the plan as it
    is when the databases were not read. _db is imported only then: a run that reads none pays nothing."""
    if host.databases is None:
        return plan, None
    from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import databases as dbs

    lines = dbs.judge(host.databases, plan.database_verdict, plan.options.headroom_pct)
    notes = tuple(host.databases.notes)
    return replace(plan, reasons=plan.reasons + tuple(line.reason for line in lines) + notes), lines


def _room(host: HostState, options: PlanOptions) -> sw.RoomKb:
    def room_kb(state: Mapping[str, str]) -> Optional[int]:
        try:
            return check_commit_state(host.memory, bc.full_state(state), options).room_kb
        except CommitStateInputError:
            return None  # a state the check cannot judge: no room to count on
    return room_kb


def _live_after(host: HostState, writes: List[sw.Write]) -> Dict[str, str]:
    """The values a later sysctl --system starts from: the managed keys as the run leaves them,
    and the boot-memory keys as they are live."""
    after = sw.simulate(bc.full_state(host.live), writes)
    after.update((k, v) for k, v in host.live.items() if k in sk.BOOT_MEMORY_KEYS and v is not None)
    return after


def _takeover_changes(check: bc.BootCheck, host: HostState,
                      done: Dict[str, FileChange]) -> Tuple[Dict[str, FileChange], List[str]]:
    """Comment out the decisive lines, and every other line of the same file that touches a
    managed key, in files under /etc; name the decisive lines that live elsewhere.

    The whole file is neutralised, not only the deciding line: a line that agrees today (the
    seed's ``vm.overcommit_memory = 2`` beside its ratio) would otherwise keep mode 2 at the
    next boot while the ratio is gone, should the run be cut before our drop-in is written.
    """
    blocked: List[str] = []
    resolved = host.boot.tuned.resolved if host.boot.tuned is not None else {}
    for write in check.decisive:
        src = host.sources.get(write.path)
        real = bc.real_path(src) if src is not None else resolved.get(write.path, write.path)
        if real not in host.editable:
            blocked.append("%s (%s)" % (write.where, write.line))
            continue
        before = host.editable[real]
        current = done[real].after if real in done else before
        if current is None:
            blocked.append("%s (%s)" % (write.where, write.line))
            continue
        lines = {write.lineno} | _managed_linenos(current, real)
        edited = takeover.comment_out(current, sorted(lines))
        if edited != current:
            done[real] = FileChange(real, before, edited, "takeover: conflicting overcommit lines commented out",
                                    ours=False)
    return done, sorted(set(blocked))


def _managed_linenos(data: bytes, path: str) -> set:
    """Lines of a file that set a managed key, read as either kind of tool reads them."""
    found = set()
    for rules in (sr.SYSTEMD_257, sr.PROCPS_4_0_4):
        found.update(line.lineno for line in sr.managed_lines(data, path, rules) if line.value is not None)
    return found


def _ledger(host: HostState) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for data in host.ours.values():
        out.update(takeover.parse_ledger(data))
    return out


def _restore_changes(host: HostState) -> Tuple[List[FileChange], List[str]]:
    """Every editable file with lines our ledger says we took over, with those lines put back;
    and notes on marked lines no ledger of ours lists (left alone)."""
    restored, notes = takeover.restore_all(host.editable, set(_ledger(host)))
    changes = [FileChange(path, host.editable[path], r.data,
                          "absent: %d line(s) taken over are put back" % r.restored, ours=False)
               for path, r in sorted(restored.items()) if r.restored]
    return changes, notes


def _restore_warning(restore: BootEnd, host: HostState, mode_left: bool) -> str:
    """What state=absent did when the modelled tools disagree about the remaining files."""
    if not restore.disputed:
        return ("state=absent restored the live values as this host's boot tool sets them (%s: %s); %s"
                % (", ".join(restore.rules), host.boot_tool_evidence, restore.note))
    keys = [k for k in sw.MANAGED_KEYS if k in restore.disputed and not (k == KEY_MODE and mode_left)]
    if host.boot_tool is None:
        why = "the boot tool of this host cannot be told (%s)" % host.boot_tool_evidence
    else:
        why = "this host boots with %s (%s), whose modelled versions %s disagree" % (
            host.boot_tool, host.boot_tool_evidence, ", ".join(restore.rules))
    parts = []
    if mode_left:
        parts.append("state=absent left mode 2 live (vm.overcommit_memory=0) because the modelled tools disagree "
                     "whether the remaining files set it")
    if keys:
        parts.append("state=absent left %s live as they are (%s) rather than guess" % (
            ", ".join(keys), ", ".join(str(host.live.get(k)) for k in keys)))
    return "%s: %s and %s; the next boot sets them" % ("; ".join(parts), why, restore.note)


class LiveWrites:
    """The live writes of a run as one step of its order (their own order is _kernel.writes')."""

    def __repr__(self) -> str:
        return "LiveWrites()"


LIVE_STEP = LiveWrites()


def _describe(step: Any) -> str:
    return "the live writes" if step is LIVE_STEP else "%s %s" % (step.action, step.path)


def order_steps(changes: List[FileChange], writes: List[sw.Write], host: HostState,
                options: PlanOptions) -> Tuple[Optional[List[Any]], List[str]]:
    """The run's steps (the file changes, and the live writes as one block) in an order in which a
    run cut short after any step leaves a host that boots, re-runs sysctl --system and restarts
    tuned no worse than it was found; and the live writes' own prefixes likewise. Live writes
    first when that is safe: a value the kernel refuses is then never persisted."""
    live_found = _live_after(host, [])
    live_end = _live_after(host, writes)
    found: List[Optional[bc.BootCheck]] = []  # judged once, and only when there is an order to search

    def worse_after(applied: List[Any]) -> List[str]:
        if not found:
            try:
                found.append(bc.check_boot(host.sources, (), None, live_found, host.memory, options, host.boot))
            except CommitStateInputError:
                found.append(None)  # the host as found cannot be judged (a negative ratio live): nothing is worse
        if found[0] is None:
            return []
        files = [step for step in applied if step is not LIVE_STEP]
        live = live_end if LIVE_STEP in applied else live_found
        return bc.worse_than(found[0], bc.check_boot(host.sources, files, None, live, host.memory, options, host.boot))

    steps: List[Any] = ([LIVE_STEP] if writes else []) + list(changes)
    ordered, stuck = bc.order_steps(steps, worse_after, _describe)
    stuck = stuck + bc.live_steps_worse(bc.full_state(host.live), writes, host.memory, options)
    return (None if stuck else ordered), stuck


def _kill_window_refusal(decision: "Decision") -> None:
    """Order the decision's steps for every kill window, or refuse."""
    ordered, stuck = order_steps(decision.file_changes, decision.writes if not decision.skip_live else [],
                                 decision.host, decision.options)
    if ordered is None:
        decision.refusal = ("Nothing changed: no order of this run's steps keeps the host safe if the run is cut "
                            "short (a kill, a power loss): " + " | ".join(stuck))
        return
    decision.file_changes = [step for step in ordered if step is not LIVE_STEP]
    decision.live_at = ordered.index(LIVE_STEP) if LIVE_STEP in ordered else 0


def decide(request: Request, host: HostState) -> Decision:
    """What the run would do, and whether it may. Changes nothing."""
    if request.state == "present":
        return _decide_present(request, host)
    return _decide_absent(request, host)


def _decide_present(request: Request, host: HostState) -> Decision:
    path = dropin_path(request.priority)
    options = plan_options_for(request.options, host)
    warnings: List[str] = list(host.boot.unmodelled)
    refusal = None
    plan, database_lines = judge_databases(plan_overcommit(host.memory, options), host)
    target = dict(plan.sysctl)
    expected = plan.end_state
    if not plan.safe:
        refusal = "Unsafe overcommit plan, nothing changed: " + " ".join(plan.reasons)
    elif plan.database_verdict is not None and not plan.database_verdict.safe:
        # database_peak=warn: the verdict stands, and the run says what the busy hour would meet.
        misfits = [line.reason for line in database_lines or () if line.fits is False]
        warnings.append(" ".join([plan.database_reason or ""] + misfits))
    changes: List[FileChange] = []
    for other, data in sorted(host.ours.items()):
        if other != path:
            changes.append(FileChange(other, data, None, "our drop-in at another priority; %s replaces it" % path))
    # The drop-in as planned; its ledger of taken-over lines is filled in once the takeover is known
    # (comments: the boot tools never read them, so the checks below do not depend on it).
    content = render_dropin(plan.as_dict()).encode("utf-8")
    ours = FileChange(path, host.ours.get(path), content, "the planned drop-in")
    skip = live_skip(request, host, target)
    known_live = dict((k, v) for k, v in host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    writes = [] if skip else sw.plan_writes(known_live, target, _room(host, options))
    # A later sysctl --system starts from what the run leaves live (with live=never: what is live now).
    rerun_from = _live_after(host, writes)
    check = bc.check_boot(host.sources, changes + [ours], expected, rerun_from, host.memory, options, host.boot)
    taken: Dict[str, FileChange] = {}
    if request.shadowing == "takeover":
        for _round in range(8):  # each round comments out what decides now; a few rounds settle it
            if not check.differences:
                break
            taken, blocked = _takeover_changes(check, host, taken)
            if blocked:
                refusal = refusal or (
                    "Nothing changed: takeover edits only files under /etc, and these other files would still "
                    "override the plan: %s. Pick a later overcommit_dropin_priority." % "; ".join(blocked))
                break
            check = bc.check_boot(host.sources, changes + [ours] + list(taken.values()), expected, rerun_from,
                                  host.memory, options, host.boot)
    ledger = takeover.ledger_after(_ledger(host), host.editable,
                                   dict(host.editable, **{p: c.after for p, c in taken.items() if c.after is not None}))
    content = render_dropin(plan.as_dict(), ledger).encode("utf-8")
    if host.ours.get(path) != content or host.ours_attr_wrong.get(path):
        ours = FileChange(path, host.ours.get(path), content, "the planned drop-in")
        # Edits of other files first: a run cut after them and before our drop-in no longer boots the
        # taken-over lines, and (whole files neutralised) not half of them either.
        changes = [taken[p] for p in sorted(taken)] + [ours] + changes
    else:
        changes = [taken[p] for p in sorted(taken)] + changes
    shadowing = bc.shadowing_report(check, expected, path)
    warnings.extend(sorted(set(check.moments_unsafe)))
    if refusal is None and check.unpredictable:
        refusal = "Nothing changed: " + " | ".join(check.unpredictable)
    if refusal is None and check.unsafe:
        # Whatever shadowing says: no run of ours leaves a host that boots locked out.
        overridden = ". Overridden: " + " | ".join(check.differences) if check.differences else ""
        refusal = ("Nothing changed: the next boot, or a later sysctl --system or tuned restart, would leave an "
                   "unsafe mode 2: %s%s%s" % (" | ".join(check.unsafe), _swap_note(host, check), overridden))
    elif refusal is None and check.differences:
        if request.shadowing == "warn":
            warnings.extend(check.differences)
        else:
            refusal = ("Nothing changed: %s would change the plan at the next boot or "
                       "sysctl --system: %s. Remove or change that setting, use shadowing=takeover for files under "
                       "/etc, or pick a later overcommit_dropin_priority.%s"
                       % (_overriders(check), " | ".join(check.differences), _tuned_hint(check)))
    decision = Decision(request=request, host=host, path=path, plan=plan, target=target, file_changes=changes,
                        writes=writes, skip_live=skip, shadowing=shadowing, boot=check.as_dict(), options=options,
                        warnings=warnings, refusal=refusal, boot_check=check, databases=database_lines)
    if refusal is None:
        _kill_window_refusal(decision)
    return decision


def _tuned_decides(check: bc.BootCheck) -> bool:
    return any((write.tool or "").startswith("tuned") for write in check.decisive)


def _overriders(check: bc.BootCheck) -> str:
    """Who overrides the plan, for the refusal's first words: tuned only when one of its writes decides."""
    return "another sysctl file or tuned" if _tuned_decides(check) else "another sysctl file"


def _tuned_hint(check: bc.BootCheck) -> str:
    """The fix when tuned decides: a later drop-in cannot win over a writer that runs after the boot."""
    if not _tuned_decides(check):
        return ""
    return (" tuned writes after the sysctl files: remove the key from the profile's [sysctl] section (a profile "
            "under /etc/tuned, which shadowing=takeover can edit; a vendor profile under /usr/lib/tuned is "
            "replaced by a same-named one under /etc/tuned), or set reapply_sysctl = 1 in "
            "/etc/tuned/tuned-main.conf so the drop-in is written again after the profile.")


def _swap_note(host: HostState, check: bc.BootCheck) -> str:
    """Why the next boot has less swap than now, with the fix, when that is part of the story."""
    boot_memory = host.boot.memory
    if boot_memory is None or not boot_memory.uncounted:
        return ""
    return (". The next boot has less swap than now (SwapTotal %d kB now, %d kB counted at boot): %s"
            % (host.memory.swaptotal_kb, boot_memory.swap.swaptotal_kb, "; ".join(boot_memory.uncounted)))


def _decide_absent(request: Request, host: HostState) -> Decision:
    path = dropin_path(request.priority)
    options = plan_options_for(request.options, host)
    warnings: List[str] = list(host.boot.unmodelled)
    refusal = None
    changes = [FileChange(other, data, None, "state=absent") for other, data in sorted(host.ours.items())]
    restored, notes = _restore_changes(host)
    changes.extend(restored)
    warnings.extend(notes)
    live_now = bc.full_state(host.live)
    target: Dict[str, str] = {}
    if changes:
        # Imported here: only state=absent asks what the boot leaves without our file.
        from ansible_collections.dbfleet.memory.plugins.module_utils._boot.sysctl_outcome import boot_end

        remaining = bc.sources_after(host.sources, changes)
        # The live values return to what the host would boot with: what every modelled way sets,
        # else what this host's own boot tool sets, else only the keys they agree on (no guess).
        restore = boot_end(remaining, host.boot_tool, start=host.boot.start,
                           after=lambda replay: host.boot.after_boot_tool(replay, remaining, changes))
        target = sw.restore_target(restore.end)
        # A disputed mode is no reason to stay in mode 2: leaving it is safe whatever the boot
        # does, and staying could hold a limit below what is committed.
        mode_left = KEY_MODE in restore.disputed and live_now[KEY_MODE] == sw.STRICT_MODE
        if mode_left:
            target[KEY_MODE] = "0"
        if restore.note:
            warnings.append(_restore_warning(restore, host, mode_left))
    skip = live_skip(request, host, target)
    known_live = dict((k, v) for k, v in host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    writes = [] if skip else sw.plan_writes(known_live, target, _room(host, options))
    live_end = _live_after(host, writes)
    check = bc.check_boot(host.sources, changes, None, live_end, host.memory, options, host.boot)
    # The live end state passes the same rule: the restored values hold from now on, not only at boot.
    live_verdict = check_commit_state(host.memory, bc.full_state(live_end), options)
    if not changes and (check.unsafe or check.unpredictable):
        # Not ours to fix, and nothing of ours to remove: say it, change nothing.
        warnings.append("this host's own sysctl files would boot into an unsafe mode 2, or cannot be predicted: %s"
                        % " | ".join(check.unpredictable + check.unsafe))
    elif check.unpredictable:
        refusal = "Nothing changed: " + " | ".join(check.unpredictable)
    elif check.unsafe:
        refusal = ("Nothing changed: without our drop-in the remaining sysctl files would leave an unsafe mode 2 "
                   "(new processes could not start): %s%s. Fix or remove that setting first, or keep state=present."
                   % (" | ".join(check.unsafe), _swap_note(host, check)))
    elif not live_verdict.safe and not skip and changes:
        refusal = ("Nothing changed: without our drop-in the live values would be an unsafe mode 2 (new processes "
                   "could not start): " + live_verdict.reason + " Fix the remaining sysctl files first, or keep "
                   "state=present.")
    decision = Decision(request=request, host=host, path=path, plan=None, target=target, file_changes=changes,
                        writes=writes, skip_live=skip, shadowing={}, boot=check.as_dict(), options=options,
                        warnings=warnings, refusal=refusal, boot_check=check)
    if refusal is None:
        _kill_window_refusal(decision)
    return decision
