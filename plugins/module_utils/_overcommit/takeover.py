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

import hashlib
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Set, Tuple

MARKER = b"# dbfleet.memory overcommit takeover, was: "
EDITABLE_PREFIXES = ("/etc/",)
# tuned's own profiles come with the package: those under /usr/lib/tuned are never edited.
VENDOR_PREFIXES = ("/usr/", "/lib/", "/run/")

# The ledger: our drop-in lists every line it took over, so that state=absent puts back exactly
# those. A marked line that no drop-in of ours lists (copied from another host, typed by hand) is
# not ours to un-comment.
LEDGER_PREFIX = "# took over: "
_LEDGER_LINE = re.compile(r"^# took over: ([0-9a-f]{16}) (.*)$")


def is_editable(path: str) -> bool:
    """Whether takeover may edit this file: ``path`` must be fully resolved (every symlink of
    every component followed), or a link under /etc could lead the edit into /usr."""
    return path.startswith(EDITABLE_PREFIXES) and not path.startswith(VENDOR_PREFIXES)


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


def digest(path: str, marked_line: bytes) -> str:
    """What identifies one line we took over: the file and the marked line, byte for byte."""
    body = marked_line.rstrip(b"\r\n")
    return hashlib.sha256(path.encode("utf-8", "surrogateescape") + b"\0" + body).hexdigest()[:16]


def marks(data: bytes, path: str) -> List[str]:
    """The digests of the marked lines of one file, in file order."""
    return [digest(path, line) for line in data.splitlines() if line.startswith(MARKER)]


@dataclass(frozen=True)
class Restored:
    data: bytes
    restored: int  # marked lines put back: ours, by the ledger
    left: int  # marked lines left as they are: no ledger of ours lists them


def restore(data: bytes, path: str, recorded: Set[str]) -> Restored:
    """``data`` with every line we took over (its digest in ``recorded``) put back."""
    restored = left = 0
    out: List[bytes] = []
    for line in data.splitlines(True):
        if line.startswith(MARKER) and digest(path, line) in recorded:
            out.append(line[len(MARKER):])
            restored += 1
        else:
            left += line.startswith(MARKER)
            out.append(line)
    return Restored(b"".join(out), restored, left)


def has_marks(data: bytes) -> bool:
    return any(line.startswith(MARKER) for line in data.splitlines())


def ledger_lines(entries: Mapping[str, str]) -> List[str]:
    """The drop-in's ledger, {digest: path}, one comment line each, sorted so a re-run renders
    the same file. The path is shown with non-printable characters escaped; the digest decides."""
    return ["%s%s %s" % (LEDGER_PREFIX, key, entries[key].encode("unicode_escape").decode("ascii"))
            for key in sorted(entries)]


def parse_ledger(dropin: bytes) -> Dict[str, str]:
    """{digest: path as shown} of the lines a drop-in of ours says it took over."""
    out: Dict[str, str] = {}
    for line in dropin.decode("utf-8", "replace").splitlines():
        found = _LEDGER_LINE.match(line)
        if found:
            out[found.group(1)] = found.group(2)
    return out


def ledger_after(previous: Mapping[str, str], before: Mapping[str, bytes], after: Mapping[str, bytes]) -> Dict[str, str]:
    """The ledger a run renders: the lines a drop-in of ours recorded that are still marked, plus the
    marks this run makes. ``before`` and ``after`` hold the editable files (by resolved path) as
    the run finds and leaves them. A mark that was there before and that no ledger lists is
    someone else's, and stays out."""
    out: Dict[str, str] = {}
    for path, data in after.items():
        made_now = set(marks(data, path)) - set(marks(before.get(path, b""), path))
        for key in marks(data, path):
            if key in previous or key in made_now:
                out[key] = path
    return out


def restore_all(files: Mapping[str, bytes], recorded: Set[str]) -> Tuple[Dict[str, Restored], List[str]]:
    """Per editable file with marks: what putting back our lines gives; and one note per file
    whose marks no ledger of ours lists (left as they are)."""
    out: Dict[str, Restored] = {}
    notes: List[str] = []
    for path in sorted(files):
        if not has_marks(files[path]):
            continue
        result = restore(files[path], path, recorded)
        out[path] = result
        if result.left:
            notes.append("%s has %d line(s) marked as taken over by dbfleet.memory that no drop-in of ours "
                         "records: left commented out; put them back by hand if they are wanted" % (path, result.left))
    return out, notes
