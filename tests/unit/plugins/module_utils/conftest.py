"""Fixtures of the database-sizing tests (test_db_*.py): the real outputs captured in the lab.

tests/unit/fixtures/db/ holds what Debian 12's PostgreSQL 15.18 and MariaDB 10.11.18 said in a lab
guest (tests/lab/guest/capture_db_fixtures.sh), Redis 7.0.15's INFO from Debian's package, and the
/proc files of those servers; its README says which is which.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest

DB_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "db"
WRAPPER_LEN = 6  # env LC_ALL=C LANG=C timeout --kill-after=5 SECONDS


def db_text(name: str) -> str:
    path = DB_FIXTURES / name
    if name.endswith(".gz"):
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def failure(name: str) -> Tuple[int, str, str]:
    """A captured failure: (exit status, stdout, stderr) of the wrapped command."""
    base = DB_FIXTURES / "failures" / name
    return (int(Path(str(base) + ".rc").read_text()), Path(str(base) + ".out").read_text(),
            Path(str(base) + ".err").read_text())


class FakeRunner:
    """Answers wrapped commands by the first rule whose words all appear in the client's argv.

    Unanswered commands get what timeout(1) says for a missing program (status 127), so a test
    that forgets a rule reads as "no client", loudly, not as a pass.
    """

    def __init__(self, rules: Sequence[Tuple[Sequence[str], Tuple[int, str, str]]] = ()) -> None:
        self.rules: List[Tuple[Tuple[str, ...], Tuple[int, str, str]]] = [(tuple(w), a) for w, a in rules]
        self.calls: List[List[str]] = []

    def add(self, words: Sequence[str], answer: Tuple[int, str, str]) -> "FakeRunner":
        self.rules.append((tuple(words), answer))
        return self

    def __call__(self, argv: Sequence[str]) -> Tuple[int, str, str]:
        argv = list(argv)
        assert argv[:4] == ["env", "LC_ALL=C", "LANG=C", "timeout"], argv
        client = argv[WRAPPER_LEN:]
        self.calls.append(client)
        for words, answer in self.rules:
            if all(word in client for word in words):
                return answer
        return 127, "", "timeout: failed to run command '%s': No such file or directory\n" % client[0]


@pytest.fixture
def fake_runner() -> Callable[..., FakeRunner]:
    return FakeRunner


def ok(out: str) -> Tuple[int, str, str]:
    return 0, out, ""


def postgres_c_rules(text: str) -> List[Tuple[List[str], Tuple[int, str, str]]]:
    """pg15-postgres-C-installed.txt ("== NAME", the value, "rc=N") as runner rules for postgres -C."""
    rules: List[Tuple[List[str], Tuple[int, str, str]]] = []
    name: Optional[str] = None
    value: List[str] = []
    for line in text.splitlines():
        if line.startswith("== "):
            name, value = line[3:], []
        elif line.startswith("rc=") and name:
            rules.append((["-C", name], (int(line[3:]), "\n".join(value) + "\n", "")))
        else:
            value.append(line)
    return rules


def plant_process(tree, pid: int, name: str, ppid: int, uid: int, cmdline: bytes,
                  smaps: Optional[str] = None) -> None:
    """A /proc/PID of the fake host: status, cmdline and (optionally) smaps."""
    tree.file("/proc/%d/status" % pid, "Name:\t%s\nState:\tS (sleeping)\nPid:\t%d\nPPid:\t%d\nUid:\t%d\t%d\t%d\t%d\n"
              % (name, pid, ppid, uid, uid, uid, uid))
    tree.file("/proc/%d/cmdline" % pid, cmdline)
    if smaps is not None:
        tree.file("/proc/%d/smaps" % pid, smaps)


def plant_captured(tree, pid: int, as_pid: Optional[int] = None) -> None:
    """One captured process (tests/unit/fixtures/db/proc/PID) into the tree, as PID or as_pid."""
    src = DB_FIXTURES / "proc" / str(pid)
    dest = "/proc/%d" % (as_pid or pid)
    tree.file(dest + "/status", (src / "status").read_bytes())
    tree.file(dest + "/cmdline", (src / "cmdline").read_bytes())
    for name in ("smaps", "maps"):
        if (src / (name + ".gz")).exists():
            tree.file(dest + "/" + name, gzip.decompress((src / (name + ".gz")).read_bytes()))


PASSWD = ("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
          "mysql:x:102:104:MariaDB Server,,,:/nonexistent:/bin/false\n"
          "postgres:x:103:105:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n")
CAPTURED_PG = (6907, 7363, 6910, 6911, 6913)  # postmaster, a backend, checkpointer, bgwriter, walwriter
CAPTURED_MARIADB = 7315


def debian12_db_host(tree) -> Dict[str, int]:
    """The lab's db guest as captured: PostgreSQL 15/main (5 processes) and mariadbd."""
    tree.file("/etc/passwd", PASSWD)
    for pid in CAPTURED_PG + (CAPTURED_MARIADB,):
        plant_captured(tree, pid)
    tree.file("/var/lib/postgresql/15/main/postmaster.pid", db_text("postmaster.pid"))
    tree.file("/var/lib/postgresql/15/main/PG_VERSION", "15\n")
    tree.file("/proc/1/status", "Name:\tsystemd\nPPid:\t0\nUid:\t0\t0\t0\t0\n")
    tree.file("/proc/1/cmdline", b"/sbin/init\0")
    return {"postmaster": 6907, "mariadbd": CAPTURED_MARIADB}
