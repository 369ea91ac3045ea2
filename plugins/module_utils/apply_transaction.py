# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply step on the host: one locked transaction from the first read to the last verify.

    lock -> read everything -> decide -> (refuse | report | write live, verify, write files, verify)
                                                   any failure: roll back, then read back and say what is left

The decisions come from the pure cores: planner (the plan and THE lower-bound check every mode-2
end state must pass), sysctl_replay (what the boot and ``sysctl --system`` would set, by replaying
the files the way the real tools do), sysctl_writes (the order of live writes) and takeover (which
lines of other files to comment out). This file is the host I/O around them. No Ansible import:
the modules ``overcommit`` and ``overcommit_info`` call ``read_host``, ``decide`` and ``execute``.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils import container_detect
from ansible_collections.dbfleet.memory.plugins.module_utils import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_kernel as sk
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_writes as sw
from ansible_collections.dbfleet.memory.plugins.module_utils import takeover
from ansible_collections.dbfleet.memory.plugins.module_utils.dropin_text import render_dropin
from ansible_collections.dbfleet.memory.plugins.module_utils.host_lock import LOCK_PATH, HostLock
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import (
    MeminfoError,
    MemoryShape,
    memory_from_fields,
    parse_meminfo,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import (
    CommitStateInputError,
    KEY_MODE,
    Plan,
    PlanOptions,
    check_commit_state,
    plan_overcommit,
)

# Prefix for every host path the module touches. Unit tests point it at a fake tree; it is
# deliberately not an option, so no play can aim the module elsewhere.
_ROOT = ""

DROPIN_DIR = "/etc/sysctl.d"
OUR_SUFFIX = "-dbfleet-overcommit.conf"
# Every file of this shape is ours, whatever priority wrote it: a run keeps exactly one.
_OUR_NAME = re.compile(r"^[0-9]{2}" + re.escape(OUR_SUFFIX) + r"$")
_TMP_PREFIX = ".dbfleet-"
_TMP_SUFFIX = ".tmp"
# Where our temporary files can appear: next to our drop-ins, and next to /etc/sysctl.conf (takeover).
TMP_DIRS = (DROPIN_DIR, "/etc")
FILE_MODE = 0o644


def host_path(path: str) -> str:
    """Where a host path really is: tests point _ROOT at a fake tree."""
    return _ROOT + path


def dropin_path(priority: int) -> str:
    return "%s/%02d%s" % (DROPIN_DIR, priority, OUR_SUFFIX)


# --- reading the host ---------------------------------------------------------------------------

def _proc_sys(key: str) -> str:
    return host_path("/proc/sys/" + key.replace(".", "/"))


def read_live(keys) -> Dict[str, Optional[str]]:
    """The values /proc/sys shows, read as the kernel reads a number (sysctl_kernel.read_back):
    a negative overcommit_ratio is -5, as proc_dointvec holds it. None for a key that is missing
    (overcommit_kbytes before Linux 3.14) or holds something the kernel would not print."""
    live: Dict[str, Optional[str]] = {}
    for key in keys:
        try:
            with open(_proc_sys(key), "rb") as handle:
                live[key] = sk.read_back(key, handle.read())
        except OSError:
            live[key] = None
    return live


def write_live(key: str, value: str) -> None:
    # One write(2) of the whole value: procfs parses each write on its own. O_TRUNC is
    # ignored by procfs; it keeps a plain-file fake tree honest.
    fd = os.open(_proc_sys(key), os.O_WRONLY | os.O_TRUNC)
    try:
        data = (value + "\n").encode("ascii")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(0, "short write: %d of %d bytes accepted" % (written, len(data)))
    finally:
        os.close(fd)


def page_size_kb() -> int:
    return os.sysconf("SC_PAGE_SIZE") // 1024


# /proc/meminfo is about 1.5 kB; anything much larger is not a meminfo file.
MEMINFO_CAP_BYTES = 1024 * 1024


def read_meminfo_fields(path: str = "/proc/meminfo") -> Dict[str, int]:
    """Parsed meminfo; MeminfoError (never a traceback) for unreadable or non-text content."""
    # meminfo_path is the user's: it may be a link to a saved shape, but never a FIFO or a device,
    # which open() would wait on or act upon.
    final, problem = rf.resolve_links(path, host_path)
    got = rf.read_regular_file(host_path(final), MEMINFO_CAP_BYTES) if problem is None else None
    if got is None or not got.is_read:
        why = "no such file" if problem == "dangling" or (got and got.status == rf.STATUS_ABSENT) else (
            problem or got.reason or got.status)
        raise MeminfoError("cannot read %s: %s" % (path, why))
    data = got.data or b""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MeminfoError("%s is not plain ASCII text (byte %d is 0x%02x); is it a real meminfo file?"
                           % (path, exc.start, data[exc.start]))
    return parse_meminfo(text)


def read_commit_limit_kb() -> Optional[int]:
    try:
        return read_meminfo_fields().get("CommitLimit")
    except MeminfoError:
        return None


def detect_container() -> Tuple[Optional[str], Optional[str]]:
    """(kind, the evidence that decided) or (None, why not) on a kernel of its own."""
    verdict = container_detect.detect_container(container_detect.read_evidence(host_path))
    return verdict.kind, verdict.evidence


def systemd_booted() -> bool:
    """sd_booted(3): systemd is PID 1 exactly when /run/systemd/system is a directory."""
    return os.path.isdir(host_path("/run/systemd/system"))


SYSTEMD_SYSCTL_UNIT = "systemd-sysctl.service"


def detect_boot_tool() -> Tuple[Optional[str], str]:
    """The tool that applies the sysctl files at this host's boot (sysctl_replay.TOOL_*), and
    how that was told; None when it cannot be told.

    Told from files alone: a subprocess (systemctl, systemd --version) costs seconds on a slow
    host. systemd as PID 1 runs systemd-sysctl.service at every boot unless the unit is masked.
    Without systemd the boot may run procps' init script, busybox, an OpenRC service or nothing:
    not told. Which systemd version is not told either; its modelled versions must agree.
    """
    if not systemd_booted():
        return None, "systemd is not PID 1: no /run/systemd/system"
    for directory in ("/etc/systemd/system", "/run/systemd/system"):
        path = "%s/%s" % (directory, SYSTEMD_SYSCTL_UNIT)
        try:
            masked = os.readlink(host_path(path)) == "/dev/null"
        except OSError:
            masked = False  # not a link (or absent): not a mask
        if masked:
            return None, "%s is masked: %s -> /dev/null" % (SYSTEMD_SYSCTL_UNIT, path)
    return sr.TOOL_SYSTEMD, ("systemd is PID 1, /run/systemd/system exists, and %s is not masked"
                             % SYSTEMD_SYSCTL_UNIT)


def read_own(path: str) -> rf.FileRead:
    """One of our files (a drop-in, or a file we just wrote or removed), read by the one rule.

    Capped where the boot replay caps a sysctl file: a file we may write or remove must be
    read whole, or a rollback could not put it back. What callers make of the outcome: only
    ``STATUS_READ`` is content and only ``STATUS_ABSENT`` is "not there"; anything else
    (not a regular file, too large, unreadable) is neither, and is refused or reported.
    """
    return rf.read_regular_file(host_path(path), sf.MAX_FILE_BYTES)


def own_file_refusal(path: str, got: rf.FileRead) -> str:
    """Why a file of ours that is there but not read whole stops the run (oom_host's too)."""
    if got.status == rf.STATUS_NOT_REGULAR:
        return "Nothing changed: %s exists but is not a regular file (%s); look at it and remove it by hand" % (
            path, got.kind)
    return ("Nothing changed: %s exists but cannot be read whole (%s): a run could neither check it nor put it "
            "back on a rollback; look at it and remove it by hand" % (path, got.reason))


def _owner_mode_wrong(node: os.stat_result) -> bool:
    if stat.S_IMODE(node.st_mode) != FILE_MODE:
        return True
    # Unprivileged runs (unit tests as a user) cannot chown; root must own it.
    return os.geteuid() == 0 and (node.st_uid != 0 or node.st_gid != 0)


def _tmp_files() -> List[str]:
    found: List[str] = []
    for directory in TMP_DIRS:
        try:
            names = sorted(os.listdir(host_path(directory)))
        except OSError:
            continue
        found.extend("%s/%s" % (directory, n) for n in names if n.startswith(_TMP_PREFIX) and n.endswith(_TMP_SUFFIX))
    return found


@dataclass
class HostState:
    """Everything the decision needs, read under the lock."""

    live: Dict[str, Optional[str]]
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


class Refused(Exception):
    """Refused before anything changed; ``result`` says what was found."""

    def __init__(self, msg: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


class Failed(Exception):
    """Failed after a change began; rolled back, and ``result['rollback']`` says what is left."""

    def __init__(self, msg: str, result: Dict[str, Any]) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


def read_host(meminfo_path: str = "/proc/meminfo") -> HostState:
    """Read the host. Raises Refused for what makes a decision impossible (nothing changed)."""
    try:
        fields = read_meminfo_fields(meminfo_path)
        memory = memory_from_fields(fields, page_size_kb=page_size_kb())
    except MeminfoError as exc:
        raise Refused("Nothing changed: meminfo: %s" % exc)
    ours: Dict[str, bytes] = {}
    ours_attr_wrong: Dict[str, bool] = {}
    try:
        names = sorted(os.listdir(host_path(DROPIN_DIR)))
    except OSError:
        names = []
    stale_tmp = _tmp_files()  # left by a run that was killed; we hold the lock, so they are no one's
    for name in names:
        path = DROPIN_DIR + "/" + name
        if not _OUR_NAME.match(name):
            continue
        got = read_own(path)
        if got.status == rf.STATUS_ABSENT:
            continue  # removed since the listing: nothing of ours there
        if not got.is_read or got.data is None or got.node is None:
            # Never "absent" and never overwritten or removed unread: a rollback puts back only what it read.
            raise Refused(own_file_refusal(path, got))
        ours[path] = got.data
        ours_attr_wrong[path] = _owner_mode_wrong(got.node)
    kind, evidence = detect_container()
    boot_tool, boot_tool_evidence = detect_boot_tool()
    return HostState(
        live=read_live(sw.OBSERVED_KEYS), meminfo=fields, memory=memory, sources=sf.read_sysctl_sources(host_path),
        ours=ours, ours_attr_wrong=ours_attr_wrong, container=kind, container_evidence=evidence,
        stale_tmp=stale_tmp, boot_tool=boot_tool, boot_tool_evidence=boot_tool_evidence)


# --- deciding -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileChange:
    """One file operation of the transaction: ``after`` None removes the file."""

    path: str
    before: Optional[bytes]
    after: Optional[bytes]
    why: str
    ours: bool = True  # our drop-in (0644 root:root) or another file we edit (keeps its mode and owner)

    def as_dict(self) -> Dict[str, Any]:
        action = "remove" if self.after is None else ("create" if self.before is None else "update")
        return {"path": self.path, "action": action, "why": self.why}


@dataclass
class Request:
    state: str  # present | absent
    priority: int
    options: PlanOptions
    live_mode: str  # auto | always | never
    shadowing: str  # fail | warn | takeover


@dataclass
class Decision:
    request: Request
    host: HostState
    path: str
    plan: Optional[Plan]
    target: Dict[str, str]  # managed keys to hold live
    file_changes: List[FileChange]
    writes: List[sw.Write]
    skip_live: Optional[str]
    shadowing: Dict[str, Any]
    boot: Dict[str, Any]
    options: PlanOptions
    warnings: List[str] = field(default_factory=list)
    refusal: Optional[str] = None  # set when the request must not be carried out

    @property
    def changed(self) -> bool:
        # Removing a killed run's temporary file from /etc/sysctl.d changes the host too.
        return bool(self.file_changes or self.writes or self.host.stale_tmp)


def _live_skip(request: Request, host: HostState, keys) -> Optional[str]:
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
    return replace(options, user_reserve_kb=int(live)) if live is not None else options


def _real_path(src: sf.SysctlSource) -> str:
    """The file a source's bytes come from: /etc/sysctl.d/99-sysctl.conf is /etc/sysctl.conf."""
    return src.target or src.path


def sources_after(sources: Dict[str, sf.SysctlSource], changes: List[FileChange]) -> Dict[str, sf.SysctlSource]:
    """The sysctl files as the next boot would find them once ``changes`` are made."""
    out = dict(sources)
    for change in changes:
        readers = [p for p, src in sources.items() if _real_path(src) == change.path] or [change.path]
        for logical in readers:
            if change.after is None:
                out.pop(logical, None)
            else:
                out[logical] = sf.SysctlSource(logical, change.after, sf.STATUS_FILE,
                                               None if change.after else "empty file",
                                               target=sources[logical].target if logical in sources else None)
    return out


@dataclass
class BootCheck:
    """Every tool version's replay of the files, at boot and when re-run later."""

    replays: List[Tuple[str, sr.Replay]]  # (label, replay)
    differences: List[str]  # end values that differ from the expected ones, with the file that decides
    unsafe: List[str]  # end states in mode 2 that fail the lower-bound check
    decisive: List[sr.ReplayWrite]  # the writes that make the end differ

    def as_dict(self) -> Dict[str, Any]:
        return {label: {"end": dict(r.end), "problems": [str(p) for p in r.problems]}
                for label, r in self.replays}


def check_boot(sources: Dict[str, sf.SysctlSource], expected: Optional[Dict[str, str]],
               rerun_from: Dict[str, str], memory: MemoryShape, options: PlanOptions) -> BootCheck:
    """Replay the files as every modelled tool version does, from a fresh kernel (the boot) and
    from ``rerun_from`` (a later ``sysctl --system``), and judge each end state.

    Every end state passes check_commit_state, the one lower-bound rule; ``expected`` (the plan's
    end state) must also be what every replay ends with.
    """
    check = BootCheck([], [], [], [])
    differences: Dict[str, List[str]] = {}
    unsafe: Dict[str, List[str]] = {}
    for rules in sr.RULE_SETS:
        for when, start in (("boot", sk.KERNEL_BOOT_DEFAULTS), ("rerun", rerun_from)):
            result = sr.replay(sources, rules, start)
            label = "%s %s" % (rules.name, when)
            check.replays.append((label, result))
            for key in sorted(expected or {}):
                if result.end.get(key) == expected[key]:
                    continue
                decided = sr.decided_by(result, key)
                if decided.write is not None:
                    check.decisive.append(decided.write)
                text = "%s would end at %s, not %s: %s" % (key, result.end.get(key), expected[key], decided.message)
                differences.setdefault(text, []).append(label)
            verdict = check_commit_state(memory, result.end, options)
            if not verdict.safe:
                unsafe.setdefault("%s: %s" % (sr.decided_by(result, KEY_MODE).message, verdict.reason), []).append(label)
    # One line per finding, with the tool versions that show it.
    check.differences = ["%s (%s)" % (text, ", ".join(labels)) for text, labels in differences.items()]
    check.unsafe = ["%s (%s)" % (text, ", ".join(labels)) for text, labels in unsafe.items()]
    return check


def _shadowing(check: BootCheck, expected: Dict[str, str], ours: str) -> Dict[str, Any]:
    """Per planned key: who decides it under each tool version at boot, and the status."""
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


def _takeover_changes(check: BootCheck, sources: Dict[str, sf.SysctlSource],
                      done: Dict[str, FileChange]) -> Tuple[Dict[str, FileChange], List[str]]:
    """Comment out the decisive lines that live in files under /etc; name the ones that do not."""
    blocked: List[str] = []
    for write in check.decisive:
        src = sources.get(write.path)
        real = _real_path(src) if src is not None else write.path
        if not takeover.is_editable(real):
            blocked.append("%s (%s)" % (write.where, write.line))
            continue
        before = done[real].before if real in done else (src.data if src is not None else None)
        current = done[real].after if real in done else before
        if current is None:
            blocked.append("%s (%s)" % (write.where, write.line))
            continue
        edited = takeover.comment_out(current, [write.lineno])
        if edited != current:
            done[real] = FileChange(real, before, edited, "takeover: conflicting overcommit lines commented out",
                                    ours=False)
    return done, sorted(set(blocked))


def _restore_changes(host: HostState) -> List[FileChange]:
    """Every file under /etc with lines we took over, with those lines put back."""
    changes: Dict[str, FileChange] = {}
    for src in host.sources.values():
        real = _real_path(src)
        if src.data is None or not takeover.is_editable(real) or real in changes or real in host.ours:
            continue
        restored, count = takeover.restore(src.data)
        if count:
            changes[real] = FileChange(real, src.data, restored, "absent: %d line(s) taken over are put back" % count,
                                       ours=False)
    return [changes[p] for p in sorted(changes)]


def full_state(values: Dict[str, Optional[str]]) -> Dict[str, str]:
    return dict((k, values.get(k) if values.get(k) is not None else sk.KERNEL_BOOT_DEFAULTS[k]) for k in sw.MANAGED_KEYS)


def _restore_warning(restore: sr.BootEnd, host: HostState) -> str:
    """What state=absent did when the modelled tools disagree about the remaining files."""
    if not restore.disputed:
        return ("state=absent restored the live values as this host's boot tool sets them (%s: %s); %s"
                % (", ".join(restore.rules), host.boot_tool_evidence, restore.note))
    keys = [k for k in sw.MANAGED_KEYS if k in restore.disputed]
    if host.boot_tool is None:
        why = "the boot tool of this host cannot be told (%s)" % host.boot_tool_evidence
    else:
        why = "this host boots with %s (%s), whose modelled versions %s disagree" % (
            host.boot_tool, host.boot_tool_evidence, ", ".join(restore.rules))
    return ("state=absent left %s live as they are (%s) rather than guess: %s and %s; the next boot sets them"
            % (", ".join(keys), ", ".join(str(host.live.get(k)) for k in keys), why, restore.note))


def decide(request: Request, host: HostState) -> Decision:
    """What the run would do, and whether it may. Changes nothing."""
    path = dropin_path(request.priority)
    options = plan_options_for(request.options, host)
    plan = None
    warnings: List[str] = []
    refusal = None
    changes: List[FileChange] = []
    shadowing: Dict[str, Any] = {}
    live_now = full_state(host.live)
    if request.state == "present":
        plan = plan_overcommit(host.memory, options)
        target = dict(plan.sysctl)
        expected = plan.end_state
        content = render_dropin(plan.as_dict()).encode("utf-8")
        if not plan.safe:
            refusal = "Unsafe overcommit plan, nothing changed: " + " ".join(plan.reasons)
        before = host.ours.get(path)
        if before != content or host.ours_attr_wrong.get(path):
            changes.append(FileChange(path, before, content, "the planned drop-in"))
        for other, data in sorted(host.ours.items()):
            if other != path:
                changes.append(FileChange(other, data, None, "our drop-in at another priority; %s replaces it" % path))
        # A later sysctl --system starts from what the plan leaves live.
        rerun_from = sw.simulate(live_now, sw.plan_writes(dict(live_now), target))
        check = check_boot(sources_after(host.sources, changes), expected, rerun_from, host.memory, options)
        if request.shadowing == "takeover":
            taken: Dict[str, FileChange] = {}
            for _round in range(8):  # each round comments out what decides now; a few rounds settle it
                if not check.differences:
                    break
                taken, blocked = _takeover_changes(check, host.sources, taken)
                if blocked:
                    refusal = refusal or (
                        "Nothing changed: takeover edits only files under /etc, and these other files would still "
                        "override the plan: %s. Pick a later overcommit_dropin_priority." % "; ".join(blocked))
                    break
                check = check_boot(sources_after(host.sources, changes + list(taken.values())), expected,
                                   rerun_from, host.memory, options)
            # Edits of other files go first: a run killed after them and before our drop-in leaves a
            # boot that no longer reads the taken-over lines, not one that reads them and not ours.
            changes[:0] = [taken[p] for p in sorted(taken)]
        shadowing = _shadowing(check, expected, path)
        if refusal is None and check.unsafe:
            # Whatever shadowing says: no run of ours leaves a host that boots locked out.
            refusal = ("Nothing changed: another sysctl file would make the host boot into an unsafe mode 2: "
                       + " | ".join(check.unsafe) + ". Overridden: " + " | ".join(check.differences))
        elif refusal is None and check.differences:
            if request.shadowing == "warn":
                warnings.extend(check.differences)
            else:
                refusal = ("Nothing changed: another sysctl file would change the plan at the next boot or "
                           "sysctl --system: " + " | ".join(check.differences)
                           + ". Remove or change that setting, use shadowing=takeover for files under /etc, or "
                           "pick a later overcommit_dropin_priority.")
    else:
        for other, data in sorted(host.ours.items()):
            changes.append(FileChange(other, data, None, "state=absent"))
        changes.extend(_restore_changes(host))
        remaining = sources_after(host.sources, changes)
        # The live values return to what the host would boot with: what every modelled tool sets,
        # else what this host's own boot tool sets, else only the keys they agree on (no guess).
        restore = sr.boot_end(remaining, host.boot_tool)
        target = sw.restore_target(restore.end) if changes else {}
        if changes and restore.note:
            warnings.append(_restore_warning(restore, host))
        check = check_boot(remaining, None, sw.simulate(live_now, sw.plan_writes(dict(live_now), target)),
                           host.memory, options)
        if check.unsafe and not changes:
            # Not ours to fix, and nothing of ours to remove: say it, change nothing.
            warnings.append("this host's own sysctl files would boot into an unsafe mode 2: " + " | ".join(check.unsafe))
        elif check.unsafe:
            refusal = ("Nothing changed: without our drop-in the remaining sysctl files would leave an unsafe mode 2 "
                       "(new processes could not start): " + " | ".join(check.unsafe)
                       + ". Fix or remove that setting first, or keep state=present.")
    skip = _live_skip(request, host, target)
    known_live = dict((k, v) for k, v in host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    writes = [] if skip else sw.plan_writes(known_live, target)
    return Decision(request=request, host=host, path=path, plan=plan, target=target, file_changes=changes,
                    writes=writes, skip_live=skip, shadowing=shadowing, boot=check.as_dict(), options=options, warnings=warnings,
                    refusal=refusal)


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
    if want_diff:
        diffs = [{"before_header": c.path, "after_header": c.path,
                  "before": _decode(c.before) or "", "after": _decode(c.after) or ""}
                 for c in decision.file_changes]
        diffs.append(_live_diff(known_live, sw.simulate(known_live, decision.writes), sorted(decision.target)))
        result["diff"] = diffs
    return result


# --- executing ----------------------------------------------------------------------------------

class _StepError(Exception):
    """A step failed after something may have changed: triggers the rollback."""


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: str, data: bytes, keep_attrs: bool = False) -> None:
    """Write next to the target and rename over it, so a reader (or a boot) sees old or new, never half.

    Our own rename rather than AnsibleModule.atomic_move: that one ends the module with fail_json on
    some errors (an SELinux context it cannot set), which would skip our rollback and leave the
    temporary file behind. The temporary file never outlives this call. Our drop-ins are 0644
    root:root; another file we edit (takeover) keeps its own mode and owner (``keep_attrs``).
    """
    real = host_path(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    mode, uid, gid = FILE_MODE, 0, 0
    if keep_attrs and os.path.exists(real):
        st = os.stat(real)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.rename(tmp, real)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def remove_file(path: str) -> None:
    os.unlink(host_path(path))
    _fsync_dir(os.path.dirname(host_path(path)))


def _apply_live(writes: List[sw.Write], expect_limit_kb: Optional[int], applied: List[sw.Write]) -> None:
    for w in writes:
        # Counted as applied before the write: a write can take effect and still report an error.
        applied.append(w)
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            raise _StepError("the kernel refused %s = %s: %s" % (w.key, w.after, exc.strerror or exc))
        got = read_live([w.key])[w.key]
        if got != w.after:
            raise _StepError("%s reads back %s after writing %s" % (w.key, got, w.after))
    if expect_limit_kb is not None:
        got = read_commit_limit_kb()
        tolerance_kb = page_size_kb()
        if got is None or abs(got - expect_limit_kb) > tolerance_kb:
            raise _StepError("CommitLimit is %s kB after applying, the plan expected %d kB (tolerance one page, %d kB)"
                             % (got, expect_limit_kb, tolerance_kb))


def _apply_files(changes: List[FileChange], done: List[FileChange]) -> None:
    for change in changes:
        done.append(change)
        if change.after is None:
            if os.path.lexists(host_path(change.path)):
                remove_file(change.path)
        else:
            write_file_atomic(change.path, change.after, keep_attrs=not change.ours)
        got = read_own(change.path)
        if change.after is None and got.not_absent():
            raise _StepError("%s does not read back as removed (%s)" % (change.path, got.not_absent()))
        if change.after is not None and got.not_holding(change.after):
            raise _StepError("%s does not read back as written (%s)" % (change.path, got.not_holding(change.after)))


def rollback_snapshot(decision: Decision) -> Tuple[Dict[str, str], Optional[str]]:
    """The live values a rollback returns to, and why they differ from before the run, if they do.

    A rollback is a path that can leave mode 2 in force, so it passes the same lower-bound check
    as a plan: if the host was in an unsafe mode 2 before the run (the very state we came to fix),
    the rollback leaves mode 0 instead of restoring a state in which new processes cannot start.
    """
    snapshot = dict((k, v) for k, v in decision.host.live.items() if v is not None and k in sw.MANAGED_KEYS)
    try:
        verdict = check_commit_state(decision.host.memory, full_state(decision.host.live), decision.options)
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
    """Put files and live values back, then read everything back. Returns (problems, left)."""
    problems: List[str] = []
    for change in reversed(files_done):
        try:
            if change.before is None:
                if os.path.lexists(host_path(change.path)):
                    remove_file(change.path)
            else:
                write_file_atomic(change.path, change.before, keep_attrs=not change.ours)
        except OSError as exc:
            problems.append("restoring %s: %s" % (change.path, exc))
    snapshot, unsafe_before = rollback_snapshot(decision)
    if unsafe_before:
        # Listed last, so undone first: leaving mode 2 comes before the limit is lowered back.
        applied = applied + [sw.Write(KEY_MODE, None, snapshot[KEY_MODE])]
    for w in sw.rollback_writes(applied, snapshot):
        if read_live([w.key])[w.key] == w.after:
            continue  # the forward write never took effect; writing again could only fail again
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            problems.append("restoring %s = %s: %s" % (w.key, w.after, exc))
    return problems, verify_restored(decision, snapshot, files_done)


def verify_restored(decision: Decision, snapshot: Dict[str, str], files_done: List[FileChange]) -> List[str]:
    """What still differs from before the run, read back from the host."""
    left: List[str] = []
    now = read_live(sw.MANAGED_KEYS)
    limit_key = sw.limit_key_in_effect(snapshot)
    for key in sw.MANAGED_KEYS:
        if key not in snapshot or (key in (sw.RATIO, sw.KBYTES) and key != limit_key):
            continue  # of the pair only the one in effect can be restored; the other reads 0
        if now.get(key) != snapshot[key]:
            left.append("%s is %s, was %s" % (key, now.get(key), snapshot[key]))
    for change in files_done:
        got = read_own(change.path)
        if change.before is None and got.not_absent():
            left.append("%s did not exist before the run (now: %s)" % (change.path, got.not_absent()))
        elif change.before is not None and got.not_holding(change.before):
            left.append("%s differs from before the run (%s)" % (change.path, got.not_holding(change.before)))
    left.extend("%s is a temporary file left behind" % path for path in _tmp_files())
    return left


def execute(decision: Decision) -> Dict[str, Any]:
    """Carry out a decision that was not refused. Raises Failed after a rollback."""
    result = report(decision, want_diff=False)
    for tmp in decision.host.stale_tmp:
        try:
            os.unlink(host_path(tmp))
        except OSError:
            pass
    applied: List[sw.Write] = []
    files_done: List[FileChange] = []
    plan = decision.plan
    # In mode 1 the kernel does not enforce CommitLimit: nothing to verify.
    expect_kb = plan.commit_limit_kb if plan is not None and plan.limit_by else None
    try:
        if not decision.skip_live:
            _apply_live(decision.writes, expect_kb, applied)
        _apply_files(decision.file_changes, files_done)
    except BaseException as exc:  # pylint: disable=broad-except
        # Whatever broke (the kernel, the disk, our own bug, even a SystemExit), the host must not be
        # left half-changed: roll back, then read back what is really there.
        problems, left = _rollback(decision, applied, files_done)
        reason = str(exc) if isinstance(exc, _StepError) else "%s: %s" % (type(exc).__name__, exc)
        if left:
            msg = "Apply failed, ROLLBACK INCOMPLETE: %s; still different from before: %s" % (reason, "; ".join(left))
        else:
            msg = "Apply failed, rolled back (every value and file read back as before): %s" % reason
        if problems:
            msg += "; rollback problems: " + "; ".join(problems)
        _snapshot, unsafe_before = rollback_snapshot(decision)
        if unsafe_before:
            msg += "; " + unsafe_before
        result.update(changed=bool(left or unsafe_before), live_values=read_live(sw.MANAGED_KEYS),
                      commit_limit_kb=read_commit_limit_kb(),
                      rollback={"complete": not left, "left": left, "problems": problems,
                                "unsafe_before": unsafe_before})
        raise Failed(msg, result)
    result["live_applied"] = decision.skip_live is None
    result["live_values"] = read_live(sw.MANAGED_KEYS)
    result["commit_limit_kb"] = read_commit_limit_kb()
    return result


def run(request: Request, check_mode: bool, want_diff: bool, lock_timeout_s: float,
        warn: Callable[[str], None]) -> Dict[str, Any]:
    """The overcommit module's whole run. Raises Refused, Failed or host_lock.LockTimeout."""
    with HostLock(host_path(LOCK_PATH), lock_timeout_s) as lock:
        host = read_host()
        try:
            decision = decide(request, host)
        except CommitStateInputError as exc:
            # A value the lower-bound check takes no position on (a negative ratio, as the kernel
            # stores it): nothing may be done on a state that cannot be judged safe.
            raise Refused("Nothing changed: an end state of the sysctl files or the live values cannot be judged "
                          "by the lower-bound check: %s" % exc)
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
