# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of oom_priority: write drop-ins and main PIDs' scores, read back, roll back.

    lock -> read (host.py: unit dirs, systemctl show, /proc/PID) -> decide (decide.py)
         -> (refuse | report | write drop-ins, daemon-reload, read again and decide again:
             it must be a fixed point; write the main PIDs' scores, read each back)
         any failure: put files and scores back, daemon-reload, and say what is still different

systemctl is run through ``run`` (AnsibleModule.run_command in the module), and only ever as
``systemctl show`` (host.py) and ``systemctl daemon-reload``: this code never starts, stops or
restarts a unit. Paths go through ``host_path`` (_host.files', so unit tests use one fake tree).
No Ansible import.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Failed, Refused, StepError
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LOCK_PATH, HostLock
from ansible_collections.dbfleet.memory.plugins.module_utils._oom.decide import Decision, decide
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core
from ansible_collections.dbfleet.memory.plugins.module_utils._oom.host import SYSTEMCTL, Runner, read_host_units, read_process

DAEMON_RELOAD = [SYSTEMCTL, "daemon-reload"]


# --- reporting ----------------------------------------------------------------------------------

def _live_text(writes: Sequence[core.LiveWrite], after: bool) -> str:
    return "".join("/proc/%d/oom_score_adj (%s) = %d\n" % (w.pid, w.unit, w.after if after else w.before)
                   for w in writes)


def report(decision: Decision, host: core.HostUnits, want_diff: bool) -> Dict[str, Any]:
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


def _check_fixed_point(again: Decision) -> None:
    """After the reload, systemd must report what the drop-ins say, and a second decision must
    want no further file change."""
    if again.file_changes:
        raise StepError("after daemon-reload the drop-ins still differ: %s"
                        % ", ".join(c.path for c in again.file_changes))
    if again.refusals:
        raise StepError("after daemon-reload: " + " | ".join(again.refusals))


def _verify_configured(again: Decision, host: core.HostUnits) -> List[str]:
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
        decision = decide(request, host)
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
                again = decide(request, host_after)
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
