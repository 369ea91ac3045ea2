"""PostgreSQL: reading a cluster's settings, the estimate term by term, and the fixes.

Every number comes from what Debian 12's PostgreSQL 15.18 printed in the lab (fixtures/db): as
installed (jit on), with the lab proof's 30 connections, work_mem 32MB and jit off, after the fix
the calculator proposes for a room of 600 MiB (work_mem 1600kB, by a reload), and with work_mem
16MB and shared_buffers 64MB. A sort node counts 1.4 x work_mem and a hash node 1.05 x hash_mem
(SORT_NODE_PCT, HASH_NODE_PCT: measured in the lab).
"""

from __future__ import annotations

import dataclasses

import pytest
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    FakeRunner,
    db_text,
    failure,
    ok,
    postgres_c_rules,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db import fit
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql as pg
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Server

INSTALLED = "pg15-settings-installed.txt"
PROOF = "pg15-settings-30conn-workmem32MB.txt"
FIXED = "pg15-settings-30conn-workmem1600kB.txt"
SMALL_SB = "pg15-settings-workmem16MB-sb64MB.txt"
CLUSTER = Server("postgresql", "15/main", True, 6907, (6907,), "postgres", 103, "/var/lib/postgresql/15/main",
                 "/etc/postgresql/15/main", 5432, "/var/run/postgresql", "/usr/lib/postgresql/15/bin/postgres", "15")


def settings(name: str) -> pg.PgSettings:
    return pg.parse_settings_rows(db_text(name))


def test_the_installed_clusters_settings_are_read_in_kb():
    got = settings(INSTALLED)
    assert (got.version_num, got.major, got.shared_memory_size_kb, got.shared_buffers_kb, got.wal_buffers_kb) == (
        150018, "15", 143 * 1024, 131072, 4096)
    assert (got.max_connections, got.work_mem_kb, got.hash_mem_multiplier, got.maintenance_work_mem_kb) == (
        100, 4096, 2.0, 65536)
    assert (got.autovacuum_max_workers, got.autovacuum_work_mem_kb, got.autovacuum_mem_kb) == (3, -1, 65536)
    assert (got.max_worker_processes, got.max_parallel_workers, got.max_wal_senders) == (8, 8, 10)
    assert (got.temp_buffers_kb, got.huge_pages, got.client_backends, got.source) == (8192, "try", 1, "server")
    assert got.jit and not settings(PROOF).jit


def test_the_unit_table_for_postgres_c_matches_pg_settings():
    units = {}
    for line in db_text("pg15-pg_settings-all.txt").splitlines():
        name, _setting, unit = line.split("|")
        units[name] = unit
    assert {name: units[name] for name in pg.MEMORY_UNITS} == pg.MEMORY_UNITS


@pytest.mark.parametrize("fixture, term, kb, formula", [
    (INSTALLED, "shared memory", 146432, "shared_memory_size 143 MiB"),
    (SMALL_SB, "shared memory", 76800, "shared_memory_size 75 MiB"),
    (PROOF, "shared memory", 142336, "shared_memory_size 139 MiB"),
    # (postmaster + 3 aux + 100 connections + 3 autovacuum + launcher + 8 parallel + 0 other + 10 WAL
    # senders) x (3 MiB + 1 MiB)
    (INSTALLED, "processes", 126 * 4096, "= 126 x 4 MiB"),
    (PROOF, "processes", 43 * 4096, "= 43 x 4 MiB"),
    # (100 connections + 8 parallel) x (4 MiB x 1.4 + 4 MiB x 2 x 1.05)
    (INSTALLED, "query memory", 108 * (5734 + 8601),
     "(100 connections + 8 parallel workers) x (1 sort x work_mem 4 MiB x 1.40 + 1 hash x work_mem 4 MiB x "
     "hash_mem_multiplier 2 x 1.05)"),
    (PROOF, "query memory", 32 * (45875 + 68812), "(30 connections + 2 parallel workers)"),
    (FIXED, "query memory", 32 * (2240 + 3360), "work_mem 1.6 MiB"),
    (SMALL_SB, "query memory", 108 * (22937 + 34406), "work_mem 16 MiB"),
    # jit=on: every query of the busy hour compiled, 12 MiB each (108 backends)
    (INSTALLED, "JIT", 108 * 12 * 1024, "108 backends compiling with LLVM x 12 MiB"),
    (PROOF, "JIT", 0, None),
    # 3 autovacuum x 64 MiB + 1 maintenance x 64 MiB
    (INSTALLED, "maintenance", 4 * 65536, "3 autovacuum workers x 64 MiB + 1 maintenance x maintenance_work_mem"),
    (PROOF, "maintenance", 3 * 32768, "2 autovacuum workers x 32 MiB"),
])
def test_each_term_of_the_configured_peak_is_its_formula_with_the_clusters_numbers(fixture, term, kb, formula):
    s = settings(fixture)
    estimate = pg.estimate("15/main", s, pg.configured_peak(s))
    assert estimate.term_kb(term) == kb
    texts = [t.formula for t in estimate.terms if t.name == term]
    assert (formula in texts[0]) if formula else texts == []


