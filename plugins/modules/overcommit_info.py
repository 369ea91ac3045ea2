#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overcommit_info
short_description: Report a host's memory overcommit state, the plan for it and what applying would do
version_added: "0.1.0"
description:
  - Read-only. Reads the host's memory from C(/proc/meminfo) (or O(meminfo_path), or O(meminfo) for what-if plans),
    the live C(vm.overcommit_*) values and every sysctl file, and returns the plan that
    M(dbfleet.memory.overcommit) would apply, which sysctl file would override it after a reboot or
    C(sysctl --system), and whether applying would change the host or be refused.
  - In mode 2 ("never overcommit") the planned C(CommitLimit) lies between two bounds. The lower bound keeps the
    host usable - it covers the larger of the current C(Committed_AS) and O(workload_commit_mb), plus
    O(headroom_pct), plus the admin reserve that lets root log in and recover, plus the kernel's user reserve. The
    upper bound keeps the OOM killer away - what RAM (less huge pages and O(kernel_reserve_pct)) plus swap can back.
  - The chosen value is the largest the kernel can express at or below the upper bound, so it depends only on the
    memory shape and the options. C(Committed_AS) decides the verdict, never the value.
  - C(commit_limit_kb) is computed with the kernel's own page arithmetic, so it matches the C(CommitLimit) line of
    C(/proc/meminfo) after applying.
  - This is what the C(dbfleet.memory.audit) playbook runs, once per host. An unsafe plan is reported, not
    failed.
  - It reads the host's databases too, read-only, through their own clients (C(psql) as the cluster's owner on the
    local socket, C(mariadb)/C(mysql) with the socket's own authentication, C(redis-cli)) and C(/proc), for each
    server its memory settings, what its processes commit now, and its configured peak commit charge with the formula.
    RV(databases) says for each one whether that peak fits under the planned limit and, if not, the fix in the
    database's own terms. A server that cannot be read is listed with the reason. See O(database_peak).
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
        of reading O(meminfo_path). For what-if plans.
      - Needs at least C(MemTotal), C(SwapTotal) and C(Committed_AS).
      - Each value is a whole number of kB (the C(HugePages_*) fields are counts) - an integer, or ASCII digits
        optionally followed by C( kB), as in C(/proc/meminfo). Anything else fails naming the field.
    type: dict
  dropin_priority:
    description:
      - The priority the drop-in would have, as for M(dbfleet.memory.overcommit), to check which files would
        override it.
    type: int
    default: 90
  facts:
    description:
      - Also return the findings as facts, C(ansible_facts.dbfleet_overcommit), so that a fact cache holds what
        planning needs. The P(dbfleet.memory.overcommit_plan#filter) filter then plans from the cache with the
        same numbers as this module, and the C(dbfleet.memory.audit) playbook audits a host that is down from them.
      - The facts describe the memory shape actually read, so with O(meminfo) or O(meminfo_path) they describe
        that what-if shape (RV(ansible_facts.dbfleet_overcommit.source) says which).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so check mode returns the same report.
  diff_mode:
    support: none
    details: Nothing is changed, so there is nothing to diff.
  platform:
    support: full
    platforms: [linux]
notes:
  - Use the P(dbfleet.memory.overcommit_plan#filter) filter to plan on the controller. From the facts this module
    returns with O(facts=true) it plans exactly as the module does; from plain C(setup) facts, which lack
    C(Committed_AS), huge pages and C(vm.user_reserve_kbytes), only roughly.
seealso:
  - module: dbfleet.memory.overcommit
  - name: Kernel overcommit accounting
    description: How the kernel computes CommitLimit and what each mode does.
    link: https://www.kernel.org/doc/html/latest/mm/overcommit-accounting.html
"""

EXAMPLES = r"""
- name: Plan for a PostgreSQL host expected to commit up to 48 GiB
  dbfleet.memory.overcommit_info:
    profile: postgresql
    workload_commit_mb: 49152
  register: overcommit

- name: Show what would be set, and whether applying would change or be refused
  ansible.builtin.debug:
    msg: "{{ overcommit.sysctl }} would_change={{ overcommit.would_change }} refused={{ overcommit.would_refuse }}"

- name: What-if report for a host with 64 GiB and 8 GiB of swap
  dbfleet.memory.overcommit_info:
    profile: [mysql]
    meminfo:
      MemTotal: 67108864
      SwapTotal: 8388608
      Committed_AS: 20971520
  register: whatif

- name: Keep the findings as facts, for a fact cache and the overcommit_plan filter
  dbfleet.memory.overcommit_info:
    profile: [postgresql]
    facts: true

- name: Plan on the controller from those facts, with the module's precision
  ansible.builtin.debug:
    msg: "{{ ansible_facts | dbfleet.memory.overcommit_plan(profile='postgresql') }}"

- name: Which database's configured peak would not fit, and the fix
  dbfleet.memory.overcommit_info:
    profile: [postgresql]
  register: sizing

- name: Show each database's verdict
  ansible.builtin.debug:
    msg: "{{ sizing.databases | map(attribute='reason') | list }}"
"""

RETURN = r"""
sysctl:
  description: The planned sysctl values as strings. Never both ratio and kbytes.
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
  description: The C(CommitLimit) the kernel will show after applying the plan.
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
  description: The derived numbers (kB) - demand, headroom, reserves, lower bound, kernel reserve, usable RAM, upper bound.
  returned: always
  type: dict
options:
  description: The planning options in effect, in kB where they are sizes.
  returned: always
  type: dict
databases:
  description:
    - The database servers found on the host (running, or installed and stopped), one per item, in the order of
      the plan's RV(reasons) lines about them. Empty when there is none.
  returned: always
  type: list
  elements: dict
  contains:
    engine:
      description: V(postgresql), V(mariadb), V(mysql), V(redis) or V(valkey).
      type: str
    server:
      description: The server's name, for example V(15/main) or V(mariadbd).
      type: str
    running:
      description: Whether it runs now.
      type: bool
    readable:
      description: Whether its configuration could be read.
      type: bool
    failure:
      description: Why not (C(kind) one of V(no-client), V(no-auth), V(down), V(timeout), V(garbage), V(failed), and
        C(reason) in words), or V(null).
      type: dict
    charged_kb:
      description: What its processes commit now (part of C(Committed_AS)); V(null) when it is not running.
      type: int
    configured_peak_kb:
      description: Its estimated peak commit charge as configured; V(null) when it could not be read.
      type: int
    formula:
      description: The estimate's terms with this host's numbers.
      type: str
    fits:
      description: Whether that peak fits under the planned limit with everything else committed now; V(null) when
        unread or when the planned mode compares nothing (mode 1).
      type: bool
    room_kb:
      description: The most its peak may be for the plan to stay safe.
      type: int
    fixes:
      description: When it does not fit, each way to make it fit (C(setting), C(current), C(proposed), C(how),
        C(restart)), the database's own settings first, then swap.
      type: list
      elements: dict
    reason:
      description: The line the plan's RV(reasons) carry for it.
      type: str
  sample:
    - engine: postgresql
      server: 15/main
      running: true
      readable: true
      failure: null
      charged_kb: 154608
      configured_peak_kb: 4085064
      formula: "shared memory 139 MiB + other shared segments 32 kB + processes 170 MiB + query memory 3584 MiB
        + maintenance 96 MiB = 3989 MiB"
      fits: false
database_verdict:
  description:
    - The lower-bound verdict (as RV(live_commit_state)) with the databases' configured peaks in the demand
      (everything else committed now plus each peak). With O(database_peak=enforce) it is the plan's verdict;
      with V(warn) a warning. V(null) when no database's peak is known or the planned mode compares nothing.
  returned: always
  type: dict
profile:
  description: The profiles planned for.
  returned: always
  type: list
  elements: str
live_values:
  description: The live values of the managed keys read from C(/proc/sys/vm); null where unreadable.
  returned: always
  type: dict
  sample: {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": "8192"}
source:
  description: Where the memory shape came from, the file path or V(meminfo option).
  returned: always
  type: str
would_change:
  description: Whether M(dbfleet.memory.overcommit) with the same options would change the host.
  returned: always
  type: bool
would_refuse:
  description: Why M(dbfleet.memory.overcommit) with the same options would refuse (unsafe plan, shadowing), or null.
  returned: always
  type: str
files:
  description: The file operations applying would make (path, action, why).
  returned: always
  type: list
  elements: dict
live_changes:
  description: The live writes applying would make, in order; empty in a container.
  returned: always
  type: list
  elements: dict
shadowing:
  description: Per managed key, which file wins at boot and under C(sysctl --system) once the drop-in is in place.
  returned: always
  type: dict
container:
  description: The container kind detected on the target, or null.
  returned: always
  type: str
container_evidence:
  description: The evidence that decided RV(container), or null.
  returned: always
  type: str
live_commit_state:
  description:
    - The live values judged by the same lower-bound rule as a plan - in mode 2, whether a process without
      CAP_SYS_ADMIN can still commit the demand and headroom (C(safe), C(room_kb), C(needed_kb), C(reason)).
  returned: always
  type: dict
boot_now:
  description:
    - What the sysctl files as they are now would leave at the next boot and on a later C(sysctl --system), per
      modelled tool version (C(end) values and C(problems)), if nothing is applied.
  returned: always
  type: dict
database_units:
  description:
    - Each database service found (PostgreSQL, MariaDB/MySQL, Redis, Valkey units), as
      M(dbfleet.memory.oom_priority) sees it - C(unit), C(status), C(main_pid), C(live_oom_score_adj),
      C(configured_oom_score_adj), C(oom_policy), C(backends_inherit_negative) (PostgreSQL backends that inherit
      the postmaster's negative score), and C(findings). C(error) says why nothing could be read (no systemd).
  returned: always
  type: dict
boot_now_unsafe:
  description:
    - Findings where the next boot with today's files (or a later C(sysctl --system), or a tuned restart) would leave
      an unsafe mode 2, naming the file that sets it and the numbers, and every file the boot tools read that cannot
      be read here (so the next boot cannot be predicted). Empty when every end state is safe.
  returned: always
  type: list
  elements: str
ratio100_commit_state:
  description:
    - The advice copied from blog posts (mode 2 with C(vm.overcommit_ratio=100)) judged on this host by the same
      lower-bound rule, with its live admin reserve and no headroom - whether it would lock non-root out today
      (C(safe)), with C(commit_limit_kb), C(room_kb) and C(reason). Null when the admin reserve cannot be read.
  returned: always
  type: dict
next_boot:
  description:
    - What decides the next boot besides the sysctl files, as this host's files say.
    - C(writers) names every boot-time writer of the managed keys that was found (the boot tool and how it was told,
      the kernel command line's C(sysctl.*) parameters, a tuned profile and whether it re-applies the sysctl files);
      C(unmodelled) names writers whose effect cannot be modelled (reported, never trusted).
    - C(start) holds the values before any sysctl file runs (the kernel's defaults and the command line's
      C(sysctl.*) parameters).
    - C(memory.swaptotal_kb) is the swap the next boot brings back, as far as the lower bound may count on it (swap
      switched on by hand is gone after a reboot; a C(nofail) line may be missing); C(memory.hugepage_kb) and
      C(memory.other_hugetlb_kb) size the huge pages the boot reserves (the command line, and C(vm.nr_hugepages) as
      the boot leaves it); C(memory.explained) says why, one line per term. C(memory) is null when the next boot is
      judged with today's memory (a saved memory shape given with O(meminfo)).
    - RV(boot_now) gives, per way to the next end state, the C(swaptotal_kb), C(hugetlb_kb) and C(commit_limit_kb)
      it was judged with.
  returned: always
  type: dict
ansible_facts:
  description: With O(facts=true), the findings as facts, under one key.
  returned: when O(facts=true)
  type: dict
  contains:
    dbfleet_overcommit:
      description: What planning and an audit need, so that a fact cache can stand in for the host.
      returned: when O(facts=true)
      type: dict
      contains:
        schema:
          description: The version of this shape; it changes when a field changes meaning.
          type: int
          sample: 1
        gathered_at:
          description: When the values were read, ISO 8601 in UTC.
          type: str
          sample: "2026-11-30T05:40:00Z"
        source:
          description: Where the memory shape came from, as RV(source).
          type: str
          sample: /proc/meminfo
        memory:
          description:
            - The memory shape in kB as RV(memory) (C(memtotal_kb), C(swaptotal_kb), C(hugetlb_kb), C(committed_as_kb),
              C(commit_limit_kb)) and the page size in kB (C(page_size_kb)).
          type: dict
          sample: {"memtotal_kb": 16384000, "swaptotal_kb": 4194300, "hugetlb_kb": 0, "committed_as_kb": 3200000,
                   "commit_limit_kb": 12386300, "page_size_kb": 4}
        live_values:
          description:
            - The live values of the managed keys, of C(vm.user_reserve_kbytes), which the lower bound holds
              back, and of C(vm.nr_hugepages); null where unreadable (no hugetlb in the kernel).
          type: dict
          sample: {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0",
                   "vm.admin_reserve_kbytes": "8192", "vm.user_reserve_kbytes": "131072", "vm.nr_hugepages": "0"}
        live_commit_state:
          description: The verdict on the live state, as RV(live_commit_state), with this run's options.
          type: dict
        boot_now_unsafe:
          description: As RV(boot_now_unsafe).
          type: list
          elements: str
        container:
          description: As RV(container).
          type: str
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbfleet.memory.plugins.module_utils._oom import host as oom
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import api
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import SHARED_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            SHARED_ARGUMENT_SPEC,
            meminfo_path=dict(type="path", default="/proc/meminfo"),
            meminfo=dict(type="dict"),
            facts=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        # What the overcommit module would do with the same options and its defaults.
        seen = api.examine(api.request_for(p), meminfo_path=p["meminfo_path"], meminfo=p["meminfo"],
                           read_databases=api.databases_reader(module.run_command))
    except api.ExamineFailed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    result = seen.result()
    # The other half of the defence: which process the OOM killer picks (read-only, systemctl show).
    result["database_units"] = oom.describe_host(module.run_command)
    if p["facts"]:
        # Imported here: an audit that asks for no facts does not compile them (AnsiballZ ships no bytecode).
        from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.facts import build_facts

        result["ansible_facts"] = build_facts(
            seen.host.memory, seen.host.live, seen.live_verdict, seen.boot_now.unsafe, seen.source,
            seen.host.container, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
