# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count remote module executions per host, for the molecule no-op test and the benchmark.

Every task result that ran a module on the target counts, controller-side actions
(assert, set_fact, include_role, ...) do not, and a loop counts once per item: the
baseline runs ansible.posix.sysctl in a loop, and every item is a separate module
execution (a separate SSH round trip) on the target.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: dbfleet_module_count
type: aggregate
short_description: Count remote module executions per host, loop items included (tests only)
description:
  - "At the end of the run, writes per host the module count, the actions, the changed count and the recap as
    JSON to the file named by the environment variable E(DBFLEET_MODULE_COUNT_FILE)."
requirements:
  - enable in callbacks_enabled
"""

import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only: they never start Python on the target.
# validate_argument_spec is the implicit first task of a role with meta/argument_specs.yml.
CONTROLLER_ONLY = {
    "add_host", "assert", "debug", "fail", "group_by", "include_role", "include_tasks", "include_vars",
    "import_role", "import_tasks", "meta", "pause", "set_fact", "set_stats", "validate_argument_spec",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbfleet_module_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.actions = defaultdict(list)

    def _count(self, result, item=False):
        action = result._task.action
        if action.rsplit(".", 1)[-1] in CONTROLLER_ONLY:
            return
        # A looped task reports each item, then an aggregate holding "results": count the items only.
        if not item and "results" in result._result:
            return
        self.actions[result._host.get_name()].append(action)

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_item_on_ok(self, result):
        self._count(result, item=True)

    def v2_runner_item_on_failed(self, result):
        self._count(result, item=True)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("DBFLEET_MODULE_COUNT_FILE")
        if not path:
            return
        hosts = sorted(stats.processed)
        with open(path, "w") as handle:
            json.dump({h: {"modules": len(self.actions[h]), "actions": self.actions[h], "recap": stats.summarize(h)}
                       for h in hosts}, handle, indent=2)
