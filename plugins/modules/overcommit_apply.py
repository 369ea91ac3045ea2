#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overcommit_apply
short_description: Plan vm.overcommit_* from the host's memory and apply it, in one run
version_added: "0.1.0"
description:
  - Does on the host, in one module run, what M(dbfleet.memory.overcommit_plan) and M(dbfleet.memory.sysctl_apply)
    do in two. It reads C(/proc/meminfo), plans the values, renders the drop-in
    C(/etc/sysctl.d/<dropin_priority>-dbfleet-overcommit.conf), applies it live and to the file, and verifies
    C(CommitLimit). One round trip per host keeps a no-op run across a fleet close to the cost of a ping.
  - An unsafe plan (no mode-2 limit satisfies both bounds) or conflicting profiles fail with the planner's reasons
    before anything is read for writing; nothing changes.
  - The apply step is that of M(dbfleet.memory.sysctl_apply). Shadowing files are checked before any change.
    Live values are written in the safe order, read back and checked against the predicted C(CommitLimit), then the
    file is written atomically. Any failure rolls back the live values and the file.
  - With O(state=absent) the drop-in is removed and its keys return to what the remaining sysctl files set, or to
    the kernel defaults.
  - This is the module behind the P(dbfleet.memory.overcommit#role) role.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dbfleet.memory.planner
options:
  state:
    description:
      - V(present) plans and applies. V(absent) removes the drop-in; the planner options are then not used.
    type: str
    choices: [present, absent]
    default: present
  dropin_priority:
    description:
      - Two-digit priority of the drop-in C(/etc/sysctl.d/<priority>-dbfleet-overcommit.conf), between 10 and 98.
        Files whose names sort later win.
    type: int
    default: 90
  live:
    description:
      - V(auto) applies live values except in a container, where C(vm.*) belongs to the container host's kernel.
        V(always) applies them there too. V(never) only writes the file.
    type: str
    choices: [auto, always, never]
    default: auto
  shadowing:
    description:
      - When another sysctl file would override a managed key after a reboot or C(sysctl --system), V(fail) fails
        naming it before anything changes, V(warn) applies and warns.
    type: str
    choices: [fail, warn]
    default: fail
  report_only:
    description:
      - Plan and inspect only, as for an audit. Nothing changes, an unsafe plan does not fail, and shadowing
        files are reported in C(shadowing) without failing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the drop-in's text and the live values, before and after.
  platform:
    support: full
    platforms: [linux]
notes:
  - Needs root. Writes C(/proc/sys) itself, so no C(sysctl) binary is needed on the target.
seealso:
  - module: dbfleet.memory.overcommit_plan
  - module: dbfleet.memory.sysctl_apply
"""

EXAMPLES = r"""
- name: Keep a PostgreSQL host out of the OOM killer's reach
  dbfleet.memory.overcommit_apply:
    profile: postgresql
    workload_commit_mb: 49152
  become: true

- name: Audit one host without changing anything
  dbfleet.memory.overcommit_apply:
    profile: postgresql
    report_only: true
  register: audit
"""

RETURN = r"""
would_change:
  description: With O(report_only=true), whether applying would change the host (C(changed) is then false).
  returned: when O(report_only=true)
  type: bool
plan:
  description: The plan, as M(dbfleet.memory.overcommit_plan) returns it (sysctl, commit_limit_kb, safe, reasons, ...).
  returned: when O(state=present)
  type: dict
extends_documentation_fragment:
  - dbfleet.memory.apply_result
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbfleet.memory.plugins.module_utils import dropin_apply
from ansible_collections.dbfleet.memory.plugins.module_utils.dropin_text import render_dropin
from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import MeminfoError, memory_from_meminfo
from ansible_collections.dbfleet.memory.plugins.module_utils.plan_args import (
    PLANNER_ARGUMENT_SPEC,
    plan_options_from_params,
)
from ansible_collections.dbfleet.memory.plugins.module_utils.planner import PlanInputError, plan_overcommit

PRIORITY_RANGE = (10, 98)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            PLANNER_ARGUMENT_SPEC,
            state=dict(type="str", default="present", choices=["present", "absent"]),
            dropin_priority=dict(type="int", default=90),
            live=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            shadowing=dict(type="str", default="fail", choices=["fail", "warn"]),
            report_only=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    low, high = PRIORITY_RANGE
    if not low <= p["dropin_priority"] <= high:
        module.fail_json(msg="dropin_priority: must be between %d and %d (a two-digit file name prefix), got %d"
                         % (low, high, p["dropin_priority"]))
    path = "%s/%02d-dbfleet-overcommit.conf" % (dropin_apply.DROPIN_DIR, p["dropin_priority"])
    report_only = p["report_only"]

    plan = None
    content = None
    desired = {}
    expect_commit_limit_kb = None
    if p["state"] == "present":
        try:
            with open(dropin_apply.host_path("/proc/meminfo")) as handle:
                memory = memory_from_meminfo(handle.read(), page_size_kb=dropin_apply.page_size_kb())
            plan_result = plan_overcommit(memory, plan_options_from_params(p))
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read /proc/meminfo: %s" % exc)
        except MeminfoError as exc:
            module.fail_json(msg="meminfo: %s" % exc)
        except PlanInputError as exc:
            module.fail_json(msg=str(exc), option=exc.option)
        plan = plan_result.as_dict()
        if not plan_result.safe and not report_only:
            module.fail_json(msg="Unsafe overcommit plan, nothing changed: " + " ".join(plan_result.reasons), plan=plan)
        content = render_dropin(plan)
        desired = dict(plan["sysctl"])
        # In mode 1 the kernel does not enforce CommitLimit: nothing to verify.
        expect_commit_limit_kb = plan["commit_limit_kb"] if plan["limit_by"] else None

    try:
        result = dropin_apply.apply_dropin(
            path=path, state=p["state"], content=content, desired=desired,
            live_mode=p["live"], shadowing_mode="warn" if report_only else p["shadowing"],
            expect_commit_limit_kb=expect_commit_limit_kb,
            check_mode=module.check_mode or report_only, want_diff=module._diff,
            # A report carries the shadowing findings in its result, not as warnings.
            warn=(lambda message: None) if report_only else module.warn,
            atomic_move=module.atomic_move,
        )
    except (dropin_apply.ApplyRefused, dropin_apply.ApplyFailed) as exc:
        module.fail_json(msg=exc.msg, plan=plan, **exc.result)
    if plan is not None:
        result["plan"] = plan
    if report_only:
        # Nothing was changed; what the role would change is reported apart.
        result["would_change"] = result["changed"]
        result["changed"] = False
    module.exit_json(**result)


if __name__ == "__main__":
    main()
