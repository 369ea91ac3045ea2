"""The textfile the role and the audit write, read by a real node_exporter and scraped as Prometheus would.

A Debian 12 container of the project's own image (scripts/podman-image.sh) runs sshd, with a known memory shape
bind-mounted over /proc/meminfo (bench/fleet_bench.py's Fleet) and Debian's prometheus-node-exporter binary from
this machine mounted in. The role writes the textfile over SSH (overcommit_metrics_textfile), node_exporter serves
it from its textfile directory beside its own metrics, and curl scrapes it; then the audit rewrites it
(overcommit_audit_textfile) with a workload the host cannot hold, and the next scrape shows that. The checks: our
metrics come back with the plan's numbers in bytes, node_exporter read the file without error, and the metrics the
alert rules read from node_exporter itself exist under the names the rules use.

Needs root, podman, curl and /usr/bin/prometheus-node-exporter: without them it fails, it does not skip. Nothing
listens beyond 127.0.0.1, and the container (name prefix dbfleet-metrics-) is removed afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMINFO = REPO / "molecule" / "default" / "meminfo" / "vm-4g-noswap.meminfo"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's package's default
TEXTFILE = TEXTFILE_DIR + "/dbfleet_overcommit.prom"
SSH_PORT = 42410
EXPORTER_PORT = 42419
HOST = "dbfleet-metrics-00"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def load_bench():
    spec = importlib.util.spec_from_file_location("fleet_bench", REPO / "bench" / "fleet_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, **kwargs)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def scrape() -> Dict[Tuple[str, str], float]:
    """{(name, labels): value} of node_exporter's /metrics, fetched with curl."""
    text = run(["curl", "--silent", "--show-error", "--fail", "--max-time", "10",
                "http://127.0.0.1:%d/metrics" % EXPORTER_PORT]).stdout
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, line
            samples[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return samples


def value(samples, name: str, labels: str = "") -> float:
    assert (name, labels) in samples, (name, labels, sorted(k for k in samples if k[0].startswith(name)))
    return samples[(name, labels)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    for tool in ("podman", "curl"):
        if shutil.which(tool) is None:
            pytest.fail("%s is missing: run scripts/system-deps.sh" % tool)
    if not os.access(NODE_EXPORTER, os.X_OK):
        pytest.fail("%s is missing: install Debian's prometheus-node-exporter (scripts/system-deps.sh)" % NODE_EXPORTER)
    if os.geteuid() != 0:
        pytest.fail("run as root: the container uses rootful podman with --network host")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", EXPORTER_PORT)) == 0:
            pytest.fail("127.0.0.1:%d is taken; this test's node_exporter listens there" % EXPORTER_PORT)
    bench = load_bench()
    workdir = tmp_path_factory.mktemp("metrics")
    with bench.Fleet(1, workdir, [MEMINFO], meminfo_mount="/proc/meminfo", prefix="dbfleet-metrics-",
                     base_port=SSH_PORT, extra_mounts=["%s:%s:ro" % (NODE_EXPORTER, NODE_EXPORTER)]) as started:
        # What the Debian package sets up: the directory node_exporter reads textfiles from.
        run(["podman", "exec", HOST, "mkdir", "-p", TEXTFILE_DIR])
        run(["podman", "exec", "--detach", HOST, NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % EXPORTER_PORT,
             "--collector.textfile.directory=%s" % TEXTFILE_DIR])
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", EXPORTER_PORT)) == 0:
                    break
            assert time.monotonic() < deadline, run(["podman", "logs", HOST]).stderr[-3000:]
            time.sleep(0.2)
        inventory = started.inventory(1, workdir / "inventory", host_vars="overcommit_profile=postgresql")
        yield {"workdir": workdir, "inventory": inventory}


def ansible(fleet, *args: str) -> subprocess.CompletedProcess:
    return run(args, cwd=fleet["workdir"], env=dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False"))


def info_result(fleet, *options: str) -> dict:
    """What overcommit_info reports for the host, with the role's options."""
    proc = ansible(fleet, "ansible", "-i", str(fleet["inventory"]), HOST, "-o", "-m", "dbfleet.memory.overcommit_info",
                   "-a", " ".join(("profile=postgresql",) + options))
    return json.loads(proc.stdout.split(" => ", 1)[1])


def test_node_exporter_serves_the_roles_textfile_beside_its_own_memory_metrics(fleet):
    playbook = fleet["workdir"] / "role.yml"
    playbook.write_text("---\n- name: The role, writing the verdict for node_exporter\n  hosts: all\n  gather_facts: false\n"
                        "  roles:\n    - role: dbfleet.memory.overcommit\n")
    ansible(fleet, "ansible-playbook", "-i", str(fleet["inventory"]), str(playbook),
            "-e", "overcommit_metrics_textfile=%s" % TEXTFILE)
    plan = info_result(fleet)
    samples = scrape()
    # node_exporter read our file, and nothing else failed.
    assert value(samples, "node_textfile_scrape_error") == 0
    assert [k for k in samples if k[0] == "node_textfile_mtime_seconds"] == [
        ("node_textfile_mtime_seconds", '{file="%s"}' % TEXTFILE)]
    # The plan, in bytes, as overcommit_info computes it.
    assert value(samples, "dbfleet_overcommit_planned_commit_limit_bytes") == plan["commit_limit_kb"] * 1024
    assert value(samples, "dbfleet_overcommit_lower_bound_bytes") == plan["bounds"]["lower_kb"] * 1024
    assert value(samples, "dbfleet_overcommit_upper_bound_bytes") == plan["bounds"]["upper_kb"] * 1024
    assert value(samples, "dbfleet_overcommit_planned_mode") == 2
    assert value(samples, "dbfleet_overcommit_plan_safe") == 1 and value(samples, "dbfleet_overcommit_next_boot_safe") == 1
    # In a container the role writes the drop-in only: it is in force, and nothing is left to apply.
    assert value(samples, "dbfleet_overcommit_dropin_in_force") == 1
    assert value(samples, "dbfleet_overcommit_apply_would_change") == 0
    assert value(samples, "dbfleet_overcommit_info",
                 '{container="podman",dropin="/etc/sysctl.d/90-dbfleet-overcommit.conf",limit_by="ratio",'
                 'planned_mode="2",profile="postgresql",verdict="safe"}') == 1
    # What the alert rules read from node_exporter itself is there, under those names: the memory shape is the
    # one mounted over /proc/meminfo.
    meminfo = dict(line.split(":", 1) for line in MEMINFO.read_text().splitlines())
    assert value(samples, "node_memory_CommitLimit_bytes") == int(meminfo["CommitLimit"].split()[0]) * 1024
    assert value(samples, "node_memory_Committed_AS_bytes") == int(meminfo["Committed_AS"].split()[0]) * 1024
    assert ("node_vmstat_oom_kill", "") in samples


def test_the_audit_rewrites_it_and_the_next_scrape_shows_a_plan_that_cannot_fit(fleet):
    ansible(fleet, "ansible-playbook", "-i", str(fleet["inventory"]), "dbfleet.memory.audit",
            "-e", "overcommit_audit_dir=%s" % (fleet["workdir"] / "audit"), "-e", "overcommit_audit_textfile=%s" % TEXTFILE,
            "-e", "overcommit_workload_commit_mb=30000")
    samples = scrape()
    assert value(samples, "node_textfile_scrape_error") == 0
    assert value(samples, "dbfleet_overcommit_plan_safe") == 0 and value(samples, "dbfleet_overcommit_apply_refused") == 1
    assert value(samples, "dbfleet_overcommit_workload_commit_bytes") == 30000 * 1024 * 1024
    # Written atomically: only the textfile is in the directory, no temporary file beside it.
    listing = run(["podman", "exec", HOST, "ls", "-A", TEXTFILE_DIR]).stdout.split()
    assert listing == ["dbfleet_overcommit.prom"]


def test_promtool_finds_nothing_to_lint_in_the_textfile(fleet):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (scripts/system-deps.sh)")
    text = run(["podman", "exec", HOST, "cat", TEXTFILE]).stdout
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
