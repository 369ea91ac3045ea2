"""Sizing from the database, proven in mode 2 on Debian 12's PostgreSQL 15 and MariaDB 10.11 (the
lab's "db" flavour) in one 1 GiB guest. Part of `make test`; the calibration of the formulas
behind these verdicts is test_db_calibration.py (`make lab-sizing`).

The verdict, the fix and the plan come from the product as a user gets them: overcommit_info run
on the guest by Ansible with the engine's profile, its `databases` line for the server and its
`live_changes` (mode 2 with the planner's own limit). busyhour.py tells the story the same way
`make demo` prints it: a configuration whose configured peak does not fit gets "does not fit" and
a fix before any load; the busy load then meets "out of memory"; the fix (its `how`), applied
without a restart, is a configuration that fits: overcommit_info says "fits" and the same load
passes with no ENOMEM, no OOM kill, and a new non-root process and SSH login still start. Once
for PostgreSQL (work_mem, by a reload) and once for MariaDB (sort_buffer_size and
join_buffer_size, SET GLOBAL). The other server is stopped and hidden from the product during
each proof (dbsizing.not_installed), so each is about one database. Mode 0 is restored after
each proof, whatever happened.
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest

import busyhour
import dbsizing as dz
from dbguest import MARIADB_UNIT, PG_UNIT, psql
from umlab import GuestSpec, Lab

from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import KIB

GUEST = "dbsize"
# 1 GiB: both servers as installed commit ~680 MiB; each proof runs with the other server stopped.
SPEC = GuestSpec(GUEST, mem_mb=1024, flavour="db")


@pytest.fixture(scope="module")
def sizelab() -> Iterator[Lab]:
    with dz.sizing_lab(SPEC) as lab:
        yield lab


def kb_of(size: str) -> int:
    match = re.fullmatch(r"([0-9]+)(kB|MB|GB)", size)
    assert match, size
    return int(match.group(1)) * {"kB": 1, "MB": KIB, "GB": KIB * KIB}[match.group(2)]


# A small OLTP host's settings (JIT off, few workers), with a work_mem raised for reports.
PROOF_PG = {"max_connections": "30", "work_mem": "32MB", "maintenance_work_mem": "32MB",
            "autovacuum_max_workers": "2", "max_worker_processes": "4", "max_parallel_workers": "2",
            "max_wal_senders": "2", "jit": "off"}
PROOF_PG_CLIENTS = 26  # 30 connections: 26 clients, the barrier's holder, and room for the test's own psql
PROOF_PG_ROWS = 32000  # about 32 MB per sort: each fills its work_mem of 32MB


def test_postgresql_a_peak_that_does_not_fit_fails_as_predicted_and_the_fix_holds(sizelab: Lab) -> None:
    lab = sizelab
    with dz.not_installed(lab, GUEST, MARIADB_UNIT):
        dz.pg_configure(lab, GUEST, PROOF_PG)
        try:
            hour = busyhour.busy_hour(lab, GUEST, busyhour.PostgresHour(PROOF_PG_CLIENTS, PROOF_PG_ROWS),
                                      "postgresql")
            work_mem_now = psql(lab, GUEST, "SHOW work_mem")
        finally:
            dz.back_to_mode0(lab, GUEST)
    print(f"\n=== PostgreSQL {PROOF_PG}, {PROOF_PG_CLIENTS} sorts of {PROOF_PG_ROWS} rows ===")
    print(hour.story())
    assert not hour.problems(), "\n".join(hour.problems())
    # PostgreSQL handles ENOMEM in the backend that meets it: the postmaster lives on.
    assert not hour.failing.server_died, hour.failing.describe()
    assert kb_of(hour.fix["proposed"]) < kb_of(PROOF_PG["work_mem"]), hour.fix
    assert kb_of(work_mem_now) == kb_of(hour.fix["proposed"]), f"SHOW work_mem says {work_mem_now}"
    assert "number of failed transactions: 0" in hour.passing.result.log, hour.passing.result.log


PROOF_MY = {"max_connections": "30", "sort_buffer_size": "32M", "join_buffer_size": "16M",
            "join_buffer_space_limit": "16M", "key_buffer_size": "16M", "aria_pagecache_buffer_size": "16M",
            "tmp_table_size": "4M", "max_heap_table_size": "4M"}
PROOF_MY_SORTS = 13
PROOF_MY_JOINS = 13


def test_mariadb_a_peak_that_does_not_fit_fails_as_predicted_and_the_fix_holds(sizelab: Lab) -> None:
    lab = sizelab
    with dz.not_installed(lab, GUEST, PG_UNIT):
        dz.my_configure(lab, GUEST, PROOF_MY)
        try:
            hour = busyhour.busy_hour(lab, GUEST, busyhour.MariadbHour(PROOF_MY_SORTS, PROOF_MY_JOINS), "mariadb")
        finally:
            dz.back_to_mode0(lab, GUEST)
    print(f"\n=== MariaDB {PROOF_MY}, {PROOF_MY_SORTS} sorts + {PROOF_MY_JOINS} joins ===")
    print(hour.story())
    assert not hour.problems(), "\n".join(hour.problems())
