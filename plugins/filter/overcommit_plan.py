# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: overcommit_plan
short_description: Plan vm.overcommit_* from a host's facts, on the controller
version_added: "0.1.0"
description:
  - Runs the same planner as the M(dbfleet.memory.overcommit_info) module on a host's facts, with no remote call,
    for reports over a fact cache.
  - From the C(dbfleet_overcommit) fact that M(dbfleet.memory.overcommit_info) returns with C(facts=true), it plans
    exactly as the module did on the host - the same planner call with the same numbers (memory shape in kB with
    C(Committed_AS) and huge pages, page size, the host's C(vm.user_reserve_kbytes)) - and returns the cached live
    values and boot findings too, so the risk of a host that is down can be judged. The result's C(source) is
    V(overcommit_info facts).
  - From plain C(setup) facts only, it is less precise. They do not include C(Committed_AS),
    C(vm.user_reserve_kbytes) or huge pages, and give memory in MiB rather than kB. The lower bound therefore
    covers only O(workload_commit_mb), the user reserve the kernel holds back from non-root processes is taken at
    its default cap of 128 MiB (the result's C(reasons) say so), huge pages count only when O(hugetlb_mb) is given,
    and the predicted C(CommitLimit) may differ from the kernel's by up to a few MiB. The result's C(source) is
    V(facts).
  - The planner's options are the modules' own, with the same types, choices and defaults; give them by name.
  - When both are present, the C(dbfleet_overcommit) fact is used. The module, run on the host, is the authority
    before applying; cached facts are as old as their C(gathered_at).
extends_documentation_fragment:
  - dbfleet.memory.planner
options:
  _input:
    description:
      - A host's facts, either C(ansible_facts) (keys without prefix) or C(hostvars[host]) (keys with the
        C(ansible_) prefix). Needs C(dbfleet_overcommit), or C(memtotal_mb) and C(swaptotal_mb), or C(memory_mb).
    type: dict
    required: true
  hugetlb_mb:
    description:
      - Memory held by huge pages in MiB, which C(setup) facts do not report. An error with the
        C(dbfleet_overcommit) fact, which has the host's own number.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Plan from the facts overcommit_info returned with facts=true (for example from a fact cache)
  ansible.builtin.debug:
    msg: "{{ hostvars[item] | dbfleet.memory.overcommit_plan(profile='postgresql', workload_commit_mb=8192) }}"
  loop: "{{ groups['databases'] }}"

- name: What-if report over setup facts only (no Committed_AS), no remote call
  ansible.builtin.debug:
    msg: "{{ hostvars[item] | dbfleet.memory.overcommit_plan(profile='postgresql', workload_commit_mb=8192) }}"
  loop: "{{ groups['databases'] }}"
"""

RETURN = r"""
_value:
  description:
    - The plan, with the keys the module returns (C(sysctl), C(commit_limit_kb), C(safe), C(verdict), C(reasons),
      C(memory), C(bounds), ...), plus C(source).
    - From the C(dbfleet_overcommit) fact, C(source=overcommit_info facts), the real C(committed_as_kb), and the
      cached C(gathered_at), C(live_values), C(live_commit_state), C(boot_now_unsafe) and C(container).
    - From C(setup) facts, C(source=facts) and C(committed_as_kb=null).
    - Facts carry no database, so C(databases=null) and C(database_verdict=null), and the reasons say that the
      databases' configured peaks were not judged (the modules on the host read and judge them).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.plugin_utils.facts_plan import FactsPlanError, plan_from_facts


def overcommit_plan(facts, *args, **kwargs):
    # The planning is plugin_utils' (the audit_report action plans with it too); the filter only
    # turns its errors into Jinja's, named after the filter. The options, their types and defaults are
    # the modules' (module_utils/plan_args.py), checked by plan_from_facts.
    if args:
        raise AnsibleFilterError("overcommit_plan: give the options by name, for example overcommit_plan(profile='postgresql'),"
                                 " got %d positional argument(s)" % len(args))
    try:
        return plan_from_facts(facts, **kwargs)
    except FactsPlanError as exc:
        raise AnsibleFilterError("overcommit_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"overcommit_plan": overcommit_plan}
