"""The Lab: a set of UML guests in a network namespace of their own, and everything a
test does with it - start and stop it, boot, halt, power-cycle and reboot guests, run
commands and write files over SSH, open a shell that survives a failing fork(), run
Ansible against it - each with a deadline. The parts it is built from are the other
modules of this package; see the package's docstring.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import teardown
from .disks import ensure_image, make_swap
from .errors import LabError
from .guests import Guest, GuestSpec
from .host import check_host, run_bounded, run_host
from .network import (FIRST_GUEST_HOST, NETNS_PREFIX, SUBNET_PREFIX, TcpCounters, create_network, list_netns,
                      switch_offloads_off, tcp_counters)
from .rundir import RUN_ROOT, destroy_lab, read_state, write_state
from .ssh import SSH_OPTIONS, GuestShell, exit_master
from .timeouts import (ANSIBLE_TASK_TIMEOUT_S, BOOT_TIMEOUT_S, PLAYBOOK_TIMEOUT_S, SHUTDOWN_TIMEOUT_S,
                       SSH_COMMAND_TIMEOUT_S, SSH_PROBE_TIMEOUT_S)
from .uml import kernel_argv, kill_uml, pid_alive


class Lab:
    """A set of UML guests in a private network namespace.

    `keep=True` (labctl up) leaves the lab running when this process exits; otherwise
    the lab is torn down by `stop()`, the context manager, atexit or SIGTERM/SIGHUP.
    """

    def __init__(self, specs: Iterable[GuestSpec], *, name: str | None = None,
                 images: Mapping[str, Path] | None = None, keep: bool = False) -> None:
        specs = list(specs)
        if not specs:
            raise ValueError("a lab needs at least one guest")
        if len({s.name for s in specs}) != len(specs):
            raise ValueError("guest names must be unique")
        self.name = name or f"t{os.getpid()}-{os.urandom(2).hex()}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,23}", self.name):
            raise ValueError(f"lab name {self.name!r}: [a-z0-9-], at most 24 chars")
        self.keep = keep
        self.images: dict[str, Path] = dict(images or {})   # GuestSpec.image -> cached disk image
        self.dir = RUN_ROOT / self.name
        self.netns = NETNS_PREFIX + self.name
        self.key_path = self.dir / "id_ed25519"
        self.inventory_path = self.dir / "inventory.ini"
        self.guests: dict[str, Guest] = {
            spec.name: Guest(spec, index, f"{SUBNET_PREFIX}.{FIRST_GUEST_HOST + index}")
            for index, spec in enumerate(specs)
        }
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.final_tcp: TcpCounters | None = None   # the netns's TCP counters at teardown
        self.slowest_calls: list[tuple[float, str]] = []   # (seconds, what): SSH and playbook runs
        self._started = False
        self._state_lock = threading.Lock()   # guests may be power-cycled from threads

    # -- lifecycle --

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> "Lab":
        """Creates the network, boots every guest in parallel, waits until SSH answers."""
        check_host()
        if self.dir.exists() or self.netns in list_netns():
            raise LabError(f"lab {self.name} exists already: `labctl down {self.name}` first")
        for image in sorted({guest.spec.image for guest in self.guests.values()} - set(self.images)):
            self.images[image] = ensure_image(image)
        if not self.keep:
            teardown.install_handlers()
            teardown.register(self)
        self._started = True
        try:
            self.dir.mkdir(parents=True)
            self.save_state()   # at once: a directory without state looks abandoned
            (self.dir / "ctl").mkdir()
            run_host(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lab-{self.name}",
                      "-f", str(self.key_path)])
            create_network(self.netns, [guest.tap for guest in self.guests.values()])
            for guest in self.guests.values():
                self._create_disks(guest)
            self.save_state()
            self.boot(*self.guests)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Tears everything down: guests (by their UML pid files), SSH masters, the
        netns (which takes the bridge and taps with it) and the run directory."""
        if not self._started:
            return
        self._started = False
        teardown.unregister(self)
        self._log_network()
        destroy_lab(self.dir, procs=self._procs)

    def tcp_counters(self) -> TcpCounters:
        """TCP counters of the lab's namespace since it was made; subtract two readings
        to measure one step (`after - before`)."""
        return tcp_counters(self.netns)

    def _log_network(self) -> None:
        """The lab's whole-life retransmit rate: to stderr, to `network.log` (kept with
        the console logs under DBFLEET_LAB_LOGS) and as `self.final_tcp` for callers."""
        if self.netns not in list_netns():
            return
        try:
            self.final_tcp = self.tcp_counters()
        except (LabError, ValueError, KeyError) as exc:   # teardown goes on regardless
            print(f"umlab: lab {self.name}: no TCP counters: {exc}", file=sys.stderr)
            return
        line = f"lab {self.name} network ({', '.join(self.guests)}): {self.final_tcp}"
        print(f"umlab: {line}", file=sys.stderr)
        (self.dir / "network.log").write_text(line + "\n")

    # -- files of each guest --

    def _create_disks(self, guest: Guest) -> None:
        if guest.spec.swap_mb:
            make_swap(self._path(guest, "swap"), guest.spec.swap_mb)

    def _path(self, guest: Guest, what: str) -> Path:
        return self.dir / f"{guest.name}.{what}"

    # -- booting --

    def _kernel_argv(self, guest: Guest) -> list[str]:
        return kernel_argv(guest, uml_dir=self.dir / "uml", cow=self._path(guest, "cow"),
                           image=self.images[guest.spec.image],
                           swap=self._path(guest, "swap") if guest.spec.swap_mb else None,
                           pubkey=self.key_path.with_suffix(".pub").read_text().split()[1])

    def boot(self, *names: str) -> None:
        """Powers on the named guests (all in parallel) and waits until each answers SSH."""
        started = {}
        for name in names:
            guest = self.guests[name]
            if guest.pid is not None and pid_alive(guest.pid):
                raise LabError(f"{name} is already running (pid {guest.pid})")
            guest.boot += 1
            log = open(self._path(guest, "console.log"), "ab")
            log.write(f"\n===== lab {self.name}: boot {guest.boot} of {name} =====\n".encode())
            log.flush()
            env = dict(os.environ, TMPDIR="/dev/shm")  # guest RAM is a file in TMPDIR: keep it in RAM
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *self._kernel_argv(guest)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # survives `labctl up` exiting; signals stay ours
            log.close()
            self._procs[name] = proc
            started[name] = time.monotonic()
        errors = []
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            for name, error in zip(names, pool.map(lambda n: self._wait_ready(n, started[n]), names)):
                if error:
                    errors.append(error)
        self.save_state()
        with self._state_lock:
            self.write_inventory()
        if errors:
            raise LabError("\n".join(errors))

    def _wait_ready(self, name: str, t0: float) -> str | None:
        """Waits for the guest's SSH; returns an error text (with console tail) or None."""
        guest = self.guests[name]
        proc = self._procs[name]
        pid_file = self.dir / "uml" / name / "pid"
        deadline = t0 + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"{name}: UML exited with {proc.returncode} during boot\n{self.console_tail(name)}"
            if guest.pid is None and pid_file.exists():
                try:
                    guest.pid = int(pid_file.read_text().strip())
                except ValueError:
                    pass  # being written
            try:
                probe = run_bounded(
                    self.ssh_argv(name, multiplex=False, extra=["-o", "ConnectTimeout=1"]) + ["true"],
                    timeout_s=SSH_PROBE_TIMEOUT_S, what=f"{name}: boot probe `true`")
            except LabError:   # sshd accepted but did not answer yet: probe again
                continue
            if probe.returncode == 0:
                guest.boot_seconds.append(round(time.monotonic() - t0, 2))
                try:
                    switch_offloads_off(self.netns, guest.tap)
                except LabError as exc:
                    return f"{name}: {exc}"
                if guest.pid is None:
                    guest.pid = int(pid_file.read_text().strip())
                return None
            time.sleep(0.25)
        return f"{name}: no SSH after {BOOT_TIMEOUT_S:.0f} s\n{self.console_tail(name)}"

    def halt(self, name: str) -> None:
        """Pulls the plug: the guest stops at once, unwritten data is lost."""
        guest = self.guests[name]
        self._close_master(guest)
        if guest.pid is not None:
            kill_uml(guest.pid, self.dir / "uml" / name / "mconsole")
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.wait(timeout=30)
        shutil.rmtree(self.dir / "uml" / name, ignore_errors=True)
        guest.pid = None

    def power_cycle(self, name: str) -> None:
        """Hard reset: halt (no shutdown, no sync) and boot again on the same disk."""
        self.halt(name)
        self.boot(name)

    def reboot(self, name: str) -> None:
        """Clean reboot: systemd shuts the guest down (units stop, disks sync, the
        kernel powers off), then the lab boots it again on the same disk. (An in-guest
        `reboot` makes UML re-exec itself, which cannot reopen its tap: so tests and
        roles must not reboot guests themselves; use this.)"""
        guest = self.guests[name]
        # poweroff.target directly: `systemctl poweroff` would ask logind (masked).
        self.run(name, "systemctl start --no-block --job-mode=replace-irreversibly poweroff.target")
        proc = self._procs.get(name)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while time.monotonic() < deadline and guest.pid is not None and pid_alive(guest.pid):
            time.sleep(0.2)
        self.halt(name)  # reaps it, or forces it if the shutdown hung
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.boot(name)

    # -- talking to guests --

    def control_path(self, guest: Guest, user: str = "lab") -> Path:
        """A per-boot SSH control socket: a master to a power-cycled guest would hang."""
        return self.dir / "ctl" / f"{user}-{guest.name}-{guest.boot}"

    def netns_argv(self, argv: Sequence[str]) -> list[str]:
        """argv wrapped to run inside the lab's network namespace (where guests are)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def ssh_argv(self, name: str, *, multiplex: bool = True, extra: Sequence[str] = ()) -> list[str]:
        """The ssh command line (inside the netns) for root on the guest, without a command."""
        guest = self.guests[name]
        opts = [*SSH_OPTIONS, "-i", str(self.key_path), *extra]
        if multiplex:
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path(guest)}",
                     "-o", "ControlPersist=300"]
        else:
            opts += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        return self.netns_argv(["ssh", *opts, f"root@{guest.ip}"])

    def run(self, name: str, command: str, *, check: bool = True, timeout: float = SSH_COMMAND_TIMEOUT_S,
            input_text: str | None = None, new_connection: bool = False) -> subprocess.CompletedProcess[str]:
        """Runs a shell command as root on the guest over SSH. By default it reuses a
        per-boot master connection (fast); `new_connection=True` makes a full login.
        Raises LabError after `timeout` seconds (the ssh is killed)."""
        argv = self.ssh_argv(name, multiplex=not new_connection) + ["--", command]
        what = f"{name}: ssh `{command}`{' (new login)' if new_connection else ''}"
        started = time.monotonic()
        proc = run_bounded(argv, timeout_s=timeout, input_text=input_text, what=what)
        self._timed(what, time.monotonic() - started)
        if check and proc.returncode != 0:
            raise LabError(f"{name}: `{command}` exited {proc.returncode}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
        return proc

    def _timed(self, what: str, seconds: float) -> None:
        """Keeps the slowest calls that finished, to set the timeouts from data."""
        with self._state_lock:
            self.slowest_calls.append((round(seconds, 1), what[:160]))
            self.slowest_calls.sort(reverse=True)
            del self.slowest_calls[5:]

    def put(self, name: str, path: str, content: str, mode: str = "0644") -> None:
        """Writes a file on the guest."""
        self.run(name, f"cat >{shlex.quote(path)} && chmod {mode} {shlex.quote(path)}", input_text=content)

    def open_shell(self, name: str) -> "GuestShell":
        """A root shell that stays open: builtins in it (kill, echo > /proc/sys/...,
        read) need no fork, so it still works when the guest cannot start processes."""
        # -i: a non-interactive bash exits when fork() fails; an interactive one
        # reports it and reads the next line. 2>&1 inside the guest: the shell's own
        # errors ("fork: Cannot allocate memory") arrive in order with the output.
        return GuestShell(name, self.ssh_argv(name, multiplex=False)
                          + ["--", "exec bash --noprofile --norc --noediting -i 2>&1"])

    def meminfo(self, name: str) -> dict[str, int]:
        """/proc/meminfo of the guest, values in kB (or plain counts)."""
        # The product's parser; imported here so labctl runs without the collection path.
        from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import parse_meminfo
        return parse_meminfo(self.run(name, "cat /proc/meminfo").stdout)

    def sysctl(self, name: str, key: str) -> str:
        return self.run(name, f"sysctl -n {shlex.quote(key)}").stdout.strip()

    def boot_id(self, name: str) -> str:
        return self.run(name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def console_log(self, name: str) -> str:
        """Everything the guest's kernel and systemd wrote to its console, all boots."""
        return self._path(self.guests[name], "console.log").read_text(errors="replace")

    def console_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.console_log(name).splitlines()[-lines:])
        except FileNotFoundError:
            return "(no console log)"

    def _close_master(self, guest: Guest) -> None:
        for ctl in (self.dir / "ctl").glob(f"*-{guest.name}-{guest.boot}"):
            exit_master(self.netns, ctl)

    # -- Ansible --

    def write_inventory(self) -> Path:
        """INI inventory, group `lab`. Run Ansible inside the netns (ansible_playbook())."""
        lines = ["[lab]"]
        for guest in self.guests.values():
            ssh_args = " ".join([
                "-o StrictHostKeyChecking=no", "-o UserKnownHostsFile=/dev/null",
                "-o ControlMaster=auto", "-o ControlPersist=60s",
                f"-o ControlPath={self.control_path(guest, 'ans')}",
                # A module run keeps a slow guest busy for seconds, and guests starve when
                # the host is loaded: a 6 s keepalive budget dropped healthy connections
                # mid-play ("Data could not be sent"). Two minutes still catch a dead guest.
                "-o ServerAliveInterval=15", "-o ServerAliveCountMax=8"])
            lines.append(
                f"{guest.name} ansible_host={guest.ip} ansible_user=root"
                f" ansible_ssh_private_key_file={self.key_path}"
                f" ansible_python_interpreter=/usr/bin/python3"
                f" ansible_ssh_common_args='{ssh_args}'"
                f" lab_mem_mb={guest.spec.mem_mb} lab_swap_mb={guest.spec.swap_mb}")
        self.inventory_path.write_text("\n".join(lines) + "\n")
        return self.inventory_path

    def ansible_env(self) -> dict[str, str]:
        """Environment for ansible-* against this lab: no host key checks, pipelining
        (fewer round trips to slow guests), temp files inside the lab directory."""
        return {
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True",
            # Under host load an SSH exchange with a starved guest now and then ends
            # with status 255 and no message; the ssh plugin retries those (only those).
            "ANSIBLE_SSH_RETRIES": "3",
            "ANSIBLE_TIMEOUT": "30",
            # Ansible's own limit per task: a module run that hangs fails its host with
            # "Timed out after N second(s)" instead of waiting forever.
            "ANSIBLE_TASK_TIMEOUT": str(ANSIBLE_TASK_TIMEOUT_S),
            "ANSIBLE_LOCAL_TEMP": str(self.dir / "ansible-tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_FORKS": str(max(5, len(self.guests))),
        }

    def ansible_playbook(self, playbook: str | Path, *args: str, venv: Path | None = None,
                         env: Mapping[str, str] | None = None, timeout: float = PLAYBOOK_TIMEOUT_S,
                         check: bool = False) -> subprocess.CompletedProcess[str]:
        """Runs ansible-playbook against the lab's inventory from inside the netns.
        venv defaults to the one running this Python (pytest's). Each task is limited
        to ANSIBLE_TASK_TIMEOUT_S by Ansible itself; after `timeout` seconds the
        playbook, its workers and their ssh are killed and LabError is raised."""
        bindir = (venv / "bin") if venv else Path(sys.executable).parent
        argv = self.netns_argv([str(bindir / "ansible-playbook"), "-i", str(self.inventory_path),
                                str(playbook), *args])
        full_env = {**os.environ, **self.ansible_env(), **(env or {})}   # env overrides the lab's
        what = shlex.join(["ansible-playbook", Path(playbook).name, *args])
        started = time.monotonic()
        proc = run_bounded(argv, timeout_s=timeout, env=full_env, what=f"lab {self.name}: {what}")
        self._timed(what, time.monotonic() - started)
        if check and proc.returncode != 0:
            raise LabError(f"ansible-playbook {playbook} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    # -- state for labctl --

    def save_state(self) -> None:
        """Writes lab.json, which labctl and the stale cleanup read: after a boot,
        a power-cycle or a reboot, so that guest pids and boot counts stay true."""
        with self._state_lock:
            write_state(self.dir, {
                "name": self.name, "netns": self.netns, "dir": str(self.dir), "keep": self.keep,
                "owner_pid": None if self.keep else os.getpid(),
                "images": {image: str(path) for image, path in self.images.items()},
                "key": str(self.key_path), "inventory": str(self.inventory_path),
                "guests": [dict(asdict(g.spec), ip=g.ip, pid=g.pid, boot=g.boot, boot_seconds=g.boot_seconds)
                           for g in self.guests.values()],
            })

    @classmethod
    def attach(cls, name: str) -> "Lab":
        """A Lab object for a running lab (e.g. one started by `labctl up`)."""
        state = read_state(RUN_ROOT / name)
        # Labs started before guests had a suite were all bookworm, with one "image".
        images = state.get("images") or {"bookworm": state["image"]}
        lab = cls([GuestSpec(g["name"], g["mem_mb"], g["swap_mb"], g.get("suite", "bookworm"), g.get("flavour", ""),
                             tuple(g.get("kernel_args", ())))
                   for g in state["guests"]],
                  name=name, images={suite: Path(path) for suite, path in images.items()}, keep=state["keep"])
        for g in state["guests"]:
            lab.guests[g["name"]].pid = g["pid"]
            lab.guests[g["name"]].boot = g["boot"]
            lab.guests[g["name"]].boot_seconds = g.get("boot_seconds", [])
        lab._started = True
        if not lab.keep:
            teardown.register(lab)
        return lab
