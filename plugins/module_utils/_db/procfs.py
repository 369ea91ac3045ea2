# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database servers running on a host, and what their processes commit now, from /proc.

Every path goes through ``host_path`` (a logical path -> the real one), so the unit tests read
fake /proc trees, and every file is read by regular_file's one rule (never blocks, never
follows a planted link, capped).

Commit charge is what Committed_AS counts, not RSS. The kernel (mm/mmap.c, mm/shmem.c, ipc/shm.c)
charges:

* a private mapping that is or was writable (its VMA carries VM_ACCOUNT: smaps' VmFlags "ac"),
  for its whole size, when it is created or made writable. That includes the heap, stacks,
  glibc's mmap'ed chunks, a library's data and RELRO pages (read-only now, charged once
  writable), and at fork a copy of all of the parent's: a PostgreSQL backend starts charged
  with its postmaster's private size;
* shared anonymous memory (``/dev/zero``, SysV segments, memfd, POSIX shm files in tmpfs) once
  per segment, however many processes map it;
* nothing for huge pages (VmFlags "ht") and nothing for shared mappings of ordinary files.

Mode 2 differs in one way that matters here: MAP_NORESERVE is honoured only in modes 0 and 1.
glibc creates every thread arena (malloc in a second thread: all of MariaDB's per-connection
buffers) with MAP_NORESERVE, so in mode 0 an arena's writable part is *not* charged (VmFlags
"nr" and no "ac") and in mode 2 it is. ``ProcessCharge.mode2_extra_kb`` is that part: what
the same mappings would charge under mode 2. Measured on MariaDB 10.11 (lab, mode 0): ten
connections sorting 12 MiB each raised Committed_AS by 20 MiB and the "nr" part by 108 MiB.

smaps is read rather than maps because only its VmFlags say what the kernel accounts; from
maps alone (``exact=False``) private writable mappings are counted and RELRO pages are missed
(about 1.2 MiB per PostgreSQL process).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

HostPath = Callable[[str], str]

SMAPS_CAP_BYTES = 64 * 1024 * 1024  # a JVM with 10 000 mappings has about 3 MB of smaps
SMALL_CAP_BYTES = 1024 * 1024
# A postmaster.pid is a few lines; a cmdline is capped by the kernel at a page for our purpose.
PIDFILE_CAP_BYTES = 64 * 1024

# smaps/maps header: "start-end perms offset major:minor inode   path"
_VMA = re.compile(r"([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) ([0-9]+)\s*(.*)\Z")
# Shared mappings the kernel charges: shmem objects. Paths as /proc prints them.
_SHMEM_PATHS = ("/dev/zero", "/SYSV", "/memfd:", "/dev/shm/", "/run/shm/")

PG_COMMS = ("postgres", "postmaster")
MYSQL_COMMS = ("mariadbd", "mysqld")
REDIS_COMMS = ("redis-server", "valkey-server")


# --- processes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    uid: int
    comm: str
    argv: Tuple[str, ...]


def read_text(host_path: HostPath, path: str, cap_bytes: int = SMALL_CAP_BYTES) -> Optional[str]:
    """A file's text by regular_file's rule; None when it is absent, not regular, unreadable or larger
    than the cap (a cut file could read as another value)."""
    got = rf.read_regular_file(host_path(path), cap_bytes)
    if not got.is_read or got.data is None:
        return None
    return got.data.decode("utf-8", "replace")


def list_pids(host_path: HostPath) -> List[int]:
    try:
        names = os.listdir(host_path("/proc"))
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isascii() and name.isdigit())


def read_process(host_path: HostPath, pid: int) -> Optional[ProcessInfo]:
    """comm, PPid, real uid and argv of one process; None when it is gone or unreadable."""
    status = read_text(host_path, "/proc/%d/status" % pid)
    if status is None:
        return None
    fields: Dict[str, str] = {}
    for line in status.splitlines():
        key, _sep, value = line.partition(":")
        fields[key] = value.strip()
    try:
        ppid = int(fields["PPid"])
        uid = int(fields["Uid"].split()[0])
    except (KeyError, ValueError, IndexError):
        return None
    got = rf.read_regular_file(host_path("/proc/%d/cmdline" % pid), SMALL_CAP_BYTES)
    raw = got.data if got.is_read and got.data is not None else b""
    argv = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return ProcessInfo(pid=pid, ppid=ppid, uid=uid, comm=fields.get("Name", ""), argv=argv)


def scan_processes(host_path: HostPath) -> Dict[int, ProcessInfo]:
    procs: Dict[int, ProcessInfo] = {}
    for pid in list_pids(host_path):
        info = read_process(host_path, pid)
        if info is not None:
            procs[pid] = info
    return procs


