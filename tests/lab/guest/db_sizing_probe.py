"""Runs inside a lab guest (test code, not product code): the product's database reader
(plugins/module_utils/_db) on the guest's own /proc, through the servers' own clients, printed as
JSON for dbsizing.py (the calibration, and Committed_AS at the barrier of the proofs' loads).
Verdicts are not made here: the proofs take theirs from overcommit_info, as a user does.

  db_sizing_probe.py COLLECTION_ROOT [--clients PID,...]

COLLECTION_ROOT holds ansible_collections/dbfleet/memory/plugins/module_utils/ as the test uploaded
it. --clients: the product's charge of those processes too (a load's clients).
Committed_AS is read first, before this script has read any database.
"""
import argparse
import json
import subprocess
import sys


def meminfo():
    with open("/proc/meminfo") as handle:
        return {line.split(":")[0]: int(line.split()[1]) for line in handle if line.split()[1:2]}


BEFORE = meminfo()
parser = argparse.ArgumentParser()
parser.add_argument("root")
parser.add_argument("--clients", default="")
args = parser.parse_args()
sys.path.insert(0, args.root)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import host, mysql, postgresql, procfs  # noqa: E402


def on_host(path):
    return path


def run(argv):
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


found = host.read_databases(on_host, run)
out = {"meminfo": BEFORE, "host": found.as_dict(), "estimates": {}, "measured": {},
       "databases_charge": host.databases_charge(found).as_dict()}
for reading in found.databases:
    name = reading.server.name
    estimate = host.estimate_of(reading, hugetlb_free_kb=found.hugetlb_free_kb)
    out["estimates"][name] = estimate.as_dict() if estimate else None
    if isinstance(reading.settings, postgresql.PgSettings):
        pm = postgresql.PgMeasured.from_charges(reading.process_charges.get(reading.server.pid or -1))
        out["measured"][name] = {"postmaster_private_kb": pm.postmaster_private_kb,
                                 "other_segments_kb": pm.other_segments_kb, "shm_in_huge_pages": pm.shm_in_huge_pages}
    if isinstance(reading.settings, mysql.MySqlSettings):
        out["measured"][name] = {"overhead_kb": mysql.measure(reading.settings, reading.charge).overhead_kb}
clients = [int(pid) for pid in args.clients.split(",") if pid]
if clients:
    out["clients"] = procfs.charge_of_pids(on_host, clients)[0].as_dict()
print(json.dumps(out))
