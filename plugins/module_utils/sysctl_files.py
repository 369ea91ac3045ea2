# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read every file systemd-sysctl or ``sysctl --system`` may read, safely, as bytes.

The host I/O half of the boot replay (sysctl_replay decides what the tools make of
it). Which tool reads which directory is a rule of sysctl_replay.ToolRules; this
module reads the union, so one read serves every rule set:

* ``*.conf`` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d,
  /usr/lib/sysctl.d and /lib/sysctl.d (procps reads all five; systemd 252 as built
  by Debian 12 and 257 read the first four), hidden names included (procps reads
  them, systemd skips them);
* /etc/sysctl.conf (procps reads it last; systemd only through a symlink such as
  Debian 12's /etc/sysctl.d/99-sysctl.conf).

Never blocks and never traces back on odd content:

* data is raw bytes: the tools do not decode, so neither do we;
* only regular files are opened, and with O_NONBLOCK, then checked again with
  fstat: a FIFO named ``99-x.conf`` would hang both tools (and, before this module,
  our own module) in open(2); it is reported as ``skipped`` with the reason;
* a symlink chain that ends at /dev/null is ``masked``; a dangling link, a
  directory, a device or a socket is ``skipped`` with ``kind`` saying which, because
  the tools differ in what they then do (see sysctl_replay).

``host_path`` maps a logical path ("/etc/sysctl.d/x.conf") to where it is on this
machine; unit tests point it into a temporary tree. Symlinks inside the tree are
followed in logical space, so an absolute link target stays inside the tree.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

# Every directory either tool reads, highest priority first.
SYSCTL_D_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
DEV_NULL = "/dev/null"

STATUS_FILE = "file"
STATUS_MASKED = "masked"
STATUS_SKIPPED = "skipped"

# kind: what the node is, so each tool's rule can say what it does with it.
KIND_REGULAR = "regular"
KIND_DEV_NULL = "dev-null"
KIND_FIFO = "fifo"
KIND_CHAR_DEVICE = "char-device"
KIND_BLOCK_DEVICE = "block-device"
KIND_SOCKET = "socket"
KIND_DIRECTORY = "directory"
KIND_DANGLING = "dangling"  # a symlink whose target does not exist
KIND_UNREADABLE = "unreadable"  # open or read failed (EACCES, ELOOP, EIO, ...)
KIND_TOO_LARGE = "too-large"

# Far beyond any sysctl file; keeps a hostile file from exhausting memory.
MAX_FILE_BYTES = 16 * 1024 * 1024
_MAX_SYMLINKS = 40  # Linux's own limit


@dataclass(frozen=True)
class SysctlSource:
    """One ``*.conf`` entry (or /etc/sysctl.conf) as found on the host."""

    path: str  # logical path, e.g. /etc/sysctl.d/99-sysctl.conf
    data: Optional[bytes]  # the bytes a tool would read (None unless status is "file")
    status: str  # "file" | "masked" | "skipped"
    note: Optional[str] = None  # why masked or skipped, for messages
    kind: str = KIND_REGULAR
    target: Optional[str] = None  # where a symlink chain ends (logical path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path)


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return KIND_REGULAR
    if stat.S_ISDIR(mode):
        return KIND_DIRECTORY
    if stat.S_ISFIFO(mode):
        return KIND_FIFO
    if stat.S_ISCHR(mode):
        return KIND_CHAR_DEVICE
    if stat.S_ISBLK(mode):
        return KIND_BLOCK_DEVICE
    if stat.S_ISSOCK(mode):
        return KIND_SOCKET
    return KIND_UNREADABLE


def _resolve(logical: str, host_path: Callable[[str], str]) -> Tuple[str, Optional[str]]:
    """Follow the symlink chain of the last component in logical space.

    Returns (final logical path, error): error is "dangling", "loop" or None.
    """
    current = logical
    for _hop in range(_MAX_SYMLINKS):
        if current == DEV_NULL:
            return current, None
        real = host_path(current)
        try:
            st = os.lstat(real)
        except OSError as exc:
            return current, "dangling" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else "unreadable: %s" % exc
        if not stat.S_ISLNK(st.st_mode):
            return current, None
        target = os.readlink(real)
        current = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        if current.startswith("//"):
            current = current[1:]
    return current, "loop"


def read_source(logical: str, host_path: Callable[[str], str]) -> SysctlSource:
    """Read one file without ever blocking; see the module docstring for the statuses."""
    final, problem = _resolve(logical, host_path)
    target = final if final != logical else None
    if final == DEV_NULL:
        return SysctlSource(logical, None, STATUS_MASKED, "symlink to /dev/null", KIND_DEV_NULL, target)
    if problem == "dangling":
        return SysctlSource(logical, None, STATUS_SKIPPED, "dangling symlink to %s" % final, KIND_DANGLING, target)
    if problem is not None:
        return SysctlSource(logical, None, STATUS_SKIPPED, "cannot resolve: %s" % problem, KIND_UNREADABLE, target)
    real = host_path(final)
    try:
        st = os.stat(real)
    except OSError as exc:
        return SysctlSource(logical, None, STATUS_SKIPPED, "cannot stat: %s" % exc.strerror, KIND_UNREADABLE, target)
    kind = _kind_of(st.st_mode)
    if kind == KIND_CHAR_DEVICE and st.st_rdev == os.makedev(1, 3):
        return SysctlSource(logical, None, STATUS_MASKED, "the /dev/null device", KIND_DEV_NULL, target)
    if kind != KIND_REGULAR:
        return SysctlSource(logical, None, STATUS_SKIPPED, "not a regular file (%s); not opened" % kind, kind, target)
    try:
        # O_NONBLOCK: should the node have become a FIFO since the stat, open must not wait.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return SysctlSource(logical, None, STATUS_SKIPPED, "cannot open: %s" % exc.strerror, KIND_UNREADABLE, target)
    try:
        st = os.fstat(fd)
        kind = _kind_of(st.st_mode)
        if kind != KIND_REGULAR:
            return SysctlSource(logical, None, STATUS_SKIPPED, "not a regular file (%s)" % kind, kind, target)
        if st.st_size > MAX_FILE_BYTES:
            return SysctlSource(logical, None, STATUS_SKIPPED, "larger than %d bytes" % MAX_FILE_BYTES,
                                KIND_TOO_LARGE, target)
        chunks = []  # type: List[bytes]
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_FILE_BYTES:
                return SysctlSource(logical, None, STATUS_SKIPPED, "larger than %d bytes" % MAX_FILE_BYTES,
                                    KIND_TOO_LARGE, target)
            chunks.append(chunk)
    except OSError as exc:
        return SysctlSource(logical, None, STATUS_SKIPPED, "cannot read: %s" % exc.strerror, KIND_UNREADABLE, target)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return SysctlSource(logical, data, STATUS_FILE, "empty file" if not data else None, KIND_REGULAR, target)


def read_sysctl_sources(host_path: Callable[[str], str]) -> Dict[str, SysctlSource]:
    """Every ``*.conf`` in SYSCTL_D_DIRS and /etc/sysctl.conf, keyed by logical path.

    A missing directory or /etc/sysctl.conf is simply absent from the result.
    """
    sources = {}  # type: Dict[str, SysctlSource]
    for directory in SYSCTL_D_DIRS:
        try:
            names = sorted(os.listdir(host_path(directory)))
        except OSError:
            continue
        for name in names:
            if isinstance(name, bytes):  # pragma: no cover - listdir of a str path returns str
                name = name.decode("utf-8", "surrogateescape")
            if not name.endswith(".conf"):
                continue
            logical = directory + "/" + name
            sources[logical] = read_source(logical, host_path)
    if os.path.lexists(host_path(SYSCTL_CONF)):
        sources[SYSCTL_CONF] = read_source(SYSCTL_CONF, host_path)
    return sources
