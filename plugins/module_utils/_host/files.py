# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files a run writes and removes on the host, for both transactions (overcommit and oom).

One place for each of these rules:

* every host path goes through ``host_path`` (unit tests point ``_ROOT`` at a fake tree; it is
  deliberately not an option, so no play can aim a module elsewhere);
* a file is written next to its target and renamed over it, fsynced with its directory, so a
  reader (or a boot) sees the old or the new file, never half of one;
* a file of ours is read whole, or it is neither "there" nor "absent" (``read_own``);
* a change (``FileChange``) is read back after it is made, and undone by the same two moves.

No Ansible import.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

# Prefix for every host path the modules touch. Unit tests point it at a fake tree.
_ROOT = ""

TMP_PREFIX = ".dbfleet-"
TMP_SUFFIX = ".tmp"
FILE_MODE = 0o644
# A file of ours, or one we may edit, is read whole or not at all: a rollback puts back only what
# it read. Far beyond any sysctl file, unit drop-in or tuned profile; keeps a hostile file from
# exhausting memory. The boot replay caps what it reads at the same size.
MAX_FILE_BYTES = 16 * 1024 * 1024


def host_path(path: str) -> str:
    """Where a host path really is: tests point _ROOT at a fake tree."""
    return _ROOT + path


class Refused(Exception):
    """Refused before anything changed; ``result`` says what was found."""

    def __init__(self, msg: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


class Failed(Exception):
    """Failed after a change began; rolled back, and ``result['rollback']`` says what is left."""

    def __init__(self, msg: str, result: Dict[str, Any]) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


class StepError(Exception):
    """A step failed after something may have changed: triggers the rollback."""


@dataclass(frozen=True)
class FileChange:
    """One file operation of a transaction: ``after`` None removes the file."""

    path: str
    before: Optional[bytes]
    after: Optional[bytes]
    why: str
    ours: bool = True  # a file of ours (0644 root:root), or another file we edit (keeps its mode and owner)
    prune_dir: bool = False  # removing it removes its directory too when that is left empty (ours alone)

    @property
    def action(self) -> str:
        return "remove" if self.after is None else ("create" if self.before is None else "update")

    def as_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "action": self.action, "why": self.why}


def read_own(path: str) -> rf.FileRead:
    """One of our files (or one we just wrote or removed), read by the one rule.

    Only ``STATUS_READ`` is content and only ``STATUS_ABSENT`` is "not there"; anything else (not
    a regular file, too large, unreadable) is neither, and is refused or reported.
    """
    return rf.read_regular_file(host_path(path), MAX_FILE_BYTES)


def own_file_refusal(path: str, got: rf.FileRead) -> str:
    """Why a file of ours that is there but not read whole stops the run."""
    if got.status == rf.STATUS_NOT_REGULAR:
        return "Nothing changed: %s exists but is not a regular file (%s); look at it and remove it by hand" % (
            path, got.kind)
    return ("Nothing changed: %s exists but cannot be read whole (%s): a run could neither check it nor put it "
            "back on a rollback; look at it and remove it by hand" % (path, got.reason))


def fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: str, data: bytes, keep_attrs: bool = False) -> None:
    """Write next to the target and rename over it, so a reader (or a boot) sees old or new, never half.

    Our own rename rather than AnsibleModule.atomic_move: that one ends the module with fail_json on
    some errors (an SELinux context it cannot set), which would skip our rollback and leave the
    temporary file behind. The temporary file never outlives this call. Our files are 0644
    root:root; another file we edit (takeover) keeps its own mode and owner (``keep_attrs``).
    """
    real = host_path(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    mode, uid, gid = FILE_MODE, 0, 0
    if keep_attrs and os.path.exists(real):
        st = os.stat(real)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.rename(tmp, real)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def remove_file(path: str) -> None:
    os.unlink(host_path(path))
    fsync_dir(os.path.dirname(host_path(path)))


def _put(path: str, data: Optional[bytes], change: FileChange) -> None:
    """The file as ``data`` says: written, or removed (with its directory when pruned and empty)."""
    if data is None:
        if os.path.lexists(host_path(path)):
            remove_file(path)
        if change.prune_dir:
            try:
                os.rmdir(os.path.dirname(host_path(path)))  # only when empty: the directory was ours alone
            except OSError:
                pass
    else:
        write_file_atomic(path, data, keep_attrs=not change.ours)


def differs(change: FileChange, want: Optional[bytes]) -> Optional[str]:
    """Why the file does not read back as ``want`` (None: removed), or None when it does."""
    got = read_own(change.path)
    return got.not_absent() if want is None else got.not_holding(want)


def apply_file(change: FileChange, done: List[FileChange]) -> None:
    """Make one change and read it back; StepError when it does not read back as made."""
    done.append(change)  # before the change: a write can take effect and still raise
    _put(change.path, change.after, change)
    wrong = differs(change, change.after)
    if wrong:
        raise StepError("%s does not read back as %s (%s)" % (
            change.path, "removed" if change.after is None else "written", wrong))


def restore_file(change: FileChange) -> Optional[str]:
    """Undo one change; the problem, if putting it back failed."""
    try:
        _put(change.path, change.before, change)
    except OSError as exc:
        return "restoring %s: %s" % (change.path, exc)
    return None


def left_after_restore(changes: Sequence[FileChange]) -> List[str]:
    """What still differs from before the run, read back from the host."""
    left: List[str] = []
    for change in changes:
        wrong = differs(change, change.before)
        if wrong and change.before is None:
            left.append("%s did not exist before the run (now: %s)" % (change.path, wrong))
        elif wrong:
            left.append("%s differs from before the run (%s)" % (change.path, wrong))
    return left


def tmp_files(directories: Sequence[str]) -> List[str]:
    """Our temporary files in ``directories``: left by a run that was killed."""
    found: List[str] = []
    for directory in sorted(set(directories)):
        try:
            names = sorted(os.listdir(host_path(directory)))
        except OSError:
            continue
        found.extend("%s/%s" % (directory, n) for n in names if n.startswith(TMP_PREFIX) and n.endswith(TMP_SUFFIX))
    return found
