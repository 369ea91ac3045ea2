"""A no-op fleet run: nothing changes, one module execution per host, also in check mode."""

from __future__ import annotations

import pytest

from expectations import APPLIED, container_hosts
from fleet_run import ping_seconds, run_playbook

testinfra_hosts = container_hosts(APPLIED)


@pytest.fixture(scope="module")
def noop_runs():
    return {"check": run_playbook("role_only.yml", "--check", "--diff"), "real": run_playbook("role_only.yml"),
            "ping_s": ping_seconds()}


@pytest.mark.parametrize("mode", ["check", "real"])
def test_noop_run_changes_nothing_with_one_module_per_host(host, noop_runs, mode):
    name = host.backend.get_hostname()
    run = noop_runs[mode]
    assert run["stats"][name]["changed"] == 0, run["stdout"][-3000:]
    assert run["stats"][name]["failures"] == 0
    assert run["hosts"][name]["actions"] == ["dbfleet.memory.overcommit"]
    print("no-op %s run: %.1fs for %d hosts; ansible -m ping: %.1fs"
          % (mode, run["elapsed_s"], len(APPLIED), noop_runs["ping_s"]))
