"""Commands on this machine, and whether it can run the lab at all.

Every command the lab starts here - ip, ethtool, mkswap, ssh, ansible-playbook - runs in
a process group of its own under a deadline; one that hangs is killed together with its
children (ssh, Ansible's workers) and becomes a LabError. check_host fails loudly when
this machine lacks root, UML or a tool: the lab is never skipped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from typing import Mapping, Sequence

from .errors import LabError
from .timeouts import HOST_COMMAND_TIMEOUT_S
from .uml import UML_BINARY


def run_bounded(argv: Sequence[str], *, timeout_s: float, what: str, input_text: str | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs argv (text in and out) in a process group of its own and, if it has not
    finished after timeout_s, kills the whole group - ssh, or ansible-playbook with
    its workers and their ssh children - and raises LabError naming `what`, the time
    and the output so far. (subprocess.run's timeout kills only the direct child.)"""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=None if env is None else dict(env), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            # Someone outside the group holds the pipes: an SSH control master that
            # was handed them by the killed client, until the guest's command ends.
            proc.wait()
            stdout, stderr = "", "(not collected: the pipes are still held open)"
        raise LabError(f"{what}: no result after {timeout_s:g} s, killed.\n"
                       f"stdout so far: {_tail(stdout)}\nstderr so far: {_tail(stderr)}") from None
    except BaseException:   # KeyboardInterrupt too: leave no ssh behind
        _kill_group(proc)
        proc.wait()
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(text: str | None, chars: int = 2000) -> str:
    text = (text or "").strip()
    return text if len(text) <= chars else "..." + text[-chars:]


def run_host(argv: Sequence[str], *, check: bool = True, timeout: float = HOST_COMMAND_TIMEOUT_S,
             input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a host command, capturing text output; raises LabError with stderr on failure."""
    proc = run_bounded(argv, timeout_s=timeout, what=shlex.join(argv), input_text=input_text)
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def check_host() -> None:
    """Fails loudly (never skips) when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, taps); run as root")
    if not os.access(UML_BINARY, os.X_OK):
        raise LabError(f"{UML_BINARY} missing: run scripts/system-deps.sh (user-mode-linux)")
    for tool in ("ip", "ssh", "ssh-keygen", "mkswap", "ethtool"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} missing: run scripts/system-deps.sh")
