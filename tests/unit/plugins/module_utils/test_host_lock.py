"""The host lock's timeout message names the holder only as far as it can be known (_host.lock).

The holder writes "pid N" after it takes the flock, so a waiter can find the record of an earlier,
finished run (the new holder has not written yet, or a holder died and another took the lock).
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import HostLock, LockTimeout, LockUnusable


@pytest.fixture
def held_by_another(tmp_path):
    """held_by_another(record) -> the path of a lock file whose flock another descriptor holds,
    with ``record`` in it (as a run left it). The flock is released when the test ends."""
    fds = []

    def hold(record):
        path = str(tmp_path / "lock")
        with open(path, "w") as handle:
            handle.write(record)
        fds.append(os.open(path, os.O_RDWR))
        fcntl.flock(fds[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return path

    yield hold
    for fd in fds:
        os.close(fd)


@pytest.fixture
def opened(monkeypatch):
    """The paths os.open was called with."""
    calls = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


def timeout_message(path):
    with pytest.raises(LockTimeout) as timed_out:
        with HostLock(path, timeout_s=0):
            pass
    return str(timed_out.value)


def finished_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_recorded_pid_that_is_no_longer_running_is_not_called_the_holder(held_by_another):
    """Failed before the fix: the message said "(pid N)" for a run that had already finished."""
    gone = finished_pid()
    message = timeout_message(held_by_another("pid %d\n" % gone))
    assert ("(last recorded holder: pid %d, no longer running; the run holding the lock now has not recorded "
            "itself yet)" % gone) in message


def test_a_recorded_pid_that_is_running_is_named_as_the_last_recorded_holder(held_by_another):
    path = held_by_another("pid %d\n" % os.getpid())
    assert timeout_message(path) == (
        "another dbfleet.memory run holds %s (last recorded holder: pid %d, still running) and did not finish "
        "within 0 s; nothing was read or changed. Run again when it is done, or raise lock_timeout."
        % (path, os.getpid()))


def test_a_holder_that_has_not_written_yet_is_said_to_be_unrecorded(held_by_another):
    message = timeout_message(held_by_another(""))
    assert "(the holder has not recorded its pid yet)" in message


def test_a_record_that_is_not_ours_is_shown_as_such(held_by_another):
    message = timeout_message(held_by_another("\x1b[2Jgarbage\n"))
    assert "(holder unknown: the lock file holds '?[2Jgarbage')" in message


def test_whether_a_pid_runs_is_asked_through_the_injected_check(held_by_another):
    path = held_by_another("pid 4242\n")
    asked = []
    with pytest.raises(LockTimeout, match="pid 4242, still running"):
        with HostLock(path, timeout_s=0, pid_running=lambda pid: asked.append(pid) or True):
            pass
    assert asked == [4242]


def test_the_holder_records_its_own_pid(tmp_path):
    path = str(tmp_path / "lock")
    with HostLock(path, timeout_s=0):
        with open(path) as handle:
            assert handle.read() == "pid %d\n" % os.getpid()


# --- what is at the lock path ---------------------------------------------------------------------
# The lock file is truncated and written: anything but our own regular file there is refused by
# name, never opened where an open can act (a device) or be redirected (a link), and never a
# traceback. The modules report it as a failure with nothing read or changed.

LOCK = "/run/dbfleet-memory-overcommit.lock"
VICTIM = "/etc/shadow"
VICTIM_TEXT = "root:*:19000:0:99999:7:::\n"


@pytest.mark.parametrize("plant, kind", [
    pytest.param(lambda tree: tree.link(LOCK, VICTIM), "symlink", id="symlink"),
    pytest.param(lambda tree: tree.link(LOCK, "/run/nowhere"), "symlink", id="dangling-symlink"),
    pytest.param(lambda tree: tree.directory(LOCK), "directory", id="directory"),
    pytest.param(lambda tree: tree.fifo(LOCK), "fifo", id="fifo"),
    pytest.param(lambda tree: tree.char_device(LOCK), "char-device", id="char-device"),
    pytest.param(lambda tree: tree.unix_socket(LOCK), "socket", id="socket"),
])
def test_a_lock_path_that_is_not_a_regular_file_is_refused_by_kind(host_tree, deadline, opened, plant, kind):
    host_tree.file(VICTIM, VICTIM_TEXT)
    plant(host_tree)
    path = host_tree.path(LOCK)
    with deadline(5):
        with pytest.raises(LockUnusable) as refused:
            with HostLock(path, timeout_s=0):
                pytest.fail("the lock was taken")
    assert str(refused.value) == (
        "Nothing changed: the host lock %s is a %s, not a regular file; nothing was opened, read or changed. "
        "Look at what put it there, remove it, and run again." % (path, kind))
    assert path not in opened  # a device's open can act; a FIFO's can wait
    assert os.path.lexists(path)
    with open(host_tree.path(VICTIM)) as handle:
        assert handle.read() == VICTIM_TEXT


def test_a_lock_file_with_a_second_name_is_refused_not_truncated(host_tree):
    """A hard link: truncating the lock would empty the other name's file."""
    victim = host_tree.file(VICTIM, VICTIM_TEXT)
    host_tree.directory("/run")
    os.link(victim, host_tree.path(LOCK))
    with pytest.raises(LockUnusable) as refused:
        with HostLock(host_tree.path(LOCK), timeout_s=0):
            pytest.fail("the lock was taken")
    assert "has 2 names (hard links)" in str(refused.value)
    with open(victim) as handle:
        assert handle.read() == VICTIM_TEXT


def test_a_symlink_planted_after_the_check_is_not_followed(host_tree, monkeypatch):
    """The lock file is absent when looked at, and a link to another file is there when it is
    opened: only O_NOFOLLOW stands between the two (the file is created, so there is nothing to
    compare with), and without it the other file is truncated and written."""
    victim = host_tree.file(VICTIM, VICTIM_TEXT)
    host_tree.directory("/run")
    path = host_tree.path(LOCK)
    real_lstat = os.lstat

    def lstat_then_plant(p, *args, **kwargs):
        try:
            return real_lstat(p, *args, **kwargs)
        finally:
            if str(p) == path:
                os.symlink(victim, path)

    monkeypatch.setattr(os, "lstat", lstat_then_plant)
    with pytest.raises(LockUnusable) as refused:
        with HostLock(path, timeout_s=0):
            pytest.fail("the lock was taken")
    monkeypatch.undo()
    assert str(refused.value).startswith("Nothing changed: the host lock %s became a symlink" % path)
    with open(victim) as handle:
        assert handle.read() == VICTIM_TEXT


def test_an_absent_lock_file_is_created_regular_and_private(host_tree):
    path = host_tree.path(LOCK)
    host_tree.directory("/run")
    with HostLock(path, timeout_s=0):
        pass
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
