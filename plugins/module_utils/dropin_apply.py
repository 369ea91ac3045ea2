# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply step on the host: read, decide, write live values then the drop-in, roll back.

Shared by the sysctl_apply module (values and file text given) and the overcommit module
(plans, renders and applies in one remote run). The decisions come from the pure cores
(sysctl_precedence: which file wins; sysctl_writes: the order of writes); this file is
the host I/O around them. No Ansible import: the caller passes atomic_move and warn.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils import container_detect
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MeminfoError, parse_meminfo
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_precedence as prec
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_writes as sw

# Prefix for every host path the module touches. Unit tests point it at a fake
# tree; it is deliberately not an option, so no play can aim the module elsewhere.
_ROOT = ""

DROPIN_DIR = "/etc/sysctl.d"
DEFAULT_PATH = DROPIN_DIR + "/90-dbfleet-overcommit.conf"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*\.conf$")


class ApplyError(Exception):
    """A failure after something may have changed: triggers the rollback."""


def host_path(path):
    """Where a host path really is: tests point _ROOT at a fake tree."""
    return _ROOT + path


def _proc_sys(key):
    return host_path("/proc/sys/" + key.replace(".", "/"))


def read_live(keys):
    live = {}
    for key in keys:
        try:
            with open(_proc_sys(key)) as f:
                live[key] = sw.canonical(f.read())
        except (OSError, ValueError):
            live[key] = None  # e.g. overcommit_kbytes does not exist before Linux 3.14
    return live


def write_live(key, value):
    # O_TRUNC is ignored by procfs; it keeps a plain-file fake tree honest too.
    fd = os.open(_proc_sys(key), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode("ascii"))
    finally:
        os.close(fd)


def read_commit_limit_kb():
    try:
        with open(host_path("/proc/meminfo")) as f:
            return parse_meminfo(f.read()).get("CommitLimit")
    except (OSError, MeminfoError):
        return None


def page_size_kb():
    return os.sysconf("SC_PAGE_SIZE") // 1024


def _read_optional(path, binary=False):
    try:
        with open(host_path(path), "rb" if binary else "r") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def detect_container():
    paths = container_detect.EVIDENCE_PATHS
    kind = container_detect.detect_container(
        systemd_container=_read_optional(paths["systemd_container"]),
        containerenv=_read_optional(paths["containerenv"]),
        dockerenv=os.path.lexists(host_path(paths["dockerenv"])),
        pid1_environ=_read_optional(paths["pid1_environ"], binary=True),
        pid1_cgroup=_read_optional(paths["pid1_cgroup"]),
    )
    return container_detect.sanitize_kind(kind)


def _read_entry(logical):
    """Text of a sysctl file, prec.MASKED for a /dev/null link, or False if unreadable."""
    real = host_path(logical)
    if os.path.islink(real):
        target = os.readlink(real)
        if target == "/dev/null" or os.path.realpath(real) == "/dev/null":
            return prec.MASKED
    try:
        with open(real) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return False  # dangling link or unreadable: neither program applies it


def read_sysctl_files():
    files = {}
    for directory in prec.SYSCTL_DIRS:
        real = host_path(directory)
        # On merged-/usr systems /lib is /usr/lib: same files, lower rank, absorbed.
        try:
            names = sorted(os.listdir(real))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".conf") or os.path.isdir(os.path.join(real, name)):
                continue
            entry = _read_entry(directory + "/" + name)
            if entry is not False:
                files[directory + "/" + name] = entry
    conf = _read_entry(prec.SYSCTL_CONF)
    if conf is not False:
        files[prec.SYSCTL_CONF] = conf
    return files


def _file_state(path):
    """(content or None if absent, needs_attr_fix)"""
    real = host_path(path)
    if not os.path.lexists(real):
        return None, False
    if os.path.islink(real) or not os.path.isfile(real):
        return False, False
    st = os.stat(real)
    with open(real) as f:
        content = f.read()
    return content, (st.st_mode & 0o7777) != 0o644 or _owner_wrong(st)


def _owner_wrong(st):
    # Unprivileged runs (unit tests as a user) cannot chown; root must own it.
    return os.geteuid() == 0 and (st.st_uid != 0 or st.st_gid != 0)