def user_names(host_path: HostPath) -> Dict[int, str]:
    """uid -> name from /etc/passwd (the clients run as the server's own user)."""
    text = read_text(host_path, "/etc/passwd") or ""
    names: Dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            names.setdefault(int(parts[2]), parts[0])
    return names


def descendants(procs: Mapping[int, ProcessInfo], root: int) -> Tuple[int, ...]:
    """root and every process below it (PostgreSQL's backends, a Redis save child)."""
    children: Dict[int, List[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: List[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return tuple(sorted(found))


def option_value(argv: Sequence[str], *names: str) -> Optional[str]:
    """The value of a command-line option given as ``-D dir``, ``-Ddir``, ``--datadir=dir`` or
    ``--datadir dir``; the last one wins, as for the servers' own parsers."""
    value: Optional[str] = None
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                value = argv[index + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg[len(name) + 1:]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                value = arg[len(name):]
    return value


def pg_config_option(argv: Sequence[str], name: str) -> Optional[str]:
    """``-c name=value`` / ``--name=value`` on a postmaster's command line."""
    value: Optional[str] = None
    for index, arg in enumerate(argv):
        text = None
        if arg == "-c" and index + 1 < len(argv):
            text = argv[index + 1]
        elif arg.startswith("-c") and len(arg) > 2:
            text = arg[2:]
        elif arg.startswith("--") and "=" in arg:
            text = arg[2:]
        if text is not None:
            key, sep, val = text.partition("=")
            if sep and key.replace("-", "_") == name:
                value = val
    return value


@dataclass(frozen=True)
class PostmasterPid:
    """The lines of DATADIR/postmaster.pid that say where a running cluster listens."""

    pid: int
    data_dir: str
    port: Optional[int]
    socket_dir: Optional[str]


def read_postmaster_pid(host_path: HostPath, data_dir: str) -> Optional[PostmasterPid]:
    """postmaster.pid: PID, data directory, start time, port, first socket directory, listen
    addresses, shared memory key, status (src/include/utils/pidfile.h, PostgreSQL 10+)."""
    text = read_text(host_path, data_dir.rstrip("/") + "/postmaster.pid", PIDFILE_CAP_BYTES)
    if text is None:
        return None
    lines = text.split("\n")
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    socket_dir = lines[4].strip() if len(lines) > 4 and lines[4].strip() else None
    return PostmasterPid(pid, lines[1].strip() if len(lines) > 1 else data_dir, port, socket_dir)


# --- commit charge --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vma:
    start: int
    end: int
    perms: str
    dev: str
    inode: int
    path: str
    flags: Optional[FrozenSet[str]]  # smaps' VmFlags; None when read from maps

    @property
    def size_kb(self) -> int:
        return (self.end - self.start) // 1024

    @property
    def private(self) -> bool:
        return self.perms[3] == "p"

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"

    @property
    def hugetlb(self) -> bool:
        return self.flags is not None and "ht" in self.flags

    @property
    def shmem(self) -> bool:
        """A shared memory object the kernel charges: major device 0 and a shmem path."""
        anonymous_device = self.dev.split(":")[0] == "00"
        return not self.private and anonymous_device and self.path.startswith(_SHMEM_PATHS)


class MapsError(ValueError):
    """A maps/smaps text that is not one."""


def parse_vmas(text: str) -> List[Vma]:
    """smaps (with VmFlags) or maps text -> the mappings, in order."""
    vmas: List[Vma] = []
    flags: Optional[FrozenSet[str]] = None
    pending: Optional[Tuple[int, int, str, str, int, str]] = None
    saw_flags = False

    def close() -> None:
        if pending is not None:
            vmas.append(Vma(*pending, flags=flags if saw_flags else None))

    for line in text.splitlines():
        match = _VMA.match(line)
        if match:
            close()
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            dev = "%s:%s" % (match.group(4), match.group(5))
            pending = (start, end, match.group(3), dev, int(match.group(6)), match.group(7).strip())
            flags, saw_flags = None, False
        elif line.startswith("VmFlags:"):
            if pending is None:
                raise MapsError("VmFlags before any mapping")
            flags, saw_flags = frozenset(line.split()[1:]), True
        elif pending is None or ":" not in line:
            raise MapsError("not a maps/smaps line: %r" % line[:120])
    close()
    return vmas


SegmentKey = Tuple[str, int, str]  # (device, inode, path) of a shmem object


@dataclass(frozen=True)
class ProcessCharge:
    """What one process commits now, split the way the kernel charges it."""

    pid: int
    private_kb: int  # private mappings charged now (VM_ACCOUNT)
    mode2_extra_kb: int  # writable private mappings made with MAP_NORESERVE: charged only in mode 2
    segments: Tuple[Tuple[SegmentKey, int], ...]  # shmem objects it maps, with their size in kB
    hugetlb_kb: int  # mapped from huge pages: never charged
    exact: bool  # False: read from maps, without the kernel's flags


def charge_of_vmas(pid: int, vmas: Iterable[Vma]) -> ProcessCharge:
    private_kb = extra_kb = huge_kb = 0
    segments: Dict[SegmentKey, int] = {}
    exact = True
    for vma in vmas:
        if vma.hugetlb:
            huge_kb += vma.size_kb
        elif vma.private:
            if vma.flags is None:
                exact = False
                private_kb += vma.size_kb if vma.writable else 0
            elif "ac" in vma.flags:
                private_kb += vma.size_kb
            elif "nr" in vma.flags and vma.writable:
                extra_kb += vma.size_kb
        elif vma.shmem and vma.writable:
            key = (vma.dev, vma.inode, vma.path)
            # A segment may be mapped in parts; its charge is its size, the largest extent seen.
            segments[key] = max(segments.get(key, 0), vma.size_kb)
    return ProcessCharge(pid, private_kb, extra_kb, tuple(sorted(segments.items())), huge_kb, exact)


def read_process_charge(host_path: HostPath, pid: int) -> Optional[ProcessCharge]:
    """smaps, else maps, of one process; None when the process is gone or neither can be read."""
    for name in ("smaps", "maps"):
        text = read_text(host_path, "/proc/%d/%s" % (pid, name), SMAPS_CAP_BYTES)
        if text is None:
            continue
        try:
            return charge_of_vmas(pid, parse_vmas(text))
        except MapsError:
            continue
    return None


@dataclass(frozen=True)
class Charge:
    """What a group of processes (one server, or every database on the host) commits now."""

    private_kb: int
    shared_kb: int  # each shmem object once
    mode2_extra_kb: int
    processes: int
    unreadable: Tuple[int, ...] = ()  # PIDs whose maps could not be read (gone, or no permission)
    exact: bool = True
    segments: Tuple[Tuple[SegmentKey, int], ...] = field(default=(), repr=False)

    @property
    def charged_kb(self) -> int:
        """What Committed_AS holds for these processes now."""
        return self.private_kb + self.shared_kb

    @property
    def mode2_kb(self) -> int:
        """What the same mappings charge under vm.overcommit_memory=2."""
        return self.charged_kb + self.mode2_extra_kb

    def as_dict(self) -> Dict[str, object]:
        return {"charged_kb": self.charged_kb, "mode2_kb": self.mode2_kb, "private_kb": self.private_kb,
                "shared_kb": self.shared_kb, "mode2_extra_kb": self.mode2_extra_kb, "processes": self.processes,
                "unreadable_pids": list(self.unreadable), "exact": self.exact}


def sum_charges(charges: Iterable[ProcessCharge], unreadable: Sequence[int] = ()) -> Charge:
    """Private charges add up; a shmem object mapped by many processes counts once."""
    private_kb = extra_kb = count = 0
    exact = not unreadable
    segments: Dict[SegmentKey, int] = {}
    for charge in charges:
        count += 1
        private_kb += charge.private_kb
        extra_kb += charge.mode2_extra_kb
        exact = exact and charge.exact
        for key, size_kb in charge.segments:
            segments[key] = max(segments.get(key, 0), size_kb)
    return Charge(private_kb, sum(segments.values()), extra_kb, count, tuple(unreadable), exact,
                  tuple(sorted(segments.items())))


def charge_of_pids(host_path: HostPath, pids: Iterable[int]) -> Tuple[Charge, Dict[int, ProcessCharge]]:
    per_pid: Dict[int, ProcessCharge] = {}
    missing: List[int] = []
    for pid in pids:
        charge = read_process_charge(host_path, pid)
        if charge is None:
            missing.append(pid)
        else:
            per_pid[pid] = charge
    return sum_charges(per_pid.values(), missing), per_pid


def combine(charges: Iterable[Charge]) -> Charge:
    """Several servers' charges: shared objects still once (two servers never share one, but a
    reading taken twice must not count it twice)."""
    private_kb = extra_kb = count = 0
    exact = True
    unreadable: List[int] = []
    segments: Dict[SegmentKey, int] = {}
    for charge in charges:
        private_kb += charge.private_kb
        extra_kb += charge.mode2_extra_kb
        count += charge.processes
        exact = exact and charge.exact
        unreadable.extend(charge.unreadable)
        for key, size_kb in charge.segments:
            segments[key] = max(segments.get(key, 0), size_kb)
    return Charge(private_kb, sum(segments.values()), extra_kb, count, tuple(unreadable), exact,
                  tuple(sorted(segments.items())))
