# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one file of the host without ever blocking: the one rule every reader of ours follows.

    lstat -> only a regular file is opened -> open(O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)
          -> fstat: still a regular file, and the same one -> read at most cap_bytes

Why each step:

* lstat first, and nothing but a regular file is opened: open(2) of a FIFO waits for a writer,
  open(2) of a device can act (a tape rewinds, a terminal becomes ours), and a symlink can point
  anywhere (/etc/shadow). A planted ``99-x.conf`` FIFO once hung our module for good.
* The open flags cover a swap between lstat and open: O_NONBLOCK keeps a FIFO's open from
  waiting, O_NOFOLLOW refuses a symlink, O_NOCTTY keeps a terminal from becoming ours,
  O_CLOEXEC keeps the descriptor out of any child.
* fstat confirms that the descriptor is the regular file lstat saw (same st_dev and st_ino).
* The cap bounds memory against a huge or endless file. It is applied to what read(2) returns,
  not to st_size: procfs files are regular files of size 0.

The result says what happened (``FileRead.status``); each caller keeps its own meaning of it
(sysctl_files: a status for the boot replay; _host.container: evidence; _overcommit.transaction and
_oom.host: our own files, which must be read in full or not at all).

``resolve_links`` follows a symlink chain in *logical* space for the callers that must read
through links as the tools they model do (sysctl.d links, systemd unit aliases): every hop is
mapped through ``host_path``, so a link inside a test tree stays inside it, and the file at the
end is then read by the rule above.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

STATUS_READ = "read"  # data holds every byte
STATUS_ABSENT = "absent"  # nothing at the path (ENOENT, or a path component is not a directory)
STATUS_NOT_REGULAR = "not-regular"  # something else is there (kind says what); it was not read
STATUS_TOO_LARGE = "too-large"  # a regular file with more than cap_bytes; data holds the first cap_bytes
STATUS_UNREADABLE = "unreadable"  # lstat, open, fstat or read failed, or the file was swapped (reason says)

KIND_REGULAR = "regular"
KIND_DIRECTORY = "directory"
KIND_SYMLINK = "symlink"
KIND_FIFO = "fifo"
KIND_CHAR_DEVICE = "char-device"
KIND_BLOCK_DEVICE = "block-device"
KIND_SOCKET = "socket"
KIND_OTHER = "other"

OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK_BYTES = 65536
_MAX_SYMLINKS = 40  # Linux's own limit
DEV_NULL = "/dev/null"


@dataclass(frozen=True)
class FileRead:
    """What reading one path gave."""

    path: str
    status: str
    data: Optional[bytes] = None  # STATUS_READ: the bytes; STATUS_TOO_LARGE: the first cap_bytes; else None
    kind: Optional[str] = None  # what is there, when known (KIND_*)
    reason: Optional[str] = None  # why it was not read, for messages ("cannot open: Permission denied")
    errno_code: Optional[int] = None  # STATUS_UNREADABLE from an OSError: its errno
    node: Optional[os.stat_result] = None  # what lstat saw (mode, owner, st_rdev), when it saw something

    @property
    def is_read(self) -> bool:
        return self.status == STATUS_READ

    def not_absent(self) -> Optional[str]:
        """None when nothing is at the path, else what stands against "absent" for a read-back.

        An lstat that failed (EACCES on the way) cannot tell: a removal it cannot see is not one.
        """
        if self.status == STATUS_ABSENT:
            return None
        if self.status == STATUS_UNREADABLE and self.node is None:
            return self.reason
        return "still there"

    def not_holding(self, want: bytes) -> Optional[str]:
        """None when the file was read and holds exactly ``want``, else how the read-back differs."""
        if self.is_read and self.data == want:
            return None
        return "other content" if self.is_read else (self.reason or self.status)


def kind_of(mode: int) -> str:
    """The kind of node a st_mode describes."""
    for test, kind in ((stat.S_ISREG, KIND_REGULAR), (stat.S_ISDIR, KIND_DIRECTORY), (stat.S_ISLNK, KIND_SYMLINK),
                       (stat.S_ISFIFO, KIND_FIFO), (stat.S_ISCHR, KIND_CHAR_DEVICE),
                       (stat.S_ISBLK, KIND_BLOCK_DEVICE), (stat.S_ISSOCK, KIND_SOCKET)):
        if test(mode):
            return kind
    return KIND_OTHER


def _failed(path: str, step: str, exc: OSError, node: Optional[os.stat_result] = None) -> FileRead:
    return FileRead(path, STATUS_UNREADABLE, reason="cannot %s: %s" % (step, exc.strerror or exc),
                    errno_code=exc.errno, node=node, kind=KIND_REGULAR if node is not None else None)


