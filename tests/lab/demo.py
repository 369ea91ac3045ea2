"""`make demo`: the seed's story, told by a real PostgreSQL on a real kernel.

One User-mode Linux guest (its own kernel, 1.5 GiB RAM, no swap) runs Debian 12's
PostgreSQL 15 and MariaDB 10.11 as installed (the lab's "db" image). Twice, the same
runaway query asks for more memory than the host has, while another session works:

  before - kernel defaults (overcommit mode 0, systemd's OOMPolicy=stop): the kernel's OOM
           killer kills the backend, PostgreSQL resets every session, and systemd stops
           the whole cluster;
  after  - the roles dbfleet.memory.overcommit and dbfleet.memory.oom_priority, applied over
           SSH with ansible-playbook and never restarting a database: the query fails with
           "out of memory", the other session keeps running, nothing restarts, and root
           still logs in.

Then the busy hour (sizing from the database): the DBA sizes MariaDB as a small side database
and raises PostgreSQL to max_connections 40 and work_mem 32MB for reports. overcommit_info,
before any load, says this configured peak does not fit under the limit and gives the fix in
PostgreSQL's terms; 26 concurrent sorts then meet "out of memory" as predicted (nothing killed, logins work); the fix,
applied with a reload, makes the verdict "fits" and the same 26 sorts run clean, with the same
postmaster. busyhour.py tells this story; test_db_sizing.py proves it in `make test`.

It ends with a before/after table and tears the guest down.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

# Run as a script (`make demo`), Python puts this file's directory, the lab's import
# root, first on sys.path: the package umlab and the modules beside it import by name.
import busyhour
import dbsizing as dz
from dbguest import DB_PROFILE, PG_UNIT, identity, oom_kills, psql, unit_state, wait_for_databases
from role_runner import run_oom_role, run_role
from umlab import GuestSpec, Lab, ensure_image

GUEST = GuestSpec("pgdemo", mem_mb=1536, flavour="db")
# Two 800 MiB strings held at once in one query: 1.6 GiB, more than the guest's RAM. (One
# allocation in PostgreSQL is limited to 1 GB, so the runaway takes two.)
PIECE_MB = 800
RUNAWAY_SQL = f"SELECT length(repeat('x', {PIECE_MB} * 1024 * 1024)) + length(repeat('y', {PIECE_MB} * 1024 * 1024))"
OTHER_LOG = "/tmp/other-session.log"
# The busy hour on a host that runs both servers. MariaDB as a small side database of 10
# connections: as installed (151 connections, 128M key and Aria caches, 16M temporary tables per
# connection) its configured peak alone is more than this host can back, and the verdict would
# leave PostgreSQL no room at all. PostgreSQL as a small OLTP host (few workers, JIT off) whose
# work_mem was raised for reports. 26 sorts at once, each of 32000 rows of about 1 kB that fills
# its work_mem of 32MB: more than the limit leaves, so some meet ENOMEM (4-5 of 26 with a 64M
# InnoDB buffer pool; the pool as installed, 128M, commits 64 MiB more and leaves less). After the
# fix each sort spills its 32 MB to the guest's disk; with 36 sorts, 4 did not reach the barrier.
BUSY_MY = {"max_connections": "10", "key_buffer_size": "16M", "aria_pagecache_buffer_size": "16M",
           "tmp_table_size": "4M", "max_heap_table_size": "4M"}
BUSY_PG = {"max_connections": "40", "work_mem": "32MB", "maintenance_work_mem": "32MB",
           "autovacuum_max_workers": "2", "max_worker_processes": "4", "max_parallel_workers": "2",
           "max_wal_senders": "2", "jit": "off"}
BUSY_CLIENTS = 26
BUSY_ROWS = 32000


def say(message: str) -> None:
    print("[demo %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


@dataclass
class Act:
    settings: str
    query: str
    killed: str
    kernel_line: str
    postgres_log: str
    other_session: str
    cluster: str
    root_login: str


def start_other_session(lab: Lab) -> int:
    """Another client's session, busy for 40 s; returns its backend PID."""
    lab.run(GUEST.name, f"cd / && setsid -f runuser -u postgres -- psql -XAt -c"
                        f" \"SELECT 'other session finished its work' FROM pg_sleep(40)\" >{OTHER_LOG} 2>&1 </dev/null")
    for _attempt in range(60):
        pid = psql(lab, GUEST.name, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(40)%'"
                                    " AND pid <> pg_backend_pid()")
        if pid:
            return int(pid)
        time.sleep(0.5)
    raise RuntimeError("the other session did not start")


