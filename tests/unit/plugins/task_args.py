"""What a task of the collection's own YAML passes to its module, templated by Ansible itself.

The role's task and the playbooks pass the planner's options as ``"{{ overcommit_<option> | default(omit) }}"``;
what reaches the module depends on Ansible's templating and its ``omit``, so the tests template the real task
with ansible-core's Templar instead of reading the text. Imported by its collection name, so it works from a
checkout and from an installed collection alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

COLLECTION = Path(__file__).resolve().parents[3]


def _trusted(value: Any) -> Any:
    # The YAML a playbook loader reads is trusted as a template; yaml.safe_load's is not.
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    if isinstance(value, str):
        return trust_as_template(value)
    return value


def tasks_calling(relative_path: str, module: str) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """Every task of a tasks file or playbook that calls ``module``: its play's ``vars`` and its raw arguments."""
    data = yaml.safe_load((COLLECTION / relative_path).read_text())
    found = []
    for item in data:
        play_vars, tasks = (item.get("vars") or {}, item.get("tasks", [])) if "hosts" in item else ({}, [item])
        found.extend((play_vars, task[module]) for task in _flat(tasks) if module in task)
    return found


def _flat(tasks: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The tasks, with those of blocks (block, rescue, always) in their place."""
    out: List[Dict[str, Any]] = []
    for task in tasks:
        if any(key in task for key in ("block", "rescue", "always")):
            for key in ("block", "rescue", "always"):
                out.extend(_flat(task.get(key) or []))
        else:
            out.append(task)
    return out


def module_args(relative_path: str, module: str, variables: Mapping[str, Any]) -> Dict[str, Any]:
    """The arguments the one task of ``relative_path`` calling ``module`` gives it, for these variables
    (set as the inventory or -e would set them; a playbook's own play vars are templated too)."""
    ((play_vars, raw),) = tasks_calling(relative_path, module)
    templar = Templar(loader=DataLoader(), variables=dict(_trusted(play_vars), **variables))
    return dict(templar.template(_trusted(raw)))


def role_defaults() -> Dict[str, Any]:
    return yaml.safe_load((COLLECTION / "roles" / "overcommit" / "defaults" / "main.yml").read_text())