def read_regular_file(path: str, cap_bytes: int) -> FileRead:
    """Read ``path`` (a real path on this machine) by the rule in the module docstring."""
    try:
        before = os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return FileRead(path, STATUS_ABSENT)
        return _failed(path, "lstat", exc)  # e.g. EACCES on a directory: it may well exist
    kind = kind_of(before.st_mode)
    if kind != KIND_REGULAR:
        return FileRead(path, STATUS_NOT_REGULAR, kind=kind, node=before,
                        reason="not a regular file (%s); not opened" % kind)
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink put there after the lstat
            return FileRead(path, STATUS_NOT_REGULAR, kind=KIND_SYMLINK, node=before,
                            reason="became a symlink after lstat; not followed")
        return _failed(path, "open", exc, before)
    try:
        try:
            after = os.fstat(fd)
        except OSError as exc:
            return _failed(path, "fstat", exc, before)
        now = kind_of(after.st_mode)
        if now != KIND_REGULAR:
            return FileRead(path, STATUS_NOT_REGULAR, kind=now, node=before,
                            reason="became a %s after lstat; not read" % now)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            return FileRead(path, STATUS_UNREADABLE, kind=KIND_REGULAR, node=before,
                            reason="replaced by another file between lstat and open; not read")
        chunks: List[bytes] = []
        left = cap_bytes + 1  # one byte more than the cap tells "larger" from "exactly the cap"
        while left > 0:
            try:
                chunk = os.read(fd, min(left, _CHUNK_BYTES))
            except OSError as exc:
                return _failed(path, "read", exc, before)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap_bytes:
        return FileRead(path, STATUS_TOO_LARGE, data=data[:cap_bytes], kind=KIND_REGULAR, node=before,
                        reason="larger than %d bytes" % cap_bytes)
    return FileRead(path, STATUS_READ, data=data, kind=KIND_REGULAR, node=before)


def resolve_links(logical: str, host_path: Callable[[str], str]) -> Tuple[str, Optional[str]]:
    """Follow the symlink chain of the last component of ``logical``, each hop in logical space.

    Returns (final logical path, problem): problem is None, "dangling" (the chain ends where
    nothing is), "loop" (more than 40 hops) or "unreadable: <why>". A chain that reaches
    /dev/null stops there, unread: it is a mask to systemd and procps alike.
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
        try:
            target = os.readlink(real)
        except OSError as exc:
            return current, "unreadable: %s" % exc
        current = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        if current.startswith("//"):
            current = current[1:]
    return current, "loop"


def resolve_all_links(logical: str, host_path: Callable[[str], str]) -> Tuple[str, Optional[str]]:
    """Follow the symlinks of *every* component of ``logical``, each hop in logical space.

    ``resolve_links`` follows only the last component, which is what a reader needs; a writer
    needs more: /etc/sysctl.d/x.conf under a linked /etc/sysctl.d, or a link to /etc/alt/x.conf
    with /etc/alt linked into /usr, is really a file under /usr (and a takeover must not edit it).

    Returns (final logical path, problem): problem is None (the path exists, or it is /dev/null),
    "absent" (nothing there, no link followed), "dangling" (a link led to nothing), "loop", or
    "unreadable: <why>".
    """
    parts = [p for p in logical.split("/") if p]
    current = "/"
    hops = 0
    index = 0
    while index < len(parts):
        if posixpath.join(current, *parts[index:]) == DEV_NULL:
            return DEV_NULL, None  # a mask to tuned's open() (it reads empty); the tree has no /dev
        comp = parts[index]
        index += 1
        if comp == ".":
            continue
        if comp == "..":
            current = posixpath.dirname(current)
            continue
        candidate = posixpath.join(current, comp)
        try:
            node = os.lstat(host_path(candidate))
        except OSError as exc:
            final = posixpath.normpath(posixpath.join(candidate, *parts[index:]))
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return final, "dangling" if hops else "absent"
            return final, "unreadable: %s" % (exc.strerror or exc)
        if not stat.S_ISLNK(node.st_mode):
            current = candidate
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            return candidate, "loop"
        try:
            target = os.readlink(host_path(candidate))
        except OSError as exc:
            return candidate, "unreadable: %s" % (exc.strerror or exc)
        parts = [p for p in target.split("/") if p] + parts[index:]
        index = 0
        if target.startswith("/"):
            current = "/"
    return current, None
