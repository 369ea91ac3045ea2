"""The host lock's timeout message names the holder only as far as it can be known (host_lock).

The holder writes "pid N" after it takes the flock, so a waiter can find the record of an earlier,
finished run (the new holder has not written yet, or a holder died and another took the lock).
"""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils.host_lock import HostLock, LockTimeout


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
