# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what decides the next boot's swap and huge pages from a host's files: the I/O half of
_boot.memory.

One call, ``read_boot_memory(host_path)``, returns plain data (BootMemoryHost); the helpers
below it feed that data to _boot.memory's pure rules. ``same_node_on(host_path)`` is the one
place that asks the file system whether two paths are one swap area.

Every file is read by regular_file's one rule (never blocking, capped, only regular files
opened) after its links are followed in logical space (regular_file.resolve_links), so a
test tree stays inside itself and a FIFO planted as a unit file cannot hang the module.
Nothing is executed. The cost is kept near an Ansible ping's: a few directory listings of
the systemd unit directories (no unit file outside /etc is read but the .swap ones and the
targets of /etc's links), /etc/systemd/system read recursively, a handful of small files.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

HostPath = Callable[[str], str]

PROC_SWAPS = "/proc/swaps"
PROC_CMDLINE = "/proc/cmdline"
PROC_MEMINFO = "/proc/meminfo"
NR_HUGEPAGES_PATH = "/proc/sys/vm/nr_hugepages"
HUGEPAGES_SYSFS = "/sys/kernel/mm/hugepages"
FSTAB = "/etc/fstab"
# systemd's unit search path for the system manager, highest priority first (systemd.unit(5)).
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
# Only these two can mask a unit an administrator did not write (systemctl mask writes /etc).
MASK_DIRS = ("/etc/systemd/system", "/run/systemd/system")
GENERATOR_DIRS = ("/etc/systemd/system-generators", "/run/systemd/system-generators",
                  "/usr/local/lib/systemd/system-generators", "/usr/lib/systemd/system-generators",
                  "/lib/systemd/system-generators")
FSTAB_GENERATOR = "systemd-fstab-generator"
ZRAM_GENERATOR = "zram-generator"
# zram-generator.conf(5): the main file (the first found, highest priority first) is read
# before the drop-ins, which are sorted by name across the four directories.
ZRAM_MAIN = ("/etc/systemd/zram-generator.conf", "/run/systemd/zram-generator.conf",
             "/usr/local/lib/systemd/zram-generator.conf", "/usr/lib/systemd/zram-generator.conf")
ZRAM_DROPIN_DIRS = ("/etc/systemd/zram-generator.conf.d", "/run/systemd/zram-generator.conf.d",
                    "/usr/local/lib/systemd/zram-generator.conf.d", "/usr/lib/systemd/zram-generator.conf.d")
ZRAMSWAP_CONFIG = "/etc/default/zramswap"
ZRAMSWAP_UNIT = "zramswap.service"
GRUB_DEFAULT = "/etc/default/grub"
GRUB_DEFAULT_D = "/etc/default/grub.d"
KERNEL_CMDLINE = "/etc/kernel/cmdline"
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(): exists when systemd is PID 1
WRITER_FILES = ("/etc/rc.local", "/etc/cloud/cloud.cfg", "/etc/crontab")
WRITER_DIRS = ("/etc/cloud/cloud.cfg.d", "/etc/cron.d")
UNIT_TREE = "/etc/systemd/system"

MAX_FILE_BYTES = 1024 * 1024  # far beyond any of these files
MAX_UNIT_TREE_FILES = 4000  # a bound on the recursive read of /etc/systemd/system
MAX_SCRIPTS = 200  # programs of those units looked at (two bytes each, unless a script)
MAX_SCRIPT_BYTES = 256 * 1024
# Units whose swap this model follows itself: their scripts are not "unmodelled".
MODELLED_UNITS = frozenset(["zramswap.service"])


@dataclass(frozen=True)
class BootMemoryHost:
    """What the host's files say about the next boot's memory, as read (no rule applied yet)."""

    proc_swaps: Optional[str]  # None when unreadable (problems says why)
    fstab: Optional[bytes]
    swap_units: Tuple[bm.SwapUnit, ...]  # with enabled/masked as found
    generators: Dict[str, str]  # FSTAB_GENERATOR / ZRAM_GENERATOR -> bm.GENERATOR_*
    zram_generator_files: Tuple[Tuple[str, bytes], ...]  # in the order zram-generator reads them
    zramswap_config: Optional[bytes]
    zramswap_enabled: bool
    cmdline: Optional[bytes]
    hugetlb_supported: bool
    default_huge_page_kb: Optional[int]  # Hugepagesize of this boot
    huge_page_sizes_kb: Tuple[int, ...]  # the sizes /sys/kernel/mm/hugepages lists
    bootloader_cmdlines: Dict[str, Optional[str]]  # source -> configured command line
    writer_files: Dict[str, bytes]  # for _boot.memory.scan_unmodelled_writers
    notes: Tuple[str, ...] = ()  # what could not be read, what is assumed
    systemd: bool = True

    @property
    def params(self) -> List[bm.Param]:
        return bm.parse_cmdline(self.cmdline or b"")


def _read(logical: str, host_path: HostPath, cap: int = MAX_FILE_BYTES) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) or (None, why not); a link is followed in logical space, /dev/null is a mask."""
    final, problem = rf.resolve_links(logical, host_path)
    if final == rf.DEV_NULL:
        return None, "masked (linked to /dev/null)"
    if problem is not None:
        return None, problem
    got = rf.read_regular_file(host_path(final), cap)
    if got.status == rf.STATUS_READ:
        return got.data, None
    return None, got.reason or got.status


def _listdir(logical: str, host_path: HostPath) -> List[str]:
    try:
        return sorted(os.listdir(host_path(logical)))
    except OSError:
        return []


def _lexists(logical: str, host_path: HostPath) -> bool:
    return os.path.lexists(host_path(logical))


def _is_masked(logical: str, host_path: HostPath) -> bool:
    final, _problem = rf.resolve_links(logical, host_path)
    if final == rf.DEV_NULL:
        return True
    try:
        st = os.stat(host_path(final))
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def _generator_state(name: str, host_path: HostPath) -> str:
    """systemd.generator(7): the first directory holding the name wins; /dev/null there disables it."""
    for directory in GENERATOR_DIRS:
        logical = directory + "/" + name
        if _lexists(logical, host_path):
            return bm.GENERATOR_MASKED if _is_masked(logical, host_path) else bm.GENERATOR_PRESENT
    return bm.GENERATOR_ABSENT


def _wanted_names(host_path: HostPath) -> Set[str]:
    """Unit names linked from any *.wants/ or *.requires/ directory of the unit search path."""
    names: Set[str] = set()
    for directory in UNIT_DIRS:
        for sub in _listdir(directory, host_path):
            if sub.endswith(".wants") or sub.endswith(".requires"):
                names.update(_listdir(directory + "/" + sub, host_path))
    return names


def _swap_units(host_path: HostPath, wanted: Set[str], notes: List[str]) -> Tuple[bm.SwapUnit, ...]:
    units: Dict[str, bm.SwapUnit] = {}
    for directory in UNIT_DIRS:
        for name in _listdir(directory, host_path):
            if not name.endswith(".swap") or name in units:
                continue  # a unit in a higher directory replaces one of the same name below
            logical = directory + "/" + name
            if directory in MASK_DIRS and _is_masked(logical, host_path):
                units[name] = bm.SwapUnit(logical, None, enabled=name in wanted, masked=True)
                continue
            data, problem = _read(logical, host_path)
            if data is None:
                notes.append("%s: not read (%s)" % (logical, problem))
                continue
            unit = bm.parse_swap_unit(data, logical)
            units[name] = bm.SwapUnit(unit.path, unit.what, enabled=name in wanted)
    return tuple(units[name] for name in sorted(units))


def _zram_generator_files(host_path: HostPath, notes: List[str]) -> Tuple[Tuple[str, bytes], ...]:
    files: List[Tuple[str, bytes]] = []
    for logical in ZRAM_MAIN:
        if _lexists(logical, host_path):
            data, problem = _read(logical, host_path)
            if data is not None:
                files.append((logical, data))
            elif problem and not problem.startswith("masked"):
                notes.append("%s: not read (%s)" % (logical, problem))
            break
    dropins: Dict[str, str] = {}
    for directory in ZRAM_DROPIN_DIRS:
        for name in _listdir(directory, host_path):
            if name.endswith(".conf") and name not in dropins:
                dropins[name] = directory + "/" + name
    for name in sorted(dropins):
        data, problem = _read(dropins[name], host_path)
        if data is not None:
            files.append((dropins[name], data))
        elif problem and not problem.startswith("masked"):
            notes.append("%s: not read (%s)" % (dropins[name], problem))
    return tuple(files)


def _huge_page_sizes(host_path: HostPath) -> Tuple[int, ...]:
    sizes = []
    for name in _listdir(HUGEPAGES_SYSFS, host_path):
        match = re.fullmatch(r"hugepages-(\d+)kB", name)
        if match:
            sizes.append(int(match.group(1)))
    return tuple(sorted(sizes))


def _default_huge_page_kb(host_path: HostPath) -> Optional[int]:
    data, _problem = _read(PROC_MEMINFO, host_path)
    match = re.search(rb"^Hugepagesize:\s+(\d+) kB", data or b"", re.M)
    return int(match.group(1)) if match else None


def _bootloader(host_path: HostPath, notes: List[str]) -> Dict[str, Optional[str]]:
    configured: Dict[str, Optional[str]] = {}
    grub_files: List[Tuple[str, bytes]] = []
    for logical in [GRUB_DEFAULT] + [GRUB_DEFAULT_D + "/" + n for n in _listdir(GRUB_DEFAULT_D, host_path)
                                     if n.endswith(".cfg")]:
        data, _problem = _read(logical, host_path)
        if data is not None:
            grub_files.append((logical, data))
    if grub_files:
        line, grub_notes = bm.grub_cmdline(grub_files)
        notes.extend(grub_notes)
        if line is not None:
            configured[GRUB_DEFAULT + " (GRUB_CMDLINE_LINUX, GRUB_CMDLINE_LINUX_DEFAULT)"] = line
    data, _problem = _read(KERNEL_CMDLINE, host_path)
    if data is not None:
        configured[KERNEL_CMDLINE] = " ".join(data.decode("utf-8", "surrogateescape").split())
    return configured


def _writer_files(host_path: HostPath, notes: List[str]) -> Dict[str, bytes]:
    files: Dict[str, bytes] = {}
    paths = list(WRITER_FILES)
    for directory in WRITER_DIRS:
        paths.extend(directory + "/" + n for n in _listdir(directory, host_path)
                     if not (directory.endswith("cloud.cfg.d") and not n.endswith(".cfg")))
    count = 0
    seen_targets: Set[str] = set()
    for root, dirs, names in os.walk(host_path(UNIT_TREE)):  # links to directories are not followed
        dirs.sort()
        logical_root = UNIT_TREE + root[len(host_path(UNIT_TREE)):]
        for name in sorted(names):
            count += 1
            if count > MAX_UNIT_TREE_FILES:
                notes.append("%s: more than %d entries; the rest is not scanned" % (UNIT_TREE, MAX_UNIT_TREE_FILES))
                break
            logical = logical_root + "/" + name
            final, problem = rf.resolve_links(logical, host_path)
            if problem is not None or final == rf.DEV_NULL or final in seen_targets:
                continue
            seen_targets.add(final)
            paths.append(final if final != logical else logical)
        if count > MAX_UNIT_TREE_FILES:
            break
    for logical in paths:
        data, problem = _read(logical, host_path)
        if data is not None:
            files[logical] = data
        elif problem not in (None, "dangling") and not problem.startswith("masked") and \
                _lexists(logical, host_path):
            notes.append("%s: not read (%s)" % (logical, problem))
    files.update(_unit_scripts(files, host_path))
    return files


def _unit_scripts(units: Dict[str, bytes], host_path: HostPath) -> Dict[str, bytes]:
    """The scripts (files starting with "#!") that the units' Exec*= lines run.

    Two bytes tell a script from a binary, so an sshd is not read; a script is read whole.
    """
    scripts: Dict[str, bytes] = {}
    programs: List[str] = []
    for path in sorted(units):
        if "/systemd/" in path and posixpath.basename(path) not in MODELLED_UNITS:
            programs.extend(p for p in bm.unit_exec_paths(units[path]) if p not in programs)
    for program in programs[:MAX_SCRIPTS]:
        final, problem = rf.resolve_links(program, host_path)
        if problem is not None or final == rf.DEV_NULL:
            continue
        head = rf.read_regular_file(host_path(final), 2)
        if head.data is None or not head.data.startswith(b"#!"):
            continue
        data, _problem = _read(final, host_path, MAX_SCRIPT_BYTES)
        if data is not None:
            scripts[program] = data
    return scripts


def read_boot_memory(host_path: HostPath) -> BootMemoryHost:
    """Everything _boot.memory needs from this host, read from files alone."""
    notes: List[str] = []
    swaps, problem = _read(PROC_SWAPS, host_path)
    if swaps is None:
        notes.append("%s: not read (%s): no swap active now can be counted" % (PROC_SWAPS, problem))
    fstab, problem = _read(FSTAB, host_path)
    if fstab is None and problem != "dangling" and _lexists(FSTAB, host_path):
        notes.append("%s: not read (%s)" % (FSTAB, problem))
    cmdline, problem = _read(PROC_CMDLINE, host_path)
    if cmdline is None:
        notes.append("%s: not read (%s): the kernel command line is taken as empty" % (PROC_CMDLINE, problem))
    systemd = _lexists(SYSTEMD_RUNNING, host_path)
    generators = {name: _generator_state(name, host_path) for name in (FSTAB_GENERATOR, ZRAM_GENERATOR)}
    if not systemd:
        notes.append("systemd is not running (%s is missing): the boot's swap writers are not modelled, so no "
                     "swap is counted" % SYSTEMD_RUNNING)
        generators = {name: bm.GENERATOR_ABSENT for name in generators}
    wanted = _wanted_names(host_path)
    zramswap_unit = any(_lexists(d + "/" + ZRAMSWAP_UNIT, host_path) for d in UNIT_DIRS)
    zramswap_masked = any(_is_masked(d + "/" + ZRAMSWAP_UNIT, host_path) for d in MASK_DIRS
                          if _lexists(d + "/" + ZRAMSWAP_UNIT, host_path))
    zramswap_config, _problem = _read(ZRAMSWAP_CONFIG, host_path)
    return BootMemoryHost(
        proc_swaps=None if swaps is None else swaps.decode("utf-8", "surrogateescape"),
        fstab=fstab,
        swap_units=_swap_units(host_path, wanted, notes) if systemd else (),
        generators=generators,
        zram_generator_files=_zram_generator_files(host_path, notes),
        zramswap_config=zramswap_config,
        zramswap_enabled=systemd and zramswap_unit and not zramswap_masked and ZRAMSWAP_UNIT in wanted,
        cmdline=cmdline,
        hugetlb_supported=_lexists(NR_HUGEPAGES_PATH, host_path),
        default_huge_page_kb=_default_huge_page_kb(host_path),
        huge_page_sizes_kb=_huge_page_sizes(host_path),
        bootloader_cmdlines=_bootloader(host_path, notes),
        writer_files=_writer_files(host_path, notes),
        notes=tuple(notes),
        systemd=systemd,
    )


def same_node_on(host_path: HostPath) -> bm.SameNode:
    """same_node(a, b) for this host: the same block device (st_rdev) or the same file
    (st_dev and st_ino), each path's links followed in logical space (UUID= specs name
    /dev/disk/by-uuid links). None when either path cannot be found or stat'ed."""

    def node(logical: str) -> Optional[Tuple[object, ...]]:
        final, problem = rf.resolve_links(logical, host_path)
        if problem is not None or final == rf.DEV_NULL:
            return None
        try:
            st = os.stat(host_path(final))
        except OSError:
            return None
        if stat.S_ISBLK(st.st_mode):
            return ("block", st.st_rdev)
        return ("node", st.st_dev, st.st_ino)

    def same_node(a: str, b: str) -> Optional[bool]:
        if posixpath.normpath(a) == posixpath.normpath(b):
            return True
        first, second = node(a), node(b)
        if first is None or second is None:
            return None
        return first == second

    return same_node


# ---------------------------------------------------------------------------------------------
# The host's data through _boot.memory's rules
# ---------------------------------------------------------------------------------------------


def host_zram(host: BootMemoryHost, memtotal_kb: int) -> bm.ZramBoot:
    """The zram swap this host's boot creates again: nothing to load when nothing configures zram."""
    if not host.zram_generator_files and host.zramswap_config is None and not host.zramswap_enabled:
        return bm.ZramBoot()
    from ansible_collections.dbfleet.memory.plugins.module_utils._boot import zram  # pylint: disable=import-outside-toplevel
    return bm.merge_zram(
        zram.zram_generator_devices(host.zram_generator_files, memtotal_kb, host.generators[ZRAM_GENERATOR],
                                    host.params),
        zram.zramswap_devices(host.zramswap_config, host.zramswap_enabled, memtotal_kb),
    )


def host_boot_swap(host: BootMemoryHost, host_path: HostPath, memtotal_kb: int) -> bm.BootSwap:
    """_boot.memory.boot_swap for this host."""
    active = bm.parse_proc_swaps(host.proc_swaps) if host.proc_swaps is not None else []
    fstab = bm.parse_fstab_swaps(host.fstab, FSTAB) if host.fstab is not None else []
    swap = bm.boot_swap(active, fstab, host.swap_units, host_zram(host, memtotal_kb), same_node_on(host_path),
                        fstab_generator=host.generators[FSTAB_GENERATOR], params=host.params)
    if not host.systemd:
        return bm.BootSwap(0, tuple(bm.BootSwapItem(i.what, i.size_kb, False, i.source,
                                                    "systemd is not running: boot writers not modelled")
                                    for i in swap.items), swap.notes)
    return swap


def host_boot_hugetlb(host: BootMemoryHost, nr_hugepages_default: Optional[str]) -> bm.BootHugePages:
    """_boot.memory.boot_hugetlb for this host."""
    return bm.boot_hugetlb(host.params, nr_hugepages_default, host.default_huge_page_kb, host.hugetlb_supported,
                           host.huge_page_sizes_kb or None)


def host_unmodelled(host: BootMemoryHost) -> List[str]:
    """Every boot-time writer of memory this model cannot follow. (What it could not read is in
    ``host.notes``: assumptions on the safe side, not writers.)"""
    found = bm.scan_unmodelled_writers(host.writer_files)
    found.extend(bm.pending_cmdline_notes(host.params, host.bootloader_cmdlines))
    return found


__all__ = ["BootMemoryHost", "read_boot_memory", "same_node_on", "host_boot_swap", "host_boot_hugetlb",
           "host_unmodelled", "host_zram"]
