# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking over overcommit lines from other sysctl files, and giving them back.

Many hosts we meet carry lines copied from blog posts (``vm.overcommit_memory = 2`` and
``vm.overcommit_ratio = 100`` in /etc/sysctl.conf) that would override our drop-in at the next
boot. With ``shadowing: takeover`` such a line is commented out, never deleted: the comment keeps
the original line byte for byte after a marker, so ``state: absent`` can put it back exactly.

Only files under /etc are ever edited. Vendor files (/usr/lib, /lib) belong to packages and /run
to the running system; for those the answer stays "pick a later priority".

Works on bytes: a sysctl file need not be UTF-8, and a takeover must not re-encode it.
Pure Python, no Ansible import.
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

MARKER = b"# dbfleet.memory overcommit takeover, was: "
EDITABLE_PREFIX = "/etc/"


def is_editable(path: str) -> bool:
    """Whether takeover may edit this (resolved) file."""
    return path.startswith(EDITABLE_PREFIX)


def comment_out(data: bytes, linenos: Iterable[int]) -> bytes:
    """``data`` with the given 1-based lines replaced by a marked comment that keeps them."""
    wanted = set(linenos)
    lines = data.splitlines(True)
    out: List[bytes] = []
    for number, line in enumerate(lines, start=1):
        if number in wanted and not line.startswith(MARKER):
            body = line.rstrip(b"\r\n")
            out.append(MARKER + body + line[len(body):])
        else:
            out.append(line)
    return b"".join(out)


def restore(data: bytes) -> Tuple[bytes, int]:
    """``data`` with every line we commented out put back; and how many were."""
    count = 0
    out: List[bytes] = []
    for line in data.splitlines(True):
        if line.startswith(MARKER):
            out.append(line[len(MARKER):])
            count += 1
        else:
            out.append(line)
    return b"".join(out), count


def has_marks(data: bytes) -> bool:
    return any(line.startswith(MARKER) for line in data.splitlines())
