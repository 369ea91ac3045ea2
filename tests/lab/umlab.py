"""A lab of real, separate Linux kernels: User-mode Linux (UML) guests for tests.

Why UML: `vm.overcommit_*` and the other `vm.*` sysctls are not namespaced, so a
container shares (and a privileged one would change) the host's kernel. Every UML
guest is its own kernel running as ordinary processes on the host, with its own
`mem=`, swap, commit accounting and OOM killer, and it boots systemd in a few
seconds. Nothing here ever writes a `vm.*` sysctl of the host.

Layout of one lab (all removed by `Lab.stop()`):
  - a network namespace `dbfleet-lab-<name>` holding a bridge (10.213.0.1/24) and
    one tap per guest; guests are 10.213.0.10, .11, ... and are reachable only from
    inside that namespace (every SSH/Ansible call runs under `ip netns exec`);
  - a run directory `/run/dbfleet-lab/<name>/` with the lab's SSH key, each guest's
    copy-on-write disk over the shared cached image, swap file, console log, UML
    pid/mconsole files, SSH control sockets, `lab.json` (state for labctl) and the
    Ansible inventory.

Usage:
    with Lab([GuestSpec("db1", mem_mb=512), GuestSpec("db2", 768, swap_mb=256)]) as lab:
        lab.run("db1", "cat /proc/meminfo")
        lab.power_cycle("db2")
        lab.ansible_playbook("site.yml")   # inventory: lab.inventory_path
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD_IMAGE = HERE / "image" / "build-image.sh"
SUITES = ("bookworm", "trixie")   # Debian 12 and 13 guests; build-image.sh makes one image each
# Image flavours: "" the plain image; "db" adds PostgreSQL and MariaDB from Debian's packages.
FLAVOURS = ("", "db")
RUN_ROOT = Path(os.environ.get("DBFLEET_LAB_RUN", "/run/dbfleet-lab"))
UML_BINARY = os.environ.get("DBFLEET_UML", "/usr/bin/linux.uml")

SUBNET_PREFIX = "10.213.0"  # private to each lab's own netns, so labs never collide
BRIDGE_IP = f"{SUBNET_PREFIX}.1"
FIRST_GUEST_HOST = 10
NETNS_PREFIX = "dbfleet-lab-"

BOOT_TIMEOUT_S = float(os.environ.get("DBFLEET_LAB_BOOT_TIMEOUT", "120"))
SHUTDOWN_TIMEOUT_S = 60.0
# Every call that talks to a guest has a deadline and ends in a LabError naming the
# guest, the command and the time: a stalled connection must fail a test, not hang it.
SSH_COMMAND_TIMEOUT_S = 60.0     # Lab.run default; commands take 0.1-0.2 s over the master
SSH_PROBE_TIMEOUT_S = 10.0       # one "is sshd up" probe while booting
SHELL_OPEN_TIMEOUT_S = 60.0      # GuestShell: a full login plus a first answer
SHELL_COMMAND_TIMEOUT_S = 30.0   # GuestShell.run default
HOST_COMMAND_TIMEOUT_S = 60.0    # ip, ethtool, mkswap, ssh -O exit on this machine
ANSIBLE_TASK_TIMEOUT_S = 90      # ansible's own per-task limit; a role run takes 3-8 s
PLAYBOOK_TIMEOUT_S = 180.0       # the whole ansible-playbook process, killed with its workers
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
# Offloads the lab switches off on the host side of every tap and on the bridge. With
# them on, bulk TCP into a UML guest (a module upload, a 2 MiB scp) retransmitted 60 %
# of its bytes and stalled for minutes; with them off 0.2 %. (gro=0 on the guest side
# alone did not help.) See tests/lab/README.md, "Network".
OFFLOADS_OFF = ("tso", "gso", "tx", "sg")


class LabError(RuntimeError):
    """The lab could not do what was asked (boot, SSH, teardown)."""


@dataclass(frozen=True)
class GuestSpec:
    """What a guest looks like: its name, RAM (`mem=`), swap size (0 = no swap), Debian
    suite (bookworm = 12, trixie = 13) and image flavour ("db": PostgreSQL and MariaDB)."""

    name: str
    mem_mb: int
    swap_mb: int = 0
    suite: str = "bookworm"
    flavour: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,14}", self.name):
            raise ValueError(f"guest name {self.name!r}: use [a-z][a-z0-9-], at most 15 chars")
        if self.mem_mb < 128 or self.swap_mb < 0:
            raise ValueError(f"guest {self.name}: mem_mb >= 128 and swap_mb >= 0 please")
        if self.suite not in SUITES:
            raise ValueError(f"guest {self.name}: suite {self.suite!r}, use one of {', '.join(SUITES)}")
        if self.flavour not in FLAVOURS:
            raise ValueError(f"guest {self.name}: flavour {self.flavour!r}, use one of {FLAVOURS}")

    @property
    def image(self) -> str:
        """Which cached image the guest boots: the suite, plus "+flavour" if it has one."""
        return f"{self.suite}+{self.flavour}" if self.flavour else self.suite


@dataclass
class Guest:
    """One guest of a running lab. `boot` counts boots; each has its own SSH ControlPath."""

    spec: GuestSpec
    index: int
    ip: str
    boot: int = 0
    pid: int | None = None
    boot_seconds: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tap(self) -> str:
        return f"tap{self.index}"

    @property
    def mac(self) -> str:
        return f"52:54:00:d6:00:{FIRST_GUEST_HOST + self.index:02x}"


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


def _sh(argv: Sequence[str], *, check: bool = True, timeout: float = HOST_COMMAND_TIMEOUT_S,
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


# `ethtool -k` names of OFFLOADS_OFF (ethtool -K takes the short ones)
_OFFLOAD_NAMES = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                  "tx": "tx-checksumming", "sg": "scatter-gather"}


def offloads_on(netns: str, device: str) -> list[str]:
    """Which of OFFLOADS_OFF are on for a link in netns (by their short names)."""
    shown = _sh(["ip", "netns", "exec", netns, "ethtool", "-k", device]).stdout
    state = dict(line.split(":", 1) for line in shown.splitlines() if ":" in line and not line.startswith("\t"))
    return [short for short in OFFLOADS_OFF
            if state.get(_OFFLOAD_NAMES[short], "").split()[:1] != ["off"]]


@dataclass(frozen=True)
class TcpCounters:
    """TCP segments the lab's namespace sent (its side of every SSH and Ansible
    connection: uploads to guests are its bulk traffic) and the segments it sent again:
    Tcp OutSegs and RetransSegs of /proc/net/snmp in that netns. OutSegs does not
    count retransmissions, so in a storm the rate can pass 100 % (seen: 125-158 %)."""

    out_segs: int
    retrans_segs: int

    def __sub__(self, earlier: "TcpCounters") -> "TcpCounters":
        return TcpCounters(self.out_segs - earlier.out_segs, self.retrans_segs - earlier.retrans_segs)

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retrans_segs / self.out_segs if self.out_segs else 0.0

    def __str__(self) -> str:
        return (f"{self.retrans_segs} TCP segments retransmitted for {self.out_segs} sent"
                f" ({self.retrans_pct:.2f} %)")


def tcp_counters(netns: str) -> TcpCounters:
    """The TCP counters of a network namespace (/proc/net/snmp is per namespace)."""
    snmp = _sh(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"]).stdout
    header, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    tcp = dict(zip(header, map(int, values)))
    return TcpCounters(tcp["OutSegs"], tcp["RetransSegs"])


def ensure_image(image: str = "bookworm") -> Path:
    """Returns the cached guest disk image ("SUITE" or "SUITE+FLAVOUR", GuestSpec.image),
    building it (and its rootfs) if needed."""
    suite, _, flavour = image.partition("+")
    proc = subprocess.run([str(BUILD_IMAGE), suite, flavour], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise LabError(f"{BUILD_IMAGE} failed:\n{proc.stderr}")
    image = Path(proc.stdout.strip().splitlines()[-1])
    if not image.is_file():
        raise LabError(f"{BUILD_IMAGE} printed {image}, which does not exist")
    return image


# --- UML process control ----------------------------------------------------------

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


# --- registry so that guests die with the controller ---------------------------

_LIVE_LABS: set["Lab"] = set()
_HANDLERS_INSTALLED = False


def _stop_live_labs() -> None:
    for lab in list(_LIVE_LABS):
        try:
            lab.stop()
        except Exception as exc:  # teardown must go on for the other labs
            print(f"umlab: teardown of {lab.name} failed: {exc}", file=sys.stderr)


def _on_signal(signum: int, _frame: object) -> None:
    _stop_live_labs()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_teardown_handlers() -> None:
    """atexit for normal exits and SIGTERM/SIGHUP (CI cancelling a job) so guests,
    netns and files never outlive the process that owns the lab. SIGINT already
    unwinds context managers and pytest fixtures via KeyboardInterrupt."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    atexit.register(_stop_live_labs)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _on_signal)
    _HANDLERS_INSTALLED = True


