# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which sysctl file wins for a key after a reboot. SUPERSEDED by sysctl_replay.

Kept only until dropin_apply switches to sysctl_files + sysctl_replay (issue 8): this
per-key view misses the ratio/kbytes coupling and several tool rules; delete it and its
test then.

The one place that knows the sysctl.d precedence rules. Two programs apply these
files and they disagree about ``/etc/sysctl.conf``:

* systemd-sysctl (at boot): ``*.conf`` from the directories in ``SYSCTL_DIRS``;
  a file replaces a same-named file in a lower directory; a symlink to /dev/null
  masks; surviving files are applied sorted by basename, so for a key set twice
  the lexically last basename wins. ``/etc/sysctl.conf`` is read only through a
  ``99-sysctl.conf`` symlink (it is then just another file in the set).
  An explicit key always beats a glob pattern, whatever the file order.
* procps ``sysctl --system``: same directories, same-name replacement and
  ordering, then ``/etc/sysctl.conf`` applied last, always.

Pure Python, no Ansible import: the module, the tests and the lab share it.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

# Highest priority first: a basename in an earlier directory replaces the same
# basename in a later one. /lib/sysctl.d exists only on split-/usr systems; on
# merged-/usr ones it duplicates /usr/lib/sysctl.d, which the same-name rule absorbs.
SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"

RULE_SYSTEMD = "systemd"
RULE_PROCPS = "procps"
RULES = (RULE_SYSTEMD, RULE_PROCPS)

# A file's text, or MASKED for a symlink to /dev/null.
MASKED = None


@dataclass(frozen=True)
class Assignment:
    """One ``key = value`` line as the kernel would receive it."""

    key: str  # normalised dotted form, or a glob pattern in dotted form
    value: str
    path: str
    lineno: int
    ignore_failure: bool = False  # the line had a leading "-"

    @property
    def is_glob(self) -> bool:
        return any(c in self.key for c in "*?[")


@dataclass(frozen=True)
class Winner:
    """The assignment that a rule leaves in effect for one key (None: no file sets it)."""

    key: str
    rule: str
    assignment: Optional[Assignment]

    def as_dict(self, ours: Optional[str]) -> Dict[str, object]:
        a = self.assignment
        return {
            "path": a.path if a else None,
            "value": a.value if a else None,
            "lineno": a.lineno if a else None,
            "ours": bool(a) and a.path == ours,
        }


def normalize_key(key: str) -> str:
    """Return the dotted form of a sysctl key.

    sysctl.d(5): if the first separator is a slash, slashes separate the levels
    and dots are literal (``net/ipv4/conf/eth0.1/rp_filter``); swapping the two
    gives the canonical dotted form procps and systemd both compare on.
    """
    key = key.strip()
    for ch in key:
        if ch == ".":
            return key
        if ch == "/":
            return key.translate(str.maketrans("./", "/."))
    return key


