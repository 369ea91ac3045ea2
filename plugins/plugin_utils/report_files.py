# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the audit's report files on the controller (no Ansible imports).

Used by the ``dbfleet.memory.audit_report`` action, which runs inside the controller's own
process: writing four small files there costs milliseconds, where four ``copy`` tasks
delegated to localhost each started a module (about 2.5 s per audit, whatever the fleet's size).

Each file is replaced atomically (a temporary file in the same directory, then rename), so a
reader such as a browser or a CI job never sees half a report. A file whose content is already
what would be written is left alone, with its mtime.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import List, Mapping, Optional

FILE_MODE = 0o644
DIR_MODE = 0o755
# The extension of each format's file, in the order the files are written and reported.
EXTENSIONS = {"markdown": "md", "html": "html", "json": "json", "csv": "csv"}


class ReportWriteError(Exception):
    """A report file or its directory could not be written; the message names the path."""


@dataclass(frozen=True)
class WriteOutcome:
    paths: List[str]  # every report file, in EXTENSIONS order
    changed_paths: List[str]  # those whose content was (or in check mode would be) replaced
    created_dir: bool


def report_path(directory: str, fmt: str) -> str:
    return os.path.join(directory, "report.%s" % EXTENSIONS[fmt])


def write_reports(directory: str, contents: Mapping[str, str], check_mode: bool = False) -> WriteOutcome:
    """Write ``contents`` (format -> text) as report.<ext> files under ``directory``."""
    unknown = sorted(set(contents) - set(EXTENSIONS))
    if unknown:
        raise ValueError("unknown report format(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(EXTENSIONS)))
    created_dir = _ensure_directory(directory, check_mode)
    paths = []
    changed = []
    for fmt in (f for f in EXTENSIONS if f in contents):
        path = report_path(directory, fmt)
        paths.append(path)
        data = contents[fmt].encode("utf-8")
        if _current_bytes(path) == data:
            continue
        changed.append(path)
        if not check_mode:
            _replace(path, data)
    return WriteOutcome(paths=paths, changed_paths=changed, created_dir=created_dir)


def _ensure_directory(directory: str, check_mode: bool) -> bool:
    if os.path.isdir(directory):
        return False
    if os.path.lexists(directory):
        raise ReportWriteError("%s exists and is not a directory" % directory)
    if not check_mode:
        try:
            os.makedirs(directory, mode=DIR_MODE)
        except OSError as exc:
            raise ReportWriteError("cannot create %s: %s" % (directory, exc.strerror or exc))
    return True


def _current_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None  # absent (or unreadable): written anew, and a failure to write says why


def _replace(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    fd = -1
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % name, dir=directory)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]  # os.write may write less than asked
        os.fchmod(fd, FILE_MODE)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ReportWriteError("cannot write %s: %s" % (path, exc.strerror or exc))
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
