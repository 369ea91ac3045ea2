#!/usr/bin/env python3
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark over real SSH: our role against the common one-task-per-key baseline.

    scripts/in-env.sh python bench/fleet_bench.py [--hosts 8] [--scale 1,4,8,16] [--runs 5]
    scripts/in-env.sh python bench/fleet_bench.py audit-demo [--out DIR]

Each host is an unprivileged podman container of the project's Debian 12 rootfs running
only `sshd -D -p PORT -o ListenAddress=127.0.0.1` under --network host, so Ansible reaches
it over real SSH at 127.0.0.1:PORT. Never --privileged: vm.* sysctls are not namespaced,
and /proc/sys must stay read-only inside so nothing here can change this machine's kernel.
Both sides are therefore file-only: our role detects the container, the baseline runs with
sysctl_set/reload off. Live application is measured on real kernels (tests/lab), not here.

Every run is cold: a fresh SSH ControlPath directory, closed afterwards, so no run reuses
the previous run's connections. "First" runs start from hosts with no drop-in; "no-op"
runs follow immediately and must change nothing. The containers are always removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PREFIX = "dbfleet-bench-"
BASE_PORT = int(os.environ.get("DBFLEET_BENCH_BASE_PORT", "42200"))
SSH_READY_TIMEOUT_S = 60.0
# Files the scenarios write; removed before every "first" run.
DROPINS = ("/etc/sysctl.d/90-dbfleet-overcommit.conf", "/etc/sysctl.d/90-baseline-overcommit.conf")
SCENARIOS = ("ping", "ours_first", "ours_noop", "baseline_first", "baseline_noop")
# Memory shapes for the audit demo (real /proc/meminfo texts), mounted into the containers.
DEMO_MEMINFO = BENCH / "audit_demo" / "meminfo"


def run(cmd: Sequence[str], check: bool = True, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)


def ensure_image() -> str:
    """The project's Debian 12 image (scripts/podman-image.sh), shared with molecule; the
    fleet runs sshd in it instead of its default systemd."""
    return run([ROOT / "scripts" / "podman-image.sh", "bookworm"]).stdout.strip()


