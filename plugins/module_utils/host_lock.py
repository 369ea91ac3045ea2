# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time per host: an exclusive flock held from the first read to the last verify.

Why: two runs on one host (two playbooks, a timer and a person) interleave their live writes
and file writes. One interleaving, done by hand, ended in mode 2 with ratio 50 and no drop-in:
locked out. flock(2) is released by the kernel when the holder dies, so a killed run never
leaves the lock behind. The file lives under /run (tmpfs), so nothing survives a reboot.
No Ansible import.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from typing import Callable, Optional

LOCK_PATH = "/run/dbfleet-memory-overcommit.lock"
DEFAULT_TIMEOUT_S = 60
_POLL_S = 0.1


class LockTimeout(Exception):
    """The lock could not be had in time; nothing was read or changed."""


class HostLock(object):
    """``with HostLock(path, timeout_s):`` waits at most ``timeout_s`` for the exclusive lock."""

    def __init__(self, path: str = LOCK_PATH, timeout_s: float = DEFAULT_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._clock = clock
        self._sleep = sleep
        self._fd: Optional[int] = None
        self.waited_s = 0.0

    def __enter__(self) -> "HostLock":
        # O_NOFOLLOW: /run is root's, but a planted symlink must not make us truncate another file.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        start = self._clock()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            waited = self._clock() - start
            if waited >= self.timeout_s:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockTimeout(
                    "another dbfleet.memory run holds %s (%s) and did not finish within %g s; nothing was read or "
                    "changed. Run again when it is done, or raise lock_timeout." % (self.path, holder, self.timeout_s))
            self._sleep(_POLL_S)
        self.waited_s = self._clock() - start
        os.ftruncate(fd, 0)
        os.write(fd, ("pid %d\n" % os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            # Closing the descriptor releases the flock; the file stays for the next run.
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