@pytest.mark.parametrize("fixture, peak_kb", [
    (INSTALLED, 146432 + 126 * 4096 + 108 * 14335 + 108 * 12288 + 4 * 65536),
    (PROOF, 142336 + 43 * 4096 + 32 * 114687 + 3 * 32768),
    (FIXED, 142336 + 43 * 4096 + 32 * 5600 + 3 * 32768),
])
def test_the_configured_peak_is_the_sum_of_its_terms(fixture, peak_kb):
    s = settings(fixture)
    estimate = pg.estimate("15/main", s, pg.configured_peak(s))
    assert estimate.peak_kb == peak_kb
    assert estimate.calibrated and estimate.engine == "postgresql" and estimate.version == "15"
    assert estimate.formula.endswith("= %d MiB" % round(peak_kb / 1024))


def test_the_postmasters_measured_private_memory_replaces_the_labs_default():
    s = settings(INSTALLED)
    measured = pg.PgMeasured(postmaster_private_kb=3032, other_segments_kb=1056)
    estimate = pg.estimate("15/main", s, pg.configured_peak(s), measured)
    assert estimate.term_kb("processes") == 126 * (3032 + 1024)
    assert estimate.term_kb("other shared segments") == 1056
    assert "measured now" in [t.formula for t in estimate.terms if t.name == "processes"][0]


def test_huge_pages_that_hold_the_main_segment_take_it_out_of_the_commit_charge():
    s = settings(INSTALLED)
    in_huge = pg.estimate("15/main", s, pg.configured_peak(s), pg.PgMeasured(shm_in_huge_pages=True))
    assert in_huge.term_kb("shared memory") == 0
    # huge_pages=try on a stopped cluster: only when the free huge pages can hold it
    assert pg.estimate("x", s, pg.configured_peak(s), hugetlb_free_kb=146432).term_kb("shared memory") == 0
    assert pg.estimate("x", s, pg.configured_peak(s), hugetlb_free_kb=146430).term_kb("shared memory") == 146432
    off = dataclasses.replace(s, huge_pages="off")
    assert pg.estimate("x", off, pg.configured_peak(off), hugetlb_free_kb=10 ** 9).term_kb("shared memory") == 146432


def test_a_load_point_counts_only_what_is_busy():
    s = settings(INSTALLED)
    idle = pg.PgLoad("idle", connections=0, sort_nodes=0, hash_nodes=0, background_workers=1)
    busy = pg.PgLoad("10 sorts", connections=10, sort_nodes=1, hash_nodes=0, background_workers=1)
    # postmaster + 3 aux + launcher + the logical replication launcher
    assert pg.estimate("x", s, idle).peak_kb == 146432 + 6 * 4096
    assert pg.estimate("x", s, busy).peak_kb == 146432 + 16 * 4096 + 10 * 5734  # 10 sorts of 1.4 x 4 MiB


def test_vacuum_before_17_never_uses_more_than_1_gb_of_maintenance_memory():
    s = dataclasses.replace(settings(INSTALLED), maintenance_work_mem_kb=4 * 1024 * 1024)
    assert s.autovacuum_mem_kb == 1024 * 1024
    assert dataclasses.replace(s, version_num=170002).autovacuum_mem_kb == 4 * 1024 * 1024
    assert dataclasses.replace(s, autovacuum_work_mem_kb=512 * 1024).autovacuum_mem_kb == 512 * 1024


