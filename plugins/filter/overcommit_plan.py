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
  - When both are present, the C(dbfleet_overcommit) fact is used. The module, run on the host, is the authority
    before applying; cached facts are as old as their C(gathered_at).
options:
  _input:
    description:
      - A host's facts, either C(ansible_facts) (keys without prefix) or C(hostvars[host]) (keys with the
        C(ansible_) prefix). Needs C(dbfleet_overcommit), or C(memtotal_mb) and C(swaptotal_mb), or C(memory_mb).
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
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils.overcommit_facts import (
    FACTS_KEY,
    FACTS_SCHEMA,
    USER_RESERVE_KEY,
)
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
    """The memory shape from setup's facts: MiB, no Committed_AS, huge pages only as given."""
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


_MEMORY_FIELDS = ("memtotal_kb", "swaptotal_kb", "hugetlb_kb", "committed_as_kb", "commit_limit_kb", "page_size_kb")
# What the precise facts carry besides the memory shape, returned as they are.
_PASSED_ON = ("gathered_at", "live_values", "live_commit_state", "boot_now_unsafe", "container")


def _cached_int(name, value, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AnsibleFilterError("overcommit_plan: %s.memory.%s must be an integer >= 0 in kB, got %r"
                                 % (FACTS_KEY, name, value))
    return value


def memory_from_overcommit_facts(cached):
    """The MemoryShape and vm.user_reserve_kbytes that overcommit_info read, back from its facts."""
    if not isinstance(cached, dict):
        raise AnsibleFilterError("overcommit_plan: %s must be a dict, got %s" % (FACTS_KEY, type(cached).__name__))
    if cached.get("schema") != FACTS_SCHEMA:
        raise AnsibleFilterError(
            "overcommit_plan: %s has schema %r, this collection reads %d: run dbfleet.memory.overcommit_info with "
            "facts=true again to refresh the cache" % (FACTS_KEY, cached.get("schema"), FACTS_SCHEMA))
    memory = cached.get("memory") or {}
    values = {name: _cached_int(name, memory.get(name), optional=name in ("committed_as_kb", "commit_limit_kb"))
              for name in _MEMORY_FIELDS}
    if values["memtotal_kb"] <= 0 or values["hugetlb_kb"] > values["memtotal_kb"] or values["page_size_kb"] <= 0:
        raise AnsibleFilterError("overcommit_plan: %s.memory cannot come from one host: %r" % (FACTS_KEY, memory))
    user_reserve = (cached.get("live_values") or {}).get(USER_RESERVE_KEY)
    return MemoryShape(**values), None if user_reserve is None else int(user_reserve)


def overcommit_plan(facts, profile="generic", workload_commit_mb=0, headroom_pct=DEFAULT_HEADROOM_PCT,
                    kernel_reserve_pct=DEFAULT_KERNEL_RESERVE_PCT, admin_reserve_mb=DEFAULT_ADMIN_RESERVE_MB,
                    prefer="auto", hugetlb_mb=0):
    if not isinstance(facts, dict):
        raise AnsibleFilterError("overcommit_plan: input must be a host's facts (a dict), got %s" % type(facts).__name__)
    cached = _fact(facts, FACTS_KEY)
    user_reserve_kb = None
    if cached is not None:
        if hugetlb_mb:
            raise AnsibleFilterError("overcommit_plan: hugetlb_mb is for setup facts; the %s fact has the host's "
                                     "own huge pages" % FACTS_KEY)
        memory, user_reserve_kb = memory_from_overcommit_facts(cached)
    else:
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
            # The host's own value when its facts have it (as the module plans); else the kernel's cap,
            # as the reasons then say.
            user_reserve_kb=DEFAULT_USER_RESERVE_KB if user_reserve_kb is None else user_reserve_kb,
        )
        plan = plan_overcommit(memory, options)
    except (PlanInputError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("overcommit_plan: %s" % exc)
    result = plan.as_dict()
    if user_reserve_kb is None:
        result["reasons"].append(USER_RESERVE_NOTE)
    if cached is None:
        result["source"] = "facts"
        return result
    result["source"] = "overcommit_info facts"
    result.update((name, cached.get(name)) for name in _PASSED_ON)
    return result


class FilterModule(object):
    def filters(self):
        return {"overcommit_plan": overcommit_plan}
