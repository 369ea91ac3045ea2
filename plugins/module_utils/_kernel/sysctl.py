# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the kernel does with one write(2) to /proc/sys/vm/<key>, for the keys the boot replay follows.

The one model of the kernel's sysctl handlers that the boot replay, the live-write
planner and the tests share. Learned from Linux 6.1 and 6.12 (kernel/sysctl.c:
__do_proc_dointvec, __do_proc_doulongvec_minmax, proc_get_long, strtoul_lenient;
mm/util.c: overcommit_policy_handler, overcommit_ratio_handler,
overcommit_kbytes_handler); the parsing core is the same in both.

============================  ==========================  ==================
key                           handler                     accepts
============================  ==========================  ==================
vm.overcommit_memory          proc_dointvec_minmax         int, 0..2
vm.overcommit_ratio           proc_dointvec                any int (even < 0)
vm.overcommit_kbytes          proc_doulongvec_minmax       unsigned long
vm.admin_reserve_kbytes       proc_doulongvec_minmax       unsigned long
vm.user_reserve_kbytes        proc_doulongvec_minmax       unsigned long
vm.nr_hugepages               proc_doulongvec_minmax       unsigned long
============================  ==========================  ==================

How a value string is read (what surprises people):

* Leading whitespace (the kernel's isspace: space, \\t \\n \\v \\f \\r and byte 0xA0)
  is skipped. A write of only whitespace is EINVAL.
* One optional ``-``; then a digit must follow, so ``+5`` is EINVAL.
* The base is C-like: ``0x1f`` is 31 and ``010`` is 8 (octal); ``08`` is EINVAL
  because ``8`` is not an octal digit and is not whitespace either.
* After the number only space, tab or newline may follow. ``0#x`` is EINVAL, but
  ``0 # default`` sets 0: the kernel takes one number, skips the blanks after it
  and reports a short write for the rest. Both tools treat that as success
  (glibc writes the rest at a non-zero offset, which a strict kernel ignores;
  procps accepts a short write), so the value is set and nobody reports an error.
* 21 or more characters for the number (sign included) is EINVAL, as is a value
  that does not fit 64 bits; ints must fit 32 bits (``-2147483648`` is fine).
* The unsigned handlers reject any ``-`` (even ``-0``); overcommit_ratio stores a
  negative value as given.
* Only the first 4095 bytes of a write are looked at.

The pair: a successful write to overcommit_ratio sets overcommit_kbytes to 0 and a
successful write to overcommit_kbytes sets overcommit_ratio to 0, whatever the value
(a write of the same value, or of 0, still zeroes the other). A rejected write changes
nothing. For these handlers a value is stored only when the write succeeds, so
``took_effect`` equals ``accepted``; it is kept separate because callers must not
assume that for every sysctl.

Not modelled: kernel.sysctl_writes_strict other than its default 1 (with 0 or -1 the
rest of a short write would be parsed as a second value).

Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple, Union

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.keys import (  # noqa: F401 (part of this module's surface)
    ADMIN_RESERVE,
    BOOT_MEMORY_KEYS,
    KBYTES,
    MANAGED_KEYS,
    MODE,
    NR_HUGEPAGES,
    PLAIN_DECIMAL,
    RATIO,
    TRACKED_KEYS,
    USER_RESERVE,
)

# A freshly booted kernel before any sysctl file. admin_reserve boots as
# min(free/32, 8 MiB): 8192 on any host with more than 256 MiB free. user_reserve boots as
# min(free/32, 128 MiB) (mm/mmap.c init_user_reserve): its largest value stands in here, and
# the boot model puts the host's own in its place (_boot.memory.boot_start).
KERNEL_BOOT_DEFAULTS = {MODE: "0", RATIO: "50", KBYTES: "0", ADMIN_RESERVE: "8192",
                        USER_RESERVE: "131072", NR_HUGEPAGES: "0"}

# Writing one of these zeroes the other (mm/util.c).
PARTNER = {RATIO: KBYTES, KBYTES: RATIO}

_INT_MIN = -(2 ** 31)
_INT_MAX = 2 ** 31 - 1
_ULONG_MAX = 2 ** 64 - 1
_PAGE_LIMIT = 4096 - 1  # the handlers look at no more than PAGE_SIZE - 1 bytes
_TMPBUFLEN = 22  # proc_get_long copies at most TMPBUFLEN - 1 bytes
_KERNEL_SPACE = frozenset(b" \t\n\v\f\r\xa0")  # lib/ctype.c marks 0xA0 as space too
_TRAILERS = frozenset(b" \t\n")  # proc_wspace_sep: what may follow a number


@dataclass(frozen=True)
class Handler:
    """How the kernel reads one key: signed int or unsigned long, with an optional range."""

    name: str
    signed: bool
    minimum: Optional[int] = None
    maximum: Optional[int] = None


HANDLERS = {
    MODE: Handler("proc_dointvec_minmax (overcommit_policy_handler)", True, 0, 2),
    RATIO: Handler("proc_dointvec (overcommit_ratio_handler)", True),
    KBYTES: Handler("proc_doulongvec_minmax (overcommit_kbytes_handler)", False),
    ADMIN_RESERVE: Handler("proc_doulongvec_minmax", False),
    USER_RESERVE: Handler("proc_doulongvec_minmax", False),
    # mm/hugetlb.c hugetlb_sysctl_handler: the same number parsing (proc_doulongvec_minmax); the
    # pool then grows as far as free memory allows, which the boot model does not count on.
    NR_HUGEPAGES: Handler("proc_doulongvec_minmax (hugetlb_sysctl_handler)", False),
}
# Every key we read back from /proc/sys.
READ_HANDLERS = HANDLERS


@dataclass(frozen=True)
class KernelWrite:
    """The outcome of one write: the new values of the keys and what the caller saw."""

    key: str
    state: Dict[str, str]
    accepted: bool  # write(2) succeeded (possibly short: see ignored_tail)
    error: Optional[str]  # why it failed, e.g. "EINVAL: '08' is not a number the kernel reads"
    took_effect: bool  # the key's value was stored (for these handlers: == accepted)
    value: Optional[str] = None  # canonical value stored, when accepted
    ignored_tail: bytes = b""  # what the kernel left unread after the number

    @property
    def zeroed(self) -> Optional[str]:
        """The partner key this write set to 0, if any."""
        return PARTNER.get(self.key) if self.accepted else None


def _to_bytes(raw: Union[str, bytes]) -> bytes:
    if isinstance(raw, bytes):
        return raw
    return raw.encode("utf-8", "surrogateescape")


def show(raw: Union[str, bytes]) -> str:
    """A printable form of a value as written, for messages (undecodable bytes as \\xNN)."""
    return _to_bytes(raw).decode("utf-8", "backslashreplace")


def _digit_value(ch: int) -> int:
    if 48 <= ch <= 57:
        return ch - 48
    if 97 <= ch <= 102:
        return ch - 87
    if 65 <= ch <= 70:
        return ch - 55
    return 99


def _is_xdigit(ch: int) -> bool:
    return _digit_value(ch) < 16


def parse_number(raw: Union[str, bytes]) -> Tuple[Optional[int], bool, Optional[str], bytes]:
    """Read one number the way proc_get_long does, leading blanks included.

    Returns (magnitude, negative, error, rest): error is None or the reason the kernel
    says EINVAL; rest is what follows the number and the blanks after it (the kernel
    leaves it unread and reports a short write).
    """
    data = _to_bytes(raw)[:_PAGE_LIMIT]
    pos = 0
    while pos < len(data) and data[pos] in _KERNEL_SPACE:
        pos += 1
    if pos == len(data):
        return None, False, "nothing but whitespace", b""
    left = len(data) - pos
    tmp = data[pos:pos + _TMPBUFLEN - 1]
    p = 0
    negative = tmp[:1] == b"-" and left > 1
    if negative:
        p = 1
    if p >= len(tmp) or not 48 <= tmp[p] <= 57:
        return None, negative, "the kernel wants a digit (or '-' and a digit) first", b""
    base = 10
    if tmp[p] == 48:  # a leading 0 means octal, or hex after 0x
        if p + 2 < len(tmp) and tmp[p + 1] in b"xX" and _is_xdigit(tmp[p + 2]):
            base = 16
            p += 2
        else:
            base = 8
    magnitude = 0
    while p < len(tmp) and _digit_value(tmp[p]) < base:
        magnitude = magnitude * base + _digit_value(tmp[p])
        if magnitude > _ULONG_MAX:
            return None, negative, "the number does not fit in 64 bits", b""
        p += 1
    if p == _TMPBUFLEN - 1:
        return None, negative, "21 or more characters for one number", b""
    if p < left and tmp[p] not in _TRAILERS:
        return None, negative, "%s follows the number (only space, tab or newline may)" % _char(tmp[p]), b""
    rest = data[pos + p:]
    k = 0
    while k < len(rest) and rest[k] in _KERNEL_SPACE:
        k += 1
    return magnitude, negative, None, rest[k:]


def _char(ch: int) -> str:
    return repr(bytes([ch]).decode("latin-1")) if 32 <= ch < 127 else "byte 0x%02x" % ch


def _convert(handler: Handler, magnitude: int, negative: bool) -> Tuple[Optional[int], Optional[str]]:
    """The conv step: the value stored, or why the handler refuses it."""
    if not handler.signed:
        if negative:
            return None, "an unsigned handler rejects any '-', even -0"
        value = magnitude
    elif negative:
        if magnitude > _INT_MAX + 1:
            return None, "the value does not fit a 32-bit int"
        value = -magnitude
    else:
        if magnitude > _INT_MAX:
            return None, "the value does not fit a 32-bit int"
        value = magnitude
    if handler.minimum is not None and value < handler.minimum:
        return None, "below the handler's minimum %d" % handler.minimum
    if handler.maximum is not None and value > handler.maximum:
        return None, "above the handler's maximum %d" % handler.maximum
    return value, None


def kernel_write(state: Mapping[str, Optional[str]], key: str, raw: Union[str, bytes]) -> KernelWrite:
    """The values of the keys after writing ``raw`` (the exact write buffer) to ``key``.

    ``state`` holds the current canonical values; managed keys missing from it (or None) are
    taken from KERNEL_BOOT_DEFAULTS, and its other tracked keys are kept as they are (a
    boot-memory key it lacks is added only when written). A trailing newline in ``raw`` is
    whitespace to the kernel, so callers may pass the value with or without it.
    """
    if key not in HANDLERS:
        raise ValueError("%s is not a key this model knows; known: %s" % (key, ", ".join(TRACKED_KEYS)))
    new = {k: (state.get(k) if state.get(k) is not None else KERNEL_BOOT_DEFAULTS[k]) for k in MANAGED_KEYS}
    new.update((k, v) for k, v in state.items() if k in BOOT_MEMORY_KEYS and v is not None)
    handler = HANDLERS[key]
    data = _to_bytes(raw)
    magnitude, negative, error, rest = parse_number(data)
    value = None  # type: Optional[int]
    if error is None:
        value, error = _convert(handler, magnitude, negative)  # type: ignore[arg-type]
    if error is not None or value is None:
        return KernelWrite(key, new, False, "EINVAL: %s is rejected: %s" % (_quote(data), error), False)
    text = str(value)
    new[key] = text
    if key in PARTNER:
        new[PARTNER[key]] = "0"
    return KernelWrite(key, new, True, None, True, text, rest)


def _quote(data: bytes) -> str:
    return "'%s'" % show(data.rstrip(b"\n"))


def canonical_or_none(raw: Union[str, bytes], key: str) -> Optional[str]:
    """The value the kernel would store for ``raw`` at ``key``, or None if it rejects it."""
    result = kernel_write(KERNEL_BOOT_DEFAULTS, key, raw)
    return result.value if result.accepted else None


def read_back(key: str, raw: Union[str, bytes]) -> Optional[str]:
    """The canonical value a read of /proc/sys/<key> shows, or None when ``raw`` is not what the
    kernel prints for that key (it prints one number in decimal and a newline).

    Read with the same parser and the same handler as a write of the key, so a value read back
    compares with a value written: one model of how the kernel reads a number.
    """
    if key not in READ_HANDLERS:
        raise ValueError("%s is not a key this model reads; known: %s" % (key, ", ".join(READ_HANDLERS)))
    magnitude, negative, error, rest = parse_number(raw)
    if error is not None or rest or magnitude is None:
        return None
    value, error = _convert(READ_HANDLERS[key], magnitude, negative)
    return None if error is not None else str(value)


_ALLOWED_FORM = "write a plain decimal number (digits only, no sign, blanks, leading zeros or base prefix; e.g. 87)"


def plain_decimal(key: str, value: object) -> str:
    """A desired value for ``key`` (from a user, the planner, a plan's end state) as we write it.

    The one rule for values we are asked to write: a non-negative int, or a string of plain
    decimal digits. Nothing is reinterpreted: a form the kernel reads differently from its
    decimal meaning, or refuses ("010" is 8 to the kernel, "087" and "+87" are EINVAL), and every
    other form (" 87", "0x57", "-1") is refused with ValueError naming the key, the allowed form
    and what the kernel would make of it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("%s = %r is refused: a non-negative integer or a string of decimal digits is needed"
                         % (key, value))
    text = str(value)
    if PLAIN_DECIMAL.match(text):
        return text
    reading = canonical_or_none(text, key) if key in HANDLERS else None
    what = "would read %r as %s" % (text, reading) if reading is not None else "would refuse %r" % text
    raise ValueError("%s = %r is refused: %s; the kernel %s" % (key, text, _ALLOWED_FORM, what))
