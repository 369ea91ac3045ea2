"""dbfleet.memory.plan_report as a user runs it, on this machine (read-only: one overcommit_info run).

The case from the issue: with ``-e overcommit_workload_commit_mb=...`` larger than this machine's RAM and swap,
the report must say "unsafe", as the role would refuse, and show the workload it planned for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KIB_PER_MIB = 1024


def meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _colon, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0])
    raise AssertionError("/proc/meminfo has no %s" % field)


def test_a_workload_larger_than_the_host_is_reported_unsafe_as_the_role_would_refuse_it(tmp_path):
    workload_mb = 2 * (meminfo_kb("MemTotal") + meminfo_kb("SwapTotal")) // KIB_PER_MIB
    (tmp_path / "inventory").write_text("this-machine ansible_connection=local ansible_python_interpreter=%s\n"
                                        % sys.executable)
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inventory"), "dbfleet.memory.plan_report",
                           "-e", "overcommit_profile=postgresql", "-e", "overcommit_workload_commit_mb=%d" % workload_mb],
                          capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False,
                          env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "verdict: unsafe (profile postgresql)" in proc.stdout, proc.stdout[-3000:]
    assert "verdict: safe" not in proc.stdout
    # The workload reached the planner: its demand is the workload, in kB.
    assert str(workload_mb * KIB_PER_MIB) in proc.stdout or "%d MiB" % workload_mb in proc.stdout, proc.stdout[-3000:]