def test_before_15_shared_memory_is_approximated_and_the_estimate_says_it_is_not_calibrated():
    s = dataclasses.replace(settings(INSTALLED), version_num=140011, shared_memory_size_kb=None)
    estimate = pg.estimate("14/main", s, pg.configured_peak(s))
    assert estimate.term_kb("shared memory") == (131072 + 4096) * 11 // 10
    assert not estimate.calibrated and "calibrated on 15" in estimate.notes[0]


# --- what would fit -----------------------------------------------------------------------------

ROOM_KB = 600 * 1024


def test_the_work_mem_fix_is_the_largest_64_kb_step_that_fits_and_needs_no_restart():
    s = settings(PROOF)
    fixes = {f.setting: f for f in pg.fixes("15/main", s, pg.configured_peak(s), ROOM_KB)}
    fix = fixes["work_mem"]
    # fixed part 142336 + 43 x 4096 + 98304 = 416768; each kB of work_mem costs 32 x (1.4 + 2 x 1.05) kB;
    # the fix aims at 98 % of the room less 32 MiB for a busy hour's drift (fit.fix_target_kb)
    assert (fix.current, fix.proposed, fix.restart) == ("32MB", "1344kB", False)
    assert fix.peak_after_kb == 416768 + 32 * (1881 + 2822) <= fit.fix_target_kb(ROOM_KB)
    assert "ALTER SYSTEM SET work_mem = '1344kB'; SELECT pg_reload_conf();" in fix.how
    one_more = dataclasses.replace(s, work_mem_kb=1344 + 64)
    assert pg.estimate("x", one_more, pg.configured_peak(one_more)).peak_kb > fit.fix_target_kb(ROOM_KB)


def test_the_configuration_captured_after_the_reload_fits_the_same_room():
    s = settings(FIXED)
    assert pg.estimate("x", s, pg.configured_peak(s)).peak_kb <= ROOM_KB
    assert pg.fixes("x", s, pg.configured_peak(s), ROOM_KB) == []


def test_fewer_connections_is_proposed_only_when_more_than_the_superuser_reserve_fit():
    s = settings(PROOF)
    assert "max_connections" not in {f.setting for f in pg.fixes("x", s, pg.configured_peak(s), ROOM_KB)}
    room_kb = 2 * 1024 * 1024
    fix = {f.setting: f for f in pg.fixes("x", s, pg.configured_peak(s), room_kb)}["max_connections"]
    assert fix.restart and "pooler" in fix.how
    count = int(fix.proposed)
    fewer = dataclasses.replace(s, max_connections=count)
    assert pg.estimate("x", fewer, pg.configured_peak(fewer)).peak_kb <= fit.fix_target_kb(room_kb)
    more = dataclasses.replace(s, max_connections=count + 1)
    assert pg.estimate("x", more, pg.configured_peak(more)).peak_kb > fit.fix_target_kb(room_kb)


def test_with_jit_on_turning_it_off_is_a_fix_and_so_is_both_when_neither_alone_suffices():
    s = dataclasses.replace(settings(PROOF), jit=True)
    load = pg.configured_peak(s)
    assert load.jit and pg.estimate("x", s, load).term_kb("JIT") == 32 * 12 * 1024
    # JIT alone: 384 MiB of the peak; work_mem alone cannot make room for it in 600 MiB
    fixes = {f.setting: f for f in pg.fixes("x", s, load, ROOM_KB)}
    assert "work_mem" not in fixes and "jit" not in fixes
    both = fixes["jit+work_mem"]
    assert (both.current, both.proposed) == ("on, 32MB", "off, 1344kB") and not both.restart
    assert "ALTER SYSTEM SET jit = off; ALTER SYSTEM SET work_mem = '1344kB'; SELECT pg_reload_conf();" == both.how
    # with room for everything but JIT, jit=off alone is offered
    no_jit_kb = pg.estimate("x", dataclasses.replace(s, jit=False), load).peak_kb
    room_kb = (no_jit_kb + fit.BUSY_HOUR_DRIFT_KB) * 100 // 98 + 1  # the least room whose fix target holds it
    fixes = {f.setting: f for f in pg.fixes("x", s, load, room_kb)}
    assert fixes["jit"].proposed == "off" and fixes["jit"].peak_after_kb == no_jit_kb


def test_no_work_mem_fix_when_the_rest_alone_does_not_fit():
    s = settings(PROOF)
    assert pg.fixes("x", s, pg.configured_peak(s), 400 * 1024) == []


