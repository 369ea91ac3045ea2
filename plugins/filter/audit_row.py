# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: audit_row
short_description: One fleet-audit row from a host's registered overcommit_info result
version_added: "0.1.0"
description:
  - Turns the registered result of M(dbfleet.memory.overcommit_info) into the plain row the
    P(dbfleet.memory.fleet_report#filter) filter renders.
  - An unreachable or failed host still gives a row, with its status and message. When O(cached_plan) is given
    (the P(dbfleet.memory.overcommit_plan#filter) filter's result over cached facts), its numbers fill the row,
    marked as coming from cached facts.
  - Runs on the controller; no remote call.
options:
  _input:
    description: The registered result of M(dbfleet.memory.overcommit_info), or V(null) in cache-only mode.
    type: dict
    required: true
  host:
    description: The inventory name of the host.
    type: str
    required: true
  cached_plan:
    description:
      - A plan from cached facts, used when the host gave no live result. From the C(dbfleet_overcommit) fact it
        carries the real C(Committed_AS) and live values, and the row's risk is assessed; from C(setup) facts alone
        the risk stays V(unknown). The row's message says which.
    type: dict
  cache_only:
    description: Build the row from O(cached_plan) alone (audit over the fact cache, no host contacted).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Collect this host's audit row
  ansible.builtin.set_fact:
    overcommit_audit_row: "{{ info_result | dbfleet.memory.audit_row(host=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The row as a dict (host, status, source, memory and live values in kB, plan, shadowing messages).
  type: dict
"""

from dataclasses import asdict

from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import (
    row_from_cached_plan,
    row_from_results,
)


def audit_row(info_result, host, cached_plan=None, cache_only=False):
    if info_result is not None and not isinstance(info_result, dict):
        raise AnsibleFilterError("audit_row: input must be a registered result (dict), got %s" % type(info_result).__name__)
    if cache_only:
        row = row_from_cached_plan(str(host), cached_plan)
    else:
        row = row_from_results(str(host), info_result, cached_plan)
    result = asdict(row)
    result["plan_reasons"] = list(row.plan_reasons)
    result["shadowed"] = list(row.shadowed)
    result["boot_unsafe"] = list(row.boot_unsafe)
    result["database_units"] = list(row.database_units)
    result["negative_backends"] = list(row.negative_backends)
    return result


class FilterModule(object):
    def filters(self):
        return {"audit_row": audit_row}
