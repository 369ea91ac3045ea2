#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overcommit_plan
short_description: Compute safe vm.overcommit_* sysctl values for a database host
version_added: "0.1.0"
description:
  - Reads the host's memory from C(/proc/meminfo) (or from O(meminfo)) and plans the values of
    C(vm.overcommit_memory), exactly one of C(vm.overcommit_ratio) or C(vm.overcommit_kbytes),
    and C(vm.admin_reserve_kbytes).
  - In mode 2 ("never overcommit") the planned C(CommitLimit) lies between two bounds. The lower bound keeps the
    host usable - it covers the larger of the current C(Committed_AS) and O(workload_commit_mb), plus
    O(headroom_pct), plus the admin reserve that lets root log in and recover. The upper bound keeps the OOM killer
    away - what RAM (less huge pages and O(kernel_reserve_pct)) plus swap can really back.
  - The chosen value is the largest the kernel can express at or below the upper bound, so it depends only on the
    memory shape and the options. C(Committed_AS) decides the verdict, never the value.
  - C(commit_limit_kb) is computed with the kernel's own page arithmetic, so it matches the C(CommitLimit) line of
    C(/proc/meminfo) after applying to within one page.
  - The module only reads; it changes nothing on the host.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dbfleet.memory.planner
options:
  meminfo_path:
    description:
      - File to read the memory shape from.
    type: path
    default: /proc/meminfo
  meminfo:
    description:
      - Memory fields in kB (for example C(MemTotal), C(SwapTotal), C(Committed_AS), C(Hugetlb)), used instead
        of reading O(meminfo_path). For what-if plans and plans from collected data.
      - Needs at least C(MemTotal), C(SwapTotal) and C(Committed_AS).
    type: dict
  report_only:
    description:
      - When V(false), an unsafe plan (no mode-2 limit satisfies both bounds) fails the task with the reasons.
        When V(true), the plan is returned with RV(safe=false) and the task succeeds, for reports.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so check mode returns the same plan.
  diff_mode:
    support: none
    details: Nothing is changed, so there is nothing to diff.
  platform:
    support: full
    platforms: [linux]
notes:
  - Use the M(dbfleet.memory.overcommit_plan) filter to plan from gathered facts on the controller. Facts lack
    C(Committed_AS) and huge page data, so this module is the authority before applying.
  - The role M(dbfleet.memory.overcommit) plans with this module and applies the result.
seealso:
  - name: Kernel overcommit accounting
    description: How the kernel computes CommitLimit and what each mode does.
    link: https://www.kernel.org/doc/html/latest/mm/overcommit-accounting.html
"""

EXAMPLES = r"""
- name: Plan for a PostgreSQL host expected to commit up to 48 GiB
  dbfleet.memory.overcommit_plan:
    profile: postgresql
    workload_commit_mb: 49152
  register: plan

- name: Show what would be set
  ansible.builtin.debug:
    var: plan.sysctl

- name: What-if report for a host with 64 GiB and 8 GiB of swap, never failing
  dbfleet.memory.overcommit_plan:
    profile: [mysql]
    meminfo:
      MemTotal: 67108864
      SwapTotal: 8388608
      Committed_AS: 20971520
    report_only: true
  register: whatif
"""

RETURN = r"""
sysctl:
  description: The planned sysctl values as strings, ready for a C(/etc/sysctl.d) drop-in. Never both ratio and kbytes.
  returned: always
  type: dict
  sample: {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "89", "vm.overcommit_memory": "2"}
mode:
  description: The planned C(vm.overcommit_memory).
  returned: always
  type: int
  sample: 2
limit_by:
  description: V(ratio) or V(kbytes), the key that sets the limit; V(null) in mode 1.
  returned: always
  type: str
  sample: ratio
commit_limit_kb:
  description: The C(CommitLimit) the kernel will show after applying, exact to one page.
  returned: always
  type: int
  sample: 14680064
formula:
  description: The kernel's formula with this host's numbers, to check RV(commit_limit_kb) by hand.
  returned: always
  type: str
committed_as_kb:
  description: C(Committed_AS) read when planning.
  returned: always
  type: int
safe:
  description: Whether the planned limit lies within both bounds (always true in mode 1).
  returned: always
  type: bool
verdict:
  description: V(safe) or V(unsafe).
  returned: always
  type: str
reasons:
  description: Sentences explaining the bounds, the choice and the verdict; for an unsafe plan, by how much and what would fix it.
  returned: always
  type: list
  elements: str
memory:
  description: What was read (kB), C(commit_limit_kb) being the CommitLimit shown at planning time.
  returned: always
  type: dict
  sample: {"memtotal_kb": 16384000, "swaptotal_kb": 4194300, "hugetlb_kb": 0, "committed_as_kb": 3200000,
           "commit_limit_kb": 12386300, "page_size_kb": 4}
bounds:
  description: The derived numbers (kB) - demand, headroom, admin reserve, lower bound, kernel reserve, usable RAM, upper bound.
  returned: always
  type: dict
options:
  description: The planning options in effect, in kB where they are sizes.
  returned: always
  type: dict
profile:
  description: The profiles planned for.
  returned: always
  type: list
  elements: str
live_sysctl:
  description: The live values of the overcommit keys read from C(/proc/sys/vm), empty where unreadable.
  returned: always
  type: dict
  sample: {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": "8192"}
source:
  description: Where the memory shape came from, the file path or V(meminfo option).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbfleet.memory.plugins.module_utils import dropin_apply
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_writes as sw

from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import (
    MeminfoError,
    coerce_meminfo_fields,
    memory_from_fields,
    parse_meminfo,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.plan_args import (
    PLANNER_ARGUMENT_SPEC,
    plan_options_from_params,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import PlanInputError, plan_overcommit


def read_live_sysctl():
    """The live overcommit values, for the report; keys the kernel lacks are left out."""
    live = dropin_apply.read_live(sw.MANAGED_KEYS)
    return dict((key, value) for key, value in live.items() if value is not None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            PLANNER_ARGUMENT_SPEC,
            meminfo_path=dict(type="path", default="/proc/meminfo"),
            meminfo=dict(type="dict"),
            report_only=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["meminfo"] is not None:
            source = "meminfo option"
            fields = coerce_meminfo_fields(params["meminfo"])
        else:
            source = params["meminfo_path"]
            try:
                with open(source) as handle:
                    text = handle.read()
            except (IOError, OSError) as exc:
                module.fail_json(msg="meminfo_path: cannot read %s: %s" % (source, exc))
            fields = parse_meminfo(text)
        memory = memory_from_fields(fields, page_size_kb=dropin_apply.page_size_kb())
        plan = plan_overcommit(memory, plan_options_from_params(params))
    except MeminfoError as exc:
        module.fail_json(msg="meminfo: %s" % exc)
    except PlanInputError as exc:
        module.fail_json(msg=str(exc), option=exc.option)

    result = plan.as_dict()
    result.update(changed=False, source=source, live_sysctl=read_live_sysctl())
    if not plan.safe and not params["report_only"]:
        module.fail_json(msg="Unsafe overcommit plan: " + " ".join(plan.reasons), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
