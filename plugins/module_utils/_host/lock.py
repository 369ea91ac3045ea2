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
Taking the lock truncates the file, so anything at the path but a regular file with one name
(a symlink, a directory, a FIFO, a device, a hard link) is refused by kind with LockUnusable,
never opened where an open can act or be redirected. No Ansible import.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import time
from typing import Callable, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

LOCK_PATH = "/run/dbfleet-memory-overcommit.lock"
DEFAULT_TIMEOUT_S = 60
_POLL_S = 0.1


class LockError(Exception):
    """The lock was not taken; nothing was read or changed. The message says why."""


class LockTimeout(LockError):
    """The lock could not be had in time; nothing was read or changed."""


class LockUnusable(LockError):
    """Something other than our own lock file is at the lock path, or it cannot be opened or locked."""


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
        fd = open_lock_file(self.path)
        start = self._clock()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LockUnusable("Nothing changed: cannot lock the host lock %s: %s"
                                       % (self.path, exc.strerror or exc))
            waited = self._clock() - start
            if waited >= self.timeout_s:
                holder = describe_holder(_read_record(fd), self._pid_running)
                os.close(fd)
                raise LockTimeout(
                    "another dbfleet.memory run holds %s (%s) and did not finish within %g s; nothing was read or "
                    "changed. Run again when it is done, or raise lock_timeout." % (self.path, holder, self.timeout_s))
            self._sleep(_POLL_S)
        self.waited_s = self._clock() - start
        try:
            os.ftruncate(fd, 0)
            os.write(fd, ("pid %d\n" % os.getpid()).encode("ascii"))
        except OSError as exc:
            os.close(fd)
            raise LockUnusable("Nothing changed: cannot record this run in the host lock %s: %s"
                               % (self.path, exc.strerror or exc))
        self._fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            # Closing the descriptor releases the flock; the file stays for the next run.
            os.close(self._fd)
            self._fd = None


# O_NONBLOCK: a FIFO put there between the lstat and the open must not make the open wait;
# O_NOFOLLOW: nor may a symlink make us truncate the file it names (with O_CREAT there is no
# earlier lstat to compare with); O_NOCTTY: nor a terminal become ours.
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _unusable(path: str, what: str, opened: bool = False) -> LockUnusable:
    done = "nothing was read or changed" if opened else "nothing was opened, read or changed"
    return LockUnusable("Nothing changed: the host lock %s %s; %s. Look at what put it there, remove it, and run "
                        "again." % (path, what, done))


def open_lock_file(path: str) -> int:
    """A descriptor of the regular file at ``path`` (created 0600 when absent), by regular_file's
    rule: lstat first and nothing but a regular file opened (a device's open can act, a FIFO's can
    wait), then fstat: still that file, and its only name, since taking the lock truncates it."""
    try:
        before: Optional[os.stat_result] = os.lstat(path)
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise LockUnusable("Nothing changed: cannot look at the host lock %s: %s" % (path, exc.strerror or exc))
    if before is not None and not stat.S_ISREG(before.st_mode):
        raise _unusable(path, "is a %s, not a regular file" % rf.kind_of(before.st_mode))
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _unusable(path, "became a symlink while it was being opened; it was not followed")
        raise LockUnusable("Nothing changed: cannot open the host lock %s: %s" % (path, exc.strerror or exc))
    try:
        after = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise LockUnusable("Nothing changed: cannot look at the host lock %s: %s" % (path, exc.strerror or exc))
    problem = None
    if not stat.S_ISREG(after.st_mode):
        problem = "became a %s while it was being opened" % rf.kind_of(after.st_mode)
    elif before is not None and (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        problem = "was replaced by another file while it was being opened"
    elif after.st_nlink != 1:
        problem = ("has %d names (hard links): taking the lock truncates it, which would change the file under its "
                   "other names" % after.st_nlink)
    if problem is not None:
        os.close(fd)
        raise _unusable(path, problem, opened=True)
    return fd


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
