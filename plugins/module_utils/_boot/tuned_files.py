# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read tuned's files on a host, safely, as bytes: the host I/O half of _boot.tuned.

What is read (_boot.tuned decides what tuned makes of it):

* whether tuned is installed and its version: ``tuned/version.py`` in a Python 3 package
  directory (Debian's /usr/lib/python3/dist-packages, site-packages elsewhere) and the unit file
  tuned.service in /etc, /usr/lib or /lib ``/systemd/system``;
* whether tuned.service starts at boot: a symlink ``/etc/systemd/system/*.wants/tuned.service``
  (what ``systemctl enable`` makes; also the vendor's /usr/lib and /lib ``*.wants``), or a mask
  (/etc/systemd/system/tuned.service linked to /dev/null, or empty). /run does not survive a
  reboot, so a runtime mask or enablement is not the next boot's; the unit's ExecStart= and its
  drop-ins (``tuned.service.d/*.conf``), which can name a profile or run other commands;
* /etc/tuned/tuned-main.conf, active_profile, profile_mode and post_loaded_profile;
* ``DIR/NAME/tuned.conf`` for every entry NAME of every profile directory any modelled tuned
  version may use (_boot.tuned.profile_dirs_to_read, which adds tuned-main.conf's
  ``profile_dirs``).

Told from files alone, no subprocess. Never blocks and never leaves the logical tree: every
symlink of a path (each component, not only the last) is followed in logical space through
``host_path`` (as regular_file.resolve_links does for the last one), and the file at the end is
read by regular_file's one rule (lstat, only a regular file is opened, O_NONBLOCK, at most
``MAX_FILE_BYTES``). A path that exists but is no regular file is reported in ``not_files``
with its kind (tuned's isfile() says no, and its open() may block on a FIFO); one that could not
be read in ``unreadable`` with the reason. A chain ending at /dev/null reads empty, as for tuned.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from typing import Callable, Dict, List, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm

# Far beyond any tuned file; keeps a hostile file from exhausting memory.
MAX_FILE_BYTES = 1024 * 1024
# A profile directory with more entries than this is reported, not read to the end.
MAX_PROFILES_PER_DIR = 4096
_MAX_SYMLINKS = 40

UNIT_NAME = "tuned.service"
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
_PYTHON_LIB_DIRS = ("/usr/lib", "/usr/local/lib", "/usr/lib64")
_PACKAGE_DIRS = ("dist-packages", "site-packages")
_VERSION_RE = re.compile(rb"^TUNED_VERSION_(MAJOR|MINOR|PATCH)\s*=\s*(\d+)\s*$", re.M)

HostPath = Callable[[str], str]


class _Reading:
    """What one host reading collects."""

    def __init__(self, host_path: HostPath) -> None:
        self.host_path = host_path
        self.not_files: Dict[str, str] = {}
        self.unreadable: Dict[str, str] = {}

    def read(self, logical: str) -> Optional[bytes]:
        """The bytes of ``logical`` as tuned's open() gives them, or None (absent or reported)."""
        final, problem = rf.resolve_all_links(logical, self.host_path)
        if final == rf.DEV_NULL:
            return b""
        if problem == "absent":
            return None
        if problem == "dangling":
            self.not_files[logical] = tm.NOT_FILE_DANGLING
            return None
        if problem is not None:
            self.unreadable[logical] = "cannot follow its links: %s" % problem
            return None
        got = rf.read_regular_file(self.host_path(final), MAX_FILE_BYTES)
        if got.status == rf.STATUS_READ:
            return got.data
        if got.status == rf.STATUS_ABSENT:
            return None
        if got.status == rf.STATUS_NOT_REGULAR:
            if got.kind == rf.KIND_CHAR_DEVICE and got.node is not None and got.node.st_rdev == os.makedev(1, 3):
                return b""  # the /dev/null device itself
            self.not_files[logical] = got.kind or rf.KIND_OTHER
            return None
        self.unreadable[logical] = got.reason or got.status
        return None

    def exists(self, logical: str) -> bool:
        """Something (even a dangling link) is at ``logical``; its parent's links are followed."""
        parent, problem = rf.resolve_all_links(posixpath.dirname(logical), self.host_path)
        if problem is not None:
            return False
        try:
            os.lstat(self.host_path(posixpath.join(parent, posixpath.basename(logical))))
        except OSError:
            return False
        return True

    def list_dir(self, logical: str) -> Optional[List[str]]:
        """Entry names of a directory (links followed in logical space); None when absent."""
        final, problem = rf.resolve_all_links(logical, self.host_path)
        if problem in ("absent", "dangling"):
            return None
        if problem is not None:
            self.unreadable[logical] = "cannot follow its links: %s" % problem
            return None
        try:
            names = os.listdir(self.host_path(final))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            self.unreadable[logical] = "cannot list: %s" % (exc.strerror or exc)
            return None
        if len(names) > MAX_PROFILES_PER_DIR:
            self.unreadable[logical] = "more than %d entries; not read" % MAX_PROFILES_PER_DIR
            return None
        return sorted(names)


def _version(reading: _Reading) -> Tuple[Optional[str], Optional[str]]:
    """tuned's version from its tuned/version.py, and the file; None when none or several disagree."""
    found: Dict[str, str] = {}
    for lib in _PYTHON_LIB_DIRS:
        for entry in reading.list_dir(lib) or ():
            if not entry.startswith("python3"):
                continue
            for packages in _PACKAGE_DIRS:
                path = "%s/%s/%s/tuned/version.py" % (lib, entry, packages)
                data = reading.read(path)
                if data is None:
                    continue
                parts = dict(_VERSION_RE.findall(data))
                if set(parts) == {b"MAJOR", b"MINOR", b"PATCH"}:
                    found[path] = "%s.%s.%s" % tuple(parts[k].decode() for k in (b"MAJOR", b"MINOR", b"PATCH"))
    versions = sorted(set(found.values()))
    if len(versions) == 1:
        return versions[0], sorted(found)[0]
    return None, ", ".join(sorted(found)) or None


_EXEC_START = re.compile(rb"^\s*ExecStart\s*=\s*(.*?)\s*$", re.M)


def _unit(reading: _Reading) -> Tuple[str, Tuple[str, ...], Optional[bytes]]:
    """(unit state, evidence, the unit file's bytes when one exists)."""
    evidence: List[str] = []
    unit_file: Optional[str] = None
    unit_data: Optional[bytes] = None
    for directory in UNIT_DIRS:
        path = directory + "/" + UNIT_NAME
        final, problem = rf.resolve_all_links(path, reading.host_path)
        if final == rf.DEV_NULL:
            return tm.UNIT_MASKED, (path + " -> /dev/null",), None
        if problem is not None:
            continue
        data = reading.read(path)
        if data is not None:
            if directory == UNIT_DIRS[0] and not data.strip():
                return tm.UNIT_MASKED, (path + " is empty",), None
            if unit_file is None:
                unit_file, unit_data = path, data
    seen = set()
    for directory in UNIT_DIRS:
        real, _problem = rf.resolve_all_links(directory, reading.host_path)
        if real in seen:
            continue  # /lib is /usr/lib on a merged-/usr host
        seen.add(real)
        for entry in reading.list_dir(directory) or ():
            if entry.endswith(".wants") and reading.exists("%s/%s/%s" % (directory, entry, UNIT_NAME)):
                evidence.append("%s/%s/%s" % (directory, entry, UNIT_NAME))
    if unit_file is None:
        return tm.UNIT_NOT_INSTALLED, tuple(evidence), None
    if evidence:
        return tm.UNIT_ENABLED, tuple(evidence), unit_data
    return tm.UNIT_DISABLED, (unit_file,), unit_data


def _unit_dropins(reading: _Reading) -> Tuple[str, ...]:
    """tuned.service.d/*.conf that survive a reboot (/etc and the vendor's directories)."""
    found: List[str] = []
    seen = set()
    for directory in UNIT_DIRS:
        dropin_dir = "%s/%s.d" % (directory, UNIT_NAME)
        real, _problem = rf.resolve_all_links(dropin_dir, reading.host_path)
        if real in seen:
            continue
        seen.add(real)
        found += ["%s/%s" % (dropin_dir, n) for n in reading.list_dir(dropin_dir) or () if n.endswith(".conf")]
    return tuple(found)


def read_tuned_host(host_path: HostPath) -> tm.TunedHost:
    """tuned's files on the host whose logical paths ``host_path`` maps (identity on the host itself)."""
    reading = _Reading(host_path)
    version, version_file = _version(reading)
    unit_state, unit_evidence, unit_data = _unit(reading)
    exec_start = tuple(m.decode("utf-8", "backslashreplace") for m in _EXEC_START.findall(unit_data or b""))
    state = {path: reading.read(path) for path in tm.STATE_FILES}
    profiles: Dict[str, bytes] = {}
    listed: List[str] = []
    for directory in tm.profile_dirs_to_read(state[tm.MAIN_CONF]):
        entries = reading.list_dir(directory)
        if directory in reading.unreadable:
            continue
        listed.append(directory)
        for entry in entries or ():
            path = posixpath.normpath("%s/%s/%s" % (directory, entry, tm.PROFILE_FILE))
            data = reading.read(path)
            if data is not None:
                profiles[path] = data
    return tm.TunedHost(
        installed=version is not None or version_file is not None or unit_data is not None,
        version=version, version_evidence=version_file, unit_state=unit_state, unit_evidence=unit_evidence,
        unit_exec_start=exec_start, unit_dropins=_unit_dropins(reading),
        main_conf=state[tm.MAIN_CONF], active_profile=state[tm.ACTIVE_PROFILE], profile_mode=state[tm.PROFILE_MODE],
        post_loaded_profile=state[tm.POST_LOADED_PROFILE], profile_files=profiles, profile_dirs_listed=tuple(listed),
        not_files=dict(reading.not_files), unreadable=dict(reading.unreadable),
    )
