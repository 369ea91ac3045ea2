"""SSH into the guests: the options of every connection, the long-lived root shell
that keeps working when a guest can no longer start processes, and closing a control
master. (The ssh command lines themselves are Lab.ssh_argv: they need the lab's key
and namespace.)
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import LabError
from .host import run_host
from .timeouts import SHELL_COMMAND_TIMEOUT_S, SHELL_OPEN_TIMEOUT_S

SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",       # one throwaway host key for every guest
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
    # A dead guest's control master must not linger: notice within ~6 s.
    "-o", "ServerAliveInterval=2",
    "-o", "ServerAliveCountMax=3",
]


class GuestShell:
    """A long-lived interactive `bash` on a guest, fed through stdin (stderr merged
    into stdout). Each `run` is followed by a marker line carrying `$?`, so the output
    of one command can be read without the guest starting any process."""

    _MARK = "__LAB_DONE__"

    def __init__(self, guest: str, argv: list[str]) -> None:
        self.guest = guest
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, bufsize=0, start_new_session=True)
        try:
            # No prompts, no history expansion; also proves the login finished and bash answers.
            self.run("PS1= PS2= PROMPT_COMMAND=; set +H", timeout=SHELL_OPEN_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def run(self, line: str, timeout: float = SHELL_COMMAND_TIMEOUT_S) -> tuple[int, str]:
        """Runs one line in the shell (stderr merged); returns (status, output).
        Raises LabError when no answer came within `timeout` seconds."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # The marker on a line of its own: after a failed fork bash drops the rest of
        # the current line, but reads the next one.
        try:
            self._proc.stdin.write(f"{line}\necho {self._MARK}$?\n".encode())
        except BrokenPipeError as exc:
            raise LabError(f"{self.guest}: shell is gone, cannot run `{line}`") from exc
        buf = b""
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while True:
            match = re.search(rf"{self._MARK}(\d+)\n".encode(), buf)
            if match:
                return int(match.group(1)), buf[:match.start()].decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise LabError(f"{self.guest}: shell `{line}` gave no answer after {timeout:g} s; got {buf!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise LabError(f"{self.guest}: shell closed while running `{line}`; got {buf!r}")
            buf += chunk

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc.wait(timeout=10)

    def __enter__(self) -> "GuestShell":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def exit_master(netns: str, control_path: Path) -> None:
    """Asks an SSH control master to exit; one that does not answer is left to die
    with its guest (halting the guest closes its connection)."""
    try:
        run_host(["ip", "netns", "exec", netns, "ssh", "-o", f"ControlPath={control_path}", "-O", "exit", "x"],
                 check=False, timeout=10)
    except LabError as exc:
        print(f"umlab: {exc}", file=sys.stderr)