# --- the lab ---------------------------------------------------------------------

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
            _install_teardown_handlers()
            _LIVE_LABS.add(self)
        self._started = True
        try:
            self.dir.mkdir(parents=True)
            self.save_state()   # at once: a directory without state looks abandoned
            (self.dir / "ctl").mkdir()
            _sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lab-{self.name}",
                 "-f", str(self.key_path)])
            self._create_network()
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
        _LIVE_LABS.discard(self)
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

    # -- network and disks --

    def _create_network(self) -> None:
        ns = self.netns
        _sh(["ip", "netns", "add", ns])
        batch = ["link set lo up",
                 "link add br0 type bridge",
                 f"addr add {BRIDGE_IP}/24 dev br0",
                 "link set br0 up"]
        for guest in self.guests.values():
            batch += [f"tuntap add {guest.tap} mode tap",
                      f"link set {guest.tap} master br0",
                      f"link set {guest.tap} up"]
        _sh(["ip", "-n", ns, "-batch", "-"], input_text="\n".join(batch) + "\n")
        for device in ["br0", *(guest.tap for guest in self.guests.values())]:
            self._offloads_off(device)

    def _offloads_off(self, device: str) -> None:
        """Switches OFFLOADS_OFF off on one of the lab's links and checks that they are.
        Done for each tap again once its guest has booted: UML turns checksum offload
        (`tx`) back on when it opens the tap (seen after every boot and power-cycle)."""
        argv = ["ethtool", "-K", device]
        for feature in OFFLOADS_OFF:
            argv += [feature, "off"]
        _sh(self.netns_argv(argv))
        still_on = offloads_on(self.netns, device)
        if still_on:
            raise LabError(f"{self.netns}: {device} still has {', '.join(still_on)} on after ethtool -K")

    def _create_disks(self, guest: Guest) -> None:
        if guest.spec.swap_mb:
            swap = self._path(guest, "swap")
            with open(swap, "wb") as fh:
                fh.truncate(guest.spec.swap_mb * 1024 * 1024)   # sparse
            _sh(["mkswap", "-q", str(swap)])

    def _path(self, guest: Guest, what: str) -> Path:
        return self.dir / f"{guest.name}.{what}"

    # -- booting --

    def _kernel_argv(self, guest: Guest) -> list[str]:
        pubkey = (self.key_path.with_suffix(".pub")).read_text().split()[1]
        argv = [UML_BINARY,
                f"umid={guest.name}", f"uml_dir={self.dir / 'uml'}",
                f"ubd0={self._path(guest, 'cow')},{self.images[guest.spec.image]}",
                f"mem={guest.spec.mem_mb}M"]
        if guest.spec.swap_mb:
            argv.append(f"ubd1={self._path(guest, 'swap')}")
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
        return argv

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
                    self._offloads_off(guest.tap)
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
        from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import parse_meminfo
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
            _exit_master(self.netns, ctl)

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
            self._write_state()

    def _write_state(self) -> None:
        state = {
            "name": self.name, "netns": self.netns, "dir": str(self.dir), "keep": self.keep,
            "owner_pid": None if self.keep else os.getpid(),
            "images": {image: str(path) for image, path in self.images.items()},
            "key": str(self.key_path), "inventory": str(self.inventory_path),
            "guests": [dict(asdict(g.spec), ip=g.ip, pid=g.pid, boot=g.boot, boot_seconds=g.boot_seconds)
                       for g in self.guests.values()],
        }
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.dir / "lab.json")

    @classmethod
    def attach(cls, name: str) -> "Lab":
        """A Lab object for a running lab (e.g. one started by `labctl up`)."""
        state = read_state(RUN_ROOT / name)
        # Labs started before guests had a suite were all bookworm, with one "image".
        images = state.get("images") or {"bookworm": state["image"]}
        lab = cls([GuestSpec(g["name"], g["mem_mb"], g["swap_mb"], g.get("suite", "bookworm"), g.get("flavour", ""))
                   for g in state["guests"]],
                  name=name, images={suite: Path(path) for suite, path in images.items()}, keep=state["keep"])
        for g in state["guests"]:
            lab.guests[g["name"]].pid = g["pid"]
            lab.guests[g["name"]].boot = g["boot"]
            lab.guests[g["name"]].boot_seconds = g.get("boot_seconds", [])
        lab._started = True
        if not lab.keep:
            _LIVE_LABS.add(lab)
        return lab


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


# --- labs on this machine (for labctl and stale cleanup) ----------------------------

def _exit_master(netns: str, control_path: Path) -> None:
    """Asks an SSH control master to exit; one that does not answer is left to die
    with its guest (halting the guest closes its connection)."""
    try:
        _sh(["ip", "netns", "exec", netns, "ssh", "-o", f"ControlPath={control_path}", "-O", "exit", "x"],
            check=False, timeout=10)
    except LabError as exc:
        print(f"umlab: {exc}", file=sys.stderr)


def list_netns() -> list[str]:
    out = _sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


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
        for pid in _sh(["ip", "netns", "pids", netns], check=False).stdout.split():
            kill_uml(int(pid), None)
    ctl_dir = lab_dir / "ctl"
    if ctl_dir.is_dir() and netns in list_netns():
        for ctl in ctl_dir.iterdir():   # SSH control masters: ask them to exit
            _exit_master(netns, ctl)
    if netns in list_netns():
        _sh(["ip", "netns", "delete", netns], check=False)   # takes the bridge and taps along
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
