"""Run the role against lab guests and read its per-host results.

The json callback gives every task's result per host, so tests and the demo can
compare what the planner predicted with what the guest's kernel shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umlab import Lab, LabError

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "overcommit.yml"
ROLE_ACTION = "dbfleet.memory.overcommit"   # the role's one task: plan, render, apply
OOM_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "oom_priority.yml"
INFO_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "info.yml"
INFO_ACTION = "dbfleet.memory.overcommit_info"
OOM_ACTION = "dbfleet.memory.oom_priority"   # that role's one task
DROPIN = "/etc/sysctl.d/90-dbfleet-overcommit.conf"   # the role's file at its default priority


@dataclass
class RoleRun:
    returncode: int
    stats: dict[str, dict[str, int]]
    # {host: {module name: that task's result}}
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    output: str = ""
    action: str = ROLE_ACTION   # the role's module, whose result apply() returns

    def apply(self, host: str) -> dict[str, Any]:
        """The module's result: what was applied, or the failure message."""
        try:
            return self.results[host][self.action]
        except KeyError:
            raise LabError(f"{host}: the play has no result of {self.action}; results of"
                           f" {sorted(self.results.get(host, {}))}\n{self.output}") from None

    def plan(self, host: str) -> dict[str, Any]:
        """The plan the module made on the host (also present when it refused to apply)."""
        return self.apply(host)["plan"]

    def changed(self, host: str) -> int:
        return self.stats[host]["changed"]

    def failed(self, host: str) -> bool:
        return self.stats[host]["failures"] > 0 or self.stats[host]["unreachable"] > 0

    def why(self) -> str:
        """For an assertion message: each failed task's message first, then the whole report.

        CI logs keep the head and tail of a long message; the module's own words must be in the head.
        """
        failures = [f"{host}: {action}: {result.get('msg')}"
                    for host, by_action in sorted(self.results.items())
                    for action, result in by_action.items() if result.get("failed") or result.get("unreachable")]
        head = "\n".join(failures) if failures else "(no task reported a failure)"
        return f"returncode {self.returncode}\n{head}\n--- the whole json report ---\n{self.output}"


def run_role(lab: Lab, limit: str = "all", **extra_vars: Any) -> RoleRun:
    """ansible-playbook with the overcommit role over SSH; extra_vars become -e JSON (e.g.
    lab_profile='postgresql', overcommit_state='absent')."""
    return _run_playbook(lab, PLAYBOOK, ROLE_ACTION, limit, extra_vars)


def run_oom_role(lab: Lab, limit: str = "all", **extra_vars: Any) -> RoleRun:
    """ansible-playbook with the oom_priority role over SSH (e.g. lab_profile=['postgresql', 'mariadb'])."""
    return _run_playbook(lab, OOM_PLAYBOOK, OOM_ACTION, limit, extra_vars)


def run_info(lab: Lab, limit: str = "all", **module_args: Any) -> RoleRun:
    """ansible-playbook with one overcommit_info task over SSH; ``apply(host)`` is its result."""
    return _run_playbook(lab, INFO_PLAYBOOK, INFO_ACTION, limit, {"lab_info_args": module_args})


def _run_playbook(lab: Lab, playbook: Path, action: str, limit: str, extra_vars: dict[str, Any]) -> RoleRun:
    proc = lab.ansible_playbook(playbook, "--limit", limit, "-e", json.dumps(extra_vars),
                                env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise LabError(f"ansible-playbook gave no JSON report (rc {proc.returncode}):\n"
                       f"{proc.stdout}\n{proc.stderr}") from exc
    run = RoleRun(proc.returncode, report["stats"], output=proc.stdout, action=action)
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if result.get("skipped"):   # e.g. the absent task on a present run: same module
                continue
            run.results.setdefault(host, {})[result.get("action", task["task"]["name"])] = result
    return run