class Fleet:
    """N sshd containers on 127.0.0.1:BASE_PORT+i, removed on exit whatever happens."""

    def __init__(self, size: int, workdir: Path, meminfo_files: Sequence[Path] = (),
                 meminfo_mount: str = "/etc/dbfleet-bench/meminfo", prefix: str = PREFIX,
                 base_port: int = BASE_PORT) -> None:
        # Other users (tests/integration/test_ansible_runner.py) pass a prefix and ports of their own,
        # so a bench running at the same time keeps its containers; meminfo_mount=/proc/meminfo gives
        # the role itself a fixed memory shape.
        self.size = size
        self.workdir = workdir
        self.meminfo_files = list(meminfo_files)
        self.meminfo_mount = meminfo_mount
        self.prefix = prefix
        self.names = ["%s%02d" % (prefix, i) for i in range(size)]
        self.ports = [base_port + i for i in range(size)]
        self.key = workdir / "id_ed25519"

    def __enter__(self) -> "Fleet":
        self.remove()  # leftovers of an interrupted run
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        existing = run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=^" + self.prefix],
                       check=False).stdout.split()
        if existing:
            run(["podman", "rm", "-f", "-t", "0", *existing], check=False)

    def start(self) -> None:
        image = ensure_image()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key])
        host_key = self.workdir / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key])
        for index, (name, port) in enumerate(zip(self.names, self.ports)):
            mounts = ["-v", "%s.pub:/root/.ssh/authorized_keys:ro" % self.key,
                      "-v", "%s:/etc/ssh/bench_host_key:ro" % host_key]
            if self.meminfo_files:
                meminfo = self.meminfo_files[index % len(self.meminfo_files)]
                mounts += ["-v", "%s:%s:ro" % (meminfo, self.meminfo_mount)]
            # PAM is off: pam_loginuid fails without CAP_AUDIT_CONTROL, and key login needs no PAM.
            sshd = ("mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -p %d -o ListenAddress=127.0.0.1 "
                    "-o HostKey=/etc/ssh/bench_host_key -o UsePAM=no -o PermitRootLogin=prohibit-password "
                    "-o UseDNS=no -o MaxStartups=100" % port)
            run(["podman", "run", "-d", "--name", name, "--hostname", name, "--network", "host",
                 *mounts, image, "/bin/sh", "-c", sshd])
        deadline = time.monotonic() + SSH_READY_TIMEOUT_S
        for port in self.ports:
            while not _ssh_banner(port):
                if time.monotonic() > deadline:
                    logs = run(["podman", "logs", self.names[self.ports.index(port)]], check=False)
                    raise RuntimeError("sshd on port %d did not answer: %s" % (port, logs.stdout + logs.stderr))
                time.sleep(0.2)

    def inventory(self, count: int, path: Path, extra_hosts: str = "", host_vars: str = "") -> Path:
        lines = ["[fleet]"]
        lines += ["%s ansible_host=127.0.0.1 ansible_port=%d %s" % (name, port, host_vars)
                  for name, port in list(zip(self.names, self.ports))[:count]]
        lines += [extra_hosts] if extra_hosts else []
        lines += ["", "[fleet:vars]", "ansible_user=root", "ansible_ssh_private_key_file=%s" % self.key,
                  "ansible_python_interpreter=/usr/bin/python3"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def reset(self, count: int) -> None:
        """Bring hosts back to "never configured" for a first run (outside the timed part)."""
        for name in self.names[:count]:
            run(["podman", "exec", name, "rm", "-f", *DROPINS])


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def timed_ansible(cmd: List[str], workdir: Path) -> Dict[str, object]:
    """Run one ansible command cold; return wall seconds and per-host module counts and recap."""
    control_dir = Path(tempfile.mkdtemp(prefix="cp-", dir=workdir))
    count_file = workdir / "count.json"
    count_file.unlink(missing_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(BENCH / "ansible.cfg"), DBFLEET_MODULE_COUNT_FILE=str(count_file),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir))
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=BENCH)
    wall_s = time.monotonic() - started
    for sock in control_dir.iterdir():
        run(["ssh", "-O", "exit", "-o", "ControlPath=%s" % sock, "bench"], check=False)
    shutil.rmtree(control_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d):\n%s\n%s" % (" ".join(cmd), proc.returncode, proc.stdout[-3000:],
                                                             proc.stderr[-2000:]))
    counts = json.loads(count_file.read_text()) if count_file.exists() else {}
    return {
        "wall_s": wall_s,
        "modules_per_host": max((h["modules"] for h in counts.values()), default=0),
        "changed_hosts": sum(1 for h in counts.values() if h["recap"].get("changed")),
        "hosts": len(counts),
    }