def write_file(path, content):
    real = host_path(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".dbfleet-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
    except Exception:
        os.unlink(tmp)
        raise
    return tmp


def remove_file(path):
    os.unlink(host_path(path))


def content_errors(content, desired):
    """The file and the live values must say the same thing, or a reboot changes the host."""
    errors = []
    seen = {}
    for a in prec.parse_sysctl_conf(content, "content"):
        if a.key in sw.MANAGED_KEYS:
            seen.setdefault(a.key, []).append(a)
    for key in sw.MANAGED_KEYS:
        found = seen.get(key, [])
        if key not in desired:
            if found:
                errors.append("content sets %s (line %d) but values does not manage it" % (key, found[0].lineno))
            continue
        if len(found) != 1:
            errors.append("content must set %s exactly once, found %d times" % (key, len(found)))
            continue
        try:
            same = sw.canonical(found[0].value) == desired[key]
        except ValueError:
            same = False
        if not same:
            errors.append(
                "content sets %s = %s (line %d) but values says %s" % (key, found[0].value, found[0].lineno, desired[key])
            )
    return errors


# ---------------------------------------------------------------------------------------------


def _live_diff(live, target_live, keys):
    def render(values):
        return "".join("%s = %s\n" % (k, values.get(k)) for k in keys)

    return {"before_header": "live /proc/sys/vm", "after_header": "live /proc/sys/vm",
            "before": render(live), "after": render(target_live)}


def _rollback(applied, live_snapshot, file_snapshot, path, file_touched):
    """Best effort: put the file and the live values back. Returns problems seen."""
    problems = []
    if file_touched:
        try:
            if file_snapshot is None:
                if os.path.lexists(host_path(path)):
                    remove_file(path)
            else:
                tmp = write_file(path, file_snapshot)
                os.rename(tmp, host_path(path))
        except OSError as exc:
            problems.append("restoring %s: %s" % (path, exc))
    known = dict((k, v) for k, v in live_snapshot.items() if v is not None)
    for w in sw.rollback_writes(applied, known):
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            problems.append("restoring %s = %s: %s" % (w.key, w.after, exc))
    return problems


def _apply_live(writes, expect_limit_kb, applied):
    """Write in order; ``applied`` collects every write that may have reached the kernel."""
    for w in writes:
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            raise ApplyError("the kernel refused %s = %s: %s" % (w.key, w.after, exc.strerror or exc))
        applied.append(w)
        got = read_live([w.key])[w.key]
        if got != w.after:
            raise ApplyError("%s reads back %s after writing %s" % (w.key, got, w.after))
    if expect_limit_kb is not None:
        got = read_commit_limit_kb()
        if got is None or abs(got - expect_limit_kb) > page_size_kb():
            raise ApplyError(
                "CommitLimit is %s kB after applying, the plan expected %d kB (tolerance one page, %d kB)"
                % (got, expect_limit_kb, page_size_kb())
            )


class ApplyRefused(Exception):
    """Refused before anything changed; ``result`` says what was found."""

    def __init__(self, msg: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


class ApplyFailed(Exception):
    """Failed after a change began; everything was rolled back (or ``result`` says what was not)."""

    def __init__(self, msg: str, result: Dict[str, Any]) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


def validate_path(path: str) -> List[str]:
    if not path.startswith("/") or os.path.normpath(path) != path or os.path.dirname(path) != DROPIN_DIR:
        return ["path must be a file directly in %s, got %r" % (DROPIN_DIR, path)]
    if not _NAME.match(os.path.basename(path)):
        return ["path must name a '.conf' file (letters, digits, '_.@+-'); systemd-sysctl ignores others, got %r"
                % os.path.basename(path)]
    return []


def apply_dropin(
    path: str,
    state: str,
    content: Optional[str],
    desired: Dict[str, str],
    live_mode: str,
    shadowing_mode: str,
    expect_commit_limit_kb: Optional[int],
    check_mode: bool,
    want_diff: bool,
    warn: Callable[[str], None],
    atomic_move: Callable[[str, str], None],
) -> Dict[str, Any]:
    """Hold ``desired`` live and ``content`` in ``path`` (state present), or remove the drop-in
    and return its keys to what the remaining files set (state absent). Returns the result;
    raises ApplyRefused (nothing changed) or ApplyFailed (rolled back)."""
    if content is not None and not content.endswith("\n"):
        content += "\n"

    old_content, attrs_wrong = _file_state(path)
    if old_content is False:
        raise ApplyRefused("%s exists but is not a regular file; refusing to replace it" % path)

    files = read_sysctl_files()
    live = read_live(sw.MANAGED_KEYS)
    container = detect_container()

    shadowing = {}  # type: Dict[str, Any]
    if state == "present":
        new_files = dict(files)
        new_files[path] = content
        shadowing = prec.shadowing_report(new_files, path, desired)
        messages = [e["message"] for e in shadowing.values() if e["status"] == "shadowed"]
        if messages and shadowing_mode == "fail":
            raise ApplyRefused(
                "Nothing changed: another sysctl file would override the drop-in. " + " | ".join(messages)
                + ". Remove or change that setting, or pick a later overcommit priority.",
                dict(shadowing=shadowing, container=container, path=path))
        for message in messages:
            warn(message)
        target = desired
        file_changed = old_content != content or attrs_wrong
    else:
        managed = []  # type: List[str]
        if old_content is not None:
            managed = sorted(set(a.key for a in prec.parse_sysctl_conf(old_content, path)) & set(sw.MANAGED_KEYS))
        remaining = dict((k, v) for k, v in files.items() if k != path)
        winners = prec.resolve(remaining, managed)
        # At boot systemd-sysctl decides, so the host returns to what it would boot with.
        target = sw.settle_target(
            dict((k, (w[prec.RULE_SYSTEMD].assignment.value if w[prec.RULE_SYSTEMD].assignment else None))
                 for k, w in winners.items()), managed)
        file_changed = old_content is not None

    skip = None
    if live_mode == "never":
        skip = "live=never: file only"
    elif container and live_mode == "auto":
        skip = "container (%s): vm.* sysctls are not namespaced, a write would change the host kernel" % container
    else:
        missing = [k for k in target if live.get(k) is None]
        if missing:
            raise ApplyRefused("Nothing changed: cannot read %s from /proc/sys; is this a Linux kernel that has them?"
                               % ", ".join(missing))

    known_live = dict((k, v) for k, v in live.items() if v is not None)
    writes = [] if skip else sw.plan_writes(known_live, target)
    result = dict(
        changed=bool(file_changed or writes), file_changed=bool(file_changed),
        live_changes=[w.as_dict() for w in writes],
        live_applied=False, live_skipped_reason=skip, container=container, shadowing=shadowing,
        target_values=target, path=path, live_values=live, commit_limit_kb=read_commit_limit_kb(),
    )  # type: Dict[str, Any]
    if want_diff:
        new_text = content if state == "present" else None
        result["diff"] = [
            {"before_header": path, "after_header": path,
             "before": old_content or "", "after": new_text or ""},
            _live_diff(live, sw.simulate(known_live, writes), sorted(target)),
        ]
    if check_mode:
        if not skip:
            result["live_skipped_reason"] = "check mode"
        return result

    applied = []  # type: List[sw.Write]
    file_touched = False
    try:
        if not skip:
            _apply_live(writes, expect_commit_limit_kb, applied)
        if file_changed:
            file_touched = True
            if state == "present":
                tmp = write_file(path, content)
                atomic_move(tmp, host_path(path))
                os.chmod(host_path(path), 0o644)
                if os.geteuid() == 0:
                    os.chown(host_path(path), 0, 0)
            else:
                remove_file(path)
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever broke (the kernel, the disk, our own bug), the host must not be left half-changed.
        problems = _rollback(applied, live, old_content, path, file_touched)
        reason = str(exc) if isinstance(exc, ApplyError) else "%s: %s" % (type(exc).__name__, exc)
        msg = "Apply failed, %s: %s" % ("rolled back" if not problems else "ROLLBACK INCOMPLETE", reason)
        if problems:
            msg += "; rollback problems: " + "; ".join(problems)
        result.update(changed=False, live_values=read_live(sw.MANAGED_KEYS), commit_limit_kb=read_commit_limit_kb(),
                      rollback_problems=problems)
        result.pop("diff", None)
        raise ApplyFailed(msg, result)

    result["live_applied"] = skip is None
    result["live_values"] = read_live(sw.MANAGED_KEYS)
    result["commit_limit_kb"] = read_commit_limit_kb()
    return result
