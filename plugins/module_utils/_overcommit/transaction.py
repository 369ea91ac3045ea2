# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply step on the host: one locked transaction from the first read to the last verify.

    lock -> read everything -> decide -> (refuse | report | write live, verify, write files, verify)
                                                   any failure: roll back, then read back and say what is left

The decisions come from the pure cores: planner (the plan and THE lower-bound check every mode-2
end state must pass), sysctl_replay (what the boot and ``sysctl --system`` would set, by replaying
the files the way the real tools do), _kernel.writes (the order of live writes) and takeover (which
lines of other files to comment out). This file is the host I/O around them. No Ansible import:
the host primitives (atomic writes, the lock, /proc/sys) live in _host and _kernel.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory_files as bmf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._host import container
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Failed, FileChange, Refused, StepError
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import live
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import writes as sw
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import (
    MeminfoError,
    MemoryShape,
    memory_from_fields,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import boot_check as bc
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import takeover
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.decide import (
    LIVE_STEP,
    Decision,
    HostState,
    Request,
    decide,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    CommitStateInputError,
    KEY_MODE,
    check_commit_state,
)

DROPIN_DIR = "/etc/sysctl.d"
OUR_SUFFIX = "-dbfleet-overcommit.conf"
# Every file of this shape is ours, whatever priority wrote it: a run keeps exactly one.
_OUR_NAME = re.compile(r"[0-9]{2}" + re.escape(OUR_SUFFIX) + r"\Z")
# Where our temporary files can appear: next to our drop-ins, and next to /etc/sysctl.conf (takeover).
TMP_DIRS = (DROPIN_DIR, "/etc")
SYSTEMD_SYSCTL_UNIT = "systemd-sysctl.service"


def detect_boot_tool() -> Tuple[Optional[str], str]:
    """The tool that applies the sysctl files at this host's boot (sysctl_replay.TOOL_*), and
    how that was told; None when it cannot be told.

    Told from files alone: a subprocess (systemctl, systemd --version) costs seconds on a slow
    host. systemd as PID 1 runs systemd-sysctl.service at every boot unless the unit is masked.
    Without systemd the boot may run procps' init script, busybox, an OpenRC service or nothing:
    not told. Which systemd version is not told either; its modelled versions must agree.
    """
    if not container.systemd_booted():
        return None, "systemd is not PID 1: no /run/systemd/system"
    for directory in ("/etc/systemd/system", "/run/systemd/system"):
        path = "%s/%s" % (directory, SYSTEMD_SYSCTL_UNIT)
        try:
            masked = os.readlink(files.host_path(path)) == "/dev/null"
        except OSError:
            masked = False  # not a link (or absent): not a mask
        if masked:
            return None, "%s is masked: %s -> /dev/null" % (SYSTEMD_SYSCTL_UNIT, path)
    return sr.TOOL_SYSTEMD, ("systemd is PID 1, /run/systemd/system exists, and %s is not masked"
                             % SYSTEMD_SYSCTL_UNIT)


def _owner_mode_wrong(node: os.stat_result) -> bool:
    if stat.S_IMODE(node.st_mode) != files.FILE_MODE:
        return True
    # Unprivileged runs (unit tests as a user) cannot chown; root must own it.
    return os.geteuid() == 0 and (node.st_uid != 0 or node.st_gid != 0)


# Reads the host's databases (_db.host.read_databases with the modules' command runner); see api.
DatabaseReader = Callable[[], Any]


def read_host(meminfo_path: str = "/proc/meminfo", read_databases: Optional[DatabaseReader] = None) -> HostState:
    """Read the host. Raises Refused for what makes a decision impossible (nothing changed).
    ``read_databases``, when given, reads the host's databases too (read-only)."""
    try:
        fields = live.read_meminfo_fields(meminfo_path)
        memory = memory_from_fields(fields, page_size_kb=live.page_size_kb())
    except MeminfoError as exc:
        raise Refused("Nothing changed: meminfo: %s" % exc)
    ours: Dict[str, bytes] = {}
    ours_attr_wrong: Dict[str, bool] = {}
    try:
        names = sorted(os.listdir(files.host_path(DROPIN_DIR)))
    except OSError:
        names = []
    for name in names:
        path = DROPIN_DIR + "/" + name
        if not _OUR_NAME.match(name):
            continue
        got = files.read_own(path)
        if got.status == rf.STATUS_ABSENT:
            continue  # removed since the listing: nothing of ours there
        if not got.is_read or got.data is None or got.node is None:
            # Never "absent" and never overwritten or removed unread: a rollback puts back only what it read.
            raise Refused(files.own_file_refusal(path, got))
        ours[path] = got.data
        ours_attr_wrong[path] = _owner_mode_wrong(got.node)
    kind, evidence = container.detect()
    boot_tool, boot_tool_evidence = detect_boot_tool()
    sources = sf.read_sysctl_sources(files.host_path)
    boot = read_boot_model(memory, sources, boot_tool, boot_tool_evidence)
    editable = editable_files(sources, boot)
    # Left by a run that was killed; we hold the lock, so they are no one's.
    stale_tmp = files.tmp_files(TMP_DIRS + tuple(os.path.dirname(p) for p in editable))
    databases = demand = None
    if read_databases is not None:
        # Imported here: a run that reads no database does not pay for the _db layer.
        from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import databases as dbs

        databases = read_databases()
        demand = dbs.demand_of(databases)
    return HostState(
        live=live.read_live(sw.OBSERVED_KEYS), meminfo=fields, memory=memory, sources=sources,
        ours=ours, ours_attr_wrong=ours_attr_wrong, container=kind, container_evidence=evidence,
        stale_tmp=stale_tmp, boot_tool=boot_tool, boot_tool_evidence=boot_tool_evidence, boot=boot,
        editable=editable, databases=databases, database_demand=demand)


def read_boot_model(memory: MemoryShape, sources: Dict[str, sf.SysctlSource], boot_tool: Optional[str],
                    boot_tool_evidence: str) -> bc.BootModel:
    """What decides the next boot besides the sysctl files, read from this host's files: the
    kernel command line, the swap and huge pages the boot will have, and (issue: tuned) the
    writers after the boot tool."""
    found = bmf.read_boot_memory(files.host_path)
    params = found.params
    start = bm.boot_start(memory, params, found.default_huge_page_kb, found.hugetlb_supported,
                          found.huge_page_sizes_kb or None)
    boot_memory = bc.BootMemory(bmf.host_boot_swap(found, files.host_path, memory.memtotal_kb), tuple(params),
                                found.default_huge_page_kb, found.hugetlb_supported, found.huge_page_sizes_kb)
    writers = ["%s at boot (%s)" % (boot_tool, boot_tool_evidence) if boot_tool else (
        "the boot tool cannot be told (%s): every modelled systemd-sysctl and sysctl --system must agree"
        % boot_tool_evidence)]
    writers.extend("the kernel command line: %s (applied before init; a sysctl file setting the key overrides it)"
                   % write.param for write in bm.cmdline_sysctl_writes(params))
    writers.extend("huge pages: %s" % item.source for item in boot_memory.huge_pages(start).items)
    # Writers we see but cannot follow are warned about; what the model assumes where it cannot
    # read (an unreadable file, no systemd to bring swap back) only makes the bound lower, and is
    # said in the result.
    unmodelled = bmf.host_unmodelled(found)
    notes = list(found.notes) + list(boot_memory.swap.notes)
    tuned = read_tuned_writer()
    if tuned is not None:
        for tuned_start in tuned.starts(sources):
            if tuned_start.runs:
                writers.append("%s after the boot tool: profile %s (%s), reapply_sysctl %s" % (
                    tuned_start.rules.name, " ".join(tuned_start.profiles) or "(none)",
                    ", ".join(tuned_start.chain) or "no file", "on" if tuned_start.reapply else "off"))
            else:
                notes.append("%s: %s" % (tuned_start.rules.name, tuned_start.why))
            unmodelled.extend(item for item in tuned_start.unmodelled if item not in unmodelled)
    return bc.BootModel(start=start, memory=boot_memory, tuned=tuned, writers=tuple(writers),
                        unmodelled=tuple(unmodelled), notes=tuple(notes))


# Where an installed tuned leaves a trace (its configuration, its unit). Without any of them tuned
# cannot start at boot, and its model is not even loaded: a run pays only for what it needs.
TUNED_TRACES = ("/etc/tuned", "/etc/systemd/system/tuned.service", "/usr/lib/systemd/system/tuned.service",
                "/lib/systemd/system/tuned.service")


def read_tuned_writer() -> Optional[bc.TunedWriter]:
    """tuned, if it is installed: what it may write at boot, told from its files."""
    if not any(os.path.lexists(files.host_path(path)) for path in TUNED_TRACES):
        return None
    # pylint: disable=import-outside-toplevel
    from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm
    from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned_files as tf
    host = tf.read_tuned_host(files.host_path)
    if not host.installed:
        return None
    resolved = {path: rf.resolve_all_links(path, files.host_path)[0] for path in host.profile_files}
    return bc.TunedWriter(host, tm.rules_for_version(host.version), resolved)


def editable_files(sources: Dict[str, sf.SysctlSource], boot: bc.BootModel) -> Dict[str, bytes]:
    """The files a takeover may edit, by fully resolved path: those the boot reads from under /etc,
    sysctl files and tuned's profiles there (never the vendor profiles under /usr/lib/tuned)."""
    out: Dict[str, bytes] = {}
    for src in sources.values():
        real = bc.real_path(src)
        if src.data is not None and takeover.is_editable(real):
            out[real] = src.data
    if boot.tuned is not None:
        for path, data in boot.tuned.host.profile_files.items():
            real = boot.tuned.resolved.get(path, path)
            if takeover.is_editable(real):
                out[real] = data
    return out


# --- reporting ----------------------------------------------------------------------------------

def _decode(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else data.decode("utf-8", "replace")


def _live_diff(before: Dict[str, Optional[str]], after: Dict[str, str], keys) -> Dict[str, str]:
    def render(values):
        return "".join("%s = %s\n" % (k, values.get(k)) for k in keys)

    return {"before_header": "live /proc/sys/vm", "after_header": "live /proc/sys/vm",
            "before": render(before), "after": render(after)}


def report(decision: Decision, want_diff: bool) -> Dict[str, Any]:
    """The result of a run that changed nothing (check mode, an audit) or before changing."""
    host = decision.host
    known_live = dict((k, v) for k, v in host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    # execute() removes a killed run's temporary files first, outside the transaction: they are
    # no one's and no boot tool reads them, so a rollback has nothing to put back.
    stale = [{"path": path, "action": "remove", "why": "temporary file of a run that was killed"}
             for path in host.stale_tmp]
    result: Dict[str, Any] = dict(
        changed=decision.changed,
        file_changed=bool(decision.file_changes or stale),
        files=stale + [c.as_dict() for c in decision.file_changes],
        live_changes=[w.as_dict() for w in decision.writes],
        live_applied=False, live_skipped_reason=decision.skip_live,
        container=host.container, container_evidence=host.container_evidence,
        shadowing=decision.shadowing, boot=decision.boot, target_values=decision.target,
        # Not "path": ansible-core's exit_json/fail_json stat a result's "path" (adding owner, mode and
        # "state: file") after our host lock is released, when a concurrent run may have removed the file.
        dropin_path=decision.path,
        live_values=dict((k, host.live.get(k)) for k in sw.MANAGED_KEYS),
        commit_limit_kb=host.meminfo.get("CommitLimit"),
    )
    if decision.plan is not None:
        result["plan"] = decision.plan.as_dict()
    if decision.databases is not None:
        result["databases"] = [line.as_dict() for line in decision.databases]
    if want_diff:
        diffs = [{"before_header": c.path, "after_header": c.path,
                  "before": _decode(c.before) or "", "after": _decode(c.after) or ""}
                 for c in decision.file_changes]
        diffs.append(_live_diff(known_live, sw.simulate(known_live, decision.writes), sorted(decision.target)))
        result["diff"] = diffs
    return result


# --- executing ----------------------------------------------------------------------------------

def _apply_live(writes: List[sw.Write], expect_limit_kb: Optional[int], applied: List[sw.Write]) -> None:
    for w in writes:
        # Counted as applied before the write: a write can take effect and still report an error.
        applied.append(w)
        try:
            live.write_live(w.key, w.after)
        except OSError as exc:
            raise StepError("the kernel refused %s = %s: %s" % (w.key, w.after, exc.strerror or exc))
        got = live.read_live([w.key])[w.key]
        if got != w.after:
            raise StepError("%s reads back %s after writing %s" % (w.key, got, w.after))
    if expect_limit_kb is not None:
        got = live.read_commit_limit_kb()
        tolerance_kb = live.page_size_kb()
        if got is None or abs(got - expect_limit_kb) > tolerance_kb:
            raise StepError("CommitLimit is %s kB after applying, the plan expected %d kB (tolerance one page, %d kB)"
                            % (got, expect_limit_kb, tolerance_kb))


def rollback_snapshot(decision: Decision) -> Tuple[Dict[str, str], Optional[str]]:
    """The live values a rollback returns to, and why they differ from before the run, if they do.

    A rollback is a path that can leave mode 2 in force, so it passes the same lower-bound check
    as a plan: if the host was in an unsafe mode 2 before the run (the very state we came to fix),
    the rollback leaves mode 0 instead of restoring a state in which new processes cannot start.
    """
    snapshot = dict((k, v) for k, v in decision.host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    try:
        verdict = check_commit_state(decision.host.memory, bc.full_state(decision.host.live), decision.options)
    except CommitStateInputError as exc:
        # A live value the check takes no position on (a negative overcommit_ratio, which the kernel
        # holds as given). A rollback must not stop half-way on it, nor restore what it cannot judge.
        snapshot[KEY_MODE] = "0"
        return snapshot, ("the host's state before the run cannot be judged (%s); the rollback leaves "
                          "vm.overcommit_memory=0 instead" % exc)
    if verdict.safe:
        return snapshot, None
    snapshot[KEY_MODE] = "0"
    return snapshot, ("the host was in an unsafe mode 2 before the run (%s); the rollback leaves "
                      "vm.overcommit_memory=0 instead" % verdict.reason)


def _rollback(decision: Decision, applied: List[sw.Write], files_done: List[FileChange]) -> Tuple[List[str], List[str]]:
    """Put files and live values back, newest step first, then read everything back. Returns
    (problems, left). Undoing in reverse passes through the same prefixes the forward order was
    chosen for, so a rollback cut short leaves no state the run itself could not have left."""
    problems: List[str] = []
    live_done = bool(applied)
    for step in reversed([s for s in decision.steps if s is LIVE_STEP and live_done or s in files_done]):
        if step is LIVE_STEP:
            problems.extend(_rollback_live(decision, applied))
            continue
        problem = files.restore_file(step)
        if problem:
            problems.append(problem)
    snapshot, unsafe_before = rollback_snapshot(decision)
    if unsafe_before and not live_done:
        problems.extend(_rollback_live(decision, applied))
    return problems, verify_restored(decision, snapshot, files_done)


def _rollback_live(decision: Decision, applied: List[sw.Write]) -> List[str]:
    problems: List[str] = []
    snapshot, unsafe_before = rollback_snapshot(decision)
    if unsafe_before:
        # Listed last, so undone first: leaving mode 2 comes before the limit is lowered back.
        applied = applied + [sw.Write(KEY_MODE, None, snapshot[KEY_MODE])]
    for w in sw.rollback_writes(applied, snapshot):
        if live.read_live([w.key])[w.key] == w.after:
            continue  # the forward write never took effect; writing again could only fail again
        try:
            live.write_live(w.key, w.after)
        except OSError as exc:
            problems.append("restoring %s = %s: %s" % (w.key, w.after, exc))
    return problems


def verify_restored(decision: Decision, snapshot: Dict[str, str], files_done: List[FileChange]) -> List[str]:
    """What still differs from before the run, read back from the host."""
    left: List[str] = []
    now = live.read_live(sw.MANAGED_KEYS)
    limit_key = sw.limit_key_in_effect(snapshot)
    for key in sw.MANAGED_KEYS:
        if key not in snapshot or (key in (sw.RATIO, sw.KBYTES) and key != limit_key):
            continue  # of the pair only the one in effect can be restored; the other reads 0
        if now.get(key) != snapshot[key]:
            left.append("%s is %s, was %s" % (key, now.get(key), snapshot[key]))
    left.extend(files.left_after_restore(files_done))
    left.extend("%s is a temporary file left behind" % path for path in files.tmp_files(_edit_dirs(decision)))
    return left


def _edit_dirs(decision: Decision) -> Tuple[str, ...]:
    return TMP_DIRS + tuple(sorted({os.path.dirname(change.path) for change in decision.file_changes}))


def execute(decision: Decision) -> Dict[str, Any]:
    """Carry out a decision that was not refused. Raises Failed after a rollback."""
    result = report(decision, want_diff=False)
    for tmp in decision.host.stale_tmp:
        try:
            os.unlink(files.host_path(tmp))
        except OSError:
            pass
    applied: List[sw.Write] = []
    files_done: List[FileChange] = []
    plan = decision.plan
    # In mode 1 the kernel does not enforce CommitLimit: nothing to verify.
    expect_kb = plan.commit_limit_kb if plan is not None and plan.limit_by else None
    try:
        # In the order decide() found safe to be cut short after any step (decide.order_steps).
        for step in decision.steps:
            if step is LIVE_STEP:
                if not decision.skip_live:
                    _apply_live(decision.writes, expect_kb, applied)
            else:
                files.apply_file(step, files_done)
    except BaseException as exc:  # pylint: disable=broad-except
        # Whatever broke (the kernel, the disk, our own bug, even a SystemExit), the host must not be
        # left half-changed: roll back, then read back what is really there.
        problems, left = _rollback(decision, applied, files_done)
        reason = str(exc) if isinstance(exc, StepError) else "%s: %s" % (type(exc).__name__, exc)
        if left:
            msg = "Apply failed, ROLLBACK INCOMPLETE: %s; still different from before: %s" % (reason, "; ".join(left))
        else:
            msg = "Apply failed, rolled back (every value and file read back as before): %s" % reason
        if problems:
            msg += "; rollback problems: " + "; ".join(problems)
        _snapshot, unsafe_before = rollback_snapshot(decision)
        if unsafe_before:
            msg += "; " + unsafe_before
        result.update(changed=bool(left or unsafe_before), live_values=live.read_live(sw.MANAGED_KEYS),
                      commit_limit_kb=live.read_commit_limit_kb(),
                      rollback={"complete": not left, "left": left, "problems": problems,
                                "unsafe_before": unsafe_before})
        raise Failed(msg, result)
    result["live_applied"] = decision.skip_live is None
    result["live_values"] = live.read_live(sw.MANAGED_KEYS)
    result["commit_limit_kb"] = live.read_commit_limit_kb()
    return result


def decide_or_refuse(request: Request, host: HostState) -> Decision:
    """decide(), with a state the lower-bound check cannot judge turned into a refusal."""
    try:
        return decide(request, host)
    except CommitStateInputError as exc:
        # A value the lower-bound check takes no position on (a negative ratio, as the kernel
        # stores it): nothing may be done on a state that cannot be judged safe.
        raise Refused("Nothing changed: an end state of the sysctl files or the live values cannot be judged "
                      "by the lower-bound check: %s" % exc)


def run(request: Request, check_mode: bool, want_diff: bool, lock_timeout_s: float,
        warn: Callable[[str], None], read_databases: Optional[DatabaseReader] = None) -> Dict[str, Any]:
    """The overcommit module's whole run. Raises Refused, Failed or _host.lock.LockTimeout."""
    # Imported here: examine() (overcommit_info, the audit) reads without the lock and does not compile it.
    from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LOCK_PATH, HostLock

    with HostLock(files.host_path(LOCK_PATH), lock_timeout_s) as lock:
        host = read_host(read_databases=read_databases)
        decision = decide_or_refuse(request, host)
        if decision.refusal:
            raise Refused(decision.refusal, report(decision, want_diff=False))
        for message in decision.warnings:
            warn(message)
        if check_mode:
            result = report(decision, want_diff)
            if not decision.skip_live:
                result["live_skipped_reason"] = "check mode"
        else:
            result = execute(decision)
            if want_diff:
                result["diff"] = report(decision, want_diff=True)["diff"]
        result["lock_waited_s"] = round(lock.waited_s, 3)
        return result
