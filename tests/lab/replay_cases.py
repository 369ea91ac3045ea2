"""The planted cases of the boot-replay differential tests (shared by the UML lab test and the
namespace test of the real tools): each names the rules of issue 8 it exercises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk

# The managed keys only: the guests (UML) have no huge pages, and the tests plant and read these four.
START = {key: sk.KERNEL_BOOT_DEFAULTS[key] for key in sk.MANAGED_KEYS}
D = "/etc/sysctl.d/"
OURS = D + "90-dbfleet-overcommit.conf"


def dropin(reserve="131072", ratio=None, kbytes=None, mode="1") -> bytes:
    """A drop-in like ours. Mode 1, not 2: several cases end with ratio and kbytes both 0, which
    in mode 2 leaves a swapless guest a CommitLimit of 0 and locks it out (as on a real host)."""
    lines = ["# managed by dbfleet.memory", "vm.admin_reserve_kbytes = " + reserve]
    lines += ["vm.overcommit_ratio = " + ratio] if ratio else []
    lines += ["vm.overcommit_kbytes = " + kbytes] if kbytes else []
    lines += ["vm.overcommit_memory = " + mode]
    return ("\n".join(lines) + "\n").encode()


RATIO_DROPIN = dropin(ratio="87")
KBYTES_DROPIN = dropin(kbytes="262144")


@dataclass(frozen=True)
class Node:
    """One planted node: a file (data), a symlink (link), a FIFO or a directory."""

    path: str
    data: Optional[bytes] = None
    link: Optional[str] = None
    fifo: bool = False
    directory: bool = False


def f(path: str, data) -> Node:
    return Node(path, data=data if isinstance(data, bytes) else data.encode())


@dataclass(frozen=True)
class Case:
    name: str
    nodes: Tuple[Node, ...]
    sysctl_conf: Optional[bytes] = None  # replaces /etc/sysctl.conf for the case
    drop_debian_link: bool = False  # remove /etc/sysctl.d/99-sysctl.conf (Debian 13 layout)
    rules: List[str] = field(default_factory=list)  # the rules this case exercises (for the report)


OUR = f(OURS, RATIO_DROPIN)

CASES = [
    Case("pair-later-kbytes-0", (OUR, f(D + "95-tuning.conf", "vm.overcommit_kbytes = 0\n")),
         rules=["item 1: kbytes=0 zeroes the ratio (procps)", "systemd skips an unchanged write"]),
    Case("pair-ratio-in-sysctl-conf-vs-kbytes-plan", (f(OURS, KBYTES_DROPIN),),
         sysctl_conf=b"# seed advice\nvm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n",
         rules=["item 1: a ratio line zeroes kbytes", "99-sysctl.conf link (systemd)", "sysctl.conf last (procps)"]),
    Case("pair-kbytes-0-vs-kbytes-plan",
         (f(OURS, KBYTES_DROPIN), f(D + "95-tuning.conf", "vm.overcommit_kbytes = 0\n")),
         rules=["systemd: later value replaces ours, unchanged write skipped"]),
    Case("same-value-repeat-keeps-earlier-place",
         (OUR, f(D + "95-vendor.conf", "vm.overcommit_kbytes = 1048576\n"),
          f(D + "99-local.conf", "vm.overcommit_ratio = 87\n")),
         rules=["systemd one entry per key, same value keeps its place"]),
    Case("two-own-drop-ins", (f(D + "90-dbfleet-overcommit.conf", dropin(reserve="65536", ratio="70")),
                              f(D + "95-dbfleet-overcommit.conf", RATIO_DROPIN)),
         rules=["item 8: the later own drop-in decides"]),
    Case("mask-dev-null-empty-dangling-directory", (
        OUR,
        f("/usr/lib/sysctl.d/95-a.conf", "vm.overcommit_ratio = 51\n"), Node(D + "95-a.conf", link="/dev/null"),
        f("/usr/lib/sysctl.d/95-b.conf", "vm.overcommit_ratio = 52\n"), f(D + "95-b.conf", b""),
        f("/usr/lib/sysctl.d/95-c.conf", "vm.overcommit_ratio = 53\n"), Node(D + "95-c.conf", link="/nonexistent"),
        f("/usr/lib/sysctl.d/95-d.conf", "vm.overcommit_ratio = 54\n"), Node(D + "95-d.conf", directory=True)),
        rules=["same name above hides below: /dev/null, empty, dangling, directory"]),
    Case("run-and-usr-local-lib", (
        OUR, f("/run/sysctl.d/96-run.conf", "vm.overcommit_ratio = 60\n"),
        f("/usr/lib/sysctl.d/97-x.conf", "vm.overcommit_memory = 0\n"),
        f("/usr/local/lib/sysctl.d/97-x.conf", "vm.overcommit_memory = 1\n")),
        rules=["/run/sysctl.d read", "/usr/local/lib beats /usr/lib"]),
    Case("hidden-file", (f(D + ".hidden.conf", "vm.overcommit_ratio = 40\n"),),
         rules=["hidden names: procps only"]),
    Case("key-spellings", (OUR, f(D + "95-spell.conf",
                                  "vm.overcommit_ratio. = 62\n- vm.overcommit_memory = 1\n"
                                  ".vm..admin_reserve_kbytes = 65536\n")),
         rules=["trailing separator", "blank after '-'", "leading and repeated separators"]),
    Case("values-as-the-kernel-reads-them", (OUR, f(D + "95-values.conf",
                                                    "vm.overcommit_ratio = 060\nvm.overcommit_memory = 2#strict\n"
                                                    "vm.admin_reserve_kbytes = 0x10000 # hex\n")),
         rules=["octal", "glued comment is EINVAL and cancels ours (systemd)", "hex with a comment after a blank"]),
    Case("quoted-value", (OUR, f(D + "95-q.conf", 'vm.overcommit_ratio = "87"\n')),
         rules=["quotes are not removed"]),
    Case("zero-with-comment", (f(OURS, KBYTES_DROPIN), f(D + "95-z.conf", "vm.overcommit_ratio = 0 # default\n")),
         rules=["'0 # default' sets 0 and zeroes kbytes"]),
    Case("glob-hits-kbytes", (OUR, f(D + "99-globs.conf", "vm.overcommit_* = 1\n")),
         rules=["explicit beats glob", "glob writes kbytes, ratio zeroed"]),
    Case("glob-with-exclusion", (OUR, f(D + "10-globs.conf", "vm.overcommit_* = 1\n-vm.overcommit_kbytes\n")),
         rules=["exclusion line", "explicit beats an earlier glob"]),
    Case("glob-exclusion-by-pattern", (OUR, f(D + "99-globs.conf", "vm.overcommit_* = 1\n-vm.overcommit_k*\n")),
         rules=["pattern exclusion (procps >= 4.0.5 only)"]),
    Case("negative-entry", (OUR, f(D + "95-neg.conf", "-vm.overcommit_ratio\nvm.overcommit_ratio\n")),
         rules=["negative entry cancels ours (systemd)", "line without '='"]),
    Case("not-utf8", (OUR, f(D + "95-latin1.conf", b"# r\xe9glage\nvm.overcommit_ratio = 10\n"
                                                   b"vm.overcommit_memory = 1\xa0\n")),
         rules=["Latin-1 bytes", "0xA0 glued to a value"]),
    Case("line-ends", (OUR, f(D + "95-cr.conf", b"vm.overcommit_memory = 0\rvm.overcommit_ratio = 10\r"),
                       f(D + "96-nul.conf", b"vm.admin_reserve_kbytes = 65536\0vm.overcommit_kbytes = 5\n"),
                       f(D + "97-crlf.conf", b"vm.overcommit_ratio = 11\r\n"),
                       f(D + "98-vt.conf", b"vm.admin_reserve_kbytes = 32768\v\n")),
         rules=["lone CR", "NUL", "CRLF", "vertical tab"]),
    Case("sysctl-conf-without-link", (OUR,), sysctl_conf=b"vm.overcommit_memory = 0\n", drop_debian_link=True,
         rules=["sysctl.conf only via the link (systemd), always last (procps)"]),
    Case("fifo-hangs-both", (OUR, Node(D + "99-fifo.conf", fifo=True)),
         rules=["FIFO: the tool blocks, nothing is applied"]),
]
