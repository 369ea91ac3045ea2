# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count remote module executions per host and write them, with the recap, as JSON.

The fleet benchmark bounds how many modules a no-op run may execute per host; this
counts them the way the benchmark will: every task result that ran a module on the
target, not controller-side actions (assert, set_fact, include_role, ...).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: dbfleet_module_count
type: aggregate
short_description: Count remote module executions per host (tests only)
description:
  - "At the end of the run, writes per host the module count, the actions and the recap as JSON
    to the file named by the environment variable E(DBFLEET_MODULE_COUNT_FILE)."
requirements:
  - enable in callbacks_enabled
"""

import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only: they never start Python on the target.
CONTROLLER_ONLY = {
    "add_host", "assert", "debug", "fail", "group_by", "include_role", "include_tasks", "include_vars",
    "import_role", "import_tasks", "meta", "pause", "set_fact", "set_stats", "validate_argument_spec",
}


def _short(action):
    return action.rsplit(".", 1)[-1]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbfleet_module_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.actions = defaultdict(list)

    def _count(self, result):
        action = result.task.action if hasattr(result, "task") else result._task.action
        host = result.host.get_name() if hasattr(result, "host") else result._host.get_name()
        if _short(action) not in CONTROLLER_ONLY:
            self.actions[host].append(action)

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("DBFLEET_MODULE_COUNT_FILE")
        if not path:
            return
        hosts = sorted(stats.processed)
        out = {
            "hosts": {h: {"modules": len(self.actions[h]), "actions": self.actions[h]} for h in hosts},
            "stats": {h: stats.summarize(h) for h in hosts},
        }
        with open(path, "w") as f:
            json.dump(out, f, indent=2)
