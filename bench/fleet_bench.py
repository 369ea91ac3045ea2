# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark over real SSH: our role against the common one-task-per-key baseline.

    scripts/in-env.sh python bench/fleet_bench.py [--sizes 4,32,8,16] [--runs 5] [--seed S]

(The audit on a demo fleet of memory shapes is bench/audit_demo.py; it reuses Fleet.)

Each host is an unprivileged podman container of the project's Debian 12 rootfs running
only `sshd -D -p PORT -o ListenAddress=127.0.0.1` under --network host, so Ansible reaches
it over real SSH at 127.0.0.1:PORT. Never --privileged: vm.* sysctls are not namespaced,
and /proc/sys must stay read-only inside so nothing here can change this machine's kernel.
Both sides are therefore file-only: our role detects the container, the baseline runs with
sysctl_set/reload off. Live application is measured on real kernels (tests/lab), not here.

Every run is cold: a fresh SSH ControlPath directory, closed afterwards, so no run reuses
the previous run's connections. "First" runs start from hosts with no drop-in; "no-op"
runs follow immediately and must change nothing. Each round runs ping, ours, the baseline
with and without fact gathering, and the audit once each, in an order shuffled per round
(seeded, the seed recorded). The containers are always removed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
                 base_port: int = BASE_PORT, extra_mounts: Sequence[str] = ()) -> None:
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
        # More "-v SRC:DEST[:OPTIONS]" mounts for every container (tests/metrics mounts node_exporter).
        self.extra_mounts = list(extra_mounts)

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
            for mount in self.extra_mounts:
                mounts += ["-v", mount]
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
        # In parallel: one podman exec after the other costs seconds at N=32.
        procs = [subprocess.Popen(["podman", "exec", name, "rm", "-f", *DROPINS], stdin=subprocess.DEVNULL)
                 for name in self.names[:count]]
        if any(proc.wait() for proc in procs):
            raise RuntimeError("resetting the hosts failed")


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
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=BENCH,
                          check=False)
    wall_s = time.monotonic() - started
    for sock in control_dir.iterdir():
        run(["ssh", "-O", "exit", "-o", "ControlPath=%s" % sock, "bench"], check=False)
    shutil.rmtree(control_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d):\n%s\n%s"
                           % (" ".join(cmd), proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    counts = json.loads(count_file.read_text()) if count_file.exists() else {}
    return {
        "wall_s": wall_s,
        # The median host: the audit's report tasks are delegated to the controller but counted
        # against the play's first host, which would otherwise look like 6 module runs.
        "modules_per_host": statistics.median_low([h["modules"] for h in counts.values()] or [0]),
        "changed_hosts": sum(1 for h in counts.values() if h["recap"].get("changed")),
        "hosts": len(counts),
    }


# Each round runs these groups once, in a shuffled order; a "first" run and its no-op run stay paired.
GROUPS = {
    "ping": ("ping",),
    "ours": ("ours_first", "ours_noop"),
    "baseline": ("baseline_first", "baseline_noop"),
    "baseline_nofacts": ("baseline_nofacts_first", "baseline_nofacts_noop"),
    "audit": ("audit",),
}
# Targets, as ratios to `ansible -m ping` measured in the same rounds (ratio of the medians).
RATIO_TARGETS = {"ours_noop": 1.15, "ours_first": 1.25, "audit": 1.15}
# "Flat or falling" per-host cost above the ping floor, N=4 -> N=32, allowing this much noise.
FLAT_SLACK_MS = 10.0


def summarize(items: List[Dict[str, object]]) -> Dict[str, object]:
    walls = [float(i["wall_s"]) for i in items]
    loads = [float(i["load_1m"]) for i in items]
    return {
        "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
        "runs_s": [round(w, 3) for w in walls],
        "load_1m_median": statistics.median(loads), "load_1m_min": min(loads), "load_1m_max": max(loads),
        "modules_per_host": max(int(i["modules_per_host"]) for i in items),
        "changed_hosts_max": max(int(i["changed_hosts"]) for i in items),
        "changed_hosts_min": min(int(i["changed_hosts"]) for i in items),
    }


def measure(fleet: Fleet, count: int, runs: int, workdir: Path, rng: random.Random) -> Dict[str, object]:
    inventory = str(fleet.inventory(count, workdir / ("inventory-%d" % count)))
    # File-only in containers (see the module docstring); reload/live set stay on for real kernels.
    file_only = ["-e", "baseline_sysctl_set=false", "-e", "baseline_sysctl_reload=false"]
    commands = {
        "ping": ["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"],
        "ours": ["ansible-playbook", "-i", inventory, str(BENCH / "ours.yml")],
        "baseline": ["ansible-playbook", "-i", inventory, str(BENCH / "baseline.yml"), *file_only],
        # The same tasks without fact gathering: what one task per key costs, apart from the facts.
        "baseline_nofacts": ["ansible-playbook", "-i", inventory, str(BENCH / "baseline_nofacts.yml"), *file_only],
        # One overcommit_info run per host, then the report on the controller.
        "audit": ["ansible-playbook", "-i", inventory, "dbfleet.memory.audit",
                  "-e", "overcommit_audit_dir=%s" % (workdir / "audit")],
    }
    samples: Dict[str, List[Dict[str, object]]] = {name: [] for group in GROUPS.values() for name in group}
    orders: List[List[str]] = []
    for _round in range(runs):
        # Shuffled every round, so neither a drift on the machine (another job, the page cache)
        # nor a warm-up of the first command favours one side.
        order = list(GROUPS)
        rng.shuffle(order)
        orders.append(order)
        for group in order:
            names = GROUPS[group]
            if len(names) == 2:
                fleet.reset(count)
            for name in names:
                load_1m = os.getloadavg()[0]
                sample = timed_ansible(commands[group], workdir)
                sample["load_1m"] = load_1m
                samples[name].append(sample)
    result: Dict[str, object] = {name: summarize(items) for name, items in samples.items()}
    for group, names in GROUPS.items():
        if len(names) != 2:
            continue
        first, noop = (result[n] for n in names)
        if noop["changed_hosts_max"]:
            raise RuntimeError("%s: the second run changed %s host(s): not idempotent" % (group, noop["changed_hosts_max"]))
        if first["changed_hosts_min"] != count:
            raise RuntimeError("%s: a first run changed only %s of %d hosts" % (group, first["changed_hosts_min"], count))
    ping_s = float(result["ping"]["median_s"])
    names = [n for group in GROUPS.values() for n in group if n != "ping"]
    result["vs_ping"] = {n: float(result[n]["median_s"]) / ping_s for n in names}
    # Cost above the floor, per host: what each host adds over a bare ping of it.
    result["over_ping_ms_per_host"] = {n: 1000 * (float(result[n]["median_s"]) - ping_s) / count for n in names}
    result["machine"] = {"cpus": os.cpu_count(), "load_1m_end": os.getloadavg()[0]}
    result["orders"] = orders
    return result


def target_lines(results: Dict[int, Dict[str, object]]) -> List[str]:
    lines = ["Targets (ratios of medians to `ansible -m ping` in the same rounds):"]
    for name, limit in RATIO_TARGETS.items():
        got = {n: r["vs_ping"][name] for n, r in sorted(results.items())}
        verdict = "met" if all(v <= limit for v in got.values()) else "MISSED"
        measured = "  ".join("N=%d %.2fx" % kv for kv in got.items())
        lines.append("  %-10s <= %.2fx: %s  %s" % (name, limit, measured, verdict))
    if 4 in results and 32 in results:
        at4 = results[4]["over_ping_ms_per_host"]["ours_noop"]
        at32 = results[32]["over_ping_ms_per_host"]["ours_noop"]
        verdict = "met" if at32 <= at4 + FLAT_SLACK_MS else "MISSED"
        lines.append("  ours_noop ms/host above ping flat or falling N=4 -> N=32 (+%.0f ms slack): %.0f -> %.0f  %s"
                     % (FLAT_SLACK_MS, at4, at32, verdict))
    else:
        lines.append("  per-host cost N=4 -> N=32: not measured (needs both sizes)")
    return lines


def format_tables(results: Dict[int, Dict[str, object]], runs: int) -> List[str]:
    lines = ["Fleet benchmark: median [min-max] wall seconds of %d cold rounds per size, scenarios shuffled in each "
             "round; pipelining on; x = ratio of the medians to ping" % runs]
    for n in sorted(results):
        r = results[n]
        lines.append("")
        lines.append("N=%d hosts  (cores %d, load 1m while measuring %.1f-%.1f)" % (
            n, r["machine"]["cpus"], min(float(r[x]["load_1m_min"]) for g in GROUPS.values() for x in g),
            max(float(r[x]["load_1m_max"]) for g in GROUPS.values() for x in g)))
        lines.append("  %-22s %8s  %-15s %7s %9s %8s" % ("scenario", "median", "[min-max]", "x ping", "ms/host+", "mod/host"))
        for group in GROUPS.values():
            for name in group:
                row = r[name]
                ratio = "%.2f" % r["vs_ping"][name] if name != "ping" else "1.00"
                extra = "%.0f" % r["over_ping_ms_per_host"][name] if name != "ping" else "-"
                lines.append("  %-22s %8.2f  [%5.2f-%5.2f]  %7s %9s %8d" % (
                    name, row["median_s"], row["min_s"], row["max_s"], ratio, extra, row["modules_per_host"]))
    lines.append("")
    lines.append("ms/host+ = (median - ping median) / N: the cost per host above the ping floor.")
    lines.append("mod/host = module executions per host (median host; the audit's report tasks run on the controller).")
    lines.append("")
    lines += target_lines(results)
    return lines


def bench(args: argparse.Namespace) -> int:
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbfleet-bench-") as tmp:
        workdir = Path(tmp)
        results: Dict[int, Dict[str, object]] = {}
        with Fleet(max(sizes), workdir) as fleet:
            for n in sizes:
                size_started = time.monotonic()
                print("bench: N=%d, %d rounds" % (n, args.runs), file=sys.stderr, flush=True)
                results[n] = measure(fleet, n, args.runs, workdir, rng)
                results[n]["elapsed_s"] = time.monotonic() - size_started
                lines = format_tables(results, args.runs)
                # Written after every size, so a run cut short keeps what it measured.
                out.write_text(json.dumps({
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                "load_avg_1m": os.getloadavg()[0]},
                    "sizes": sizes, "runs": args.runs, "seed": args.seed, "pipelining": True,
                    "elapsed_s": time.monotonic() - started,
                    "results": {str(k): r for k, r in sorted(results.items())}, "table": lines,
                }, indent=2) + "\n")
                print("\n".join(lines[-len(target_lines(results)):]), file=sys.stderr, flush=True)
    print("\n".join(format_tables(results, args.runs)))
    print("bench: %.0f s; results written to %s" % (time.monotonic() - started, out), file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", nargs="?", default="bench", choices=["bench"])
    # 4 and 32 first: the per-host target compares them, so a run cut short can still judge it.
    parser.add_argument("--sizes", default=os.environ.get("SIZES", "4,32,8,16"),
                        help="fleet sizes, measured in this order (comma-separated)")
    parser.add_argument("--runs", type=int, default=5, help="rounds per size (each runs every scenario once)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the shuffled order (recorded)")
    parser.add_argument("--results", default=str(BENCH / "results" / "latest.json"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: rootful podman with --network host")
    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C, so the containers are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
