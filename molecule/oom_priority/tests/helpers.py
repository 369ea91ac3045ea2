"""Run dbfleet.memory.oom_priority ad hoc against one instance and return its result."""

from __future__ import annotations

import json
import os
import subprocess

PG_DROPIN = "/etc/systemd/system/postgresql@.service.d/90-dbfleet-oom.conf"
MARIADB_DROPIN = "/etc/systemd/system/mariadb.service.d/90-dbfleet-oom.conf"


def run_module(host: str, check: bool = False, **args) -> dict:
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    cmd = ["ansible", host, "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-m", "dbfleet.memory.oom_priority",
           "-a", json.dumps(args)] + (["--check"] if check else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("%s: no JSON (rc=%d):\n%s\n%s"
                             % (" ".join(cmd), proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    return out["plays"][0]["tasks"][0]["hosts"][host]


def show(host, prop: str, unit: str) -> str:
    return host.check_output("systemctl show -p %s --value %s" % (prop, unit)).strip()


def main_pid_score(host, unit: str) -> int:
    pid = show(host, "MainPID", unit)
    return int(host.file("/proc/%s/oom_score_adj" % pid).content_string.strip())
