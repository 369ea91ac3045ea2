"""A guest's kernel as processes on this machine: User-mode Linux.

Its command line (disks, RAM, console, network, what lab-setup in the guest reads),
its management console (mconsole), and powering it off so that none of its processes
remain. UML_BINARY is Debian's user-mode-linux kernel unless DBFLEET_UML names another.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LabError

if TYPE_CHECKING:   # only for annotations: at run time it would be a cycle (guests -> network -> host -> uml)
    from .guests import Guest

UML_BINARY = os.environ.get("DBFLEET_UML", "/usr/bin/linux.uml")


def kernel_argv(guest: Guest, *, uml_dir: Path, cow: Path, image: Path, swap: Path | None,
                pubkey: str) -> list[str]:
    """The UML command line of one boot: `cow` over the shared read-only `image` as its
    root disk, `swap` (if any) as its second disk, `uml_dir` for its pid and mconsole
    files, and `pubkey` for root's SSH login."""
    argv = [UML_BINARY,
            f"umid={guest.name}", f"uml_dir={uml_dir}",
            f"ubd0={cow},{image}",
            f"mem={guest.spec.mem_mb}M"]
    if swap is not None:
        argv.append(f"ubd1={swap}")
    argv += [
        "root=/dev/ubda", "rw",
        # The kernel's and systemd's console goes to our stdout (the console log):
        # `quiet` keeps only errors there, e.g. the OOM killer's report.
        "con=null", "con0=null,fd:1", "ssl=null", "quiet",
        "lsm=capability",            # no SELinux/AppArmor policy to look for at boot
        # A fixed MAC per guest: after a power-cycle the netns's ARP entry stays
        # right (with a random MAC, SSH probes vanish for ~30 s until it expires).
        f"vec0:transport=tap,ifname={guest.tap},mac={guest.mac}",
        f"systemd.hostname={guest.name}",
        # Read by lab-setup.service in the guest (tests/lab/image/overlay):
        f"lab.ip={guest.ip}/24", f"lab.key={pubkey}",
    ]
    return argv + list(guest.spec.kernel_args)   # last: a test's own parameters (GuestSpec)


def mconsole(sock_path: Path, command: str, timeout_s: float = 5.0) -> str:
    """Sends one command to a guest's UML management console (the protocol of
    uml_mconsole: a datagram to DIR/UMID/mconsole, replies to our bound socket)."""
    magic, version, max_data = 0xCAFEBABE, 2, 512
    data = command.encode()
    with tempfile.TemporaryDirectory(prefix="mc", dir="/tmp") as tmp:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            client.bind(os.path.join(tmp, "c"))
            client.settimeout(timeout_s)
            client.sendto(struct.pack(f"=III{max_data}s", magic, version, len(data), data), str(sock_path))
            out = b""
            while True:
                reply = client.recv(12 + max_data)
                err, more, length = struct.unpack("=III", reply[:12])
                out += reply[12:12 + length]
                if not more:
                    break
        finally:
            client.close()
    text = out.rstrip(b"\0").decode(errors="replace")
    if err:
        raise LabError(f"mconsole {command}: {text}")
    return text


def pid_alive(pid: int) -> bool:
    """True while pid runs (a zombie, i.e. an exited but unreaped UML, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _session_pids(sid: int) -> list[int]:
    """All processes in session sid. UML puts itself and its helper processes (one
    per guest address space) in a session of its own, led by the pid it records."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == sid:  # fields after comm: state ppid pgrp session
            pids.append(int(entry.name))
    return pids


def kill_uml(pid: int, mconsole_path: Path | None) -> None:
    """Powers a guest off hard (like pulling the plug) and makes sure no process of
    it remains. A SIGKILL to the main UML process alone leaves its helper processes
    behind, so: mconsole `halt` (UML then cleans up after itself), and SIGKILL to
    every process of its session if anything is still there after a few seconds."""
    if mconsole_path is not None and mconsole_path.exists() and pid_alive(pid):
        try:
            mconsole(mconsole_path, "halt", timeout_s=3)
        except (OSError, LabError):
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _session_pids(pid) and any(pid_alive(p) for p in _session_pids(pid)):
        time.sleep(0.1)
    for leftover in _session_pids(pid):
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass
