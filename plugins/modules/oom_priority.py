#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: oom_priority
short_description: Tell the OOM killer to spare database services, with systemd drop-ins and no restart
version_added: "0.1.0"
description:
  - Finds the database units named by O(profile) (and O(units)), writes a systemd drop-in
    C(/etc/systemd/system/<unit>.d/<dropin_priority>-dbfleet-oom.conf) with C(OOMScoreAdjust=), the PostgreSQL
    environment and C(OOMPolicy=) where they apply, runs C(systemctl daemon-reload), and brings each running
    unit's main process to the same score live. It never starts, stops or restarts a unit.
  - Units looked for per profile. V(postgresql) - Debian's C(postgresql@*.service) instances (the drop-in goes to the
    template's C(postgresql@.service.d/), so every cluster gets it), PGDG C(postgresql-NN.service), C(postgresql.service)
    (skipped where it is Debian's oneshot that only starts the instances) and C(patroni.service).
    V(mariadb) and V(mysql) - C(mariadb.service), C(mysql.service), C(mysqld.service) and their C(@) instances
    (aliases resolve to one unit). V(redis) - C(redis-server.service), C(redis.service) and instances.
    V(valkey) - C(valkey*.service). V(oracle) - C(oracle-ohasd.service), C(dbora.service). V(generic) - none, use
    O(units).
  - Defaults per database, each with its reason and source in the result (RV(rules)) and the drop-in's header.
    PostgreSQL - the postmaster at -1000, C(PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj) and C(PG_OOM_ADJUST_VALUE=0) so
    that every backend goes back to 0, and C(OOMPolicy=continue) so that an OOM-killed backend leads to PostgreSQL's own
    crash recovery instead of systemd stopping the cluster (PostgreSQL manual, "Linux Memory Overcommit"; the PGDG unit
    files). MariaDB and MySQL - -600, MariaDB's own suggested value (commented out in its units); a single process
    must stay killable. Redis and Valkey - their own C(oom-score-adj) and C(oom-score-adj-values) settings do this
    better and follow role changes, so their units are reported and get no value unless O(oom_score_adj) asks.
    Oracle - report only.
  - Debian and Ubuntu clusters (C(postgresql@.service) running C(pg_ctlcluster)) get C(OOMPolicy=continue) only.
    C(pg_ctlcluster) writes -900 to the postmaster's score itself after systemd applied C(OOMScoreAdjust=), sets
    C(PG_OOM_ADJUST_FILE), and replaces the unit's environment with the cluster's own C(environment) file, so a unit
    value or C(Environment=) would never reach the postmaster (postgresql-common's C(pg_ctlcluster)). The result
    says so; an O(oom_score_adj) for such a unit is not written, with a warning.
  - Live, only the main PID's C(/proc/PID/oom_score_adj) is written; existing children keep theirs. A PostgreSQL
    postmaster is lowered only when its environment already carries C(PG_OOM_ADJUST_FILE); otherwise every new backend
    would inherit the negative score, so the result says "takes effect at the next restart". For C(patroni.service)
    the main PID is Patroni itself; the postmaster it runs gets the values when Patroni next starts it.
  - "Refused, with nothing changed: -1000 for a single-process database (MariaDB, MySQL, Redis, Valkey, generic) unless
    the unit is named in O(allow_unkillable) - if it is itself the runaway the kernel has nothing to kill; a unit in
    O(units) that runs a database not in O(profile), which would otherwise get another engine's settings; any write to
    every process of a unit's cgroup (O(live=cgroup)); an O(oom_score_adj) below 0 inside a container, where it has
    no effect. A negative default inside a container is not written and reported as ineffective."
  - When C(systemd-oomd) is active, C(ManagedOOMPreference=avoid) is added, so it does not pick the database's cgroup.
  - Runs under the same exclusive host lock as M(dbfleet.memory.overcommit). A drop-in of another name that systemd
    applies after ours and sets the same keys is refused, naming it. After C(daemon-reload) the module reads the units
    again and checks that systemd reports the values written; any failure puts files and scores back and reads them
    back.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state:
    description:
      - V(present) writes the drop-ins and the live scores. V(absent) removes our drop-ins for the units in scope
        (also when the unit itself is gone), reloads systemd, and brings each running main PID back to the unit's own
        C(OOMScoreAdjust=), under the same PostgreSQL rule.
    type: str
    choices: [present, absent]
    default: present
  profile:
    description:
      - The databases on the host; the same names as the P(dbfleet.memory.overcommit#role) role's profiles. Units of
        these databases that are not installed are simply not found.
    type: list
    elements: str
    choices: [generic, postgresql, mysql, mariadb, oracle, redis, valkey]
    default: []
  units:
    description:
      - Unit names to manage in addition to those the profiles find, for example C(pg-main.service). A template
        (C(name@.service)) gets the drop-in for all its instances. A unit gets only the settings of the database it
        runs - the profile whose unit patterns match its name (or the name of the unit systemd resolves it to), else,
        for a name of no known database, the one database in O(profile), else V(generic) (nothing written unless
        O(oom_score_adj) asks).
      - A unit of a known database that is not in O(profile) (C(mariadb.service) with O(profile=[postgresql])) is
        refused with nothing changed, naming the unit and its database; add that database to O(profile). Without
        a database in O(profile), the unit's name decides its rule. With O(state=absent) such a unit may be named, to
        remove our drop-in from it.
      - A unit that is not found is reported and warned about.
    type: list
    elements: str
    default: []
  oom_score_adj:
    description:
      - The score for every unit in scope instead of the per-database default, from -1000 to 1000. Needed for
        V(redis), V(valkey), V(oracle) and V(generic) units to be written at all.
    type: int
  oom_policy:
    description:
      - C(OOMPolicy=) for every unit in scope instead of the per-database default (V(continue) for PostgreSQL,
        none for the others).
    type: str
    choices: [continue, stop, kill]
  allow_unkillable:
    description:
      - Units of a single-process database that may be set to -1000 (never chosen by the OOM killer). Name the unit
        as written in the drop-in path, for example C(mariadb.service). Without it, -1000 is refused for them.
    type: list
    elements: str
    default: []
  live:
    description:
      - V(auto) writes the main PID's score where the rules allow. V(never) writes the drop-ins only; the values apply
        at the next start of each unit. V(cgroup) is always refused, with the reason - writing every process of a unit
        would protect the runaway children too.
    type: str
    choices: [auto, never, cgroup]
    default: auto
  dropin_priority:
    description:
      - Two-digit prefix of the drop-in name, between 10 and 98. Drop-ins are applied in name order, so a later name
        (C(override.conf) from C(systemctl edit) sorts after every number) wins; such a conflict is refused.
    type: int
    default: 90
  lock_timeout:
    description:
      - Seconds to wait for another run of a dbfleet.memory module on the same host to finish.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows each drop-in written or removed, and the main PIDs' scores before and after.
  platform:
    support: full
    platforms: [linux]
notes:
  - Needs root and systemd as PID 1. Runs only C(systemctl show) and C(systemctl daemon-reload).
  - This is the module behind the P(dbfleet.memory.oom_priority#role) role.
seealso:
  - module: dbfleet.memory.overcommit
  - name: PostgreSQL, Linux Memory Overcommit
    description: The postmaster at -1000 and the backends back at 0.
    link: https://www.postgresql.org/docs/current/kernel-resources.html#LINUX-MEMORY-OVERCOMMIT
  - name: systemd.exec(5), OOMScoreAdjust=
    description: The score a unit's processes start with.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
  - name: systemd.service(5), OOMPolicy=
    description: What systemd does with a unit when the kernel OOM-kills one of its processes.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html
"""

EXAMPLES = r"""
- name: Protect PostgreSQL and MariaDB from the OOM killer, without a restart
  dbfleet.memory.oom_priority:
    profile: [postgresql, mariadb]
  become: true

- name: A Redis host - its own oom-score-adj settings are preferred, but a unit value is asked for here
  dbfleet.memory.oom_priority:
    profile: [redis]
    oom_score_adj: -500
  become: true

- name: A hand-made unit that runs PostgreSQL
  dbfleet.memory.oom_priority:
    profile: [postgresql]
    units: [pg-main.service]
  become: true

- name: Remove our drop-ins; each unit's own setting applies again, live too
  dbfleet.memory.oom_priority:
    state: absent
    profile: [postgresql, mariadb]
  become: true
"""

RETURN = r"""
units:
  description:
    - One entry per unit (or template with no loaded instance) - C(unit), C(database), C(status), C(dropin),
      C(settings) written, C(live) (what happened to the running process, in words), C(live_write) and C(notes).
    - C(status) is V(managed); V(ineffective) in a container, where the negative score is left out (C(settings) lists
      what is still written, for example C(OOMPolicy=)); V(report-only) (Redis, Valkey, Oracle, generic without
      O(oom_score_adj)); V(masked); V(missing) (a unit named in O(units)); V(oneshot) (Debian's C(postgresql.service),
      which only starts the instances); V(removed) with O(state=absent).
  returned: always
  type: list
  elements: dict
  sample:
    - unit: postgresql-16.service
      database: postgresql
      status: managed
      dropin: /etc/systemd/system/postgresql-16.service.d/90-dbfleet-oom.conf
      settings: {OOMScoreAdjust: "-1000", OOMPolicy: continue,
                 Environment: "PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj PG_OOM_ADJUST_VALUE=0"}
      live: "takes effect at the next restart: the postmaster (PID 812) was started without PG_OOM_ADJUST_FILE, ..."
      live_write: null
      notes: []
files:
  description: The drop-ins written or removed (C(path), C(action), C(why)).
  returned: always
  type: list
  elements: dict
live_changes:
  description: The main PIDs' scores written (C(unit), C(pid), C(before), C(after)); only main PIDs, ever.
  returned: always
  type: list
  elements: dict
live_applied:
  description: Whether any live score was written.
  returned: always
  type: bool
daemon_reload:
  description: Whether C(systemctl daemon-reload) ran (only after a drop-in changed).
  returned: always
  type: bool
container:
  description: The container kind detected, or null.
  returned: always
  type: str
container_evidence:
  description: What decided RV(container).
  returned: always
  type: str
oomd_active:
  description: Whether systemd-oomd is active (then C(ManagedOOMPreference=avoid) is written).
  returned: always
  type: bool
rules:
  description: Per database in the result, the default value, policy, environment, the reason and its source.
  returned: always
  type: dict
lock_waited_s:
  description: Seconds spent waiting for another run on the host.
  returned: success
  type: float
rollback:
  description: After a failed apply, whether the rollback is complete and what is still different.
  returned: failure after a change began
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import transaction as oom_host
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core
from ansible_collections.dbfleet.memory.plugins.module_utils._oom.decide import validate_request
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LockError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=list(core.STATE_CHOICES)),
            profile=dict(type="list", elements="str", default=[], choices=list(core.PROFILES)),
            units=dict(type="list", elements="str", default=[]),
            oom_score_adj=dict(type="int"),
            oom_policy=dict(type="str", choices=list(core.OOM_POLICIES)),
            allow_unkillable=dict(type="list", elements="str", default=[]),
            live=dict(type="str", default="auto", choices=list(core.LIVE_CHOICES)),
            dropin_priority=dict(type="int", default=core.DEFAULT_PRIORITY),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Every option is checked before the host is read, so bad input changes nothing.
    try:
        validate_request(p["profile"], p["units"], p["oom_score_adj"], p["oom_policy"], p["dropin_priority"],
                         p["live"], p["allow_unkillable"], p["state"])
    except core.OomInputError as exc:
        module.fail_json(msg=str(exc), option=exc.option)
    if p["lock_timeout"] < 0:
        module.fail_json(msg="lock_timeout: must be 0 or more seconds, got %d" % p["lock_timeout"],
                         option="lock_timeout")
    request = core.Request(state=p["state"], profiles=tuple(p["profile"]), units=tuple(p["units"]),
                           oom_score_adj=p["oom_score_adj"], oom_policy=p["oom_policy"],
                           allow_unkillable=tuple(p["allow_unkillable"]), live=p["live"],
                           priority=p["dropin_priority"])

    def run_command(args):
        return module.run_command(args, check_rc=False, environ_update={"SYSTEMD_PAGER": "", "LC_ALL": "C"})

    try:
        result = oom_host.run(request, run_command, check_mode=module.check_mode, want_diff=module._diff,
                              lock_timeout_s=p["lock_timeout"], warn=module.warn)
    except LockError as exc:
        module.fail_json(msg=str(exc))
    except (oom_host.Refused, oom_host.Failed) as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
