"""Real PostgreSQL 15 and MariaDB 10.11 (Debian 12's packages, under systemd) on real kernels.

The stand-in tests prove the kernel's side with a Python process; these prove it with the
databases a DBA runs. Two guests of the "db" image flavour (tests/lab/image/build-image.sh),
in a lab of this module's own (booted only when these tests run):

  oomdb - mode 0, the kernel's default. A process that is not a database (as nobody) eats
          memory until the guest runs out. Without our roles the OOM killer picks a database
          process; with `oom_priority` it picks the hog, and neither database restarted nor
          lost a row. Then a cgroup limit (MemoryMax) on the cluster's unit: a runaway
          backend is killed alone and PostgreSQL recovers with the role's OOMPolicy=continue;
          without our drop-in systemd's default OOMPolicy=stop stops the whole cluster.
  m2db  - the seed's story with `overcommit` (mode 2) and `oom_priority`: a query that wants
          more than the host can back fails with an error, nothing is killed, nothing
          restarts, root still logs in; running the roles never restarts a database and a
          second run changes nothing. MariaDB's remote last resort, `mysqladmin shutdown`,
          is tried last.

Every test prints what the guest's kernel said; the assertions name the process it killed.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest

from dbguest import (DB_PROFILE, DB_UNITS, MARIADB_UNIT, PG_UNIT, identity, kept_checksums, mariadb,
                     oom_kills, process_names, psql, unit_state, wait_for_databases, write_kept_tables)
from helpers import AS_NOBODY, MEMHOG, MIB_KB, install_memhog, read_overcommit
from role_runner import RoleRun, run_oom_role, run_role
from umlab import GuestSpec, Lab, check_host

OOM_GUEST, MODE2_GUEST = "oomdb", "m2db"
# m2db is bigger: the two servers as installed commit ~680 MiB (Committed_AS; mariadbd alone maps
# ~1 GiB of address space), and the role's mode-2 plan must fit that plus its headroom and root's reserve.
GUESTS = [GuestSpec(OOM_GUEST, mem_mb=1024, flavour="db"), GuestSpec(MODE2_GUEST, mem_mb=1536, flavour="db")]

# mode 0: MariaDB holds this share of RAM in a MEMORY table (data it keeps in RAM, as a buffer
# pool does), so that it is the biggest process when the hog has eaten the rest: the one the
# kernel's badness picks unless its score says otherwise. The hog asks for more than is left.
MARIADB_HOLD_PCT = 40
HOG_PCT = 70
# mode 2: one query asks for this much in one piece, more than the mode-2 budget has left
# (checked); PostgreSQL's limit for one allocation is 1 GB, so it stays below that.
RUNAWAY_MB = 960


@pytest.fixture(scope="module")
def dblab() -> Iterator[Lab]:
    check_host()
    with Lab(GUESTS) as lab:
        for name in lab.guests:
            wait_for_databases(lab, name)
            install_memhog(lab, name)
        print("db lab booted: " + ", ".join(f"{g.name} SSH after {g.boot_seconds[0]:.1f} s" for g in lab.guests.values()))
        yield lab


def hold_in_mariadb(lab: Lab, guest: str, mb: int) -> None:
    """MariaDB keeps `mb` MiB in a MEMORY table (malloc'ed and written in mariadbd)."""
    rows = mb * 1024 * 1024 // 60000
    mariadb(lab, guest, "CREATE DATABASE IF NOT EXISTS lab; USE lab; SET SESSION max_heap_table_size = 1024*1024*1024;"
                        " CREATE OR REPLACE TABLE hot (b VARCHAR(60000) CHARACTER SET latin1) ENGINE=MEMORY;"
                        f" INSERT INTO hot SELECT REPEAT('x', 60000) FROM seq_1_to_{rows}", timeout=120)


def eat_memory_as_nobody(lab: Lab, guest: str, mb: int) -> str:
    """The hog: memhog as nobody asks for `mb` MiB and writes every page; returns its output
    (it is killed, or it ends)."""
    proc = lab.run(guest, f"{AS_NOBODY} python3 {MEMHOG} --mb {mb} 2>&1; echo EXIT=$?", check=False, timeout=180)
    return proc.stdout.strip()


def rss_top(lab: Lab, guest: str) -> str:
    return lab.run(guest, "ps -eo pid=,user=,rss=,comm= --sort=-rss | head -4").stdout.rstrip()


def oom_scores(lab: Lab, guest: str) -> str:
    """oom_score_adj of the postmaster, a backend-like child and mariadbd, for the report."""
    return lab.run(guest, "for p in $(pgrep -x postgres) $(pgrep -x mariadbd); do"
                          " echo \"$p $(cat /proc/$p/comm) $(ps -o args= -p $p | cut -c1-40)"
                          " oom_score_adj=$(cat /proc/$p/oom_score_adj)\"; done").stdout.rstrip()


def host_oom(lab: Lab, guest: str) -> tuple[list, str]:
    """MariaDB holds its share, the hog eats the rest; returns (the kernel's kills, a report)."""
    memtotal_mb = lab.meminfo(guest)["MemTotal"] // MIB_KB
    hold_in_mariadb(lab, guest, memtotal_mb * MARIADB_HOLD_PCT // 100)
    before_rss = rss_top(lab, guest)
    names = process_names(lab, guest)
    lab.run(guest, "dmesg -C")
    hog = eat_memory_as_nobody(lab, guest, memtotal_mb * HOG_PCT // 100)
    kills = oom_kills(lab.run(guest, "dmesg").stdout)
    report = (f"biggest processes before:\n{before_rss}\nhog ({memtotal_mb * HOG_PCT // 100} MiB as nobody):"
              f" {hog.splitlines()[-1] if hog else '(no output)'}\nkernel:\n"
              + "\n".join(f"  {k.line}\n    = {names.get(k.pid, '(started after the snapshot)')}" for k in kills))
    return kills, report


def test_mode0_host_oom_kills_a_database_without_the_roles_and_the_hog_with_oom_priority(dblab: Lab) -> None:
    lab, guest = dblab, OOM_GUEST
    assert read_overcommit(lab, guest)["vm.overcommit_memory"] == 0
    print(f"\n=== {guest}: mode 0, a hog as nobody eats memory until the guest runs out ===")

    # Without our roles: Debian's defaults (postmaster -900, backends and mariadbd 0).
    print("scores as installed:\n" + oom_scores(lab, guest))
    kills, report = host_oom(lab, guest)
    print("WITHOUT the roles:\n" + report)
    assert kills, "no OOM kill in the guest's kernel log: the scenario did not run out of memory\n" + report
    assert kills[0].comm in ("mariadbd", "postgres"), "without the roles the kernel first killed a non-database\n" + report
    time.sleep(2)   # systemd notices the kill and acts on the unit (OOMPolicy=, Restart=)
    print("what systemd did: " + "; ".join(
        f"{unit}: {s['ActiveState']}, Result {s['Result']}, NRestarts {s['NRestarts']}, MainPID {s['MainPID']}"
        for unit in DB_UNITS for s in [unit_state(lab, guest, unit)]))
    # Put the killed database back if systemd did not: the baseline for the run with the role.
    lab.run(guest, f"systemctl is-active -q {MARIADB_UNIT} || systemctl restart {MARIADB_UNIT}", timeout=180)
    wait_for_databases(lab, guest)

    applied = run_oom_role(lab, guest, lab_profile=DB_PROFILE)
    assert applied.returncode == 0, applied.why()
    units = {u["unit"]: u for u in applied.apply(guest)["units"]}
    print("oom_priority: " + "; ".join(f"{name}: {u['status']}, {u['settings']}, live: {u['live']}"
                                       for name, u in units.items()))
    print("scores with oom_priority:\n" + oom_scores(lab, guest))
    tables = write_kept_tables(lab, guest)
    before = identity(lab, guest)
    kills, report = host_oom(lab, guest)
    after = identity(lab, guest)
    print("WITH oom_priority:\n" + report)
    print(f"before: {before.describe()}\nafter:  {after.describe()}")
    assert kills, "no OOM kill in the guest's kernel log: the scenario did not run out of memory\n" + report
    assert all(k.uid == 65534 and k.comm.startswith("python") for k in kills), \
        "with oom_priority the kernel killed something else than the hog (as nobody, UID 65534)\n" + report
    assert before.differences(after) == [], before.differences(after)
    assert kept_checksums(lab, guest) == tables
    print(f"kept tables intact: {tables}")


# The cluster's unit gets this cgroup limit at runtime; the runaway query wants more.
CGROUP_LIMIT_MB = 300
CGROUP_RUNAWAY_MB = 400


# A unit systemd took down. Its stop can also still be running when we look ("deactivating" with
# Result=oom-kill): Debian's postgresql@.service gives pg_ctlcluster's stop up to an hour
# (TimeoutStopSec=1h), and after a backend's OOM kill a fast stop in a UML guest took over 90 s
# in one make test run.
TAKEN_DOWN = ("inactive", "failed")


def runaway_in_cgroup(lab: Lab, guest: str) -> tuple[list, str, dict[str, str]]:
    """One query wants more than the unit's MemoryMax; returns (kills, psql's answer, unit state
    once PostgreSQL answers again or systemd stopped the unit)."""
    lab.run(guest, "dmesg -C")
    answer = psql(lab, guest, f"SELECT length(repeat('x', {CGROUP_RUNAWAY_MB} * 1024 * 1024))", check=False, timeout=120)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = unit_state(lab, guest, PG_UNIT)
        if state["ActiveState"] in TAKEN_DOWN:
            break
        if state["ActiveState"] == "deactivating" and state["Result"] == "oom-kill":
            break  # systemd is stopping the unit because of the kill: the cluster is being taken down
        if state["ActiveState"] == "active" and psql(lab, guest, "SELECT 1", check=False) == "1":
            break
        time.sleep(1)
    return oom_kills(lab.run(guest, "dmesg").stdout), answer, unit_state(lab, guest, PG_UNIT)


def test_a_runaway_backend_under_memorymax_is_killed_alone_and_postgresql_recovers(dblab: Lab) -> None:
    lab, guest = dblab, OOM_GUEST
    applied = run_oom_role(lab, guest, lab_profile=DB_PROFILE)
    assert applied.returncode == 0, applied.why()
    lab.run(guest, f"systemctl set-property --runtime {PG_UNIT} MemoryMax={CGROUP_LIMIT_MB}M")   # no restart
    try:
        before = identity(lab, guest)
        kills, answer, state = runaway_in_cgroup(lab, guest)
        after = identity(lab, guest)
        print(f"\n=== {guest}: {PG_UNIT} with MemoryMax={CGROUP_LIMIT_MB}M and OOMPolicy={state['OOMPolicy']},"
              f" a query wants {CGROUP_RUNAWAY_MB} MiB ===\npsql: {answer}\nkernel: {[k.line for k in kills]}"
              f"\nunit: {state}\nbefore: {before.describe()}\nafter:  {after.describe()}")
        assert [k.comm for k in kills] == ["postgres"] and kills[0].pid != before.postmaster_pid, kills
        assert state["ActiveState"] == "active" and state["OOMPolicy"] == "continue", state
        assert (after.postmaster_pid, after.pg_started, after.pg_restarts) == (
            before.postmaster_pid, before.pg_started, before.pg_restarts)

        # Control: without our drop-in, systemd's default OOMPolicy=stop takes the cluster down.
        removed = run_oom_role(lab, guest, lab_profile=DB_PROFILE, oom_priority_state="absent")
        assert removed.returncode == 0, removed.why()
        kills, answer, state = runaway_in_cgroup(lab, guest)
        print(f"control, OOMPolicy={state['OOMPolicy']}:\npsql: {answer}\nkernel: {[k.line for k in kills]}"
              f"\nunit: {state}")
        assert [k.comm for k in kills] == ["postgres"], kills
        assert state["OOMPolicy"] == "stop" and state["ActiveState"] in TAKEN_DOWN + ("deactivating",), state
        assert state["Result"] == "oom-kill", state
    finally:
        # A stop still running would make `systemctl start` wait for it: end it first (only when
        # the unit is not active, so a healthy cluster is never killed), then start afresh.
        lab.run(guest, f"systemctl set-property --runtime {PG_UNIT} MemoryMax=infinity;"
                       f" systemctl is-active --quiet {PG_UNIT} || systemctl kill --signal=SIGKILL {PG_UNIT};"
                       f" systemctl reset-failed {PG_UNIT}; systemctl start {PG_UNIT}", check=False, timeout=180)


def both_roles(lab: Lab, guest: str) -> tuple[RoleRun, RoleRun]:
    """overcommit (mode 2 for PostgreSQL and MariaDB) and oom_priority, as site.yml lists them."""
    overcommit = run_role(lab, guest, lab_profile=DB_PROFILE)
    assert overcommit.returncode == 0, overcommit.why()
    oom = run_oom_role(lab, guest, lab_profile=DB_PROFILE)
    assert oom.returncode == 0, oom.why()
    return overcommit, oom


def unit_runs(lab: Lab, guest: str) -> dict[str, tuple[str, str]]:
    """(MainPID, ActiveEnterTimestamp) of each database unit: both change on any restart."""
    return {unit: (s["MainPID"], s["ActiveEnterTimestamp"]) for unit in DB_UNITS
            for s in [unit_state(lab, guest, unit)]}


def test_roles_never_restart_a_database_and_a_second_run_changes_nothing(dblab: Lab) -> None:
    lab, guest = dblab, MODE2_GUEST
    runs = unit_runs(lab, guest)
    first = both_roles(lab, guest)
    after_first = unit_runs(lab, guest)
    second = both_roles(lab, guest)
    after_second = unit_runs(lab, guest)
    print(f"\n=== {guest}: MainPID, ActiveEnterTimestamp per unit ===\nbefore:       {runs}\n"
          f"after run 1:  {after_first}\nafter run 2:  {after_second}")
    print("run 1 changed: overcommit %d, oom_priority %d; run 2 changed: overcommit %d, oom_priority %d" % (
        first[0].changed(guest), first[1].changed(guest), second[0].changed(guest), second[1].changed(guest)))
    assert read_overcommit(lab, guest)["vm.overcommit_memory"] == 2
    assert runs == after_first == after_second
    assert (second[0].changed(guest), second[1].changed(guest)) == (0, 0), (second[0].output, second[1].output)


def test_mode2_a_runaway_query_fails_with_out_of_memory_and_nothing_is_killed(dblab: Lab) -> None:
    lab, guest = dblab, MODE2_GUEST
    both_roles(lab, guest)   # mode 2 (a no-op if the previous test applied it)
    assert read_overcommit(lab, guest)["vm.overcommit_memory"] == 2
    tables = write_kept_tables(lab, guest)
    before = identity(lab, guest)
    meminfo = lab.meminfo(guest)
    runaway_mb = RUNAWAY_MB
    assert runaway_mb * MIB_KB > meminfo["CommitLimit"] - meminfo["Committed_AS"], f"precondition: {meminfo}"
    lab.run(guest, "dmesg -C")

    pg_error = psql(lab, guest, f"SELECT length(repeat('x', {runaway_mb} * 1024 * 1024))", check=False, timeout=120)
    mariadb(lab, guest, "SET GLOBAL max_allowed_packet = 1024*1024*1024")   # else REPEAT stops at 16 MiB
    my_error = mariadb(lab, guest, f"SELECT LENGTH(REPEAT('x', {runaway_mb} * 1024 * 1024))", check=False, timeout=120)
    login = lab.run(guest, "bash -c 'echo shell-started as $(id -un)'", new_connection=True, check=False, timeout=60)
    kills = oom_kills(lab.run(guest, "dmesg").stdout)
    after = identity(lab, guest)
    print(f"\n=== {guest}: mode 2 (CommitLimit {meminfo['CommitLimit'] // MIB_KB} MiB, Committed_AS"
          f" {meminfo['Committed_AS'] // MIB_KB} MiB), one query asks for {runaway_mb} MiB ===")
    print(f"PostgreSQL: {pg_error}\nMariaDB:    {my_error}\nnew SSH login: {login.stdout.strip()!r}"
          f"\nOOM kills: {[k.line for k in kills] or 'none'}\nbefore: {before.describe()}\nafter:  {after.describe()}")
    assert "ERROR:  out of memory" in pg_error, pg_error
    assert re.search(r"ERROR \d+ .*(out of memory|Out of memory)", my_error), my_error
    assert kills == []
    assert before.differences(after) == [], before.differences(after)
    assert kept_checksums(lab, guest) == tables
    assert login.stdout.strip() == "shell-started as root", login


def test_mode2_last_resort_mysqladmin_shutdown_works(dblab: Lab) -> None:
    """Last in this module: it stops MariaDB on m2db."""
    lab, guest = dblab, MODE2_GUEST
    both_roles(lab, guest)
    assert read_overcommit(lab, guest)["vm.overcommit_memory"] == 2
    shutdown = lab.run(guest, "mysqladmin shutdown && echo shut-down", new_connection=True, check=False, timeout=120)
    state = unit_state(lab, guest, MARIADB_UNIT)
    print(f"\n=== {guest}: `mysqladmin shutdown` over a new root SSH login in mode 2: {shutdown.stdout.strip()!r}"
          f" {shutdown.stderr.strip()!r}; {MARIADB_UNIT}: {state}")
    assert shutdown.returncode == 0 and "shut-down" in shutdown.stdout, shutdown
    assert state["ActiveState"] in ("inactive", "deactivating"), state