def measure(fleet: Fleet, count: int, runs: int, workdir: Path) -> Dict[str, Dict[str, object]]:
    inventory = str(fleet.inventory(count, workdir / ("inventory-%d" % count)))
    commands = {
        "ping": ["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"],
        "ours": ["ansible-playbook", "-i", inventory, str(BENCH / "ours.yml")],
        # File-only in containers (see the module docstring); reload/live set stay on for real kernels.
        "baseline": ["ansible-playbook", "-i", inventory, str(BENCH / "baseline.yml"),
                     "-e", "baseline_sysctl_set=false", "-e", "baseline_sysctl_reload=false"],
    }
    samples: Dict[str, List[Dict[str, object]]] = {name: [] for name in SCENARIOS}
    for _ in range(runs):
        # Interleaved, so drift on the machine (another job, page cache) hits all scenarios alike.
        samples["ping"].append(timed_ansible(commands["ping"], workdir))
        for side in ("ours", "baseline"):
            fleet.reset(count)
            samples[side + "_first"].append(timed_ansible(commands[side], workdir))
            samples[side + "_noop"].append(timed_ansible(commands[side], workdir))
    result: Dict[str, Dict[str, object]] = {}
    for name, items in samples.items():
        walls = [float(i["wall_s"]) for i in items]
        result[name] = {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "runs_s": [round(w, 3) for w in walls],
            "modules_per_host": max(int(i["modules_per_host"]) for i in items),
            "changed_hosts_max": max(int(i["changed_hosts"]) for i in items),
            "changed_hosts_min": min(int(i["changed_hosts"]) for i in items),
        }
    for side in ("ours", "baseline"):
        if result[side + "_noop"]["changed_hosts_max"]:
            raise RuntimeError("%s: the second run changed %s host(s): not idempotent"
                               % (side, result[side + "_noop"]["changed_hosts_max"]))
        if result[side + "_first"]["changed_hosts_min"] != count:
            raise RuntimeError("%s: a first run changed only %s of %d hosts"
                               % (side, result[side + "_first"]["changed_hosts_min"], count))
    ping_s = float(result["ping"]["median_s"])
    result["ratios"] = {
        "ours_first_vs_ping": float(result["ours_first"]["median_s"]) / ping_s,
        "ours_noop_vs_ping": float(result["ours_noop"]["median_s"]) / ping_s,
        "baseline_first_vs_ping": float(result["baseline_first"]["median_s"]) / ping_s,
        "baseline_noop_vs_ping": float(result["baseline_noop"]["median_s"]) / ping_s,
        "ours_vs_baseline_first": float(result["ours_first"]["median_s"]) / float(result["baseline_first"]["median_s"]),
        "ours_vs_baseline_noop": float(result["ours_noop"]["median_s"]) / float(result["baseline_noop"]["median_s"]),
        # Cost above the floor, per host: what the role adds for each host of the fleet.
        "ours_noop_over_ping_ms_per_host": 1000 * (float(result["ours_noop"]["median_s"]) - ping_s) / count,
    }
    return result


TARGETS = {
    "ours_noop_vs_ping": 1.5,
    "ours_vs_baseline_noop": 0.5,
    "ours_first_vs_ping": 2.5,
}


def format_tables(results: Dict[int, Dict[str, Dict[str, object]]], main_n: int, runs: int) -> List[str]:
    lines: List[str] = []
    main = results[main_n]
    lines.append("Fleet benchmark, N = %d hosts, median of %d cold runs (wall seconds; pipelining on)" % (main_n, runs))
    lines.append("%-16s %8s %8s %8s %8s %14s" % ("scenario", "median_s", "min_s", "max_s", "x ping", "modules/host"))
    ping_s = float(main["ping"]["median_s"])
    for name in SCENARIOS:
        row = main[name]
        lines.append("%-16s %8.2f %8.2f %8.2f %8.2f %14d" % (name, row["median_s"], row["min_s"], row["max_s"],
                                                            float(row["median_s"]) / ping_s, row["modules_per_host"]))
    ratios = main["ratios"]
    lines.append("ours/baseline: first %.2fx, no-op %.2fx;  ours/ping: first %.2fx, no-op %.2fx" % (
        ratios["ours_vs_baseline_first"], ratios["ours_vs_baseline_noop"],
        ratios["ours_first_vs_ping"], ratios["ours_noop_vs_ping"]))
    for key, limit in TARGETS.items():
        lines.append("  target %-24s <= %.1f: %.2f %s" % (key, limit, ratios[key], "met" if ratios[key] <= limit else "MISSED"))
    if len(results) > 1:
        lines.append("")
        lines.append("Scaling (median wall seconds; ours no-op cost above the ping floor per host)")
        lines.append("%4s %7s %10s %9s %10s %9s %9s %9s %10s %9s" % (
            "N", "ping", "ours_1st", "ours_noop", "base_1st", "base_noop", "noop/ping", "ours/base", "ms/host", "mod/host"))
        for n in sorted(results):
            r = results[n]
            lines.append("%4d %7.2f %10.2f %9.2f %10.2f %9.2f %9.2f %9.2f %10.0f %4d/%-4d" % (
                n, r["ping"]["median_s"], r["ours_first"]["median_s"], r["ours_noop"]["median_s"],
                r["baseline_first"]["median_s"], r["baseline_noop"]["median_s"], r["ratios"]["ours_noop_vs_ping"],
                r["ratios"]["ours_vs_baseline_noop"], r["ratios"]["ours_noop_over_ping_ms_per_host"],
                r["ours_noop"]["modules_per_host"], r["baseline_noop"]["modules_per_host"]))
        lines.append("mod/host = remote module executions per host in a no-op run, ours/baseline.")
    return lines


