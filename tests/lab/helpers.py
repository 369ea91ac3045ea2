"""Guest-side helpers shared by the lab tests: memory hogs, overcommit settings and
predictions from the product's CommitLimit formula."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from umlab import Lab, LabError

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_fields

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

    def stop(self, lab: Lab, timeout_s: float = 30) -> None:
        """SIGKILL, then wait until the process is gone: its commit leaves Committed_AS only when
        its memory is torn down, and a test that sizes the next holder from Committed_AS must not
        count it."""
        lab.run(self.guest, f"kill -KILL {self.pid}; for _ in $(seq {int(timeout_s * 10)}); do"
                            f" kill -0 {self.pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
                timeout=timeout_s + 10)


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


# --- the end state of our drop-ins and live values (concurrency and kill suites) ---------

MANAGED_KEYS = OVERCOMMIT_KEYS[:4]   # what the module writes; user_reserve is only read
OUR_DROPIN_NAME = re.compile(r"^[0-9]{2}-dbfleet-overcommit\.conf$")   # any priority: all are ours
TEMP_FILE_NAME = re.compile(r"^\.dbfleet-.*\.tmp$")   # the module's temporary files in /etc/sysctl.d
LOCK_FILE = "/run/dbfleet-memory-overcommit.lock"


@dataclass
class OvercommitState:
    """What a guest holds right now: our drop-ins (name -> text), stray temporary files,
    the live managed values and the kernel's CommitLimit."""

    dropins: dict[str, str]
    temp_files: list[str]
    live: dict[str, int]
    commit_limit_kb: int

    def describe(self) -> str:
        live = ", ".join(f"{key.split('.')[1]}={self.live[key]}" for key in MANAGED_KEYS)
        return (f"drop-ins {sorted(self.dropins) or 'none'}, temp files {self.temp_files or 'none'}; "
                f"live {live}; CommitLimit {self.commit_limit_kb} kB")


def read_overcommit_state(lab: Lab, guest: str) -> OvercommitState:
    names = lab.run(guest, "ls -A /etc/sysctl.d").stdout.split()
    dropins = {name: lab.run(guest, f"cat /etc/sysctl.d/{name}").stdout
               for name in names if OUR_DROPIN_NAME.match(name)}
    return OvercommitState(dropins, [n for n in names if TEMP_FILE_NAME.match(n)],
                           read_overcommit(lab, guest), lab.meminfo(guest)["CommitLimit"])


def dropin_values(text: str) -> dict[str, int]:
    """The `key = value` lines of our drop-in (the module renders exactly that form)."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = int(value)
    return values


def dropin_commit_limit_kb(text: str) -> int | None:
    """The CommitLimit the plan in the drop-in's header promises (mode 2 plans only)."""
    match = re.search(r"^#.*CommitLimit (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def consistency_problems(state: OvercommitState, boot_values: dict[str, int]) -> list[str]:
    """Why this end state is not one a finished run of ours can leave, or [] if it is:
    at most one drop-in; with one, the live values and CommitLimit are its plan; with
    none, the live values are the guest's boot values; no temporary file left."""
    problems = []
    if len(state.dropins) > 1:
        problems.append(f"{len(state.dropins)} drop-ins of ours: {sorted(state.dropins)}")
    if state.temp_files:
        problems.append(f"temporary files left in /etc/sysctl.d: {state.temp_files}")
    if len(state.dropins) == 1:
        (name, text), = state.dropins.items()
        for key, value in dropin_values(text).items():
            if state.live[key] != value:
                problems.append(f"{name} says {key} = {value}, live is {state.live[key]}")
        promised_kb = dropin_commit_limit_kb(text)
        if promised_kb is None:
            problems.append(f"{name} has no CommitLimit in its header:\n{text}")
        elif state.commit_limit_kb != promised_kb:
            problems.append(f"{name} plans CommitLimit {promised_kb} kB, the kernel shows {state.commit_limit_kb} kB")
    elif not state.dropins:
        for key in MANAGED_KEYS:
            if state.live[key] != boot_values[key]:
                problems.append(f"no drop-in, but live {key} is {state.live[key]}, {boot_values[key]} at boot")
    return problems


def lockout_problems(lab: Lab, guest: str) -> list[str]:
    """Why someone would be locked out of the guest, or []: a non-root process must start
    (the kernel holds admin_reserve_kbytes back from it in mode 2) and a new SSH login
    (sshd forks a session) must run a command."""
    problems = []
    as_nobody = lab.run(guest, "runuser -u nobody -- /bin/true", check=False, timeout=60)
    if as_nobody.returncode != 0:
        problems.append(f"a process as nobody cannot start: exit {as_nobody.returncode} {as_nobody.stderr.strip()!r}")
    try:
        login = lab.run(guest, "echo login-ok", new_connection=True, check=False, timeout=60)
    except LabError as exc:
        problems.append(f"a new SSH login hung: {exc}")
    else:
        if login.stdout.strip() != "login-ok":
            problems.append(f"a new SSH login failed: exit {login.returncode} {login.stderr.strip()!r}")
    return problems
