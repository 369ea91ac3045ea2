"""The collection as a user gets it: built with ansible-galaxy, installed, and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(cmd, **kwargs):
    completed = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert completed.returncode == 0, "%s failed:\n%s\n%s" % (cmd, completed.stdout, completed.stderr)
    return completed


def test_built_tarball_installs_and_its_module_plans_this_machine(tmp_path):
    run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)])
    (tarball,) = tmp_path.glob("dbfleet-memory-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/overcommit_info.py" in names and "plugins/modules/overcommit.py" in names
    # One module changes vm.*: sysctl_apply took vm.overcommit_memory=2 alone (issue 8, finding 4).
    # oom_priority changes systemd units and process scores, never a sysctl (issue 9).
    # audit_report is an action that writes report files on the controller; its module file is docs only.
    # overcommit_metrics writes a Prometheus textfile, never a sysctl.
    assert not [n for n in names if n.startswith("plugins/modules/") and n.endswith(".py")
                and n.rsplit("/", 1)[1] not in ("overcommit.py", "overcommit_info.py", "oom_priority.py",
                                                "audit_report.py", "overcommit_metrics.py", "__init__.py")]
    assert "plugins/action/audit_report.py" in names
    # The alert rules travel with the collection; their tests do not need to.
    assert "prometheus/dbfleet_overcommit_rules.yml" in names
    assert "roles/oom_priority/meta/argument_specs.yml" in names
    assert not any(name.startswith(("tests/lab", "molecule", ".ci", "scripts")) for name in names)

    installed = tmp_path / "collections"
    # Only the installed copy may be visible, not the checkout the tests run from.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", PYTHONPATH="")
    run(["ansible-galaxy", "collection", "install", "-p", str(installed), str(tarball)], env=env)
    result = run(["ansible", "localhost", "-m", "dbfleet.memory.overcommit_info", "-a", "profile=postgresql",
                  "-e", "ansible_python_interpreter=" + sys.executable], env=env)
    host_result = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert host_result["sysctl"]["vm.overcommit_memory"] == "2"
    memtotal_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal:")))
    assert host_result["memory"]["memtotal_kb"] == memtotal_kb
    # The reader's check: the returned numbers give the returned CommitLimit.
    ratio = int(host_result["sysctl"]["vm.overcommit_ratio"])
    pages = (memtotal_kb // 4 - host_result["memory"]["hugetlb_kb"] // 4) * ratio // 100
    assert host_result["commit_limit_kb"] == (pages + host_result["memory"]["swaptotal_kb"] // 4) * 4
