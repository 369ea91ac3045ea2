"""Calibration of sizing from the database (plugins/module_utils/_db) against the kernel, on Debian
12's PostgreSQL 15 and MariaDB 10.11 (the lab's "db" flavour), in one 1 GiB guest: `make lab-sizing`.
About 9 minutes, so not in `make test`, which runs the mode-2 proofs of the verdicts built on
these formulas (test_db_sizing.py).

For a few configurations of each server (mode 0, as installed), Committed_AS with the server
stopped, idle, and with N connections held at their memory peak (dbsizing.py's barrier: sorts and
hashes that fill work_mem, MariaDB sorts and joins that fill sort_buffer_size and
join_buffer_size). The measurement is the rise of Committed_AS over the stopped baseline less what
the load's clients commit, plus what the server's MAP_NORESERVE mappings would add under mode 2
(glibc's thread arenas: procfs explains); the estimate is the product's formula for that load
point. Each load point must be within MARGIN_PCT. The table is printed (-rA) and copied into the
guide docs/docsite/rst/guide_sizing.rst.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import pytest

import dbsizing as dz
from dbguest import MARIADB_UNIT, PG_UNIT
from umlab import GuestSpec, Lab

from ansible_collections.dbfleet.memory.plugins.module_utils._db import mysql, postgresql
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import KIB

GUEST = "dbcalib"
# 1 GiB: both servers as installed commit ~680 MiB; each engine is calibrated with the
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
    with dz.sizing_lab(SPEC) as lab:
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
