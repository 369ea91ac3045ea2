# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: overcommit_plan
short_description: Plan vm.overcommit_* from gathered facts, on the controller
version_added: "0.1.0"
description:
  - Runs the same planner as the M(dbfleet.memory.overcommit_info) module on a host's gathered facts, with no
    remote call, for what-if reports over a fact cache.
  - Facts do not include C(Committed_AS), C(vm.user_reserve_kbytes) or huge pages, and give memory in MiB rather
    than kB. The lower bound therefore covers only O(workload_commit_mb), the user reserve the kernel holds back
    from non-root processes is taken at its default cap of 128 MiB (the result's C(reasons) say so), huge pages
    count only when O(hugetlb_mb) is given, and the predicted C(CommitLimit) may differ from the kernel's by up to
    a few MiB. The module, run on the host, is the authority before applying.
options:
  _input:
    description:
      - A host's facts, either C(ansible_facts) (keys without prefix) or C(hostvars[host]) (keys with the
        C(ansible_) prefix). Needs C(memtotal_mb) and C(swaptotal_mb), or C(memory_mb).
    type: dict
    required: true
  profile:
    description: Profile or list of profiles, as for the module.
    type: raw
    default: generic
  workload_commit_mb:
    description: Expected peak committed memory of the database in MiB.
    type: int
    default: 0
  headroom_pct:
    description: Headroom in percent on top of the demand, between 0 and 100.
    type: int
    default: 20
  kernel_reserve_pct:
    description: Share of non-huge RAM kept out of the commit budget, between 0 and 50.
    type: int
    default: 10
  admin_reserve_mb:
    description: Planned C(vm.admin_reserve_kbytes) in MiB, at least 8.
    type: int
    default: 128
  prefer:
    description: V(auto), V(ratio) or V(kbytes).
    type: str
    default: auto
  hugetlb_mb:
    description: Memory held by huge pages in MiB, which facts do not report.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: What-if report over the fact cache, no remote call
  ansible.builtin.debug:
    msg: "{{ hostvars[item] | dbfleet.memory.overcommit_plan(profile='postgresql', workload_commit_mb=8192) }}"
  loop: "{{ groups['databases'] }}"
"""

RETURN = r"""
_value:
  description:
    - The plan, with the keys the module returns (C(sysctl), C(commit_limit_kb), C(safe), C(verdict), C(reasons),
      C(memory), C(bounds), ...), plus C(source=facts). C(committed_as_kb) is V(null).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import (
    DEFAULT_ADMIN_RESERVE_MB,
    DEFAULT_HEADROOM_PCT,
    DEFAULT_KERNEL_RESERVE_PCT,
    DEFAULT_USER_RESERVE_KB,
    KIB_PER_MIB,
    PlanInputError,
    PlanOptions,
    plan_overcommit,
)


USER_RESERVE_NOTE = (
    "vm.user_reserve_kbytes is not in the facts: the lower bound assumes the kernel's default cap, %d kB "
    "(%d MiB). The module reads the host's live value." % (DEFAULT_USER_RESERVE_KB, DEFAULT_USER_RESERVE_KB // KIB_PER_MIB)
)


def _fact(facts, name):
    """Read a fact from ansible_facts (no prefix) or from hostvars (ansible_ prefix)."""
    for key in (name, "ansible_" + name):
        if key in facts:
            return facts[key]
    return None


def memory_from_facts(facts, hugetlb_mb=0):
    if not isinstance(facts, dict):
        raise AnsibleFilterError("overcommit_plan: input must be a host's facts (a dict), got %s" % type(facts).__name__)
    memtotal_mb = _fact(facts, "memtotal_mb")
    swaptotal_mb = _fact(facts, "swaptotal_mb")
    memory_mb = _fact(facts, "memory_mb") or {}
    if memtotal_mb is None:
        memtotal_mb = memory_mb.get("real", {}).get("total")
    if swaptotal_mb is None:
        swaptotal_mb = memory_mb.get("swap", {}).get("total")
    if memtotal_mb is None or swaptotal_mb is None:
        raise AnsibleFilterError(
            "overcommit_plan: facts lack memtotal_mb/swaptotal_mb (gather the 'hardware' subset)"
        )
    try:
        memtotal_kb = int(memtotal_mb) * KIB_PER_MIB
        swaptotal_kb = int(swaptotal_mb) * KIB_PER_MIB
        hugetlb_kb = int(hugetlb_mb) * KIB_PER_MIB
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("overcommit_plan: memory facts must be integers in MiB: %s" % exc)
    if memtotal_kb <= 0 or not 0 <= hugetlb_kb <= memtotal_kb:
        raise AnsibleFilterError(
            "overcommit_plan: hugetlb_mb must be between 0 and memtotal_mb (%d), got %d" % (int(memtotal_mb), int(hugetlb_mb))
        )
    return MemoryShape(memtotal_kb=memtotal_kb, swaptotal_kb=swaptotal_kb, hugetlb_kb=hugetlb_kb, committed_as_kb=None)


def overcommit_plan(facts, profile="generic", workload_commit_mb=0, headroom_pct=DEFAULT_HEADROOM_PCT,
                    kernel_reserve_pct=DEFAULT_KERNEL_RESERVE_PCT, admin_reserve_mb=DEFAULT_ADMIN_RESERVE_MB,
                    prefer="auto", hugetlb_mb=0):
    memory = memory_from_facts(facts, hugetlb_mb)
    profiles = (profile,) if isinstance(profile, str) else tuple(profile)
    try:
        options = PlanOptions(
            profiles=profiles,
            workload_commit_kb=int(workload_commit_mb) * KIB_PER_MIB,
            headroom_pct=int(headroom_pct),
            kernel_reserve_pct=int(kernel_reserve_pct),
            admin_reserve_kb=int(admin_reserve_mb) * KIB_PER_MIB,
            prefer=str(prefer),
            # Facts carry no vm.user_reserve_kbytes: assume the kernel's cap, as the reasons say.
            user_reserve_kb=DEFAULT_USER_RESERVE_KB,
        )
        plan = plan_overcommit(memory, options)
    except (PlanInputError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("overcommit_plan: %s" % exc)
    result = plan.as_dict()
    result["reasons"].append(USER_RESERVE_NOTE)
    result["source"] = "facts"
    return result


class FilterModule(object):
    def filters(self):
        return {"overcommit_plan": overcommit_plan}
