# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of oom_priority: read units and processes, write drop-ins and main PIDs' scores.

    lock -> read (unit dirs, systemctl show, /proc/PID) -> decide (oom_priority.decide)
         -> (refuse | report | write drop-ins, daemon-reload, read again and decide again:
             it must be a fixed point; write the main PIDs' scores, read each back)
         any failure: put files and scores back, daemon-reload, and say what is still different

systemctl is run through ``run`` (AnsibleModule.run_command in the module), and only ever as
``systemctl show`` and ``systemctl daemon-reload``: this code never starts, stops or restarts a
unit. Paths go through ``host_path`` (_overcommit.transaction's, so unit tests use one fake tree), and
every file is read by regular_file's one rule: unit files through their links as systemd follows
them, our own drop-ins never through a link. No Ansible import.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host import container
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Failed, Refused, StepError
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LOCK_PATH, HostLock
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core

Runner = Callable[[List[str]], Tuple[int, str, str]]
SYSTEMCTL = "systemctl"
_TEXT_CAP_BYTES = 1024 * 1024


def show_command(names: Sequence[str]) -> List[str]:
    return [SYSTEMCTL, "show", "--no-pager", "--property=" + ",".join(core.SHOW_PROPERTIES), "--"] + list(names)


DAEMON_RELOAD = [SYSTEMCTL, "daemon-reload"]


systemd_booted = container.systemd_booted  # one copy of sd_booted(3)


def read_unit_files() -> Dict[str, core.UnitFile]:
    """*.service names in the unit directories; the first directory listing a name wins."""
    out: Dict[str, core.UnitFile] = {}
    for directory in core.UNIT_DIRS:
        try:
            names = sorted(os.listdir(files.host_path(directory)))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".service") or name in out:
                continue
            path = directory + "/" + name
            real = files.host_path(path)
            try:
                masked = (os.path.islink(real) and os.readlink(real) == "/dev/null") or os.stat(real).st_size == 0
            except OSError:
                continue  # a dangling link: systemd ignores it too
            out[name] = core.UnitFile(name, path, masked)
    return out


def _read(path: str) -> rf.FileRead:
    return rf.read_regular_file(files.host_path(path), _TEXT_CAP_BYTES)


def _read_small(path: str) -> Optional[bytes]:
    """A /proc/PID file's bytes (procfs files are regular, size 0), by regular_file's rule; None
    when absent, not a regular file, unreadable or larger than the cap: a cut file could read as
    another value ("OOMScoreAdjust=-1000" cut to "-1", an environment entry cut short)."""
    got = _read(path)
    return got.data if got.is_read else None


def read_unit_text(path: str) -> Optional[str]:
    """A unit file or drop-in as systemd reads it: through its links (Debian links mysql.service
    to mariadb.service), each hop inside the host tree, then by regular_file's rule. None when
    it cannot be read whole; a link to /dev/null (a mask) has no text."""
    final, problem = rf.resolve_links(path, files.host_path)
    if problem is not None or final == rf.DEV_NULL:
        return None
    data = _read_small(final)
    return None if data is None else data.decode("utf-8", "replace")


def read_process(pid: int) -> core.ProcessState:
    score_text = _read_small("/proc/%d/oom_score_adj" % pid)
    environ = _read_small("/proc/%d/environ" % pid)
    try:
        score = int(score_text.decode("ascii").strip()) if score_text is not None else None
    except ValueError:
        score = None
    return core.ProcessState(pid, score, core.parse_environ(environ or b""), readable_environ=environ is not None)


def read_ours() -> Dict[str, str]:
    out: Dict[str, str] = {}
    try:
        dirs = sorted(os.listdir(files.host_path(core.SYSTEMD_ETC)))
    except OSError:
        return out
    for d in dirs:
        if not d.endswith(".d"):
            continue
        try:
            names = sorted(os.listdir(files.host_path("%s/%s" % (core.SYSTEMD_ETC, d))))
        except OSError:
            continue
        for name in names:
            if core.OUR_NAME.match(name):
                path = "%s/%s/%s" % (core.SYSTEMD_ETC, d, name)
                # Ours is a regular file we wrote: never followed through a link, and read whole or
                # refused, since a rollback puts back only what it read.
                got = _read(path)
                if got.status == rf.STATUS_ABSENT:
                    continue
                if not got.is_read or got.data is None:
                    raise Refused(files.own_file_refusal(path, got))
                out[path] = got.data.decode("utf-8", "replace")
    return out


def show_units(run: Runner, names: Sequence[str]) -> Dict[str, core.UnitState]:
    rc, out, err = run(show_command(names))
    if rc != 0:
        raise Refused("Nothing changed: systemctl show failed (rc %d): %s" % (rc, (err or out).strip()))
    units: Dict[str, core.UnitState] = {}
    for props in core.parse_show(out):
        unit = core.unit_from_show(props)
        units.setdefault(unit.unit_id, unit)
    return units


def read_host_units(run: Runner, profiles: Sequence[str], units: Sequence[str] = ()) -> core.HostUnits:
    """Everything oom_priority.decide and describe_units need from this host. Read-only."""
    if not systemd_booted():
        raise Refused("Nothing changed: systemd is not running here (no /run/systemd/system); OOMScoreAdjust= "
                      "drop-ins need systemd as PID 1")
    unit_files = read_unit_files()
    patterns = core.candidate_names(profiles, ())
    names = core.candidate_names(profiles, [u for u in units if not core.is_template(u)])
    # Globs match loaded units only: add the unit files on disk that the patterns name.
    names += [n for n in core.matching_unit_files(patterns, unit_files) if not core.is_template(n) and n not in names]
    shown = show_units(run, [n for n in names if not core.is_template(n)] + [core.OOMD_UNIT])
    oomd = shown.get(core.OOMD_UNIT)
    if core.OOMD_UNIT not in names:
        shown.pop(core.OOMD_UNIT, None)
    processes = {u.main_pid: read_process(u.main_pid) for u in shown.values() if u.running}
    texts: Dict[str, Optional[str]] = {}
    # Unit files found on disk too: a template with no loaded instance is judged by its own text.
    on_disk = [unit_files[n].path for n in core.matching_unit_files(patterns, unit_files)]
    for unit in shown.values():
        for path in (unit.fragment_path,) + unit.dropin_paths + tuple(on_disk):
            if path and path not in texts:
                texts[path] = read_unit_text(path)
    kind, evidence = container.detect()
    return core.HostUnits(units=shown, unit_files=unit_files, processes=processes, ours=read_ours(),
                          file_texts=texts, container=kind, container_evidence=evidence,
                          oomd_active=oomd is not None and oomd.active_state == "active")


def describe_host(run: Runner, profiles: Sequence[str] = core.PROFILES,
                  units: Sequence[str] = ()) -> Dict[str, Any]:
    """For overcommit_info: {"units": describe_units(...), "container": ..., "oomd_active": ...,
    "error": None} or, where systemd is not running or systemctl fails, {"units": [], "error": why}."""
    try:
        host = read_host_units(run, profiles, units)
    except Refused as exc:
        return {"units": [], "container": None, "oomd_active": None, "error": exc.msg.replace("Nothing changed: ", "")}
    return {"units": core.describe_units(host, profiles, units), "container": host.container,
            "oomd_active": host.oomd_active, "error": None}


# --- reporting ----------------------------------------------------------------------------------

def _live_text(writes: Sequence[core.LiveWrite], after: bool) -> str:
    return "".join("/proc/%d/oom_score_adj (%s) = %d\n" % (w.pid, w.unit, w.after if after else w.before)
                   for w in writes)


def report(decision: core.Decision, host: core.HostUnits, want_diff: bool) -> Dict[str, Any]:
    rules = sorted({d.database for d in decision.units})
    result: Dict[str, Any] = dict(
        changed=decision.changed, units=[d.as_dict() for d in decision.units],
        files=[c.as_dict() for c in decision.file_changes],
        live_changes=[w.as_dict() for w in decision.live_writes], live_applied=False,
        daemon_reload=False, container=host.container, container_evidence=host.container_evidence,
        oomd_active=host.oomd_active, rules={name: core.RULES[name].as_dict() for name in rules})
    if want_diff:
        diffs = [{"before_header": c.path, "after_header": c.path, "before": (c.before or b"").decode("utf-8", "replace"),
                  "after": (c.after or b"").decode("utf-8", "replace")}
                 for c in decision.file_changes]
        if decision.live_writes:
            diffs.append({"before_header": "live oom_score_adj", "after_header": "live oom_score_adj",
                          "before": _live_text(decision.live_writes, False),
                          "after": _live_text(decision.live_writes, True)})
        result["diff"] = diffs
    return result


# --- executing ----------------------------------------------------------------------------------

def write_score(pid: int, value: int) -> None:
    fd = os.open(files.host_path("/proc/%d/oom_score_adj" % pid), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, ("%d\n" % value).encode("ascii"))
    finally:
        os.close(fd)


def _daemon_reload(run: Runner) -> None:
    rc, out, err = run(list(DAEMON_RELOAD))
    if rc != 0:
        raise StepError("systemctl daemon-reload failed (rc %d): %s" % (rc, (err or out).strip()))


def _apply_live(writes: Sequence[core.LiveWrite], done: List[core.LiveWrite]) -> None:
    for w in writes:
        done.append(w)
        try:
            write_score(w.pid, w.after)
        except OSError as exc:
            raise StepError("writing %d to /proc/%d/oom_score_adj (%s) failed: %s"
                            % (w.after, w.pid, w.unit, exc.strerror or exc))
        got = read_process(w.pid).oom_score_adj
        if got != w.after:
            raise StepError("/proc/%d/oom_score_adj (%s) reads back %s after writing %d" % (w.pid, w.unit, got, w.after))


def _check_fixed_point(again: core.Decision) -> None:
    """After the reload, systemd must report what the drop-ins say, and a second decision must
    want no further file change."""
    if again.file_changes:
        raise StepError("after daemon-reload the drop-ins still differ: %s"
                        % ", ".join(c.path for c in again.file_changes))
    if again.refusals:
        raise StepError("after daemon-reload: " + " | ".join(again.refusals))


def _verify_configured(again: core.Decision, host: core.HostUnits) -> List[str]:
    wrong = []
    for d in again.units:
        unit = host.units.get(d.unit)
        if unit is None or not d.settings:
            continue
        for key, got in (("OOMScoreAdjust", unit.oom_score_adj), ("OOMPolicy", unit.oom_policy),
                         ("ManagedOOMPreference", unit.managed_oom_preference)):
            if key in d.settings and str(got) != d.settings[key]:
                wrong.append("%s: systemd reports %s=%s, the drop-in sets %s" % (d.unit, key, got, d.settings[key]))
    return wrong


def _verify_live_targets(writes: Sequence[core.LiveWrite], host: core.HostUnits) -> List[str]:
    """Each live target is what systemd now gives the unit's next start: the value written, or for
    a drop-in removed, the unit's own value that the decision read from its files."""
    wrong = []
    for w in writes:
        unit = host.units.get(w.unit)
        if unit is not None and unit.oom_score_adj != w.after:
            wrong.append("%s: systemd reports OOMScoreAdjust=%s after the reload, the live target was %d"
                         % (w.unit, unit.oom_score_adj, w.after))
    return wrong


def _rollback(run: Runner, files_done: Sequence[files.FileChange], live_done: Sequence[core.LiveWrite]) -> List[str]:
    """Put files and scores back, reload, read back. Returns what is still different."""
    problems: List[str] = [p for p in (files.restore_file(c) for c in reversed(files_done)) if p]
    if files_done:
        rc, out, err = run(list(DAEMON_RELOAD))
        if rc != 0:
            problems.append("daemon-reload after the rollback failed: %s" % (err or out).strip())
    for w in reversed(list(live_done)):
        if read_process(w.pid).oom_score_adj == w.before:
            continue
        try:
            write_score(w.pid, w.before)
        except OSError as exc:
            problems.append("restoring /proc/%d/oom_score_adj: %s" % (w.pid, exc))
    problems.extend(files.left_after_restore(files_done))
    for w in live_done:
        got = read_process(w.pid).oom_score_adj
        if got != w.before:
            problems.append("/proc/%d/oom_score_adj is %s, was %d" % (w.pid, got, w.before))
    return problems


def run(request: core.Request, runner: Runner, check_mode: bool, want_diff: bool, lock_timeout_s: float,
        warn: Callable[[str], None]) -> Dict[str, Any]:
    """The oom_priority module's whole run. Raises Refused, Failed or _host.lock.LockError (LockTimeout, LockUnusable)."""
    with HostLock(files.host_path(LOCK_PATH), lock_timeout_s) as lock:
        host = read_host_units(runner, request.profiles, request.units)
        decision = core.decide(request, host)
        if decision.refusals:
            raise Refused(" | ".join(decision.refusals), report(decision, host, False))
        for message in decision.warnings:
            warn(message)
        result = report(decision, host, want_diff)
        result["lock_waited_s"] = round(lock.waited_s, 3)
        if check_mode:
            return result
        files_done: List[files.FileChange] = []
        live_done: List[core.LiveWrite] = []
        try:
            for change in decision.file_changes:
                files.apply_file(change, files_done)
            writes = decision.live_writes
            if decision.daemon_reload:
                _daemon_reload(runner)
                result["daemon_reload"] = True
                host_after = read_host_units(runner, request.profiles, request.units)
                again = core.decide(request, host_after)
                _check_fixed_point(again)
                wrong = _verify_configured(again, host_after) + _verify_live_targets(writes, host_after)
                if wrong:
                    raise StepError("; ".join(wrong))
            _apply_live(writes, live_done)
        except BaseException as exc:  # pylint: disable=broad-except
            # Whatever broke, do not leave a half-changed host: put it back and read it back.
            left = _rollback(runner, files_done, live_done)
            reason = str(exc) if isinstance(exc, StepError) else "%s: %s" % (type(exc).__name__, exc)
            if isinstance(exc, Refused):  # the host could not be read again after the reload
                reason = exc.msg
            msg = ("Apply failed, ROLLBACK INCOMPLETE: %s; still different: %s" % (reason, "; ".join(left)) if left
                   else "Apply failed, rolled back (files and scores read back as before): %s" % reason)
            result.update(changed=bool(left), rollback={"complete": not left, "left": left})
            raise Failed(msg, result)
        result["changed"] = bool(files_done or live_done)
        result["live_applied"] = bool(live_done)
        return result
