# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts overcommit_info returns with ``facts: true``: what a fact cache must hold so that
the controller can plan later, with no host contacted, exactly as the module plans on the host.

Planning needs the memory shape in kB (with Committed_AS, huge pages and the page size) and the
host's vm.user_reserve_kbytes (the planner holds it back from non-root processes). The live values
and the boot findings let an audit judge the risk from the cache too. Pure Python, no Ansible import.

The fact is one namespaced key, ``dbfleet_overcommit``, so it cannot collide with setup's facts. Its
reader is plugin_utils/facts_plan.py (controller side, for the overcommit_plan filter and the
audit_report action); ``schema`` changes when a field changes meaning, so a reader can tell an old
cache from a new one.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import CommitStateVerdict

FACTS_KEY = "dbfleet_overcommit"
FACTS_SCHEMA = 1
USER_RESERVE_KEY = "vm.user_reserve_kbytes"


def build_facts(memory: MemoryShape, live_values: Mapping[str, Optional[str]], live_commit_state: CommitStateVerdict,
                boot_now_unsafe: Sequence[str], source: str, container: Optional[str],
                gathered_at: str) -> Dict[str, Any]:
    """The ``ansible_facts`` of one overcommit_info run.

    ``live_values`` are every vm key the module observed, user reserve included, as canonical
    strings (None where unreadable); ``gathered_at`` is when they were read (ISO 8601, UTC), so a
    report from the cache can say how old its numbers are.
    """
    return {
        FACTS_KEY: {
            "schema": FACTS_SCHEMA,
            "gathered_at": gathered_at,
            "source": source,
            "memory": memory.as_dict(),
            "live_values": dict(live_values),
            "live_commit_state": live_commit_state.as_dict(),
            "boot_now_unsafe": list(boot_now_unsafe),
            "container": container,
        }
    }
