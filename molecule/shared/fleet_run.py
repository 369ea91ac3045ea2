"""Run a playbook against the scenario's instances and return per-host recap and module counts.

Used by the verify steps: default's no-op run must change nothing and execute one module
per host, in check mode and for real; rollout runs the example site.yml.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent
CALLBACKS = SHARED.parents[1] / "tests" / "callback_plugins"   # shared with the benchmark


def run_playbook(playbook: str, *extra: str, expect_rc: int = 0) -> dict:
    """Run PLAYBOOK (a name in molecule/shared/ or a path) and expect exit code EXPECT_RC:
    a rollout that stops at a failed host exits 2, and the caller says so."""
    with tempfile.TemporaryDirectory() as tmp:
        count_file = os.path.join(tmp, "count.json")
        env = dict(os.environ)
        env.update(
            DBFLEET_MODULE_COUNT_FILE=count_file,
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED="dbfleet_module_count",
        )
        cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SHARED / playbook), *extra]
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if proc.returncode != expect_rc:
            raise AssertionError("%s: rc=%d, expected %d:\n%s\n%s"
                                 % (" ".join(cmd), proc.returncode, expect_rc, proc.stdout[-4000:], proc.stderr[-2000:]))
        with open(count_file) as f:
            counts = json.load(f)
    data = {"hosts": counts, "stats": {host: count["recap"] for host, count in counts.items()}}
    data["elapsed_s"] = elapsed
    data["stdout"] = proc.stdout
    data["stderr"] = proc.stderr   # the default callback prints failures here
    return data


def ping_seconds() -> float:
    """Wall time of `ansible -m ping` over the same inventory, the benchmark's yardstick."""
    started = time.monotonic()
    subprocess.run(["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "all:!localhost", "-m", "ansible.builtin.ping"],
                   capture_output=True, check=True)
    return time.monotonic() - started
