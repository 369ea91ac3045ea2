"""Killing the overcommit module at a chosen point of its apply step, on a lab guest.

A run can die at any instruction: `kill -9`, the OOM killer, a lost SSH session taking the
process group, a power cut. No rollback runs then. The module runs as Ansible ships it: the
AnsiballZ payload of a real role run, exploded on the guest, started by guest/kill_at.py,
which SIGKILLs it right after the chosen call (see that file for the steps).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from role_runner import PLAYBOOK
from umlab import Lab

WORKDIR = "/root/kill-lab"
KILL_AT = (Path(__file__).parent / "guest" / "kill_at.py").read_text()
LOG_PREFIX = "kill_at: "   # kill_at.py's lines on stderr (the shell adds its own "Killed" line)


def exploded_payload(lab: Lab, host: str, role_vars: dict[str, Any]) -> str:
    """The module exactly as Ansible sends it: a role run with ANSIBLE_KEEP_REMOTE_FILES=1
    (and no pipelining, so the payload is a file) leaves AnsiballZ_overcommit.py on the
    guest; `explode` unpacks it with its arguments next to it. state=absent on a clean
    guest changes nothing."""
    proc = lab.ansible_playbook(PLAYBOOK, "--limit", host, "-e", json.dumps(dict(role_vars, overcommit_state="absent")),
                                env={"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_PIPELINING": "False"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lab.run(host, f"rm -rf {WORKDIR} && mkdir {WORKDIR} && cd {WORKDIR}"
                  " && cp $(ls -t /root/.ansible/tmp/ansible-tmp-*/AnsiballZ_overcommit.py | head -1) ."
                  " && rm -rf /root/.ansible/tmp/ansible-tmp-* && python3 AnsiballZ_overcommit.py explode")
    lab.put(host, f"{WORKDIR}/kill_at.py", KILL_AT, mode="0755")
    # On disk, not only in the page cache: a test may power-cycle the guest (ext4 loses unsynced
    # new files as empty ones, and an empty kill_at.py "runs" and exits 0).
    lab.run(host, "sync")
    return f"{WORKDIR}/AnsiballZ_overcommit.py"


@dataclass
class Killed:
    status: int
    calls: list[str]   # what the module did, one line per host operation, then "KILL ..."
    stdout: str

    def __str__(self) -> str:
        return f"exit {self.status}; " + " | ".join(self.calls) + (f"; stdout {self.stdout!r}" if self.stdout else "")


def kill_module(lab: Lab, host: str, payload: str, step: str, nth: int, **module_args: object) -> Killed:
    # "; exit $?": the guest's shell reports a death by SIGKILL as 137 (ssh alone would say 255).
    command = f"python3 {WORKDIR}/kill_at.py {payload} {step} {nth} {shlex.quote(json.dumps(module_args))}; exit $?"
    proc = lab.run(host, command, check=False, timeout=120)
    calls = [line[len(LOG_PREFIX):] for line in proc.stderr.splitlines() if line.startswith(LOG_PREFIX)]
    return Killed(proc.returncode, calls, proc.stdout.strip())


def assert_killed_where_asked(killed: Killed, last_call: str, kill: str) -> None:
    """The module really died at that point (so the test is not vacuous): SIGKILL's exit
    status, no result printed, and the call log ends with that call and the kill."""
    assert killed.status == 128 + 9 and not killed.stdout, f"the module was not killed: {killed}"
    assert killed.calls[-2:-1] and killed.calls[-2].startswith(last_call), str(killed)
    assert killed.calls[-1].startswith(f"KILL {kill}"), str(killed)