def bench(args: argparse.Namespace) -> int:
    # The main size first, so its table is there even if a long scaling run is cut short.
    sizes = [args.hosts] + sorted(set(int(n) for n in args.scale.split(",") if n.strip()) - {args.hosts})
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbfleet-bench-") as tmp:
        workdir = Path(tmp)
        results: Dict[int, Dict[str, Dict[str, object]]] = {}
        with Fleet(max(sizes), workdir) as fleet:
            for n in sizes:
                runs = args.runs if n == args.hosts else args.scale_runs
                print("bench: N=%d, %d runs" % (n, runs), file=sys.stderr, flush=True)
                results[n] = measure(fleet, n, runs, workdir)
                lines = format_tables(results, args.hosts, args.runs)
                out.write_text(json.dumps({
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                "load_avg_1m": os.getloadavg()[0]},
                    "hosts": args.hosts, "runs": args.runs, "scale_runs": args.scale_runs, "pipelining": True,
                    "results": {str(k): r for k, r in sorted(results.items())}, "table": lines,
                }, indent=2) + "\n")
    print("\n".join(format_tables(results, args.hosts, args.runs)))
    print("bench: results written to %s" % out, file=sys.stderr)
    return 0


def audit_demo(args: argparse.Namespace) -> int:
    """A small fleet of different memory shapes plus one unreachable host, audited for real."""
    shapes = sorted(DEMO_MEMINFO.glob("*.meminfo"))
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="dbfleet-bench-") as tmp:
        workdir = Path(tmp)
        with Fleet(len(shapes), workdir, shapes) as fleet:
            # Named after their memory shape so the report reads like a fleet.
            inventory = workdir / "inventory"
            lines = ["[fleet]"]
            for shape, port in zip(shapes, fleet.ports):
                lines.append("%s ansible_host=127.0.0.1 ansible_port=%d" % (shape.stem, port))
            lines.append("db-decommissioned ansible_host=127.0.0.1 ansible_port=%d" % (BASE_PORT + 99))
            lines += ["", "[fleet:vars]", "ansible_user=root", "ansible_ssh_private_key_file=%s" % fleet.key,
                      "ansible_python_interpreter=/usr/bin/python3",
                      "overcommit_audit_meminfo_path=/etc/dbfleet-bench/meminfo",
                      "ansible_ssh_common_args='-o ConnectTimeout=3'"]
            inventory.write_text("\n".join(lines) + "\n")
            env = dict(os.environ, ANSIBLE_CONFIG=str(BENCH / "ansible.cfg"),
                       ANSIBLE_SSH_CONTROL_PATH_DIR=str(workdir / "cp"))
            proc = subprocess.run(["ansible-playbook", "-i", str(inventory), "dbfleet.memory.audit",
                                   "-e", "overcommit_audit_dir=%s" % out, "-e", "overcommit_profile=postgresql"],
                                  env=env, text=True, stdin=subprocess.DEVNULL, cwd=BENCH)
    return proc.returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "audit-demo"])
    parser.add_argument("--hosts", type=int, default=int(os.environ.get("N", "8")), help="fleet size of the main table")
    parser.add_argument("--scale", default="1,4,8,16", help="fleet sizes for the scaling table (comma-separated)")
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario at --hosts")
    parser.add_argument("--scale-runs", type=int, default=3, help="runs per scenario at the other sizes")
    parser.add_argument("--results", default=str(BENCH / "results" / "latest.json"))
    parser.add_argument("--out", default=str(BENCH / "results" / "audit-demo"), help="audit-demo report directory")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: rootful podman with --network host")
    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C, so the containers are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return audit_demo(args) if args.command == "audit-demo" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
