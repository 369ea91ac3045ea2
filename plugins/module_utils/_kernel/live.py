# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The running kernel: /proc/sys/vm read and written, /proc/meminfo read.

Values are read back as the kernel reads a number (sysctl.read_back), so what is read compares
with what is written. No Ansible import.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MeminfoError, parse_meminfo

# /proc/meminfo is about 1.5 kB; anything much larger is not a meminfo file.
MEMINFO_CAP_BYTES = 1024 * 1024


def _proc_sys(key: str) -> str:
    return files.host_path("/proc/sys/" + key.replace(".", "/"))


def read_live(keys: Iterable[str]) -> Dict[str, Optional[str]]:
    """The values /proc/sys shows, read as the kernel reads a number (sysctl.read_back):
    a negative overcommit_ratio is -5, as proc_dointvec holds it. None for a key that is missing
    (overcommit_kbytes before Linux 3.14, nr_hugepages without hugetlb) or holds something the
    kernel would not print."""
    live: Dict[str, Optional[str]] = {}
    for key in keys:
        try:
            with open(_proc_sys(key), "rb") as handle:
                live[key] = sk.read_back(key, handle.read())
        except OSError:
            live[key] = None
    return live


def write_live(key: str, value: str) -> None:
    # One write(2) of the whole value: procfs parses each write on its own. O_TRUNC is
    # ignored by procfs; it keeps a plain-file fake tree honest.
    fd = os.open(_proc_sys(key), os.O_WRONLY | os.O_TRUNC)
    try:
        data = (value + "\n").encode("ascii")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(0, "short write: %d of %d bytes accepted" % (written, len(data)))
    finally:
        os.close(fd)


def page_size_kb() -> int:
    return os.sysconf("SC_PAGE_SIZE") // 1024


def read_meminfo_fields(path: str = "/proc/meminfo") -> Dict[str, int]:
    """Parsed meminfo; MeminfoError (never a traceback) for unreadable or non-text content."""
    # meminfo_path is the user's: it may be a link to a saved shape, but never a FIFO or a device,
    # which open() would wait on or act upon.
    final, problem = rf.resolve_links(path, files.host_path)
    got = rf.read_regular_file(files.host_path(final), MEMINFO_CAP_BYTES) if problem is None else None
    if got is None or not got.is_read:
        why = "no such file" if problem == "dangling" or (got and got.status == rf.STATUS_ABSENT) else (
            problem or got.reason or got.status)
        raise MeminfoError("cannot read %s: %s" % (path, why))
    data = got.data or b""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MeminfoError("%s is not plain ASCII text (byte %d is 0x%02x); is it a real meminfo file?"
                           % (path, exc.start, data[exc.start]))
    return parse_meminfo(text)


def read_commit_limit_kb() -> Optional[int]:
    try:
        return read_meminfo_fields().get("CommitLimit")
    except MeminfoError:
        return None
