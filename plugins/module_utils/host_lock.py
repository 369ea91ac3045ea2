# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time per host: an exclusive flock held from the first read to the last verify.

Why: two runs on one host (two playbooks, a timer and a person) interleave their live writes
and file writes. One interleaving, done by hand, ended in mode 2 with ratio 50 and no drop-in:
locked out. flock(2) is released by the kernel when the holder dies, so a killed run never
leaves the lock behind. The file lives under /run (tmpfs), so nothing survives a reboot.
The holder records "pid N" in it after taking the lock, so a waiter may read an earlier run's
record: a timeout names that pid as the last recorded holder and says whether it still runs.
No Ansible import.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
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
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 pid_running: Optional[Callable[[int], bool]] = None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._clock = clock
        self._sleep = sleep
        self._pid_running = pid_running or pid_is_running
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
                holder = describe_holder(_read_record(fd), self._pid_running)
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


def _read_record(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 64).decode("ascii", "replace")
    except OSError:
        return ""


def pid_is_running(pid: int) -> bool:
    """Whether a process ``pid`` exists now (in our PID namespace, the one /run belongs to)."""
    return pid > 0 and os.path.isdir("/proc/%d" % pid)


_RECORD = re.compile(r"pid ([0-9]{1,10})\Z")
_UNSHOWN = re.compile(r"[^\x20-\x7e]")


def describe_holder(record: str, pid_running: Callable[[int], bool]) -> str:
    """What the lock file says about the holder, and no more than it can know.

    The holder records "pid N" only after taking the flock, so the record may be an earlier,
    finished run's: the pid is named as the last recorded holder, with whether it still runs.
    A running pid is likely the holder, not proof of it (a pid can be reused).
    """
    text = record.strip()
    if not text:
        return "the holder has not recorded its pid yet"
    found = _RECORD.match(text)
    if found is None:
        return "holder unknown: the lock file holds %r" % _UNSHOWN.sub("?", text)[:40]
    pid = int(found.group(1))
    if pid_running(pid):
        return "last recorded holder: pid %d, still running" % pid
    return ("last recorded holder: pid %d, no longer running; the run holding the lock now has not recorded "
            "itself yet" % pid)
