# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes as the databases print them, turned into kB (the one unit this package computes in).

PostgreSQL prints a memory setting as a number of its unit (pg_settings.unit: "8kB", "kB",
"MB"; ``postgres -C`` prints the same number without the unit). MariaDB and MySQL print bytes
in SHOW VARIABLES, and their option files take a number with an optional K, M, G, T, P or E
suffix (powers of 1024). Bytes become kB rounded up: a buffer of 1 byte still takes a page.
"""

from __future__ import annotations

import re

KIB = 1024

# pg_settings.unit of a memory setting -> kB per unit.
PG_MEMORY_UNITS_KB = {"B": None, "kB": 1, "8kB": 8, "16kB": 16, "32kB": 32, "MB": KIB, "16MB": 16 * KIB, "GB": KIB * KIB}

_DIGITS = re.compile(r"-?[0-9]{1,20}\Z")
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,12})?\Z")
_MYSQL_SIZE = re.compile(r"([0-9]{1,20})([KMGTPE]?)\Z", re.IGNORECASE)
_MYSQL_SUFFIX_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


class SizeError(ValueError):
    """A value is not a size this package can read; the message quotes it."""


def kb_from_bytes(count: int) -> int:
    """kB rounded up: what a buffer of ``count`` bytes occupies at least."""
    return -(-count // KIB)


def pg_int(text: str) -> int:
    """A PostgreSQL integer setting as printed (``-1`` means "unset" for some)."""
    text = text.strip()
    if not _DIGITS.match(text):
        raise SizeError("not an integer: %r" % text)
    return int(text)


def pg_real(text: str) -> float:
    """A PostgreSQL real setting as printed (hash_mem_multiplier: "2", "1.5")."""
    text = text.strip()
    if not _DECIMAL.match(text):
        raise SizeError("not a non-negative number: %r" % text)
    return float(text)


def pg_memory_kb(setting: str, unit: str) -> int:
    """A pg_settings memory value in kB; -1 (unset, e.g. autovacuum_work_mem) stays -1."""
    value = pg_int(setting)
    if value < 0:
        return -1
    if unit not in PG_MEMORY_UNITS_KB:
        raise SizeError("unknown PostgreSQL memory unit %r" % unit)
    per_unit_kb = PG_MEMORY_UNITS_KB[unit]
    return kb_from_bytes(value) if per_unit_kb is None else value * per_unit_kb


def mysql_bytes(text: str) -> int:
    """A MariaDB/MySQL size: plain bytes (SHOW VARIABLES) or an option file's 64M, 2G, 512K."""
    match = _MYSQL_SIZE.match(text.strip())
    if match is None:
        raise SizeError("not a size: %r" % text)
    return int(match.group(1)) * KIB ** _MYSQL_SUFFIX_POWER[match.group(2).upper()]


def mib_text(kb: int) -> str:
    """kB as MiB for people: kB below 1 MiB, one decimal below 10 MiB, where rounding would hide it."""
    if -KIB < kb < KIB and kb:
        return "%d kB" % kb
    if -10 * KIB < kb < 10 * KIB and kb % KIB:
        return "%.1f MiB" % (kb / KIB)
    return "%d MiB" % round(kb / KIB)


def mib_text_up(kb: int) -> str:
    """An amount that must be made up (a shortfall, swap to add), as mib_text but rounded up, so that
    it is never short of what the planner's lines say (they round such amounts up too)."""
    if 0 < kb < KIB:
        return "%d kB" % kb
    if 0 < kb < 10 * KIB and kb % KIB:
        return "%.1f MiB" % (-(-kb * 10 // KIB) / 10)
    return "%d MiB" % -(-kb // KIB)


def size_text(kb: int) -> str:
    """A setting's value as a DBA writes it: the largest of GB, MB, kB that divides it."""
    for factor, unit in ((KIB * KIB, "GB"), (KIB, "MB")):
        if kb >= factor and kb % factor == 0:
            return "%d%s" % (kb // factor, unit)
    return "%dkB" % kb
