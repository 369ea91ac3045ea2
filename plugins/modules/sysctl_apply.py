#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysctl_apply
short_description: Apply vm.overcommit_* settings live and as a sysctl.d drop-in, safely
version_added: 0.1.0
description:
  - Holds a set of C(vm.overcommit_*) and C(vm.admin_reserve_kbytes) values in the running kernel and
    in one sysctl.d drop-in file, in a way that cannot lock the host out half-way.
  - Before changing anything it computes, for every managed key, which sysctl file wins after a reboot
    (systemd-sysctl) and under C(sysctl --system) (procps), so a drop-in that another file would silently
    override is reported instead of written.
  - Live values are written first, in the only safe order (entering mode 2 sets the admin reserve, then the
    limit, then the mode; leaving mode 2 sets the mode first), read back and checked against the expected
    C(CommitLimit). The file is written after that, so a value the kernel refuses is never persisted.
  - On any failure the previous live values (in reverse order) and the previous file content or absence are
    restored, then the task fails.
  - Of C(vm.overcommit_ratio) and C(vm.overcommit_kbytes) only the managed one is ever written, because the
    kernel zeroes the other on every write.
  - Writes to C(/proc/sys) are done by the module itself; no C(sysctl) binary is needed on the target.
  - Usually called by the P(dbfleet.memory.overcommit#role) role with the plan of
    M(dbfleet.memory.overcommit_plan).
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The drop-in file to manage. Must be a C(.conf) file directly in C(/etc/sysctl.d).
    type: path
    default: /etc/sysctl.d/90-dbfleet-overcommit.conf
  content:
    description:
      - The complete text of the drop-in, rendered on the controller.
      - Must set every key of O(values) exactly once, to the same value, and no other managed key.
      - Required when O(state=present); not allowed when O(state=absent).
    type: str
  values:
    description:
      - The values to hold live, key to value, for example C(vm.overcommit_memory=2).
      - Keys are C(vm.overcommit_memory), C(vm.overcommit_ratio), C(vm.overcommit_kbytes) and
        C(vm.admin_reserve_kbytes); values are non-negative integers.
      - C(vm.overcommit_ratio) and C(vm.overcommit_kbytes) exclude each other, and C(vm.overcommit_kbytes=0)
        is refused because it would make C(CommitLimit) equal to swap alone.
      - Required when O(state=present); not allowed when O(state=absent).
    type: dict
  state:
    description:
      - V(present) writes the values live and the drop-in.
      - V(absent) removes the drop-in and returns the keys it managed to what the remaining sysctl files set,
        or to the kernel defaults (C(overcommit_memory=0), C(overcommit_ratio=50), C(admin_reserve_kbytes=8192)).
        When the drop-in does not exist nothing is touched, so other tooling's live values are left alone.
    type: str
    choices: [present, absent]
    default: present
  live:
    description:
      - V(auto) writes live values except in a container, where C(vm.*) sysctls are not namespaced and a write
        would change the container host's kernel; the result says why live application was skipped.
      - V(always) writes live values even in a container. Only for disposable hosts whose kernel is their own.
      - V(never) manages the file only.
    type: str
    choices: [auto, always, never]
    default: auto
  shadowing:
    description:
      - What to do when another sysctl file would override a managed key after a reboot or C(sysctl --system).
      - V(fail) fails before changing anything, naming the winning file, line and value.
      - V(warn) applies anyway and warns with the same details.
    type: str
    choices: [fail, warn]
    default: fail
  expect_commit_limit_kb:
    description:
      - The C(CommitLimit) (kB) the kernel must show in C(/proc/meminfo) once the live values are in place,
        with a tolerance of one page. A mismatch rolls everything back.
      - Only checked when live values are handled (not in check mode, not when live application is skipped).
    type: int
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the drop-in before and after, and the managed live values before and after.
  platform:
    support: full
    platforms: posix
    details: Linux only; needs C(/proc/sys/vm) and C(/proc/meminfo).
notes:
  - Reading C(/proc/1/environ) for container detection needs root; run with become.
seealso:
  - module: dbfleet.memory.overcommit_plan
  - name: sysctl.d(5)
    description: The systemd rules for which file wins.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Plan the overcommit settings for this host
  dbfleet.memory.overcommit_plan:
    profile: postgresql
  register: plan

- name: Apply them live and in a drop-in
  dbfleet.memory.sysctl_apply:
    path: /etc/sysctl.d/90-dbfleet-overcommit.conf
    content: |
      # Managed by Ansible (dbfleet.memory); do not edit.
      {% for key, value in plan.sysctl | dictsort %}
      {{ key }} = {{ value }}
      {% endfor %}
    values: "{{ plan.sysctl }}"
    expect_commit_limit_kb: "{{ plan.commit_limit_kb }}"

- name: Remove the drop-in and return the live values to what the other files say
  dbfleet.memory.sysctl_apply:
    path: /etc/sysctl.d/90-dbfleet-overcommit.conf
    state: absent
"""

RETURN = r"""
extends_documentation_fragment:
  - dbfleet.memory.apply_result
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbfleet.memory.plugins.module_utils import dropin_apply
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_writes as sw


def _validate(module):
    """Everything is checked before the host is read for writing, so a bad input changes nothing."""
    p = module.params
    errors = dropin_apply.validate_path(p["path"])
    desired = {}
    if p["state"] == "present":
        if p["content"] is None:
            errors.append("content is required with state=present")
        if not p["values"]:
            errors.append("values is required with state=present (a dict of key to integer string)")
        else:
            try:
                desired = sw.validate_desired(p["values"])
            except ValueError as exc:
                errors.append("values: %s" % exc)
        if p["content"] is not None and desired:
            errors.extend(dropin_apply.content_errors(p["content"], desired))
    else:
        for name in ("content", "values", "expect_commit_limit_kb"):
            if p[name] not in (None, {}):
                errors.append("%s is only used with state=present" % name)
    if p["expect_commit_limit_kb"] is not None and p["expect_commit_limit_kb"] <= 0:
        errors.append("expect_commit_limit_kb must be a positive number of kB, got %s" % p["expect_commit_limit_kb"])
    if errors:
        module.fail_json(msg="Invalid arguments, nothing changed: " + "; ".join(errors), errors=errors)
    return desired


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default=dropin_apply.DEFAULT_PATH),
            content=dict(type="str"),
            values=dict(type="dict"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            live=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            shadowing=dict(type="str", default="fail", choices=["fail", "warn"]),
            expect_commit_limit_kb=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    desired = _validate(module)
    p = module.params
    try:
        result = dropin_apply.apply_dropin(
            path=p["path"], state=p["state"], content=p["content"], desired=desired,
            live_mode=p["live"], shadowing_mode=p["shadowing"],
            expect_commit_limit_kb=p["expect_commit_limit_kb"],
            check_mode=module.check_mode, want_diff=module._diff,
            warn=module.warn, atomic_move=module.atomic_move,
        )
    except (dropin_apply.ApplyRefused, dropin_apply.ApplyFailed) as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
