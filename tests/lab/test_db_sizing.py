"""Sizing from the database (plugins/module_utils/_db) against the kernel, on Debian 12's PostgreSQL 15
and MariaDB 10.11 (the lab's "db" flavour), in one 1 GiB guest of this module's own lab.

Calibration (mode 0, as installed): for a few configurations of each server, Committed_AS with the
server stopped, idle, and with N connections held at their memory peak (dbsizing.py's barrier: sorts
and hashes that fill work_mem, MariaDB sorts and joins that fill sort_buffer_size and
join_buffer_size). The measurement is the rise of Committed_AS over the stopped baseline less what the
load's clients commit, plus what the server's MAP_NORESERVE mappings would add under mode 2 (glibc's
thread arenas: procfs explains); the estimate is the product's formula for that load point. Each
load point must be within MARGIN_PCT. The table is printed (-rA) and copied into the guide
docs/docsite/rst/guide_sizing.rst.

The proofs take the verdict, the fix and the plan from the product as a user gets them:
overcommit_info run on the guest by Ansible with the engine's profile, its `databases` line for
the server and its `live_changes` (mode 2 with the planner's own limit). A configuration whose
configured peak does not fit gets "does not fit" and a fix before any load; the busy load then
meets "out of memory"; the fix (its `how`), applied without a restart, makes overcommit_info say
"fits" and the same load passes with no ENOMEM, no OOM kill, and a new non-root process and SSH
login still start. Once for PostgreSQL (work_mem, by a reload) and once for MariaDB
(sort_buffer_size and join_buffer_size, SET GLOBAL). The other server is stopped and hidden from
the product during each engine's steps (dbsizing.not_installed), so each proof is about one
database. Mode 0 is restored after each proof, whatever happened.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Iterator

import pytest

import dbsizing as dz
from dbguest import MARIADB_UNIT, PG_UNIT, oom_kills, wait_for_databases
from helpers import lockout_problems
from role_runner import run_info
from umlab import GuestSpec, Lab, check_host

from ansible_collections.dbfleet.memory.plugins.module_utils._db import mysql, postgresql
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import KIB, mib_text

GUEST = "dbsize"
# 1 GiB: both servers as installed commit ~680 MiB; each engine is calibrated and proven with the
# other stopped, which leaves room for its loads below RAM in mode 0.
SPEC = GuestSpec(GUEST, mem_mb=1024, flavour="db")
# Why 15 %: the estimate counts each work_mem/sort/join buffer at its configured size; the lab
# measured 4-8 % more per PostgreSQL node (allocator blocks) and a MariaDB thread's base varies with
# glibc's arenas by a few hundred kB. A planner with headroom_pct 20 (its default) absorbs this.
MARGIN_PCT = 15
# Load points below this many MiB of database charge are compared in MiB, not percent.
SMALL_MIB = 64

CALIBRATION: list["Row"] = []


@dataclasses.dataclass
class Row:
    engine: str
    settings: str
    point: str
    estimate_kb: int
    measured_kb: int
    delta_kb: int  # Committed_AS at the point less Committed_AS with the server stopped
    clients_kb: int
    mode2_extra_kb: int
    held: str

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.estimate_kb - self.measured_kb) / self.measured_kb if self.measured_kb else 0.0

    @property
    def within(self) -> bool:
        if self.measured_kb < SMALL_MIB * KIB:
            return abs(self.estimate_kb - self.measured_kb) <= SMALL_MIB * KIB * MARGIN_PCT // 100
        return abs(self.error_pct) <= MARGIN_PCT

    def line(self) -> str:
        return (f"| {self.engine:10} | {self.settings:44} | {self.point:24} | {self.estimate_kb // KIB:8} |"
                f" {self.measured_kb // KIB:8} | {self.error_pct:+6.1f} % | {self.delta_kb // KIB:7} |"
                f" {self.clients_kb // KIB:5} | {self.mode2_extra_kb // KIB:6} | {self.held:6} |")


def table(rows: list[Row]) -> str:
    head = ("| engine     | settings                                     | load point               | estimate |"
            " measured |   error  | CAS rise | clients | nr (mode 2) | held   |\n"
            "|            |                                              |                          |   MiB    |"
            "   MiB    |          |   MiB   |  MiB  |  MiB   |        |")
    return head + "\n" + "\n".join(r.line() for r in rows)


@pytest.fixture(scope="module")
def sizelab() -> Iterator[Lab]:
    check_host()
    with Lab([SPEC]) as lab:
        wait_for_databases(lab, GUEST)
        dz.upload_product(lab, GUEST)
        dz.pg_prepare(lab, GUEST)
        dz.my_prepare(lab, GUEST)
        yield lab
        if CALIBRATION:
            print("\ncalibration (all load points):\n" + table(CALIBRATION))


def _fields(cls, values: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def stop(lab: Lab, *units: str) -> None:
    lab.run(GUEST, "systemctl stop " + " ".join(units) + (" mariadb.socket" if MARIADB_UNIT in units else ""),
            timeout=180)


def baseline_kb(lab: Lab) -> int:
    """Committed_AS with both servers stopped, as the probe reads it (its own Python included)."""
    return dz.probe(lab, GUEST)["meminfo"]["Committed_AS"]


def measured_row(engine: str, settings: str, point: str, estimate_kb: int, found: dict, base_kb: int,
                 held: str) -> Row:
    delta_kb = found["meminfo"]["Committed_AS"] - base_kb
    clients_kb = found.get("clients", {}).get("charged_kb", 0)
    extra_kb = found["databases_charge"]["mode2_extra_kb"]
    return Row(engine, settings, point, estimate_kb, delta_kb - clients_kb + extra_kb, delta_kb, clients_kb, extra_kb,
               held)


# --- PostgreSQL calibration ------------------------------------------------------------------------

PG_CONFIGS = [
    ("as installed: work_mem 4MB, shared_buffers 128MB", {},
     [("sort", 20), ("hash", 20)]),
    ("work_mem 16MB, shared_buffers 64MB", {"work_mem": "16MB", "shared_buffers": "64MB"},
     [("sort", 10), ("hash", 10), ("sort+hash+jit", 8)]),
    ("work_mem 8MB, shared_buffers 256MB, max_connections 40",
     {"work_mem": "8MB", "shared_buffers": "256MB", "max_connections": "40"},
     [("sort", 30)]),
]
PG_NODES = {"sort": (1, 0), "hash": (0, 1), "sort+hash+jit": (1, 1)}


def pg_rows(kind: str, work_mem_kb: int, hash_mem_kb: int) -> int:
    """Twice what the query's node may hold, so that it fills its limit and spills the rest."""
    need_kb = {"sort": work_mem_kb, "hash": hash_mem_kb, "sort+hash+jit": max(work_mem_kb, hash_mem_kb)}[kind]
    return min(dz.WIDE_ROWS, 2 * need_kb // dz.KB_PER_ROW)


def pg_estimate_kb(found_idle: dict, name: str, load: postgresql.PgLoad) -> tuple[int, postgresql.PgSettings]:
    reading = dz.reading(found_idle, "postgresql")
    settings = _fields(postgresql.PgSettings, reading["settings"])
    measured = postgresql.PgMeasured(**found_idle["measured"][name])
    return postgresql.estimate(name, settings, load, measured).peak_kb, settings


def test_postgresql_estimate_is_within_the_margin_of_committed_as_at_every_load_point(sizelab: Lab) -> None:
    lab = sizelab
    stop(lab, MARIADB_UNIT, PG_UNIT)
    base_kb = baseline_kb(lab)
    lab.run(GUEST, f"systemctl start {PG_UNIT}", timeout=180)
    dz.wait_pg(lab, GUEST)
    rows = [Row("postgresql", "(both servers stopped)", f"stopped: {base_kb // KIB} MiB", 0, 0, 0, 0, 0, "-")]
    for label, settings, loads in PG_CONFIGS:
        dz.pg_configure(lab, GUEST, settings)
        time.sleep(3)  # the autovacuum launcher and the logical replication launcher start
        idle = dz.probe(lab, GUEST)
        name = dz.reading(idle, "postgresql")["server"]["name"]
        idle_load = postgresql.PgLoad("idle", connections=0, sort_nodes=0, hash_nodes=0, background_workers=1)
        estimate_kb, pg = pg_estimate_kb(idle, name, idle_load)
        rows.append(measured_row("postgresql", label, "idle", estimate_kb, idle, base_kb, "-"))
        for kind, clients in loads:
            sort_nodes, hash_nodes = PG_NODES[kind]
            rows_n = pg_rows(kind, pg.work_mem_kb, int(pg.work_mem_kb * pg.hash_mem_multiplier))
            result = dz.pg_busy(lab, GUEST, clients, kind, rows_n)
            assert result.held == clients, f"only {result.held} of {clients} reached the barrier:\n{result.log}"
            assert not result.out_of_memory, result.log
            # the barrier's holder is one more connection, idle
            load = postgresql.PgLoad(f"{clients} x {kind}", connections=clients + 1, sort_nodes=0, hash_nodes=0,
                                     background_workers=1)
            busy_kb = clients * (postgresql.query_kb(pg, dataclasses.replace(load, sort_nodes=sort_nodes,
                                                                             hash_nodes=hash_nodes))
                                 + (postgresql.JIT_KB if kind.endswith("+jit") else 0))
            estimate_kb = pg_estimate_kb(idle, name, load)[0] + busy_kb
            rows.append(measured_row("postgresql", label, f"{clients} x {kind} ({rows_n} rows)", estimate_kb,
                                     result.found, base_kb, f"{result.held}/{clients}"))
    CALIBRATION.extend(rows)
    print("\nPostgreSQL 15 (Committed_AS, mode 0; estimate = the product's formula at each load point):\n"
          + table(rows))
    wrong = [r.line() for r in rows if not r.within]
    assert not wrong, "outside the margin of %d %%:\n%s" % (MARGIN_PCT, "\n".join(wrong))


# --- MariaDB calibration -------------------------------------------------------------------------------

MY_CONFIGS = [
    ("as installed: sort 2M, join 256K (space limit 2M)", {},
     [(20, 0), (0, 20)]),
    ("sort 16M, join 8M (limit 8M), key/aria 16M", {"sort_buffer_size": "16M", "join_buffer_size": "8M",
                                                    "join_buffer_space_limit": "8M", "key_buffer_size": "16M",
                                                    "aria_pagecache_buffer_size": "16M"},
     [(10, 0), (0, 10), (6, 6)]),
    ("sort 32M, join 16M (limit 16M), innodb 64M", {"sort_buffer_size": "32M", "join_buffer_size": "16M",
                                                    "join_buffer_space_limit": "16M",
                                                    "innodb_buffer_pool_size": "64M"},
     [(8, 8)]),
]
MY_ROWS_PER_KB = 13  # rows of `narrow` per kB of sort buffer (about 76 bytes each; measured)


def my_estimate_kb(found_idle: dict, name: str, load: mysql.MyLoad) -> tuple[int, mysql.MySqlSettings]:
    reading = dz.reading(found_idle, "mariadb")
    settings = _fields(mysql.MySqlSettings, reading["settings"])
    measured = mysql.MyMeasured(found_idle["measured"][name]["overhead_kb"])
    return mysql.estimate(name, settings, load, measured).peak_kb, settings


def test_mariadb_estimate_is_within_the_margin_of_committed_as_at_every_load_point(sizelab: Lab) -> None:
    lab = sizelab
    stop(lab, MARIADB_UNIT, PG_UNIT)
    base_kb = baseline_kb(lab)
    rows = [Row("mariadb", "(both servers stopped)", f"stopped: {base_kb // KIB} MiB", 0, 0, 0, 0, 0, "-")]
    for label, settings, loads in MY_CONFIGS:
        for sorts, joins in [(0, 0)] + loads:
            dz.my_configure(lab, GUEST, settings)  # a fresh server for every point: no arena of the last one
            time.sleep(2)
            idle = dz.probe(lab, GUEST)
            name = dz.reading(idle, "mariadb")["server"]["name"]
            idle_settings = _fields(mysql.MySqlSettings, dz.reading(idle, "mariadb")["settings"])
            threads = (idle_settings.threads_connected or 0) + (idle_settings.threads_cached or 0)
            if not sorts and not joins:
                estimate_kb = my_estimate_kb(idle, name, mysql.MyLoad("idle", connections=threads))[0]
                rows.append(measured_row("mariadb", label, "idle", estimate_kb, idle, base_kb, "-"))
                continue
            sort_rows = min(dz.NARROW_ROWS, 2 * idle_settings.sort_buffer_kb * MY_ROWS_PER_KB)
            result = dz.my_busy(lab, GUEST, sorts, joins, sort_rows)
            assert result.held == sorts + joins, f"only {result.held} reached the barrier:\n{result.log}"
            assert not result.out_of_memory, result.log
            # the load's connections, the barrier's holder, the poller's cached thread, and the idle ones
            load = mysql.MyLoad(f"{sorts} sorts + {joins} joins", connections=sorts + joins + 2 + threads,
                                sorts=sorts, joins=joins)
            estimate_kb = my_estimate_kb(idle, name, load)[0]
            point = " + ".join(p for p in (f"{sorts} sorts" if sorts else "", f"{joins} joins" if joins else "") if p)
            rows.append(measured_row("mariadb", label, point, estimate_kb, result.found, base_kb,
                                     f"{result.held}/{sorts + joins}"))
    CALIBRATION.extend(rows)
    print("\nMariaDB 10.11 (Committed_AS, mode 0, plus the arenas mode 2 would charge):\n" + table(rows))
    wrong = [r.line() for r in rows if not r.within]
    assert not wrong, "outside the margin of %d %%:\n%s" % (MARGIN_PCT, "\n".join(wrong))


# --- the proofs in mode 2 ---------------------------------------------------------------------------------

def info_for(lab: Lab, profile: str) -> dict:
    """overcommit_info on the guest, as a user runs it: the plan for ``profile`` on the guest as it
    is now, and a line for each database it found."""
    run = run_info(lab, GUEST, profile=profile)
    assert run.returncode == 0, run.why()
    return run.apply(GUEST)


def database_line(info: dict, engine: str) -> dict:
    """The result's `databases` item of the one running server of ``engine``."""
    lines = [d for d in info["databases"] if d["engine"] == engine and d["running"]]
    assert len(lines) == 1, info["databases"]
    return lines[0]


def kb_of(size: str) -> int:
    match = re.fullmatch(r"([0-9]+)(kB|MB|GB)", size)
    assert match, size
    return int(match.group(1)) * {"kB": 1, "MB": KIB, "GB": KIB * KIB}[match.group(2)]


def kernel_report(lab: Lab) -> tuple[list, str]:
    kills = oom_kills(lab.run(GUEST, "dmesg").stdout)
    return kills, "OOM kills: " + ("; ".join(k.line for k in kills) or "none")


def server_log(lab: Lab, unit: str, since: str) -> str:
    """The server's own lines about memory, a crash or a restart since ``since`` (the guest's
    epoch seconds): where a server that dies of ENOMEM says so (its clients only lose the connection)."""
    out = lab.run(GUEST, f"journalctl -u {unit} --no-pager -o cat --since=@{since} | grep -iE"
                         " 'memory|signal|abort|crash|thread|restart|start' | tail -8", check=False).stdout
    return "\n    ".join(out.splitlines()) or "(nothing)"


def enter_plan(lab: Lab, info: dict) -> None:
    dz.make_live_changes(lab, GUEST, info["live_changes"])
    assert lab.meminfo(GUEST)["CommitLimit"] == info["commit_limit_kb"]


# A small OLTP host's settings (JIT off, few workers), with a work_mem raised for reports.
PROOF_PG = {"max_connections": "30", "work_mem": "32MB", "maintenance_work_mem": "32MB",
            "autovacuum_max_workers": "2", "max_worker_processes": "4", "max_parallel_workers": "2",
            "max_wal_senders": "2", "jit": "off"}
PROOF_PG_CLIENTS = 26  # 30 connections: 26 clients, the barrier's holder, and room for the test's own psql
PROOF_PG_ROWS = 32000  # about 32 MB per sort: each fills its work_mem of 32MB


def test_postgresql_a_peak_that_does_not_fit_fails_as_predicted_and_the_fix_holds(sizelab: Lab) -> None:
    lab = sizelab
    started = time.monotonic()
    with dz.not_installed(lab, GUEST, MARIADB_UNIT):
        lab.run(GUEST, f"systemctl start {PG_UNIT}", timeout=180)  # the calibration leaves it stopped
        dz.wait_pg(lab, GUEST)
        dz.pg_configure(lab, GUEST, PROOF_PG)
        time.sleep(3)
        info = info_for(lab, "postgresql")
        assert info["safe"], info["reasons"]
        line = database_line(info, "postgresql")
        print(f"\n=== PostgreSQL {PROOF_PG} on {GUEST}; overcommit_info: plan {info['sysctl']}, CommitLimit"
              f" {mib_text(info['commit_limit_kb'])}, room for the database {mib_text(line['room_kb'])} ===\n"
              f"before any load: {line['reason']}")
        assert line["fits"] is False, line
        work_mem = [f for f in line["fixes"] if f["setting"] == "work_mem"]
        assert work_mem and not work_mem[0]["restart"], line["fixes"]
        fix = work_mem[0]
        assert kb_of(fix["proposed"]) < kb_of("32MB")
        postmaster = lab.run(GUEST, "head -1 /var/lib/postgresql/15/main/postmaster.pid").stdout.strip()
        try:
            enter_plan(lab, info)
            lab.run(GUEST, "dmesg -C")
            failing = dz.pg_busy(lab, GUEST, PROOF_PG_CLIENTS, "sort", PROOF_PG_ROWS)
            kills, kernel = kernel_report(lab)
            problems = lockout_problems(lab, GUEST)
            peak = failing.found["meminfo"]
            print(f"mode 2, work_mem 32MB, {PROOF_PG_CLIENTS} sorts of {PROOF_PG_ROWS} rows:"
                  f" {len(failing.out_of_memory)} clients met ENOMEM, {failing.held} held their sort at the barrier;"
                  f" Committed_AS {mib_text(peak['Committed_AS'])} of CommitLimit {mib_text(peak['CommitLimit'])};"
                  f" {kernel}; lockout: {problems or 'none'}; {failing.seconds:.0f} s\n  "
                  + "\n  ".join(failing.out_of_memory[:4]))
            assert failing.out_of_memory, "the configured peak did not fit, yet the load met no ENOMEM:\n" + failing.log
            assert not kills and not problems

            # The fix as the product words it: "ALTER SYSTEM SET ...; SELECT pg_reload_conf();  -- ...".
            # ALTER SYSTEM cannot run in a transaction block: one statement per psql call.
            for statement in fix["how"].split("--")[0].split(";"):
                if statement.strip():
                    dz.psql(lab, GUEST, statement.strip())
            time.sleep(1)
            assert kb_of(dz.psql(lab, GUEST, "SHOW work_mem")) == kb_of(fix["proposed"])
            after = database_line(info_for(lab, "postgresql"), "postgresql")
            print(f"after `{fix['how']}`: {after['reason']}")
            assert after["fits"] is True, after
            lab.run(GUEST, "dmesg -C")
            passing = dz.pg_busy(lab, GUEST, PROOF_PG_CLIENTS, "sort", PROOF_PG_ROWS)
            kills, kernel = kernel_report(lab)
            problems = lockout_problems(lab, GUEST)
            peak = passing.found["meminfo"]
            print(f"mode 2, work_mem {fix['proposed']}, the same load: {len(passing.out_of_memory)} ENOMEM,"
                  f" {passing.held} held at the barrier; Committed_AS {mib_text(peak['Committed_AS'])} of CommitLimit"
                  f" {mib_text(peak['CommitLimit'])}; {kernel}; lockout: {problems or 'none'}; {passing.seconds:.0f} s")
            assert not passing.out_of_memory, passing.log
            assert passing.held == PROOF_PG_CLIENTS and "number of failed transactions: 0" in passing.log, passing.log
            assert not kills and not problems
            assert lab.run(GUEST, "head -1 /var/lib/postgresql/15/main/postmaster.pid").stdout.strip() == postmaster, \
                "the fix restarted the cluster"
        finally:
            dz.back_to_mode0(lab, GUEST)
    print(f"proof took {time.monotonic() - started:.0f} s")


PROOF_MY = {"max_connections": "30", "sort_buffer_size": "32M", "join_buffer_size": "16M",
            "join_buffer_space_limit": "16M", "key_buffer_size": "16M", "aria_pagecache_buffer_size": "16M",
            "tmp_table_size": "4M", "max_heap_table_size": "4M"}
PROOF_MY_SORTS = 13
PROOF_MY_JOINS = 13


def test_mariadb_a_peak_that_does_not_fit_fails_as_predicted_and_the_fix_holds(sizelab: Lab) -> None:
    lab = sizelab
    started = time.monotonic()
    with dz.not_installed(lab, GUEST, PG_UNIT):
        dz.my_configure(lab, GUEST, PROOF_MY)
        info = info_for(lab, "mariadb")
        assert info["safe"], info["reasons"]
        line = database_line(info, "mariadb")
        print(f"\n=== MariaDB {PROOF_MY} on {GUEST}; overcommit_info: plan {info['sysctl']}, CommitLimit"
              f" {mib_text(info['commit_limit_kb'])}, room for the database {mib_text(line['room_kb'])} ===\n"
              f"before any load: {line['reason']}")
        assert line["fits"] is False, line
        buffers = [f for f in line["fixes"] if f["setting"] == "sort_buffer_size+join_buffer_size"]
        assert buffers and not buffers[0]["restart"], line["fixes"]
        set_global = re.search(r"SET GLOBAL [^;]+;", buffers[0]["how"]).group(0)
        sort_rows = dz.NARROW_ROWS
        try:
            enter_plan(lab, info)
            # The server as it runs under the plan from the next boot on: started in mode 2. One
            # started in mode 0 keeps glibc's arenas of that time uncharged (VM_NORESERVE is fixed
            # when a mapping is made), so its buffers there escape the limit until it restarts.
            lab.run(GUEST, f"systemctl restart {MARIADB_UNIT}", timeout=180)
            dz.wait_my(lab, GUEST)
            mariadbd = lab.run(GUEST, "pgrep -x mariadbd").stdout.strip()
            lab.run(GUEST, "dmesg -C")
            since = lab.run(GUEST, "date +%s").stdout.strip()
            failing = dz.my_busy(lab, GUEST, PROOF_MY_SORTS, PROOF_MY_JOINS, sort_rows)
            kills, kernel = kernel_report(lab)
            problems = lockout_problems(lab, GUEST)
            peak = failing.found["meminfo"]
            print(f"mode 2, sort 32M / join 16M, {PROOF_MY_SORTS} sorts + {PROOF_MY_JOINS} joins: "
                  f"{len(failing.out_of_memory)} ENOMEM lines, {failing.held} held at the barrier; Committed_AS"
                  f" {mib_text(peak['Committed_AS'])} of CommitLimit {mib_text(peak['CommitLimit'])}; {kernel};"
                  f" lockout: {problems or 'none'}; {failing.seconds:.0f} s; the load's threads held"
                  f" {mib_text(failing.thread_memory_kb or 0)} (PROCESSLIST.MEMORY_USED) for buffers configured at"
                  f" {PROOF_MY_SORTS} x 32M + {PROOF_MY_JOINS} x 16M\n  " + "\n  ".join(failing.out_of_memory[:4])
                  + f"\n  mariadbd's journal: {server_log(lab, MARIADB_UNIT, since)}")
            assert failing.out_of_memory, "the configured peak did not fit, yet the load met no ENOMEM:\n" + failing.log
            assert not kills and not problems

            dz.mariadb(lab, GUEST, set_global)
            after = database_line(info_for(lab, "mariadb"), "mariadb")
            print(f"after `{set_global}`: {after['reason']}")
            # The verdict is read before the load and held to after it: a failure shows both.
            lab.run(GUEST, "dmesg -C")
            passing = dz.my_busy(lab, GUEST, PROOF_MY_SORTS, PROOF_MY_JOINS, sort_rows)
            kills, kernel = kernel_report(lab)
            problems = lockout_problems(lab, GUEST)
            peak = passing.found["meminfo"]
            print(f"mode 2, after the fix, the same load: {len(passing.out_of_memory)} ENOMEM lines, {passing.held}"
                  f" held at the barrier; Committed_AS {mib_text(peak['Committed_AS'])} of CommitLimit"
                  f" {mib_text(peak['CommitLimit'])}; {kernel}; lockout: {problems or 'none'}; {passing.seconds:.0f} s;"
                  f" the load's threads held {mib_text(passing.thread_memory_kb or 0)}")
            assert after["fits"] is True, after
            assert not passing.out_of_memory, passing.log
            assert passing.held == PROOF_MY_SORTS + PROOF_MY_JOINS, passing.log
            assert not kills and not problems
            assert lab.run(GUEST, "pgrep -x mariadbd").stdout.strip() == mariadbd, "mariadbd restarted"
        finally:
            dz.back_to_mode0(lab, GUEST)
    print(f"proof took {time.monotonic() - started:.0f} s")
