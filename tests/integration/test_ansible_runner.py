"""The collection under ansible-runner, the way AWX runs a job: the built tarball installed into the
project's collections/ of a fresh private data directory, the role and the audit run with
`ansible-runner run` against sshd containers (bench/fleet_bench.py's Fleet), judged by the runner's
job events and artifacts, not by its console output.

Needs root and podman (rootful, --network host): without them it fails, it does not skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMINFO = REPO / "molecule" / "default" / "meminfo" / "vm-4g-noswap.meminfo"
HOSTS = ["dbfleet-runner-00", "dbfleet-runner-01"]
# The hand-computed plan for that memory shape and profile (molecule/shared/expectations.py).
PLANNED = {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90", "vm.overcommit_memory": "2"}


def load_bench():
    spec = importlib.util.spec_from_file_location("fleet_bench", REPO / "bench" / "fleet_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(cmd, **kwargs):
    completed = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                               stdin=subprocess.DEVNULL, **kwargs)
    assert completed.returncode == 0, "%s failed:\n%s\n%s" % (cmd, completed.stdout[-3000:], completed.stderr[-3000:])
    return completed


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/system-deps.sh (this test runs the collection in containers)")
    if os.geteuid() != 0:
        pytest.fail("run as root: the containers use rootful podman with --network host")
    bench = load_bench()
    workdir = tmp_path_factory.mktemp("fleet")
    # Ports and names of its own, so a `make bench` running at the same time keeps its fleet.
    with bench.Fleet(len(HOSTS), workdir, [MEMINFO], meminfo_mount="/proc/meminfo", prefix="dbfleet-runner-",
                     base_port=42300) as started:
        assert started.names == HOSTS
        yield started


@pytest.fixture(scope="module")
def private_data_dir(tmp_path_factory, fleet):
    """A fresh ansible-runner private data directory holding the project, inventory and settings."""
    build = tmp_path_factory.mktemp("build")
    pdd = tmp_path_factory.mktemp("runner")
    run(["ansible-galaxy", "collection", "build", "--output-path", build, REPO])
    (tarball,) = build.glob("dbfleet-memory-*.tar.gz")
    # Where the AWX guide says to put it: collections/ beside the project's playbooks.
    run(["ansible-galaxy", "collection", "install", "-p", pdd / "project" / "collections", tarball],
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(pdd / "empty"), PYTHONPATH=""))
    write(pdd / "project" / "overcommit.yml", (
        "---\n- name: Protect the database hosts from the OOM killer\n  hosts: all\n  gather_facts: false\n"
        "  become: true\n  roles:\n    - role: dbfleet.memory.overcommit\n"))
    write(pdd / "project" / "audit.yml", (
        "---\n- name: Fleet overcommit audit\n  ansible.builtin.import_playbook: dbfleet.memory.audit\n"))
    (pdd / "inventory").mkdir()
    fleet.inventory(len(HOSTS), pdd / "inventory" / "hosts", host_vars="overcommit_profile=postgresql")
    # Only the installed copy may be found: no checkout on the collections path, nor on PYTHONPATH.
    write(pdd / "env" / "envvars", json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": str(pdd / "empty"), "PYTHONPATH": "", "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(pdd / "cp")}))
    return pdd


def runner_job(pdd: Path, playbook: str, ident: str, extravars: dict = None) -> dict:
    cmd = ["ansible-runner", "run", pdd, "-p", playbook, "--ident", ident]
    if extravars:
        write(pdd / "env" / "extravars", json.dumps(extravars))
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    artifacts = pdd / "artifacts" / ident
    # job_events/ holds one file per event, named <counter>-<uuid>.json.
    paths = sorted((artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    events = [json.loads(p.read_text()) for p in paths]
    return {"proc": proc, "artifacts": artifacts, "events": events,
            "status": (artifacts / "status").read_text(), "rc": int((artifacts / "rc").read_text())}


def per_host(events, event_name):
    counts = {}
    for event in events:
        if event["event"] == event_name:
            counts[event["event_data"]["host"]] = counts.get(event["event_data"]["host"], 0) + 1
    return counts


def stats(events):
    (event,) = [e for e in events if e["event"] == "playbook_on_stats"]
    return event["event_data"]


@pytest.fixture(scope="module")
def role_jobs(private_data_dir):
    return [runner_job(private_data_dir, "overcommit.yml", "role-first"),
            runner_job(private_data_dir, "overcommit.yml", "role-again")]


@pytest.fixture(scope="module")
def audit_job(private_data_dir, role_jobs):
    return runner_job(private_data_dir, "audit.yml", "audit",
                      {"overcommit_audit_dir": str(private_data_dir / "artifacts" / "audit" / "overcommit-audit")})


def test_the_role_job_applies_one_module_run_per_host(role_jobs):
    first, again = role_jobs
    for job in role_jobs:
        assert (job["status"], job["rc"]) == ("successful", 0), job["proc"].stdout[-3000:]
    # ok counts the argument check and the module; changed, the module's first run only.
    assert stats(first["events"])["ok"] == {host: 2 for host in HOSTS}
    assert stats(first["events"])["changed"] == {host: 1 for host in HOSTS}
    assert stats(again["events"])["ok"] == {host: 2 for host in HOSTS}
    assert stats(again["events"])["changed"] == {}
    for job in role_jobs:
        assert stats(job["events"])["failures"] == {} and stats(job["events"])["dark"] == {}
        assert per_host(job["events"], "runner_on_ok") == {host: 2 for host in HOSTS}


def test_the_role_job_ran_the_installed_collection_and_wrote_the_plan(role_jobs):
    first, _again = role_jobs
    results = [e["event_data"] for e in first["events"]
               if e["event"] == "runner_on_ok" and e["event_data"]["task_action"] == "dbfleet.memory.overcommit"]
    assert sorted(r["host"] for r in results) == HOSTS
    for result in results:
        assert result["res"]["changed"] is True and result["res"]["target_values"] == PLANNED
        assert result["res"]["container"] == "podman" and result["res"]["live_applied"] is False
    # The role's task came from the installed tarball, not from the checkout.
    installed = first["artifacts"].parents[1] / "project" / "collections" / "ansible_collections" / "dbfleet" / "memory"
    assert all(r["task_path"].startswith(str(installed / "roles" / "overcommit" / "tasks")) for r in results)


def test_the_audit_job_reads_every_host_and_leaves_its_report_in_the_artifacts(audit_job):
    assert (audit_job["status"], audit_job["rc"]) == ("successful", 0), audit_job["proc"].stdout[-3000:]
    module_runs = [e["event_data"]["host"] for e in audit_job["events"] if e["event"] == "runner_on_ok"
                   and e["event_data"]["task_action"] == "dbfleet.memory.overcommit_info"]
    assert sorted(module_runs) == HOSTS
    # Nothing changed on any host: the only change is the report's, written on the controller
    # by the audit_report action (run_once; the stats file it under the play's first host).
    changed = [e["event_data"] for e in audit_job["events"]
               if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")]
    assert [(c["task"], c["task_action"]) for c in changed] == [
        ("Write report.md, report.html, report.json and report.csv on the controller", "dbfleet.memory.audit_report")]
    assert sum(stats(audit_job["events"])["changed"].values()) == 1
    report = audit_job["artifacts"] / "overcommit-audit"
    assert sorted(p.name for p in report.iterdir()) == ["report.csv", "report.html", "report.json", "report.md"]
    rows = {row["host"]: row for row in json.loads((report / "report.json").read_text())["hosts"]}
    assert sorted(rows) == HOSTS
    assert all(row["status"] == "ok" and row["live_mode"] in (0, 1, 2) for row in rows.values())
    # The Markdown table is in the job events too, whatever happens to the files (guide_awx.rst).
    shown = [e for e in audit_job["events"] if e["event"] == "runner_on_ok"
             and e["event_data"]["task"] == "Show the report"]
    assert shown and all(host in json.dumps(shown[0]["event_data"]["res"]) for host in HOSTS)
