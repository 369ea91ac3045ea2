# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a host's memory shape from /proc/meminfo text (or a dict of the same fields).

Pure Python with no Ansible import, so the module, the filter plugin and the tests share
it. Every number is in kB, as the kernel prints it; only the HugePages_* fields are counts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

# "Key:   1234 kB" or, for the HugePages_* counters, "Key:   12". Keys may contain
# parentheses (e.g. "Active(anon)"). [0-9], not \d: \d matches every Unicode digit, and
# int() reads "١٢" as 12. The line is stripped first, so \Z is its end.
_LINE = re.compile(r"(?P<key>[A-Za-z0-9_()]+):\s+(?P<value>[0-9]+)(?:\s+kB)?\Z")
# A number of kB the user gives: ASCII digits only ("²".isdigit() is true and int() refuses it;
# int() reads "١٢" and "1_000"), at most 20 of them (2**64 kB has 20; int() refuses text of
# more than 4300 digits).
_KB_DIGITS = re.compile(r"[0-9]{1,20}")
_MAX_KB = 2 ** 64 - 1

REQUIRED_FIELDS = ("MemTotal", "SwapTotal", "Committed_AS")


class MeminfoError(ValueError):
    """The meminfo text or dict cannot describe a host's memory."""


@dataclass(frozen=True)
class MemoryShape:
    """What the commit budget depends on, as read from one host."""

    memtotal_kb: int
    swaptotal_kb: int
    hugetlb_kb: int
    # None when the source cannot know it (gathered facts have no Committed_AS).
    committed_as_kb: Optional[int]
    # The CommitLimit the kernel showed when the shape was read, if known.
    commit_limit_kb: Optional[int] = None
    page_size_kb: int = 4

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def parse_meminfo(text: str) -> Dict[str, int]:
    """Parse /proc/meminfo text into {field: value}; kB except the HugePages_* counts."""
    fields: Dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise MeminfoError(
                "meminfo line %d is malformed: %r (expected 'Field: <number> kB')" % (lineno, line)
            )
        fields[match.group("key")] = int(match.group("value"))
    if not fields:
        raise MeminfoError("meminfo is empty: no 'Field: <number> kB' lines found")
    return fields


def coerce_meminfo_fields(raw: Mapping[str, Any]) -> Dict[str, int]:
    """Turn a user-supplied dict (values may be strings like '1024' or '1024 kB') into ints."""
    fields: Dict[str, int] = {}
    for key, value in raw.items():
        # bool is an int to Python, never a size to a user.
        text = "" if isinstance(value, bool) else str(value).strip()
        if text.endswith("kB"):
            text = text[:-2].strip()
        if _KB_DIGITS.fullmatch(text) is None or int(text) > _MAX_KB:
            raise MeminfoError(
                "meminfo.%s must be a non-negative integer in kB (ASCII digits, optionally followed by ' kB'), "
                "got %r" % (key, value)
            )
        fields[str(key)] = int(text)
    return fields


def hugetlb_kb_from_fields(fields: Mapping[str, int]) -> int:
    """Memory held by persistent huge pages of every size.

    Kernels >= 4.16 print 'Hugetlb:' summed over all huge page sizes; older ones only
    describe the default size, which is the best that can be known there.
    """
    if "Hugetlb" in fields:
        return fields["Hugetlb"]
    return fields.get("HugePages_Total", 0) * fields.get("Hugepagesize", 0)


def memory_from_fields(fields: Mapping[str, int], page_size_kb: int = 4) -> MemoryShape:
    """Build a MemoryShape from parsed meminfo fields, refusing incomplete or impossible ones."""
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise MeminfoError(
            "meminfo lacks required field(s) %s (needs %s)"
            % (", ".join(missing), ", ".join(REQUIRED_FIELDS))
        )
    if page_size_kb <= 0 or page_size_kb & (page_size_kb - 1):
        raise MeminfoError("page size must be a positive power of two in kB, got %r" % page_size_kb)
    memtotal_kb = fields["MemTotal"]
    hugetlb_kb = hugetlb_kb_from_fields(fields)
    if memtotal_kb <= 0:
        raise MeminfoError("meminfo MemTotal must be positive, got %d kB" % memtotal_kb)
    if hugetlb_kb > memtotal_kb:
        raise MeminfoError(
            "meminfo hugetlb (%d kB) exceeds MemTotal (%d kB); the numbers cannot come from one host"
            % (hugetlb_kb, memtotal_kb)
        )
    return MemoryShape(
        memtotal_kb=memtotal_kb,
        swaptotal_kb=fields["SwapTotal"],
        hugetlb_kb=hugetlb_kb,
        committed_as_kb=fields["Committed_AS"],
        commit_limit_kb=fields.get("CommitLimit"),
        page_size_kb=page_size_kb,
    )


def memory_from_meminfo(text: str, page_size_kb: int = 4) -> MemoryShape:
    """Parse /proc/meminfo text straight into a MemoryShape."""
    return memory_from_fields(parse_meminfo(text), page_size_kb=page_size_kb)
