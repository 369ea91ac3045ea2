# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The text of our /etc/sysctl.d drop-in, rendered from a plan. Pure Python, no Ansible.

Rendered on the host by the overcommit module, so planning, rendering and applying take
one remote run. Only numbers that depend on the memory shape and the options go into
the header: Committed_AS or the lower bound would change the file on every run.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import takeover

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    KEY_ADMIN_RESERVE,
    KEY_KBYTES,
    KEY_MODE,
    KEY_RATIO,
)

# The order that is safe to apply when entering mode 2: reserve, limit, mode.
WRITE_ORDER = (KEY_ADMIN_RESERVE, KEY_RATIO, KEY_KBYTES, KEY_MODE)


def render_dropin(plan: Mapping[str, Any], took_over: Optional[Mapping[str, str]] = None) -> str:
    """The drop-in for a plan as returned by Plan.as_dict(), with the ledger of the lines of other
    files a takeover commented out ({digest: path}; takeover.ledger_lines)."""
    memory = plan["memory"]
    lines: List[str] = [
        "# Managed by Ansible: role dbfleet.memory.overcommit. Do not edit; the next run overwrites",
        "# this file. Change the role's variables (overcommit_*) instead.",
        "#",
        "# Plan for profile %s on this host's memory (kB):" % ", ".join(plan["profile"]),
        "#   MemTotal %d, SwapTotal %d, hugetlb %d" % (
            memory["memtotal_kb"], memory["swaptotal_kb"], memory["hugetlb_kb"]),
        "#   upper bound (RAM - hugetlb - kernel reserve + swap) %d" % plan["bounds"]["upper_kb"],
    ]
    if plan["limit_by"]:
        lines.append("#   mode %d, limit by %s: CommitLimit %d" % (plan["mode"], plan["limit_by"], plan["commit_limit_kb"]))
    else:
        lines.append("#   mode %d: allocations are never refused, CommitLimit is not enforced" % plan["mode"])
    lines += ["#", "# Written in the order that is safe to apply: admin reserve, limit, mode."]
    lines += ["%s = %s" % (key, plan["sysctl"][key]) for key in WRITE_ORDER if key in plan["sysctl"]]
    if took_over:
        lines += ["#", "# Lines of other files this role commented out (shadowing=takeover); state=absent puts",
                  "# back exactly these, and no other line marked like them:"]
        lines += takeover.ledger_lines(took_over)
    return "\n".join(lines) + "\n"
