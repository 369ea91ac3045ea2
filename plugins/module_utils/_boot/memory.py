# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The memory the next boot will have: its swap, its huge pages and the sysctl values it starts from.

The next boot's CommitLimit (commit_limit.commit_limit_kb) depends on SwapTotal and on the
huge pages that boot reserves, not only on the sysctl files. This module models, from the
host's files alone, what the next boot's *lower-bound* check may count on:

* swap: an area active now counts only when a boot writer brings it back (an /etc/fstab line
  through systemd-fstab-generator, an enabled ``.swap`` unit, zram-generator or zramswap).
  Swap switched on by hand (``swapon /swapfile``) is gone after a reboot: a plan that counted
  767 MiB of it reported CommitLimit 1204 MiB, the boot had 438 MiB and the database failed
  with "Cannot allocate memory". ``nofail`` swap is not counted either: the boot goes on
  without it.
* huge pages: the kernel command line's ``hugepages=``/``hugepagesz=``/``default_hugepagesz=``
  per size, the default size's count replaced by ``vm.nr_hugepages`` when a sysctl file (or
  ``sysctl.vm.nr_hugepages=`` on the command line) sets it.
* start values: the kernel's defaults, then the command line's ``sysctl.*`` writes (Linux 5.8+,
  applied before init), which every sysctl file setting the key overrides.

Sources (read to learn the rules; no code taken): Linux 6.1/6.12 mm/swapfile.c (swap_show,
/proc/swaps; total_swap_pages is the sum of the areas' pages), mm/hugetlb.c (hugepages_setup,
hugepagesz_setup, default_hugepagesz_setup, hugetlb_add_hstate, hugetlb_init),
fs/proc/proc_sysctl.c (process_sysctl_arg, do_sysctl_args, sysctl_aliases), lib/cmdline.c
(next_arg, memparse), kernel/params.c (parse_args stops at "--"), mm/mmap.c
(init_user_reserve, init_admin_reserve); systemd's fstab-generator (add_swap, the
``systemd.swap=`` and ``fstab=`` switches), systemd.swap(5), systemd.generator(7) (a generator
linked to /dev/null in /etc/systemd/system-generators is disabled), unit-name.c (path
escaping); zram-generator.conf(5) (files, precedence, ``zram-size`` default
``min(ram / 2, 4096)``, ``host-memory-limit``); Debian zram-tools' zramswap (PERCENT before
SIZE, SIZE 256 MiB by default; older releases read ALLOCATION and PERCENTAGE).

Everything here is pure and typed: no Ansible import, no I/O. _boot.memory_files reads a host.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape

Param = Tuple[str, Optional[str]]
SameNode = Callable[[str, str], Optional[bool]]

PAGE_KB = 4
# x86_64's huge page sizes (arch/x86/mm/hugetlbpage.c: PMD 2 MiB always, PUD 1 GiB with
# X86_FEATURE_GBPAGES). A reader passes the sizes /sys/kernel/mm/hugepages lists instead.
X86_64_HUGE_PAGE_SIZES_KB = (2048, 1048576)
X86_64_DEFAULT_HUGE_PAGE_KB = 2048

GENERATOR_PRESENT = "present"
GENERATOR_MASKED = "masked"  # linked to /dev/null in /etc or /run/systemd/system-generators
GENERATOR_ABSENT = "absent"

FIX_HAND_SWAP = "add it to /etc/fstab, or swapoff it and plan without it"
_EARLY = "early"


# ---------------------------------------------------------------------------------------------
# The kernel command line
# ---------------------------------------------------------------------------------------------

# lib/ctype.c: isspace is true for \t \n \v \f \r, space and 0xA0.
_KERNEL_SPACE = frozenset(b" \t\n\v\f\r\xa0")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def parse_cmdline(data: bytes) -> List[Param]:
    """Split a command line into (param, value) pairs exactly as lib/cmdline.c next_arg does.

    ``"`` groups spaces and cannot be escaped; a value that starts with ``"`` loses it and a
    closing ``"`` at the end of the word; a word that starts with ``"`` loses that quote and a
    closing one. The first ``=`` after position 0 splits param from value (next_arg only looks
    for ``=`` while it has found none at a position > 0). A word without ``=`` has value None.
    Nothing is dropped: ``--`` is returned as a param (see kernel_params).
    """
    params: List[Param] = []
    buf = bytes(data)
    pos = 0
    n = len(buf)
    while pos < n and buf[pos] in _KERNEL_SPACE:
        pos += 1
    while pos < n:
        quoted = False
        in_quote = False
        start = pos
        if buf[start:start + 1] == b'"':
            start += 1
            in_quote = quoted = True
        i = start
        equals = 0
        while i < n:
            ch = buf[i]
            if ch in _KERNEL_SPACE and not in_quote:
                break
            if equals == 0 and ch == 0x3D:  # '='
                equals = i - start
            if ch == 0x22:  # '"'
                in_quote = not in_quote
            i += 1
        word = bytes(buf[start:i])
        end = len(word)
        # The kernel NULs the word's last byte when it is a quote closing a quoted value, or
        # (once) when the whole word was opened by a quote.
        closed = False
        value: Optional[bytes] = None
        if equals:
            name = word[:equals]
            value_start = equals + 1
            if word[value_start:value_start + 1] == b'"':
                value_start += 1
                if word.endswith(b'"'):
                    end -= 1
                    closed = True
            if quoted and not closed and word.endswith(b'"'):
                end -= 1
            value = word[value_start:max(end, value_start)]
        else:
            if quoted and word.endswith(b'"'):
                end -= 1
            name = word[:end]
        params.append((_text(name), None if value is None else _text(value)))
        pos = i + 1 if i < n else i
        while pos < n and buf[pos] in _KERNEL_SPACE:
            pos += 1
    return params