def parse_sysctl_conf(text: str, path: str = "<string>") -> List[Assignment]:
    """Parse sysctl.conf syntax into assignments, in file order.

    Comments start with ``#`` or ``;`` (first non-blank character only: a value may
    contain them). A leading ``-`` means "ignore failure", which still sets the
    value. Lines without ``=`` are ignored by both programs (they only log them).
    """
    out: List[Assignment] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        ignore = line.startswith("-")
        if ignore:
            line = line[1:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        out.append(Assignment(normalize_key(key), value.strip(), path, lineno, ignore))
    return out


def _dir_of(path: str) -> str:
    return posixpath.dirname(path)


def effective_files(files: Mapping[str, Optional[str]]) -> List[Tuple[str, Optional[str]]]:
    """Files systemd-sysctl and ``sysctl --system`` read from the .d directories.

    Returns (path, text) sorted by basename; masked files are dropped, files
    replaced by a same-named file in a higher directory are dropped.
    """
    chosen: Dict[str, Tuple[int, str, Optional[str]]] = {}
    for path, text in files.items():
        directory, name = _dir_of(path), posixpath.basename(path)
        if directory not in SYSCTL_DIRS or not name.endswith(".conf"):
            continue
        rank = SYSCTL_DIRS.index(directory)
        if name not in chosen or rank < chosen[name][0]:
            chosen[name] = (rank, path, text)
    return [
        (path, text)
        for name, (_rank, path, text) in sorted(chosen.items())
        if text is not MASKED
    ]


def _application_order(files: Mapping[str, Optional[str]], rule: str) -> List[Assignment]:
    order: List[Assignment] = []
    for path, text in effective_files(files):
        order.extend(parse_sysctl_conf(text or "", path))
    if rule == RULE_PROCPS:
        conf = files.get(SYSCTL_CONF)
        if conf is not MASKED:
            order.extend(parse_sysctl_conf(conf, SYSCTL_CONF))
    return order


def _winner(order: Iterable[Assignment], key: str, rule: str) -> Optional[Assignment]:
    last_explicit: Optional[Assignment] = None
    last_any: Optional[Assignment] = None
    for a in order:
        if a.key == key:
            last_explicit = last_any = a
        elif a.is_glob and fnmatch.fnmatchcase(key, a.key):
            last_any = a
    if rule == RULE_SYSTEMD and last_explicit is not None:
        # systemd-sysctl skips a glob match when an explicit entry for the key
        # exists anywhere ("explicit setting exists"); procps just applies in order.
        return last_explicit
    return last_any


def resolve(files: Mapping[str, Optional[str]], keys: Iterable[str]) -> Dict[str, Dict[str, Winner]]:
    """Per key, per rule, the assignment that is in effect after applying all files.

    ``files`` maps absolute paths to their text (symlinks already followed) or to
    MASKED; it may contain files outside the sysctl directories, which are ignored,
    and ``/etc/sysctl.conf``, which only procps reads directly.
    """
    orders = {rule: _application_order(files, rule) for rule in RULES}
    result: Dict[str, Dict[str, Winner]] = {}
    for key in keys:
        nkey = normalize_key(key)
        result[nkey] = {rule: Winner(nkey, rule, _winner(orders[rule], nkey, rule)) for rule in RULES}
    return result


def _same_value(a: str, b: str) -> bool:
    # The kernel parses integers; "  87" and "87" are the same setting.
    return " ".join(a.split()) == " ".join(b.split())


def shadowing_report(
    files: Mapping[str, Optional[str]], ours: str, wanted: Mapping[str, str]
) -> Dict[str, Dict[str, object]]:
    """For each wanted key, who wins under each rule and whether that hurts us.

    status per key: ``ours`` (our drop-in wins under both rules), ``agrees``
    (another file wins somewhere but sets the same value), ``shadowed`` (another
    file wins under at least one rule with a different value: after a reboot or
    ``sysctl --system`` the host would not run what we planned).
    """
    winners = resolve(files, wanted)
    report: Dict[str, Dict[str, object]] = {}
    for key, value in wanted.items():
        nkey = normalize_key(key)
        entry: Dict[str, object] = {}
        status = "ours"
        shadowers = []
        for rule in RULES:
            w = winners[nkey][rule]
            entry[rule] = w.as_dict(ours)
            a = w.assignment
            if a is not None and a.path == ours:
                continue
            if a is not None and _same_value(a.value, str(value)):
                status = "agrees" if status == "ours" else status
                continue
            status = "shadowed"
            shadowers.append((rule, a))
        entry["status"] = status
        entry["message"] = _describe(nkey, str(value), ours, shadowers)
        report[nkey] = entry
    return report


def _describe(key: str, value: str, ours: str, shadowers: List[Tuple[str, Optional[Assignment]]]) -> Optional[str]:
    if not shadowers:
        return None
    parts = []
    for rule, a in shadowers:
        who = "systemd-sysctl (boot)" if rule == RULE_SYSTEMD else "sysctl --system"
        if a is None:
            parts.append("%s would not read %s at all" % (who, ours))
        else:
            parts.append("%s applies %s:%d last, setting %s = %s" % (who, a.path, a.lineno, key, a.value))
    return "%s = %s in %s is shadowed: %s" % (key, value, ours, "; ".join(parts))
