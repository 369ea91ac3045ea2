# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit on a demo fleet: one sshd container per memory shape, plus a host that cannot be reached.

    make audit-demo          (or: scripts/in-env.sh python bench/audit_demo.py [--out DIR])

Each container of bench/fleet_bench.py's Fleet gets one real /proc/meminfo text of
bench/audit_demo/meminfo/ mounted read-only, and the dbfleet.memory.audit playbook reads it
instead of /proc/meminfo (overcommit_audit_meminfo_path), so the report reads like a fleet of
different database hosts: report.md, report.html, report.json and report.csv in --out.
Read-only like every audit; the containers are always removed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from fleet_bench import BASE_PORT, BENCH, Fleet

DEMO_MEMINFO = BENCH / "audit_demo" / "meminfo"
# Nothing listens here: the report must show the host as unreachable.
UNREACHABLE_PORT = BASE_PORT + 99


def audit_demo(out: Path) -> int:
    shapes = sorted(DEMO_MEMINFO.glob("*.meminfo"))
    with tempfile.TemporaryDirectory(prefix="dbfleet-bench-") as tmp:
        workdir = Path(tmp)
        with Fleet(len(shapes), workdir, shapes) as fleet:
            # Named after their memory shape so the report reads like a fleet.
            inventory = workdir / "inventory"
            lines = ["[fleet]"]
            for shape, port in zip(shapes, fleet.ports):
                lines.append("%s ansible_host=127.0.0.1 ansible_port=%d" % (shape.stem, port))
            lines.append("db-decommissioned ansible_host=127.0.0.1 ansible_port=%d" % UNREACHABLE_PORT)
            lines += ["", "[fleet:vars]", "ansible_user=root", "ansible_ssh_private_key_file=%s" % fleet.key,
                      "ansible_python_interpreter=/usr/bin/python3",
                      "overcommit_audit_meminfo_path=/etc/dbfleet-bench/meminfo",
                      "ansible_ssh_common_args='-o ConnectTimeout=3'"]
            inventory.write_text("\n".join(lines) + "\n")
            env = dict(os.environ, ANSIBLE_CONFIG=str(BENCH / "ansible.cfg"),
                       ANSIBLE_SSH_CONTROL_PATH_DIR=str(workdir / "cp"))
            proc = subprocess.run(["ansible-playbook", "-i", str(inventory), "dbfleet.memory.audit",
                                   "-e", "overcommit_audit_dir=%s" % out, "-e", "overcommit_profile=postgresql"],
                                  env=env, text=True, stdin=subprocess.DEVNULL, cwd=BENCH, check=False)
    return proc.returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--out", default=str(BENCH / "results" / "audit-demo"), help="report directory")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: rootful podman with --network host")
    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C, so the containers are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return audit_demo(Path(args.out).resolve())


if __name__ == "__main__":
    sys.exit(main())