# --- reading ------------------------------------------------------------------------------------------

def test_psql_runs_as_the_owner_on_the_clusters_own_socket_and_never_prompts():
    argv = pg.psql_command(CLUSTER)
    assert argv[:4] == ["runuser", "-u", "postgres", "--"]
    assert argv[4:] == ["psql", "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "template1",
                        "-h", "/var/run/postgresql", "-p", "5432", "-c", pg.SETTINGS_QUERY]


def test_a_running_cluster_is_read_through_psql():
    runner = FakeRunner([(["psql"], ok(db_text(INSTALLED)))])
    assert pg.read_running(CLUSTER, runner) == settings(INSTALLED)


@pytest.mark.parametrize("answer, kind", [
    (failure("fail-psql-as-root"), cmd.NO_AUTH),
    (failure("fail-psql-down"), cmd.DOWN),
    (failure("fail-no-client"), cmd.NO_CLIENT),
    (failure("fail-timeout"), cmd.TIMEOUT),
    (ok("<html>Service Unavailable</html>\n"), cmd.GARBAGE),
    (ok("work_mem|4096\n"), cmd.GARBAGE),
    (ok("work_mem|lots|kB\n"), cmd.GARBAGE),
    (ok(""), cmd.GARBAGE),
])
def test_every_way_psql_can_fail_is_a_typed_result(answer, kind):
    got = pg.read_running(CLUSTER, FakeRunner([(["psql"], answer)]))
    assert isinstance(got, cmd.ReadFailure) and got.kind == kind
    assert got.reason.startswith("PostgreSQL 15/main (psql as postgres)")


def test_a_stopped_cluster_is_read_with_postgres_c_as_its_owner():
    stopped = dataclasses.replace(CLUSTER, running=False, pid=None, pids=())
    runner = FakeRunner(postgres_c_rules(db_text("pg15-postgres-C-installed.txt")))
    got = pg.read_stopped(stopped, runner)
    assert isinstance(got, pg.PgSettings) and got.source == "postgres -C"
    assert runner.calls[0] == ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/postgres", "-C",
                               "shared_memory_size", "-D", "/etc/postgresql/15/main"]
    running = settings(INSTALLED)
    # the same settings as the running cluster's, except what only the running server computes
    assert dataclasses.replace(got, source="server", client_backends=1, wal_buffers_kb=4096) == running
    assert got.jit
    assert got.wal_buffers_kb == -1


def test_a_setting_an_older_server_does_not_know_keeps_its_default():
    rules = [r for r in postgres_c_rules(db_text("pg15-postgres-C-installed.txt")) if r[0][1] != "hash_mem_multiplier"]
    runner = FakeRunner([(["-C", "hash_mem_multiplier"], failure("fail-postgres-C-unknown"))] + rules)
    got = pg.read_stopped(dataclasses.replace(CLUSTER, running=False), runner)
    assert isinstance(got, pg.PgSettings) and got.hash_mem_multiplier == 1.0


@pytest.mark.parametrize("answer, kind", [
    (failure("fail-no-client"), cmd.NO_CLIENT),
    (failure("fail-runuser-no-user"), cmd.NO_AUTH),
    (ok("143\n144\n"), cmd.GARBAGE),
])
def test_a_stopped_cluster_that_cannot_be_read_says_why(answer, kind):
    got = pg.read_stopped(dataclasses.replace(CLUSTER, running=False), FakeRunner([(["-C"], answer)]))
    assert isinstance(got, cmd.ReadFailure) and got.kind == kind


def test_pg_lsclusters_json_lists_running_and_stopped_clusters():
    (running,) = pg.parse_lsclusters_json(db_text("pg_lsclusters-running.json"))
    (down,) = pg.parse_lsclusters_json(db_text("pg_lsclusters-down.json"))
    assert running == pg.Cluster("15", "main", 5432, True, 103, "/var/lib/postgresql/15/main",
                                 "/etc/postgresql/15/main", "/var/run/postgresql")
    assert down == dataclasses.replace(running, running=False)


@pytest.mark.parametrize("text", ["not json", "{}", '[{"version": "15"}]'])
def test_pg_lsclusters_garbage_is_refused(text):
    with pytest.raises(pg.PgParseError):
        pg.parse_lsclusters_json(text)