def format_cmdline(params: Sequence[Param]) -> bytes:
    """A command line that parse_cmdline reads back as ``params`` (values may hold spaces).

    The kernel cannot escape ``"``: a value holding one, or a param holding ``=``, space or
    ``"``, raises ValueError.
    """
    words = []
    for name, value in params:
        if not name or any(c in name for c in ' ="\t\n\v\f\r\xa0') or name.startswith("\udca0"):
            raise ValueError("param %r cannot be written on a kernel command line" % name)
        if value is None:
            words.append(name)
            continue
        if '"' in value:
            raise ValueError("value %r of %s holds '\"', which the kernel cannot escape" % (value, name))
        raw = value.encode("utf-8", "surrogateescape")
        needs_quotes = not raw or any(b in _KERNEL_SPACE for b in raw)
        words.append('%s="%s"' % (name, value) if needs_quotes else "%s=%s" % (name, value))
    return " ".join(words).encode("utf-8", "surrogateescape")


def kernel_params(params: Sequence[Param]) -> List[Param]:
    """The params the kernel itself parses: kernel/params.c parse_args stops at a bare ``--``
    (what follows goes to init), both for boot options and for do_sysctl_args."""
    out: List[Param] = []
    for name, value in params:
        if name == "--" and value is None:
            break
        out.append((name, value))
    return out


def _flag_value(params: Sequence[Param], names: Sequence[str]) -> Optional[bool]:
    """The last boolean the params give one of ``names`` (systemd's parse_boolean; no value = yes)."""
    result: Optional[bool] = None
    for name, value in kernel_params(params):
        if name in names:
            if value is None:
                result = True
            elif value.lower() in ("1", "yes", "y", "true", "t", "on"):
                result = True
            elif value.lower() in ("0", "no", "n", "false", "f", "off"):
                result = False
    return result


@dataclass(frozen=True)
class CmdlineSysctl:
    """One ``sysctl.*`` write of the command line to a tracked key, as the kernel makes it."""

    key: str  # e.g. vm.overcommit_ratio
    value: bytes  # the exact bytes written (do_sysctl_args writes strlen(val) bytes, no newline)
    param: str  # the parameter as the kernel split it, e.g. "sysctl/vm/overcommit_ratio=70"


def _sysctl_key_of(name: str) -> Optional[str]:
    """The sysctl a command-line param names, as fs/proc/proc_sysctl.c process_sysctl_arg
    reads it: "sysctl" then '.' or '/', and every '.' of the rest becomes '/'. Aliases
    (sysctl_aliases: hung_task_panic, numa_zonelist_order, ...) name none of our keys."""
    if not name.startswith("sysctl") or name[6:7] not in (".", "/"):
        return None
    # The kernel opens "sys/" + rest with '.' replaced by '/'; the path walk skips empty
    # components, so "sysctl./vm//x" is vm/x too.
    parts = [part for part in name[7:].replace(".", "/").split("/") if part]
    return ".".join(parts) if parts else None


def cmdline_sysctl_writes(params: Sequence[Param]) -> List[CmdlineSysctl]:
    """The command line's writes to _kernel.sysctl.TRACKED_KEYS, in the order the kernel makes them.

    A param without a value, or with an empty one, is refused by the kernel (EINVAL) and writes
    nothing. Needs Linux 5.8+ with CONFIG_PROC_SYSCTL; older kernels ignore these params.
    """
    writes: List[CmdlineSysctl] = []
    for name, value in kernel_params(params):
        key = _sysctl_key_of(name)
        if key is None or key not in sk.TRACKED_KEYS or not value:
            continue
        writes.append(CmdlineSysctl(key, value.encode("utf-8", "surrogateescape"), "%s=%s" % (name, value)))
    return writes


# ---------------------------------------------------------------------------------------------
# Huge pages reserved at boot
# ---------------------------------------------------------------------------------------------

_MEMPARSE = re.compile(r"^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)")
_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def memparse_bytes(text: str) -> Optional[int]:
    """lib/cmdline.c memparse: a C number (0x hex, 0 octal) and an optional K/M/G/T/P/E suffix.

    None when no number starts the text (memparse would return 0, an invalid size anyway).
    """
    match = _MEMPARSE.match(text)
    if match is None:
        return None
    if match.group(1) == "-":
        return None
    digits = match.group(2)
    if digits[:2].lower() == "0x":
        number = int(digits, 16)
    elif digits.startswith("0"):
        number = int(digits, 8)
    else:
        number = int(digits)
    return number << _SHIFT[match.group(3).lower()]


def _hugepages_count(value: str) -> Optional[int]:
    """hugepages=N or the per-node form "0:N,1:M" (their sum); None when mm/hugetlb.c calls it invalid.

    sscanf("%lu") takes the leading digits; anything after a plain count is ignored.
    """
    match = re.match(r"\s*\+?(\d+)", value)
    if match is None:
        return None
    if value[match.end():match.end() + 1] != ":":
        return int(match.group(1))
    total = 0
    for part in value.split(","):
        node = re.fullmatch(r"\s*\+?\d+:\s*\+?(\d+)\D*", part)
        if node is None:
            return None
        total += int(node.group(1))
    return total


@dataclass(frozen=True)
class HugePageItem:
    """One term of the boot's hugetlb: a pool of one size, where its count comes from."""

    size_kb: int
    count: int
    source: str  # "/proc/cmdline: hugepagesz=1G hugepages=4", "sysctl files: vm.nr_hugepages", ...
    why: str

    @property
    def total_kb(self) -> int:
        return self.size_kb * self.count


