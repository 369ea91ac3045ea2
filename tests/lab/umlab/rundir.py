"""Labs on this machine, known from their run directories alone.

Each lab has `/run/dbfleet-lab/<name>/` (DBFLEET_LAB_RUN overrides the root) holding
its SSH key, each guest's copy-on-write disk, swap file and console log, the UML pid
and mconsole files, SSH control sockets, the Ansible inventory and `lab.json`, the
state labctl reads. From these directories alone, also for labs of other processes
that died: listing the labs, telling a stale one from a live one, destroying one
completely, and cleaning up every stale one (done before each test session).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

from .errors import LabError
from .host import run_host
from .network import NETNS_PREFIX, list_netns
from .ssh import exit_master
from .uml import kill_uml, pid_alive

RUN_ROOT = Path(os.environ.get("DBFLEET_LAB_RUN", "/run/dbfleet-lab"))


def write_state(lab_dir: Path, state: Mapping[str, Any]) -> None:
    """Replaces the lab's lab.json at once: a reader never sees half of it."""
    tmp = lab_dir / "lab.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(lab_dir / "lab.json")


def read_state(lab_dir: Path) -> dict:
    try:
        return json.loads((lab_dir / "lab.json").read_text())
    except FileNotFoundError as exc:
        raise LabError(f"no lab at {lab_dir}") from exc


def list_labs() -> list[dict]:
    """State of every lab with a run directory (dead or alive)."""
    labs = []
    if RUN_ROOT.is_dir():
        for lab_dir in sorted(RUN_ROOT.iterdir()):
            try:
                labs.append(read_state(lab_dir))
            except (LabError, json.JSONDecodeError):
                labs.append({"name": lab_dir.name, "dir": str(lab_dir), "netns": NETNS_PREFIX + lab_dir.name,
                             "keep": False, "owner_pid": None, "guests": [], "broken": True,
                             "age_s": time.time() - lab_dir.stat().st_mtime})
    return labs


def is_stale(state: dict) -> bool:
    """A test lab whose owning process is gone (SIGKILLed pytest, crashed CI job)."""
    owner = state.get("owner_pid")
    if state.get("keep"):
        return False
    if state.get("broken"):   # no lab.json: abandoned, unless another process is creating it right now
        return state.get("age_s", 0) > 60
    return owner is None or not pid_alive(owner)


def destroy_lab(lab_dir: Path, procs: Mapping[str, subprocess.Popen[bytes]] | None = None) -> None:
    """Removes one lab completely, from its run directory alone (works for labs of
    other, dead processes too): guests by their UML pid files, the netns, the files."""
    uml_dir = lab_dir / "uml"
    if uml_dir.is_dir():
        for pid_file in uml_dir.glob("*/pid"):
            try:
                pid = int(pid_file.read_text().strip())
            except (ValueError, FileNotFoundError):
                continue
            kill_uml(pid, pid_file.parent / "mconsole")
    for proc in (procs or {}).values():
        if proc.poll() is None:
            proc.kill()   # still in `ip netns exec` or before UML wrote its pid file
        proc.wait(timeout=30)
    netns = NETNS_PREFIX + lab_dir.name
    if netns in list_netns():
        # Anything still running in our namespace is a guest whose pid file was lost
        # (e.g. killed mid-boot): each UML main process leads its own session.
        for pid in run_host(["ip", "netns", "pids", netns], check=False).stdout.split():
            kill_uml(int(pid), None)
    ctl_dir = lab_dir / "ctl"
    if ctl_dir.is_dir() and netns in list_netns():
        for ctl in ctl_dir.iterdir():   # SSH control masters: ask them to exit
            exit_master(netns, ctl)
    if netns in list_netns():
        run_host(["ip", "netns", "delete", netns], check=False)   # takes the bridge and taps along
    copy_to = os.environ.get("DBFLEET_LAB_LOGS")
    if copy_to:   # CI keeps the consoles of every guest for post-mortems
        dest = Path(copy_to) / lab_dir.name
        dest.mkdir(parents=True, exist_ok=True)
        for log in [*lab_dir.glob("*.console.log"), *lab_dir.glob("network.log")]:
            shutil.copy2(log, dest / log.name)
    shutil.rmtree(lab_dir, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Destroys stale labs and orphaned lab namespaces; returns their names."""
    removed = []
    for state in list_labs():
        if is_stale(state):
            destroy_lab(Path(state["dir"]))
            removed.append(state["name"])
    known = {NETNS_PREFIX + s["name"] for s in list_labs()}
    for ns in list_netns():
        # A lab's directory is made before its netns and removed after it, so a lab
        # netns without a directory is left over from a killed teardown.
        if ns.startswith(NETNS_PREFIX) and ns not in known:
            destroy_lab(RUN_ROOT / ns[len(NETNS_PREFIX):])
            removed.append(ns)
    return removed
