# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read every file systemd-sysctl or ``sysctl --system`` may read, safely, as bytes.

The host I/O half of the boot replay (sysctl_replay decides what the tools make of
it). Which tool reads which directory is a rule of sysctl_replay.ToolRules; this
module reads the union, so one read serves every rule set:

* ``*.conf`` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d,
  /usr/lib/sysctl.d and /lib/sysctl.d (procps reads all five; systemd 252 as built
  by Debian 12 and 257 read the first four), hidden names included (procps reads
  them, systemd skips them);
* /etc/sysctl.conf (procps reads it last; systemd only through a symlink such as
  Debian 12's /etc/sysctl.d/99-sysctl.conf).

Never blocks and never traces back on odd content:

* data is raw bytes: the tools do not decode, so neither do we;
* the links of a name are followed here (in logical space, regular_file.resolve_links),
  and the file at the end is read by regular_file's one rule: only a regular file is
  opened, never blocking, at most ``files.MAX_FILE_BYTES``. A FIFO named ``99-x.conf`` would
  hang both tools (and, before this module, our own module) in open(2); it is reported
  as ``skipped`` with the reason;
* a symlink chain that ends at /dev/null is ``masked``; a dangling link, a
  directory, a device or a socket is ``skipped`` with ``kind`` saying which, because
  the tools differ in what they then do (see sysctl_replay).

``host_path`` maps a logical path ("/etc/sysctl.d/x.conf") to where it is on this
machine; unit tests point it into a temporary tree. Symlinks inside the tree are
followed in logical space, so an absolute link target stays inside the tree.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

# Every directory either tool reads, highest priority first.
SYSCTL_D_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
DEV_NULL = rf.DEV_NULL

STATUS_FILE = "file"
STATUS_MASKED = "masked"
STATUS_SKIPPED = "skipped"

# kind: what the node is, so each tool's rule can say what it does with it. The node types are
# regular_file's; the rest is what following links and reading can add.
KIND_REGULAR = rf.KIND_REGULAR
KIND_FIFO = rf.KIND_FIFO
KIND_CHAR_DEVICE = rf.KIND_CHAR_DEVICE
KIND_BLOCK_DEVICE = rf.KIND_BLOCK_DEVICE
KIND_SOCKET = rf.KIND_SOCKET
KIND_DIRECTORY = rf.KIND_DIRECTORY
KIND_DEV_NULL = "dev-null"
KIND_DANGLING = "dangling"  # a symlink whose target does not exist
KIND_UNREADABLE = "unreadable"  # open or read failed (EACCES, ELOOP, EIO, ...)
KIND_TOO_LARGE = "too-large"


@dataclass(frozen=True)
class SysctlSource:
    """One ``*.conf`` entry (or /etc/sysctl.conf) as found on the host."""

    path: str  # logical path, e.g. /etc/sysctl.d/99-sysctl.conf
    data: Optional[bytes]  # the bytes a tool would read (None unless status is "file")
    status: str  # "file" | "masked" | "skipped"
    note: Optional[str] = None  # why masked or skipped, for messages
    kind: str = KIND_REGULAR
    target: Optional[str] = None  # where the symlinks end, every component's followed (logical path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path)


def read_source(logical: str, host_path: Callable[[str], str]) -> SysctlSource:
    """Read one file without ever blocking; see the module docstring for the statuses."""
    final, problem = rf.resolve_links(logical, host_path)
    if problem is None and final != DEV_NULL:
        # Through linked directories too: the bytes come from the file at the end of every link,
        # and that is the file a takeover would edit (sysctl.d under /etc may lead into /usr).
        final, problem = rf.resolve_all_links(logical, host_path)
    target = final if final != logical else None
    if final == DEV_NULL:
        return SysctlSource(logical, None, STATUS_MASKED, "symlink to /dev/null", KIND_DEV_NULL, target)
    if problem == "dangling":
        return SysctlSource(logical, None, STATUS_SKIPPED, "dangling symlink to %s" % final, KIND_DANGLING, target)
    if problem is not None:
        return SysctlSource(logical, None, STATUS_SKIPPED, "cannot resolve: %s" % problem, KIND_UNREADABLE, target)
    # The cap of the files we write (files.MAX_FILE_BYTES): a file a takeover may edit is read
    # whole or not at all, and far beyond any sysctl file, it keeps a hostile one from exhausting memory.
    got = rf.read_regular_file(host_path(final), files.MAX_FILE_BYTES)
    if got.status == rf.STATUS_READ:
        return SysctlSource(logical, got.data, STATUS_FILE, "empty file" if not got.data else None, KIND_REGULAR,
                            target)
    if got.status == rf.STATUS_NOT_REGULAR:
        if got.kind == KIND_CHAR_DEVICE and got.node is not None and got.node.st_rdev == os.makedev(1, 3):
            return SysctlSource(logical, None, STATUS_MASKED, "the /dev/null device", KIND_DEV_NULL, target)
        return SysctlSource(logical, None, STATUS_SKIPPED, got.reason, got.kind or KIND_UNREADABLE, target)
    if got.status == rf.STATUS_TOO_LARGE:
        return SysctlSource(logical, None, STATUS_SKIPPED, got.reason, KIND_TOO_LARGE, target)
    # Unreadable, or gone since the links were followed.
    return SysctlSource(logical, None, STATUS_SKIPPED, got.reason or "gone while being read", KIND_UNREADABLE,
                        target)


def read_sysctl_sources(host_path: Callable[[str], str]) -> Dict[str, SysctlSource]:
    """Every ``*.conf`` in SYSCTL_D_DIRS and /etc/sysctl.conf, keyed by logical path.

    A missing directory or /etc/sysctl.conf is simply absent from the result.
    """
    sources = {}  # type: Dict[str, SysctlSource]
    for directory in SYSCTL_D_DIRS:
        try:
            names = sorted(os.listdir(host_path(directory)))
        except OSError:
            continue
        for name in names:
            if isinstance(name, bytes):  # pragma: no cover - listdir of a str path returns str
                name = name.decode("utf-8", "surrogateescape")
            if not name.endswith(".conf"):
                continue
            logical = directory + "/" + name
            sources[logical] = read_source(logical, host_path)
    if os.path.lexists(host_path(SYSCTL_CONF)):
        sources[SYSCTL_CONF] = read_source(SYSCTL_CONF, host_path)
    return sources