@dataclass(frozen=True)
class BootHugePages:
    """The huge pages the next boot reserves, all sizes."""

    hugetlb_kb: int
    default_size_kb: Optional[int]
    items: Tuple[HugePageItem, ...] = ()
    notes: Tuple[str, ...] = ()

    def as_dict(self) -> Dict[str, object]:
        return {"hugetlb_kb": self.hugetlb_kb, "default_size_kb": self.default_size_kb,
                "items": [dict(size_kb=i.size_kb, count=i.count, total_kb=i.total_kb, source=i.source, why=i.why)
                          for i in self.items],
                "notes": list(self.notes)}


def _human_kb(size_kb: int) -> str:
    for unit, kb in (("G", 1048576), ("M", 1024)):
        if size_kb % kb == 0:
            return "%d%s" % (size_kb // kb, unit)
    return "%dK" % size_kb


def boot_hugetlb(
    params: Sequence[Param],
    nr_hugepages_default: Optional[str],
    default_size_kb_now: Optional[int],
    supported: bool,
    valid_sizes_kb: Optional[Sequence[int]] = None,
) -> BootHugePages:
    """The hugetlb kB the next boot reserves, by the command line's rules of mm/hugetlb.c.

    ``nr_hugepages_default``: vm.nr_hugepages at the end of the boot's sysctl replay (which
    starts from boot_start, so it already holds a command-line ``sysctl.vm.nr_hugepages``), or
    None when nothing in the files sets it. ``default_size_kb_now``: the default huge page size
    of this boot (Hugepagesize), which is the architecture's default unless this command line
    names another. ``supported`` False (no /proc/sys/vm/nr_hugepages, e.g. User-mode Linux):
    the kernel ignores every hugetlb parameter. ``valid_sizes_kb``: the sizes this machine
    supports (/sys/kernel/mm/hugepages), x86_64's by default.

    Every count is taken as asked: the kernel may reserve fewer pages when memory is short,
    which only leaves more for CommitLimit, so the asked count is the safe side of a lower bound.
    """
    notes: List[str] = []
    own = kernel_params(params)
    hugetlb_params = [(n.replace("-", "_"), v) for n, v in own
                      if n.replace("-", "_") in ("hugepages", "hugepagesz", "default_hugepagesz")]
    if not supported:
        notes.append("this kernel has no hugetlb (no /proc/sys/vm/nr_hugepages): the next boot reserves no "
                     "huge pages")
        if hugetlb_params:
            notes.append("ignored by this kernel: %s" % " ".join("%s=%s" % p for p in hugetlb_params))
        return BootHugePages(0, None, (), tuple(notes))
    valid = tuple(valid_sizes_kb) if valid_sizes_kb else X86_64_HUGE_PAGE_SIZES_KB
    arch_default_kb = default_size_kb_now or X86_64_DEFAULT_HUGE_PAGE_KB

    # The state mm/hugetlb.c keeps while it parses the command line, in its order.
    pools: Dict[int, int] = {}  # hstates by size: max_huge_pages
    pool_source: Dict[int, str] = {}
    parsed_valid = True
    parsed_default = False
    parsed_size: Optional[int] = None  # parsed_hstate
    early_count = 0  # default_hstate_max_huge_pages: hugepages= before any size was named
    early_source = ""
    # last_mhp: the pool the last accepted hugepages= went to; EARLY is the count given
    # before any size was named (default_hstate_max_huge_pages).
    last_target: Optional[Union[str, int]] = None
    default_kb: Optional[int] = None

    for name, value in hugetlb_params:
        text = "%s=%s" % (name, value) if value is not None else name
        if value is None:
            notes.append("%s without a value is ignored" % name)
            continue
        if name in ("hugepagesz", "default_hugepagesz"):
            parsed_valid = False
            if name == "default_hugepagesz" and parsed_default:
                # default_hugepagesz_setup returns with parsed_valid_hugepagesz false, so a
                # hugepages= right after it is ignored too.
                notes.append("%s: default_hugepagesz was given before; ignored" % text)
                continue
            size_bytes = memparse_bytes(value)
            size_kb = size_bytes // 1024 if size_bytes else 0
            if size_kb not in valid:
                notes.append("%s: not a huge page size of this machine (%s); ignored, and so is a hugepages= "
                             "right after it" % (text, ", ".join(_human_kb(s) for s in valid)))
                continue
            if name == "hugepagesz":
                if size_kb in pools:
                    if not parsed_default or size_kb != default_kb or pools[size_kb]:
                        notes.append("%s: this size was named before; ignored" % text)
                        continue
                    parsed_size = size_kb
                    parsed_valid = True
                    continue
                pools[size_kb] = 0
                parsed_size = size_kb
                parsed_valid = True
                continue
            if size_kb not in pools:  # hugetlb_add_hstate leaves parsed_hstate alone for a known size
                pools[size_kb] = 0
                parsed_size = size_kb
            parsed_valid = True
            parsed_default = True
            default_kb = size_kb
            if early_count:
                pools[size_kb] = early_count
                pool_source[size_kb] = early_source
                early_count = 0
            continue
        # hugepages=
        if not parsed_valid:
            notes.append("%s does not follow a valid hugepagesz=; ignored" % text)
            parsed_valid = True
            continue
        target: Union[str, int] = _EARLY if not pools or parsed_size is None else parsed_size
        if target == last_target:
            notes.append("%s: hugepages= twice for one size without a hugepagesz= between; ignored" % text)
            continue
        count = _hugepages_count(value)
        if count is None:
            notes.append("%s is invalid; the kernel sets that pool to 0" % text)
            count = 0
        else:
            last_target = target
        if isinstance(target, str):
            early_count = count
            early_source = text
        else:
            pools[target] = count
            pool_source[target] = text

    # hugetlb_init: the architecture's default size always exists; without default_hugepagesz
    # it is the default, and an early hugepages= count wins over hugepagesz=<that size> hugepages=.
    pools.setdefault(arch_default_kb, 0)
    if not parsed_default or default_kb is None:
        default_kb = arch_default_kb
        if early_count:
            if pools[arch_default_kb]:
                notes.append("hugepages=%d given first overrides %s for the default size"
                             % (early_count, pool_source.get(arch_default_kb, "")))
            pools[arch_default_kb] = early_count
            pool_source[arch_default_kb] = early_source
    items: List[HugePageItem] = []
    for size_kb in sorted(pools):
        count = pools[size_kb]
        source = ("/proc/cmdline: %s" % pool_source[size_kb]) if size_kb in pool_source else "kernel default"
        why = "reserved by the kernel command line before init" if size_kb in pool_source else "no count given: 0"
        if size_kb == default_kb:
            overridden = _default_count_override(own, nr_hugepages_default)
            if overridden is not None:
                new_count, new_source = overridden
                if new_count != count:
                    notes.append("the default size %s: %s replaces the command line's %d pages"
                                 % (_human_kb(size_kb), new_source, count))
                count, source = new_count, new_source
                why = ("vm.nr_hugepages sets the pool of the default size (%s); the boot writes it after "
                       "the command line's hugepages=" % _human_kb(size_kb))
        if count or size_kb in pool_source or size_kb == default_kb:
            items.append(HugePageItem(size_kb, count, source, why))
    total_kb = sum(item.total_kb for item in items)
    return BootHugePages(total_kb, default_kb, tuple(items), tuple(notes))


def _default_count_override(params: Sequence[Param], nr_hugepages_default: Optional[str]) -> Optional[Tuple[int, str]]:
    """The default size's count set through vm.nr_hugepages: the sysctl files' end value when
    given, else the command line's own sysctl.vm.nr_hugepages (its last accepted write)."""
    if nr_hugepages_default is not None:
        value = sk.canonical_or_none(nr_hugepages_default, sk.NR_HUGEPAGES)
        if value is not None:
            return int(value), "sysctl files: vm.nr_hugepages = %s" % value
    result: Optional[Tuple[int, str]] = None
    for write in cmdline_sysctl_writes(params):
        if write.key == sk.NR_HUGEPAGES:
            value = sk.canonical_or_none(write.value, sk.NR_HUGEPAGES)
            if value is not None:
                result = int(value), "/proc/cmdline: %s" % write.param
    return result


def cmdline_default_hugepages(params: Sequence[Param], default_size_kb_now: Optional[int],
                              supported: bool = True, valid_sizes_kb: Optional[Sequence[int]] = None) -> int:
    """The default size's page count that the command line's hugepages= reserve (0 if none)."""
    huge = boot_hugetlb([p for p in params if _sysctl_key_of(p[0]) is None], None, default_size_kb_now, supported,
                        valid_sizes_kb)
    for item in huge.items:
        if item.size_kb == huge.default_size_kb:
            return item.count
    return 0


# ---------------------------------------------------------------------------------------------
# Sysctl values before any sysctl file runs
# ---------------------------------------------------------------------------------------------

_ADMIN_RESERVE_MAX_KB = 8192  # mm/mmap.c init_admin_reserve: min(free / 32, SZ_8K) kB
_USER_RESERVE_MAX_KB = 131072  # mm/mmap.c init_user_reserve: min(free / 32, SZ_128K) kB


def boot_start(memory: MemoryShape, params: Sequence[Param], default_size_kb_now: Optional[int] = None,
               hugetlb_supported: bool = True, valid_sizes_kb: Optional[Sequence[int]] = None) -> Dict[str, str]:
    """The values of _kernel.sysctl.TRACKED_KEYS before any sysctl file runs at the next boot.

    The kernel's defaults, then the reserves the kernel sizes from free memory: mm/mmap.c
    init_user_reserve and init_admin_reserve use min(free / 32, 128 MiB resp. 8 MiB). Free
    memory at that point is at most MemTotal, so min(MemTotal / 32, cap) is the largest value
    they can take: the larger holdback is the conservative one for a lower bound. Then
    vm.nr_hugepages from the command line's hugepages= for the default size, and last the
    command line's sysctl.* writes (do_sysctl_args runs after those initcalls, before init),
    each through _kernel.sysctl.kernel_write so a bad value is refused as the kernel refuses it.
    """
    state: Dict[str, str] = dict(sk.KERNEL_BOOT_DEFAULTS)
    state[sk.USER_RESERVE] = str(min(memory.memtotal_kb // 32, _USER_RESERVE_MAX_KB))
    state[sk.ADMIN_RESERVE] = str(min(memory.memtotal_kb // 32, _ADMIN_RESERVE_MAX_KB))
    if hugetlb_supported:
        state[sk.NR_HUGEPAGES] = str(cmdline_default_hugepages(params, default_size_kb_now,
                                                               valid_sizes_kb=valid_sizes_kb))
    for write in cmdline_sysctl_writes(params):
        if write.key == sk.NR_HUGEPAGES and not hugetlb_supported:
            continue  # no /proc/sys/vm/nr_hugepages to write to
        result = sk.kernel_write(state, write.key, write.value)
        state = {k: v for k, v in result.state.items() if v is not None}
    return state


# ---------------------------------------------------------------------------------------------
# Swap: what is active now, what the boot writers bring back
# ---------------------------------------------------------------------------------------------

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_octal(text: str) -> str:
    """Undo the \\ooo escapes of /proc/swaps (seq_file_path escapes space, tab, newline and
    backslash) and of fstab (libmount decodes any octal escape)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


@dataclass(frozen=True)
class SwapArea:
    """One line of /proc/swaps: an area the kernel uses now."""

    path: str
    type: str  # "partition" (a block device) or "file"
    size_kb: int  # K(si->pages): what the area adds to SwapTotal
    used_kb: int
    priority: int
    deleted: bool = False  # the file was removed while active: it cannot come back


def parse_proc_swaps(text: str) -> List[SwapArea]:
    """/proc/swaps as mm/swapfile.c swap_show prints it: a header, then per area its path
    (escaped), type, size and used in kB, priority. SwapTotal is the sum of the sizes."""
    areas: List[SwapArea] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or (lineno == 1 and line.startswith("Filename")):
            continue
        fields = line.split()
        if len(fields) < 5:
            raise ValueError("/proc/swaps line %d is malformed: %r" % (lineno, line))
        raw_path, kind, size, used, prio = fields[0], fields[-4], fields[-3], fields[-2], fields[-1]
        if len(fields) > 5:  # only an unescaped name could hold blanks; keep all of it
            raw_path = " ".join(fields[:-4])
        deleted = raw_path.endswith("\\040(deleted)")
        if deleted:
            raw_path = raw_path[: -len("\\040(deleted)")]
        try:
            areas.append(SwapArea(_unescape_octal(raw_path), kind, int(size), int(used), int(prio), deleted))
        except ValueError:
            raise ValueError("/proc/swaps line %d is malformed: %r" % (lineno, line)) from None
    return areas


def unit_name_from_path(path: str, suffix: str) -> str:
    """systemd's unit_name_from_path: the path simplified, '/' to '-', and every byte but
    [A-Za-z0-9:_.] (a leading '.' too) as \\xNN. "/" is "-"."""
    simple = posixpath.normpath("/" + path.strip("/")) if path else "/"
    body = simple.strip("/")
    if not body:
        return "-" + suffix
    out = []
    for index, byte in enumerate(body.encode("utf-8", "surrogateescape")):
        ch = chr(byte)
        if ch == "/":
            out.append("-")
        elif (ch.isascii() and (ch.isalnum() or ch in ":_.")) and not (index == 0 and ch == "."):
            out.append(ch)
        else:
            out.append("\\x%02x" % byte)
    return "".join(out) + suffix


# systemd's fstab_node_to_udev_node: tag=value specs name links udev makes.
_TAG_DIRS = {"UUID": "/dev/disk/by-uuid/", "LABEL": "/dev/disk/by-label/",
             "PARTUUID": "/dev/disk/by-partuuid/", "PARTLABEL": "/dev/disk/by-partlabel/"}


def _udev_escape(value: str) -> str:
    # udev's encode_devnode_name: '/' and blanks and other unsafe bytes as \xNN.
    out = []
    for byte in value.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if (ch.isascii() and (ch.isalnum() or ch in "#+-.:=@_")) else "\\x%02x" % byte)
    return "".join(out)


def spec_to_path(spec: str) -> str:
    """The device path a fstab spec names: UUID=, LABEL=, PARTUUID=, PARTLABEL= become their
    /dev/disk/by-* link; anything else is a path as written."""
    tag, sep, value = spec.partition("=")
    if sep and tag in _TAG_DIRS:
        return _TAG_DIRS[tag] + _udev_escape(value)
    return spec


@dataclass(frozen=True)
class FstabSwap:
    """One swap line of /etc/fstab."""

    spec: str  # as written (escapes decoded): /swapfile, /dev/sdb2, UUID=...
    path: str  # the device or file it names (spec_to_path)
    options: Tuple[str, ...]
    lineno: int
    source_path: str = "/etc/fstab"

    @property
    def noauto(self) -> bool:
        return "noauto" in self.options

    @property
    def nofail(self) -> bool:
        return "nofail" in self.options

    @property
    def source(self) -> str:
        return "%s:%d" % (self.source_path, self.lineno)

    @property
    def unit(self) -> str:
        """The .swap unit systemd-fstab-generator makes of it (masking that name masks the line)."""
        return unit_name_from_path(self.path, ".swap")


def parse_fstab_swaps(data: bytes, path: str = "/etc/fstab") -> List[FstabSwap]:
    """The swap lines of a fstab: fields split on blanks, '#' lines and blank lines skipped,
    octal escapes decoded; a line whose type (third field) is "swap" is swap, whatever its
    mount point field says."""
    swaps: List[FstabSwap] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        line = _text(raw).strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 3 or fields[2] != "swap":
            continue
        spec = _unescape_octal(fields[0])
        options = tuple(o for o in _unescape_octal(fields[3]).split(",") if o) if len(fields) > 3 else ("defaults",)
        swaps.append(FstabSwap(spec, spec_to_path(spec), options, lineno, path))
    return swaps


@dataclass(frozen=True)
class SwapUnit:
    """A ``.swap`` unit file; whether the boot starts it is the reader's finding."""

    path: str  # where the unit file is, e.g. /etc/systemd/system/swapfile.swap
    what: Optional[str]  # What= (the last one wins), None when the file has none
    enabled: bool = False  # linked from a *.wants/ or *.requires/ directory
    masked: bool = False  # linked to /dev/null in /etc or /run/systemd/system

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


def parse_swap_unit(data: bytes, path: str) -> SwapUnit:
    """What= of the [Swap] section of a unit file (systemd.swap(5)); later assignments win,
    '#' and ';' start comments, a trailing backslash continues a line."""
    what: Optional[str] = None
    section = ""
    text = _text(data).replace("\\\n", " ")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition("=")
        if sep and section == "Swap" and key.strip() == "What":
            what = value.strip() or None
    return SwapUnit(path, what)


@dataclass(frozen=True)
class ZramDevice:
    """A zram swap device a boot writer creates."""

    name: str  # zram0
    swap_kb: Optional[int]  # what it adds to SwapTotal, None when it cannot be told
    source: str
    why: str


@dataclass(frozen=True)
class ZramBoot:
    """What the zram writers will create at the next boot."""

    devices: Tuple[ZramDevice, ...] = ()
    notes: Tuple[str, ...] = ()


def merge_zram(*boots: ZramBoot) -> ZramBoot:
    """Both zram writers in one. Two writers of one device leave one device of either size:
    the smaller size is the sure one, and a size that cannot be told makes the device's size
    unknown."""
    by_name: Dict[str, ZramDevice] = {}
    notes: List[str] = []
    for boot in boots:
        notes.extend(boot.notes)
        for device in boot.devices:
            old = by_name.get(device.name)
            if old is None:
                by_name[device.name] = device
                continue
            notes.append("%s is configured by both %s and %s" % (device.name, old.source, device.source))
            if old.swap_kb is None or device.swap_kb is None:
                unknown = old if old.swap_kb is None else device
                by_name[device.name] = unknown
            elif device.swap_kb < old.swap_kb:
                by_name[device.name] = device
    return ZramBoot(tuple(by_name[name] for name in sorted(by_name)), tuple(notes))


@dataclass(frozen=True)
class BootSwapItem:
    """One swap area or configured swap, and whether the next boot's lower bound counts it."""

    what: str
    size_kb: Optional[int]
    counted: bool
    source: str  # the writer ("/etc/fstab:3", a unit file, a zram config) or "/proc/swaps"
    why: str


@dataclass(frozen=True)
class BootSwap:
    """The swap the next boot will have that the lower bound may count on."""

    swaptotal_kb: int
    items: Tuple[BootSwapItem, ...] = ()
    notes: Tuple[str, ...] = ()

    @property
    def uncounted_active_kb(self) -> int:
        """Swap active now that the bound does not count (configured swap not active has no size)."""
        return sum(i.size_kb or 0 for i in self.items if not i.counted)

    def as_dict(self) -> Dict[str, object]:
        return {"swaptotal_kb": self.swaptotal_kb,
                "items": [dict(what=i.what, size_kb=i.size_kb, counted=i.counted, source=i.source, why=i.why)
                          for i in self.items],
                "notes": list(self.notes)}


@dataclass(frozen=True)
class _Writer:
    kind: str  # "fstab" | "unit" | "zram"
    what: str  # the path it activates
    source: str
    counts: bool
    why: str
    size_cap_kb: Optional[int] = None  # zram: the size the boot will make (None = cannot be told)


def _writers(fstab: Sequence[FstabSwap], units: Sequence[SwapUnit], zram: ZramBoot, fstab_generator: str,
             params: Sequence[Param], notes: List[str]) -> List[_Writer]:
    writers: List[_Writer] = []
    masked = {u.name for u in units if u.masked}
    fstab_off = None
    if fstab_generator != GENERATOR_PRESENT:
        fstab_off = "systemd-fstab-generator is %s" % fstab_generator
    elif _flag_value(params, ("fstab",)) is False:
        fstab_off = "fstab=no on the command line"
    elif _flag_value(params, ("systemd.swap",)) is False:
        fstab_off = "systemd.swap=0 on the command line"
    for line in fstab:
        if fstab_off:
            writers.append(_Writer("fstab", line.path, line.source, False,
                                   "%s: no unit is made of this line at boot; switch that back on, or swapoff "
                                   "it and plan without it" % fstab_off))
        elif line.unit in masked:
            writers.append(_Writer("fstab", line.path, line.source, False, "its unit %s is masked; unmask it, or swapoff it and plan without it" % line.unit))
        elif line.noauto:
            writers.append(_Writer("fstab", line.path, line.source, False,
                                   "noauto: systemd-fstab-generator makes the unit but nothing starts it at "
                                   "boot; drop noauto, or swapoff it and plan without it"))
        elif line.nofail:
            writers.append(_Writer("fstab", line.path, line.source, False,
                                   "nofail: the boot goes on without it if it fails, so the bound cannot count "
                                   "it; drop nofail to have it counted"))
        else:
            writers.append(_Writer("fstab", line.path, line.source, True,
                                   "systemd-fstab-generator makes swap.target require it at every boot"))
    for unit in units:
        if unit.masked or unit.what is None:
            continue
        if unit.enabled:
            writers.append(_Writer("unit", unit.what, unit.path, True, "enabled .swap unit"))
        else:
            writers.append(_Writer("unit", unit.what, unit.path, False,
                                   "the unit is not enabled (no link in a .wants/ or .requires/ directory); "
                                   "enable it, or swapoff it and plan without it"))
    for device in zram.devices:
        if device.swap_kb is None:
            writers.append(_Writer("zram", "/dev/" + device.name, device.source, False,
                                   "its size cannot be told: %s" % device.why))
        else:
            writers.append(_Writer("zram", "/dev/" + device.name, device.source, True, device.why, device.swap_kb))
    extra = [v for n, v in kernel_params(params) if n == "systemd.swap_extra" or n == "systemd.swap-extra"]
    for value in extra:
        notes.append("systemd.swap-extra=%s on the command line adds swap at boot; not counted (size unknown)"
                     % value)
    return writers


def _matches(writer: _Writer, area: SwapArea, same_node: SameNode) -> Optional[bool]:
    if writer.kind == "zram":
        return area.path == writer.what
    return same_node(writer.what, area.path)


def boot_swap(
    active: Sequence[SwapArea],
    fstab: Sequence[FstabSwap],
    units: Sequence[SwapUnit],
    zram: ZramBoot,
    same_node: SameNode,
    fstab_generator: str = GENERATOR_PRESENT,
    params: Sequence[Param] = (),
) -> BootSwap:
    """The swap the next boot will have that its lower bound may count on.

    An area active now is counted when a boot writer activates it again: an /etc/fstab line
    without noauto or nofail (while systemd-fstab-generator runs and the command line does not
    switch it off), an enabled .swap unit, or zram configured to come back (at the smaller of
    its size now and the size the boot will make). Swap active now that no writer brings back
    is not counted, and is named with the fix. Configured swap that is not active now is not
    counted: nothing shows it will come up, or how large it is. ``same_node(a, b)``: whether two
    paths are the same file or device (None: cannot tell).
    """
    notes: List[str] = []
    writers = _writers(fstab, units, zram, fstab_generator, params, notes)
    items: List[BootSwapItem] = []
    used_writers = set()
    total_kb = 0
    for area in active:
        what = area.path
        if area.deleted:
            items.append(BootSwapItem(what, area.size_kb, False, "/proc/swaps",
                                      "the swap file was deleted while active: no boot can switch it on; %s"
                                      % FIX_HAND_SWAP))
            continue
        matched: List[_Writer] = []
        unsure: List[_Writer] = []
        for index, writer in enumerate(writers):
            verdict = _matches(writer, area, same_node)
            if verdict:
                matched.append(writer)
                used_writers.add(index)
            elif verdict is None:
                unsure.append(writer)
        counting = [w for w in matched if w.counts]
        if counting:
            best = counting[0]
            size_kb = area.size_kb
            why = best.why
            if best.size_cap_kb is not None and best.size_cap_kb < size_kb:
                size_kb = best.size_cap_kb
                why += "; counted at the size the boot will make, %d kB (it is %d kB now)" % (size_kb, area.size_kb)
            items.append(BootSwapItem(what, size_kb, True, best.source, why))
            total_kb += size_kb
            continue
        if matched:
            items.append(BootSwapItem(what, area.size_kb, False, matched[0].source,
                                      "; ".join(w.why for w in matched)))
            continue
        why = "active now, but no boot writer switches it on again (switched on by hand?): gone after a reboot; " \
            + FIX_HAND_SWAP
        if unsure:
            why += " (could not tell whether %s name it)" % ", ".join("%s (%s)" % (w.source, w.what) for w in unsure)
        items.append(BootSwapItem(what, area.size_kb, False, "/proc/swaps", why))
    for index, writer in enumerate(writers):
        if index in used_writers:
            continue
        why = "configured, but not active now: not counted (nothing shows it will come up, or its size)"
        if not writer.counts:
            why = "configured, not active now, and not counted anyway: " + writer.why
        items.append(BootSwapItem(writer.what, None, False, writer.source, why))
    notes.extend(zram.notes)
    return BootSwap(total_kb, tuple(items), tuple(notes))


# ---------------------------------------------------------------------------------------------
# The next boot's memory shape
# ---------------------------------------------------------------------------------------------


def next_boot_memory(now: MemoryShape, swap: BootSwap, huge: BootHugePages) -> MemoryShape:
    """The memory shape the next boot's lower-bound check uses.

    MemTotal as now (the kernel keeps boot-reserved huge pages inside MemTotal); SwapTotal the
    counted boot swap; hugetlb the larger of what the boot reserves and what is reserved now:
    huge pages held now may come from a writer we cannot see (a unit, a script), and leaving
    them out keeps the bound low enough. Committed_AS as now; CommitLimit unknown until booted.
    """
    hugetlb_kb = min(max(huge.hugetlb_kb, now.hugetlb_kb), now.memtotal_kb)
    return MemoryShape(
        memtotal_kb=now.memtotal_kb,
        swaptotal_kb=swap.swaptotal_kb,
        hugetlb_kb=hugetlb_kb,
        committed_as_kb=now.committed_as_kb,
        commit_limit_kb=None,
        page_size_kb=now.page_size_kb,
    )


# ---------------------------------------------------------------------------------------------
# Writers this model cannot follow
# ---------------------------------------------------------------------------------------------

# A command that may set a tracked key, switch swap on or off, or reserve huge pages.
_RISKY = re.compile(
    r"(?<![\w-])(sysctl|swapon|swapoff|mkswap|zramctl|dphys-swapfile)(?![\w-])"
    r"|/proc/sys/vm/|/sys/kernel/mm/hugepages|nr_hugepages|overcommit_|(?:admin|user)_reserve_kbytes"
    r"|hugepages=")
_EXEC_LINE = re.compile(r"^\s*Exec[A-Za-z]*\s*=")
_CLOUD_KEYS = re.compile(r"^\s*(bootcmd|runcmd|swap)\s*:")


_UNIT_SUFFIX = re.compile(r"\.(service|socket|timer|target|path|mount|swap|conf)$")
# systemd.service(5): an Exec*= command may start with any of these special prefixes.
_EXEC_PREFIXES = "-@:+!|"


def _is_unit_file(path: str) -> bool:
    return "/systemd/" in path and bool(_UNIT_SUFFIX.search(path))


def unit_exec_paths(data: bytes) -> List[str]:
    """The absolute programs a unit file's Exec*= lines run, in order, without duplicates.

    The reader reads those that are scripts, so a unit that runs ``/usr/local/sbin/tune`` (which
    runs ``sysctl -w`` or ``swapon``) is seen, not only one that names the command itself.
    """
    paths: List[str] = []
    for raw in _text(data).splitlines():
        line = raw.strip()
        if not _EXEC_LINE.match(line):
            continue
        command = line.split("=", 1)[1].strip().lstrip(_EXEC_PREFIXES)
        program = command.split()[0] if command.split() else ""
        if program.startswith("/") and program not in paths:
            paths.append(program)
    return paths


def scan_unmodelled_writers(files: Mapping[str, bytes]) -> List[str]:
    """Lines of other boot-time files that may set the tracked keys or switch swap on or off,
    which no model here follows; each as "PATH:LINE: text".

    * systemd units and drop-ins (any path with /systemd/): Exec*= lines running sysctl,
      swapon, swapoff, mkswap, zramctl or writing /proc/sys/vm/ or the huge page pools;
    * /etc/rc.local and cron files: such lines, and every ``@reboot`` line of cron (it runs
      something at every boot that we cannot see into);
    * cloud-init configs: ``swap:`` (cloud-init makes and enables a swap file), and such lines
      in ``bootcmd:`` (every boot) or ``runcmd:`` (first boot of an instance);
    * any other file (a script a unit runs, see unit_exec_paths): such lines.
    """
    found: List[str] = []
    for path in sorted(files):
        text = _text(files[path])
        is_unit = _is_unit_file(path)
        is_cloud = path.startswith("/etc/cloud/")
        is_cron = path == "/etc/crontab" or path.startswith("/etc/cron.d/")
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#") or (is_unit and line.startswith(";")):
                continue
            hit = False
            if is_unit:
                hit = bool(_EXEC_LINE.match(line) and _RISKY.search(line))
            elif is_cloud:
                hit = bool(line.startswith("swap:") or (_RISKY.search(line) and not _CLOUD_KEYS.match(line)))
            elif is_cron:
                hit = line.startswith("@reboot") or bool(_RISKY.search(line))
            else:
                hit = bool(_RISKY.search(line))
            if hit:
                found.append("%s:%d: %s" % (path, lineno, line))
    return found


# ---------------------------------------------------------------------------------------------
# The bootloader's configured command line
# ---------------------------------------------------------------------------------------------

_GRUB_VAR = re.compile(r"^\s*(?:export\s+)?(GRUB_CMDLINE_LINUX(?:_DEFAULT)?)=(.*)$")


def _shell_value(raw: str, env: Mapping[str, str]) -> Optional[str]:
    """A shell assignment's value: "..." (with $VAR / ${VAR} of env), '...', or a bare word.
    None when it uses anything else (command substitution, a backslash, an unknown variable)."""
    raw = raw.strip()
    out = []
    pos = 0
    while pos < len(raw):
        ch = raw[pos]
        if ch == "#" and (pos == 0 or raw[pos - 1].isspace()):
            break
        if ch.isspace():
            if raw[pos:].strip() and not raw[pos:].strip().startswith("#"):
                return None
            break
        if ch == "'":
            end = raw.find("'", pos + 1)
            if end < 0:
                return None
            out.append(raw[pos + 1:end])
            pos = end + 1
            continue
        if ch == '"':
            end = raw.find('"', pos + 1)
            if end < 0:
                return None
            inner = raw[pos + 1:end]
            if "`" in inner or "$(" in inner or "\\" in inner:
                return None
            try:
                inner = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env[m.group(1)], inner)
            except KeyError:
                return None
            out.append(inner)
            pos = end + 1
            continue
        if ch in "`$\\;&|":
            return None
        out.append(ch)
        pos += 1
    return "".join(out)


def grub_cmdline(files: Sequence[Tuple[str, bytes]]) -> Tuple[Optional[str], List[str]]:
    """The kernel parameters /etc/default/grub (then /etc/default/grub.d/*.cfg, in order) give:
    GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT joined as grub-mkconfig joins them for a
    normal entry. (None, notes) when a value cannot be read by this model."""
    env: Dict[str, str] = {"GRUB_CMDLINE_LINUX": "", "GRUB_CMDLINE_LINUX_DEFAULT": ""}
    notes: List[str] = []
    seen = False
    for path, data in files:
        for lineno, raw in enumerate(_text(data).splitlines(), start=1):
            match = _GRUB_VAR.match(raw)
            if match is None:
                continue
            seen = True
            value = _shell_value(match.group(2), env)
            if value is None:
                notes.append("%s:%d: %s cannot be read without running the shell" % (path, lineno, raw.strip()))
                return None, notes
            env[match.group(1)] = value
    if not seen:
        return None, notes
    return (env["GRUB_CMDLINE_LINUX"] + " " + env["GRUB_CMDLINE_LINUX_DEFAULT"]).strip(), notes


def _memory_params(params: Sequence[Param]) -> List[str]:
    """The params that change the boot's memory as this model reads it."""
    out = []
    for name, value in kernel_params(params):
        norm = name.replace("-", "_")
        key = _sysctl_key_of(name)
        if norm in ("hugepages", "hugepagesz", "default_hugepagesz") or (key in sk.TRACKED_KEYS) \
                or name in ("systemd.swap", "systemd.zram", "fstab", "systemd.swap-extra", "systemd.swap_extra"):
            out.append(name if value is None else "%s=%s" % (name, value))
    return out


def pending_cmdline_notes(current: Sequence[Param], configured: Mapping[str, Optional[str]]) -> List[str]:
    """Where the bootloader's configured command line differs from /proc/cmdline in a param this
    model reads: the next boot after the bootloader's config is applied may differ, which this
    model (built from /proc/cmdline) does not follow. ``configured``: source -> command line."""
    notes: List[str] = []
    now = _memory_params(current)
    for source, line in configured.items():
        if line is None:
            continue
        wanted = _memory_params(parse_cmdline(line.encode("utf-8", "surrogateescape")))
        for param in wanted:
            if param not in now:
                notes.append("%s sets %s, which /proc/cmdline lacks: a later boot may differ (not modelled)"
                             % (source, param))
        for param in now:
            if param not in wanted:
                notes.append("/proc/cmdline has %s, which %s lacks: a later boot may differ (not modelled)"
                             % (param, source))
    return notes


__all__ = [
    "BootHugePages", "BootSwap", "BootSwapItem", "CmdlineSysctl", "FstabSwap", "HugePageItem", "SwapArea",
    "SwapUnit", "ZramBoot", "ZramDevice", "boot_hugetlb", "boot_start", "boot_swap", "cmdline_sysctl_writes",
    "format_cmdline", "grub_cmdline", "kernel_params", "merge_zram", "next_boot_memory", "parse_cmdline",
    "unit_exec_paths",
    "parse_fstab_swaps", "parse_proc_swaps", "parse_swap_unit", "pending_cmdline_notes",
    "scan_unmodelled_writers", "spec_to_path", "unit_name_from_path",
]