def act(lab: Lab, settings: str) -> Act:
    name = GUEST.name
    other_pid = start_other_session(lab)
    before = identity(lab, name)
    journal_since = lab.run(name, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    lab.run(name, "dmesg -C")
    say(f"session {other_pid} is working; now the runaway query: {RUNAWAY_SQL}")
    result = psql(lab, name, RUNAWAY_SQL, check=False, timeout=240)
    time.sleep(3)   # let PostgreSQL and systemd act on whatever happened
    kills = oom_kills(lab.run(name, "dmesg").stdout)
    # What systemd and PostgreSQL said about it: the kill, the crash recovery, the stop.
    pg_log = lab.run(name, f"(journalctl -q -o cat --since '{journal_since}' -u {PG_UNIT} --no-pager;"
                           " tail -n 40 /var/log/postgresql/postgresql-15-main.log) | grep -E 'OOM killer|Failed with"
                           " result|terminated by signal|terminating any other|reinitializing|automatic recovery"
                           "|ready to accept|fast shutdown|system is shut down|out of memory' | cut -c1-150",
                     check=False).stdout
    alive = psql(lab, name, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {other_pid}", check=False)
    other = ("still running" if alive == "1" else
             "ENDED: " + lab.run(name, f"cat {OTHER_LOG}", check=False).stdout.strip().replace("\n", " ")[:60])
    unit = unit_state(lab, name, PG_UNIT)
    if unit["ActiveState"] == "active" and psql(lab, name, "SELECT 1", check=False) == "1":
        after = identity(lab, name)
        same = before.postmaster_pid == after.postmaster_pid and before.pg_started == after.pg_started
        cluster = (f"active, postmaster {after.postmaster_pid} since {after.pg_started[11:19]}"
                   + (" (same)" if same else " (RESTARTED)"))
    else:
        sub = lab.run(name, f"systemctl show -p SubState --value {PG_UNIT}").stdout.strip()
        cluster = f"{unit['ActiveState'].upper()} ({sub}): systemd, Result={unit['Result']}"
    login = lab.run(name, "bash -c 'echo shell-started'", new_connection=True, check=False, timeout=60)
    return Act(settings=settings,
               query=result.splitlines()[0] if result else "(no answer)",
               killed=", ".join(f"{k.comm} {k.pid} (UID {k.uid}, oom_score_adj {k.oom_score_adj})" for k in kills) or "nothing",
               kernel_line=kills[0].line if kills else "(no OOM kill)",
               postgres_log=pg_log.strip(), other_session=other,
               cluster=cluster, root_login="works" if "shell-started" in login.stdout else "FAILS")


def overcommit_text(lab: Lab) -> str:
    out = lab.run(GUEST.name, "cat /proc/sys/vm/overcommit_memory /proc/sys/vm/overcommit_ratio;"
                              " grep -E '^(CommitLimit|Committed_AS)' /proc/meminfo").stdout.split()
    return f"mode {out[0]}, ratio {out[1]}, CommitLimit {int(out[3]) // 1024} MiB, Committed_AS {int(out[6]) // 1024} MiB"


def main() -> int:
    started = time.monotonic()
    say("building or reusing the db guest image (Debian 12 + postgresql + mariadb-server; cached)")
    ensure_image(GUEST.image)
    say(f"booting {GUEST.name}: a User-mode Linux kernel with {GUEST.mem_mb} MiB RAM, no swap")
    with Lab([GUEST], name="demo-%d" % (int(time.time()) % 100000)) as lab:
        wait_for_databases(lab, GUEST.name)
        say("PostgreSQL 15 and MariaDB 10.11 are up, as Debian installs them")

        say("BEFORE: kernel defaults (%s), systemd's OOMPolicy=%s" % (
            overcommit_text(lab), unit_state(lab, GUEST.name, PG_UNIT)["OOMPolicy"]))
        before = act(lab, overcommit_text(lab))
        print(f"  kernel:     {before.kernel_line}")
        print("  PostgreSQL and systemd:\n    " + "\n    ".join(before.postgres_log.splitlines()))
        if unit_state(lab, GUEST.name, PG_UNIT)["ActiveState"] != "active":
            # Seen once here: the fast shutdown systemd asked for in the middle of crash recovery
            # had not finished two minutes later ("pg_ctl: server does not shut down").
            say("systemd is stopping the whole cluster (OOMPolicy=stop); the operator kills it and starts it again")
            lab.run(GUEST.name, f"systemctl kill -s SIGKILL {PG_UNIT}; for i in $(seq 60); do"
                                f" systemctl is-active -q {PG_UNIT} || break; sleep 1; done;"
                                f" systemctl reset-failed {PG_UNIT}; systemctl start {PG_UNIT}", timeout=180)
        wait_for_databases(lab, GUEST.name)

        say("applying dbfleet.memory.overcommit and dbfleet.memory.oom_priority over SSH")
        runs_before = identity(lab, GUEST.name)
        overcommit = run_role(lab, GUEST.name, lab_profile=DB_PROFILE)
        oom = run_oom_role(lab, GUEST.name, lab_profile=DB_PROFILE)
        if overcommit.returncode or oom.returncode:
            print(overcommit.output, oom.output)
            say("a role failed")
            return 1
        restarted = runs_before.differences(identity(lab, GUEST.name))
        say("roles applied (changed: overcommit %d, oom_priority %d); databases restarted: %s" % (
            overcommit.changed(GUEST.name), oom.changed(GUEST.name), restarted or "none"))
        after = act(lab, overcommit_text(lab) + ", OOMPolicy=" + unit_state(lab, GUEST.name, PG_UNIT)["OOMPolicy"])
        print(f"  PostgreSQL: {after.query}")

        say(f"THE BUSY HOUR: the DBA sizes MariaDB {BUSY_MY} and sets PostgreSQL {BUSY_PG} for reports"
            " (both restart, as such changes need)")
        dz.upload_product(lab, GUEST.name)   # the product's reader, for Committed_AS at the load's peak
        dz.pg_prepare(lab, GUEST.name)
        dz.my_configure(lab, GUEST.name, BUSY_MY)
        dz.pg_configure(lab, GUEST.name, BUSY_PG)
        say(f"overcommit_info, then {BUSY_CLIENTS} concurrent sorts of {BUSY_ROWS} rows, the fix, the same sorts again")
        hour = busyhour.busy_hour(lab, GUEST.name, busyhour.PostgresHour(BUSY_CLIENTS, BUSY_ROWS), DB_PROFILE)
        print("  " + hour.story().replace("\n", "\n  "))
        busy_problems = hour.problems()
        say("tearing the guest down")

    rows = [("settings", before.settings, after.settings),
            ("runaway query", before.query, after.query),
            ("OOM killer killed", before.killed, after.killed),
            ("other session", before.other_session, after.other_session),
            ("cluster after", before.cluster, after.cluster),
            ("new root SSH login", before.root_login, after.root_login)]
    width = max(len(r[1]) for r in rows)
    print()
    print("%-19s %-*s  %s" % ("", width, "BEFORE (kernel defaults)", "AFTER (overcommit + oom_priority)"))
    for label, left, right in rows:
        print("%-19s %-*s  %s" % (label, width, left, right))
    print()
    busy = [("verdict", hour.before["verdict"], hour.after["verdict"]),
            ("work_mem", BUSY_PG["work_mem"], hour.fix["proposed"]),
            (f"{BUSY_CLIENTS} sorts", f"{len(hour.failing.result.out_of_memory)} out of memory",
             f"{len(hour.passing.result.out_of_memory)} out of memory, {hour.passing.result.held} held their sort"),
            ("OOM kills, lockout", f"{len(hour.failing.oom_kills)}, {'; '.join(hour.failing.lockout) or 'none'}",
             f"{len(hour.passing.oom_kills)}, {'; '.join(hour.passing.lockout) or 'none'}")]
    width = max(len(r[1]) for r in busy)
    print("%-19s %-*s  %s" % ("THE BUSY HOUR", width, "AS CONFIGURED", "AFTER THE FIX (a reload)"))
    for label, left, right in busy:
        print("%-19s %-*s  %s" % (label, width, left, right))
    print()
    for problem in busy_problems:
        print("  NOT AS PREDICTED: " + problem.splitlines()[0])
    ok = (before.killed != "nothing" and after.killed == "nothing" and "out of memory" in after.query
          and after.other_session == "still running" and after.root_login == "works" and not restarted
          and "(same)" in after.cluster and not busy_problems)
    say("done in %.0f s: %s" % (time.monotonic() - started,
                                "the story holds" if ok else "SOMETHING DID NOT HAPPEN AS TOLD (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
