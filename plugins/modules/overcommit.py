#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overcommit
short_description: Plan vm.overcommit_* from the host's memory and hold it, live and after every boot
version_added: "0.1.0"
description:
  - The one module of this collection that changes a host's memory overcommit settings. It plans, applies and
    verifies in one run, under an exclusive lock on the host, from the first read to the last verify.
  - With O(state=present) it reads C(/proc/meminfo), plans C(vm.overcommit_memory), exactly one of
    C(vm.overcommit_ratio) or C(vm.overcommit_kbytes), and C(vm.admin_reserve_kbytes), renders the drop-in
    C(/etc/sysctl.d/<dropin_priority>-dbfleet-overcommit.conf), writes the live values in the safe order (entering
    mode 2 sets the admin reserve, then the limit, then the mode), reads each back, checks C(CommitLimit) against the
    plan, then writes the file atomically. Our drop-ins at other priorities are removed in the same run.
  - A file named like our drop-in is ours only when it can be read whole. Anything else under that name (a FIFO, a
    symlink, a directory, a file larger than 16 MiB or one that cannot be read) is never taken for absent,
    overwritten or removed; the run fails, nothing changed, naming the file and why.
  - An unsafe plan (no mode-2 limit leaves room for the demand, the headroom, the admin reserve and the kernel's user
    reserve) or conflicting profiles fail before anything changes.
  - With O(state=present) the host's databases are read too, read-only through their own clients, as
    M(dbfleet.memory.overcommit_info) reads them (RV(databases)). A database whose configured peak does not fit is
    a warning with the numbers and the fix (O(database_peak=warn)), or makes the plan unsafe so that the run
    fails and nothing changes (O(database_peak=enforce)).
  - Before any change, what the next boot and a later C(sysctl --system) would set is decided by replaying every
    sysctl file the way those tools do. A file that would override the plan is refused (O(shadowing=fail)), warned
    about (O(shadowing=warn), never when the result would be an unsafe mode 2), or commented out
    (O(shadowing=takeover), files under C(/etc) only).
  - With O(state=absent) every drop-in of ours is removed and the live values return to what the remaining files set
    at boot, or to the kernel defaults. When the modelled boot tools disagree about the remaining files, the live
    values follow this host's own boot tool (systemd-sysctl when systemd is PID 1 and the unit is not masked);
    if that cannot be told, the keys they disagree about are left live as they are (never a guess), the rest is
    restored, and a warning names the files and the tools. If the result would leave mode 2 with a limit below
    what is committed, at boot or on a later C(sysctl --system), the module refuses, naming the file and the numbers.
  - Any failure rolls back the live values and files, then reads them back; the result says exactly what, if
    anything, is still different.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dbfleet.memory.planner
options:
  state:
    description:
      - V(present) plans and applies. V(absent) removes our drop-ins and returns the managed keys to what the
        remaining sysctl files set at boot (keys the boot tools disagree about stay as they are when this host's
        boot tool cannot be told); the planner options then only size the safety check.
    type: str
    choices: [present, absent]
    default: present
  dropin_priority:
    description:
      - Two-digit priority of the drop-in C(/etc/sysctl.d/<priority>-dbfleet-overcommit.conf), between 10 and 98.
        Files whose names sort later win. Every other C(NN-dbfleet-overcommit.conf) in C(/etc/sysctl.d) is ours too
        and is removed.
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
      - What to do when another sysctl file would change a managed value after a reboot or C(sysctl --system).
      - V(fail) fails naming the file, line and value before anything changes.
      - V(warn) applies and warns with the same details.
      - V(takeover) comments out the conflicting lines in other files under C(/etc) in the same transaction, each
        marked with a comment that keeps the original line; O(state=absent) puts them back. Vendor files
        (C(/usr/lib), C(/lib), C(/run)) are never touched; for those the answer stays a later O(dropin_priority).
    type: str
    choices: [fail, warn, takeover]
    default: fail
  lock_timeout:
    description:
      - Seconds to wait for another run of this module on the same host to finish. Past that the task fails and
        nothing is read or changed.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows every file written or removed, before and after, and the live values before and after.
  platform:
    support: full
    platforms: [linux]
notes:
  - Needs root. Writes C(/proc/sys) itself, so no C(sysctl) binary is needed on the target.
  - This is the module behind the P(dbfleet.memory.overcommit#role) role.
seealso:
  - module: dbfleet.memory.overcommit_info
  - name: Kernel overcommit accounting
    description: How the kernel computes CommitLimit and what each mode does.
    link: https://www.kernel.org/doc/html/latest/mm/overcommit-accounting.html
"""

EXAMPLES = r"""
- name: Keep a PostgreSQL host out of the OOM killer's reach
  dbfleet.memory.overcommit:
    profile: postgresql
    workload_commit_mb: 49152
  become: true

- name: Adopt a host whose /etc/sysctl.conf carries copied overcommit lines
  dbfleet.memory.overcommit:
    profile: mariadb
    shadowing: takeover
  become: true

- name: Refuse to set mode 2 where a database's configured peak would not fit at its busy hour
  dbfleet.memory.overcommit:
    profile: postgresql
    database_peak: enforce
  become: true

- name: Remove our settings; the remaining sysctl files (or the kernel defaults) apply again
  dbfleet.memory.overcommit:
    state: absent
  become: true
"""

RETURN = r"""
plan:
  description: The plan (sysctl, commit_limit_kb, safe, reasons, bounds, memory, ...), as M(dbfleet.memory.overcommit_info) returns it.
  returned: when O(state=present)
  type: dict
databases:
  description: The host's database servers, each with its configured peak and whether it fits, as
    M(dbfleet.memory.overcommit_info) returns them.
  returned: when O(state=present)
  type: list
  elements: dict
lock_waited_s:
  description: Seconds spent waiting for another run on the host to finish.
  returned: success
  type: float
  sample: 0.0
extends_documentation_fragment:
  - dbfleet.memory.apply_result
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Failed, Refused
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LockError
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import api
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import SHARED_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            SHARED_ARGUMENT_SPEC,
            state=dict(type="str", default="present", choices=["present", "absent"]),
            live=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            shadowing=dict(type="str", default="fail", choices=["fail", "warn", "takeover"]),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Every option is checked before the host is read, so bad input changes nothing.
    if p["lock_timeout"] < 0:
        module.fail_json(msg="lock_timeout: must be 0 or more seconds, got %d" % p["lock_timeout"],
                         option="lock_timeout")
    try:
        request = api.request_for(p, state=p["state"], live_mode=p["live"], shadowing=p["shadowing"])
    except api.ExamineFailed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    try:
        # The databases' configured peaks are judged for a plan only: state=absent reads none.
        reader = api.databases_reader(module.run_command) if p["state"] == "present" else None
        result = api.apply(request, check_mode=module.check_mode, want_diff=module._diff,
                           lock_timeout_s=p["lock_timeout"], warn=module.warn, read_databases=reader)
    except LockError as exc:
        module.fail_json(msg=str(exc))
    except (Refused, Failed) as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
