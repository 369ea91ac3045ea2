"""The host's databases in the plan (_overcommit/databases.py): the captured lab guest (PostgreSQL
15/main with work_mem 32MB for 30 connections, MariaDB 10.11 as installed) read through a fake
runner, planned by the one rule, and judged one line per server."""

from __future__ import annotations

from ansible_collections.dbfleet.memory.plugins.module_utils._db import host
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import databases as dbs
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    PlanOptions,
    plan_overcommit,
    room_for_more_kb,
    swap_for_demand_kb,
)
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    FakeRunner,
    db_text,
    debian12_db_host,
    failure,
    ok,
)

MIB = 1024
# What the captured processes commit now (procfs on the captured smaps) and their configured peaks
# (the engines' formulas on the captured settings): MariaDB 3396 MiB, PostgreSQL 3989 MiB.
MARIADB_CHARGE_KB, PG_CHARGE_KB = 532888, 154608
MARIADB_PEAK_KB, PG_PEAK_KB = 3477904, 4085064


def read(host_tree, mariadb=ok(db_text("mariadb1011-variables-status-installed.txt"))):
    debian12_db_host(host_tree)
    run = FakeRunner([(["pg_lsclusters", "--json"], ok(db_text("pg_lsclusters-running.json"))),
                      (["psql"], ok(db_text("pg15-settings-30conn-workmem32MB.txt"))),
                      (["mariadb"], mariadb)])
    return host.read_databases(host_tree.path, run)


def memory(memtotal_kb: int) -> MemoryShape:
    return MemoryShape(memtotal_kb=memtotal_kb, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=719300)


def test_the_demand_is_the_charge_now_and_the_sum_of_the_peaks_of_the_estimated_servers(host_tree):
    demand = dbs.demand_of(read(host_tree))
    assert (demand.charged_kb, demand.peaks_kb) == (MARIADB_CHARGE_KB + PG_CHARGE_KB, MARIADB_PEAK_KB + PG_PEAK_KB)
    assert demand.servers == ("mariadb mariadbd", "postgresql 15/main")


def test_an_unread_servers_charge_stays_in_everything_else_and_its_line_says_why(host_tree):
    found = read(host_tree, mariadb=failure("fail-mariadb-no-auth"))
    demand = dbs.demand_of(found)
    assert (demand.charged_kb, demand.peaks_kb, demand.servers) == (PG_CHARGE_KB, PG_PEAK_KB, ("postgresql 15/main",))
    lines = dbs.judge(found, None, 20)
    maria = lines[0]
    assert not maria.readable and maria.failure["kind"] == "no-auth" and maria.estimate is None
    assert maria.charged_kb == MARIADB_CHARGE_KB and maria.fits is None
    assert maria.reason.startswith("mariadb mariadbd could not be read (no-auth: ")


def test_on_a_host_with_room_each_configured_peak_fits_with_its_formula(host_tree):
    found = read(host_tree)
    options = PlanOptions(profiles=("postgresql",), databases=dbs.demand_of(found))
    plan = plan_overcommit(memory(16 * 1024 * MIB), options)
    lines = dbs.judge(found, plan.database_verdict, 20)
    assert [(line.server, line.fits) for line in lines] == [("mariadbd", True), ("15/main", True)]
    result = lines[1].as_dict()
    assert (result["engine"], result["readable"], result["charged_kb"], result["configured_peak_kb"]) == (
        "postgresql", True, PG_CHARGE_KB, PG_PEAK_KB)
    assert result["formula"].startswith("shared memory 139 MiB + ") and result["fixes"] == []
    assert result["reason"].startswith("postgresql 15/main fits: configured peak 3989 MiB <= room ")


def test_on_a_9_gib_host_neither_fits_and_each_room_is_its_peak_plus_what_the_rule_leaves(host_tree):
    found = read(host_tree)
    plan = plan_overcommit(memory(9 * 1024 * MIB), PlanOptions(profiles=("postgresql",), databases=dbs.demand_of(found)))
    more_kb = room_for_more_kb(plan.database_verdict, 20)
    assert plan.safe and not plan.database_verdict.safe and more_kb < 0  # warn: the verdict stands
    maria, cluster = dbs.judge(found, plan.database_verdict, 20)
    assert (maria.verdict.room_kb, cluster.verdict.room_kb) == (MARIADB_PEAK_KB + more_kb, PG_PEAK_KB + more_kb)
    assert maria.verdict.shortfall_kb == cluster.verdict.shortfall_kb == -more_kb
    settings = [fix.setting for fix in cluster.verdict.fixes]
    assert settings[0] == "work_mem" and settings[-1] == "swap"
    assert cluster.verdict.fixes[-1].proposed == "+%d MiB" % round(swap_for_demand_kb(-more_kb, 20) / MIB)
    assert cluster.reason.startswith("postgresql 15/main does not fit: configured peak 3989 MiB > room ")
    assert "Fix: work_mem 32MB -> " in cluster.reason


def test_a_mode_1_plan_lists_the_peaks_without_a_verdict(host_tree):
    found = read(host_tree)
    lines = dbs.judge(found, None, 20)
    assert [line.verdict for line in lines] == [None, None]
    assert lines[1].reason.startswith("postgresql 15/main: configured peak 3989 MiB (shared memory 139 MiB")
