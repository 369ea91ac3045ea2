"""Guest-side helpers shared by the lab tests: memory hogs, overcommit settings and
predictions from the product's CommitLimit formula."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from umlab import Lab, LabError

from ansible_collections.dbfleet.memory.plugins.module_utils.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import memory_from_fields

MEMHOG_SOURCE = (Path(__file__).parent / "guest" / "memhog.py").read_text()
MEMHOG = "/usr/local/bin/memhog.py"   # not under /root (0700): nobody runs it
# For pkill -f: the brackets keep the pattern from matching the shell that runs pkill.
MEMHOG_PATTERN = "'[m]emhog.py'"
PAGE_KB = 4            # x86_64 (UML on x86_64 included)
MIB_KB = 1024
# Databases do not run as root. Running the stand-ins unprivileged also makes the
# kernel hold admin_reserve_kbytes back from them, as it would for a real server.
AS_NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups"
OVERCOMMIT_KEYS = ("vm.overcommit_memory", "vm.overcommit_ratio", "vm.overcommit_kbytes",
                   "vm.admin_reserve_kbytes", "vm.user_reserve_kbytes")


def install_memhog(lab: Lab, guest: str) -> None:
    lab.put(guest, MEMHOG, MEMHOG_SOURCE, mode="0755")


def expected_commit_limit_kb(meminfo: dict[str, int], ratio: int, kbytes: int) -> int:
    """CommitLimit predicted by the product's formula (commit_limit.py, the one place it
    lives) for this guest's meminfo: the lab tests that formula against a real kernel."""
    memory = memory_from_fields(meminfo, page_size_kb=PAGE_KB)
    return commit_limit_kb(memory.memtotal_kb, memory.hugetlb_kb, memory.swaptotal_kb,
                           overcommit_ratio_pct=ratio, overcommit_kbytes=kbytes, page_size_kb=PAGE_KB)


def read_overcommit(lab: Lab, guest: str) -> dict[str, int]:
    out = lab.run(guest, "sysctl " + " ".join(OVERCOMMIT_KEYS)).stdout
    return {k.strip(): int(v) for k, v in (line.split("=", 1) for line in out.splitlines())}


@dataclass
class Holder:
    """A background process holding touched anonymous memory (a buffer-pool stand-in)."""

    guest: str
    pid: int
    mb: int

    def alive(self, lab: Lab) -> bool:
        return lab.run(self.guest, f"kill -0 {self.pid}", check=False).returncode == 0


def start_holder(lab: Lab, guest: str, mb: int, tag: str = "holder", timeout_s: float = 120) -> Holder:
    """Starts memhog --hold as nobody, detached from the SSH session, and waits until
    all its pages are touched (it writes a ready file with its pid)."""
    ready = f"/tmp/{tag}.ready"
    lab.run(guest, f"rm -f {ready}; setsid -f {AS_NOBODY} python3 {MEMHOG} --mb {mb} --hold"
                   f" --ready {ready} >/tmp/{tag}.log 2>&1 </dev/null")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = lab.run(guest, f"cat {ready} 2>/dev/null || true").stdout.split()
        if out and out[0] == "READY":
            return Holder(guest, int(out[1]), mb)
        # memhog prints nothing before READY unless it failed: fail fast then.
        log = lab.run(guest, f"cat /tmp/{tag}.log", check=False).stdout
        if log.strip() and not log.startswith("READY"):
            raise LabError(f"{guest}: {tag} ({mb} MiB) failed: {log}")
        time.sleep(0.5)
    log = lab.run(guest, f"cat /tmp/{tag}.log", check=False).stdout
    raise LabError(f"{guest}: {tag} ({mb} MiB) not ready after {timeout_s} s; log: {log}")


def run_hog(lab: Lab, guest: str, mb: int, timeout_s: float = 120) -> tuple[int, str]:
    """Runs memhog (no --hold) as nobody in the foreground; returns (status, output)."""
    proc = lab.run(guest, f"{AS_NOBODY} python3 {MEMHOG} --mb {mb} 2>&1; echo EXIT=$?",
                   check=False, timeout=timeout_s)
    lines = proc.stdout.strip().splitlines()
    status = int(lines[-1].split("=", 1)[1]) if lines and lines[-1].startswith("EXIT=") else -1
    return status, "\n".join(lines[:-1]) + proc.stderr


def kill_memhogs(lab: Lab, guest: str) -> None:
    """Ends every memhog in the guest (inside the guest only; never on the host)."""
    lab.run(guest, f"pkill -KILL -f {MEMHOG_PATTERN} || true")
