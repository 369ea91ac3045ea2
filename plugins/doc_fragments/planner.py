# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The planner's options, shared by the overcommit and overcommit_info modules and the overcommit_plan
    # filter. Their names, types, choices and defaults are module_utils/plan_args.py's PLANNER_ARGUMENT_SPEC;
    # tests/unit/plugins/test_planner_options.py fails when this text and that spec differ.
    DOCUMENTATION = r"""
options:
  profile:
    description:
      - The databases this host runs. V(redis) and V(valkey) need C(vm.overcommit_memory=1); every other profile
        plans mode 2 with a computed limit.
      - Profiles that need different modes on one host fail with a message naming them, even when only a report
        is asked for. A kernel has one overcommit mode.
    type: list
    elements: str
    choices: [generic, postgresql, mysql, mariadb, oracle, redis, valkey]
    default: [generic]
  workload_commit_mb:
    description:
      - Expected peak committed memory of the database in MiB (for example shared buffers plus per-connection
        memory). The demand is the larger of this and the current C(Committed_AS).
      - The lower bound is the kernel's own check in mode 2. A process without CAP_SYS_ADMIN may commit only
        C(CommitLimit) less C(vm.admin_reserve_kbytes), less C(vm.user_reserve_kbytes) (the host's own value; the
        kernel holds up to that much back from each request), less one page (its comparison is strict). That
        must cover the demand plus O(headroom_pct).
    type: int
    default: 0
  headroom_pct:
    description:
      - Headroom in percent added on top of the demand for the lower bound. Between 0 and 100.
    type: int
    default: 20
  kernel_reserve_pct:
    description:
      - Share of the non-huge-page RAM, in percent, kept out of the commit budget for the kernel's own memory
        and the page cache. Between 0 and 50.
    type: int
    default: 10
  admin_reserve_mb:
    description:
      - Planned C(vm.admin_reserve_kbytes) in MiB, memory only root may commit under mode 2 so it can log in and
        recover. The kernel documentation sizes it at about 128 MiB on x86_64 (sshd or login, bash, top). At
        least 8.
    type: int
    default: 128
  prefer:
    description:
      - How to express the limit. V(auto) uses C(vm.overcommit_ratio) unless one percent of it is more than
        1 GiB on this host, then C(vm.overcommit_kbytes). V(ratio) and V(kbytes) force one.
    type: str
    choices: [auto, ratio, kbytes]
    default: auto
  database_peak:
    description:
      - What a database's configured peak that does not fit under the planned limit does to the plan. The
        modules that run on the host read its PostgreSQL, MariaDB/MySQL and Redis/Valkey servers (read-only,
        through their own clients) and estimate each one's peak commit charge from its configuration.
      - V(warn) adds a warning to the plan's reasons with the numbers and the fix in the database's own terms
        (a smaller C(work_mem), fewer C(max_connections) behind a pooler, more swap); the plan's verdict is
        unchanged.
      - V(enforce) puts the databases' peaks into the demand the lower bound starts from (everything else
        committed now plus each database's configured peak), so a peak that does not fit makes the plan
        unsafe and the run refuses with the same numbers.
      - Planning from cached facts (the P(dbfleet.memory.overcommit_plan#filter) filter, the audit from the
        cache) knows no databases, and says so.
    type: str
    choices: [warn, enforce]
    default: warn
"""
