"""One host's databases end to end: found in a fake /proc, read through a fake runner that answers
with what the real clients said, measured from the captured smaps."""

from __future__ import annotations

from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    CAPTURED_MARIADB,
    DB_FIXTURES,
    FakeRunner,
    db_text,
    debian12_db_host,
    failure,
    ok,
    plant_process,
    postgres_c_rules,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db import host, mysql
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql as pg
from ansible_collections.dbfleet.memory.plugins.module_utils._db import redis

PG_SETTINGS = "pg15-settings-installed.txt"
MY_SETTINGS = "mariadb1011-variables-status-installed.txt"


def clients(lsclusters: str = "pg_lsclusters-running.json") -> FakeRunner:
    return FakeRunner([
        (["pg_lsclusters", "--json"], ok(db_text(lsclusters))),
        (["psql"], ok(db_text(PG_SETTINGS))),
        (["mariadb", "SHOW GLOBAL VARIABLES" in mysql.VARIABLES_SQL and mysql.VARIABLES_SQL + "; " + mysql.STATUS_SQL],
         ok(db_text(MY_SETTINGS))),
    ])


def test_a_debian_12_db_host_shows_its_cluster_and_mariadb_read_and_measured(host_tree):
    debian12_db_host(host_tree)
    found = host.read_databases(host_tree.path, clients())
    assert [(d.server.engine, d.server.name, d.server.running) for d in found.databases] == [
        ("mariadb", "mariadbd", True), ("postgresql", "15/main", True)]
    maria, cluster = found.databases
    assert cluster.server.pid == 6907 and cluster.server.pids == (6907, 6910, 6911, 6913, 7363)
    assert (cluster.server.user, cluster.server.port, cluster.server.socket, cluster.server.major_version) == (
        "postgres", 5432, "/var/run/postgresql", "15")
    assert cluster.server.config_dir == "/etc/postgresql/15/main"
    assert cluster.settings == pg.parse_settings_rows(db_text(PG_SETTINGS))
    assert maria.server.user == "mysql" and maria.settings.version == "10.11.18-MariaDB-0+deb12u1"
    # the auxiliary processes were captured without their smaps: unreadable, and said so
    assert cluster.charge.processes == 2 and cluster.charge.unreadable == (6910, 6911, 6913)
    assert not cluster.charge.exact and cluster.charge.private_kb == 3032 + 4504
    assert cluster.charge.shared_kb == 146016 + 4 + 28 + 1024
    assert maria.charge.charged_kb == 532888 and maria.charge.mode2_kb == 532888 + 2144
    assert found.notes == () and found.hugetlb_free_kb is None
    assert host.databases_charge(found).charged_kb == cluster.charge.charged_kb + maria.charge.charged_kb


def test_the_psql_call_runs_as_the_clusters_owner_on_its_socket(host_tree):
    debian12_db_host(host_tree)
    runner = clients()
    host.read_databases(host_tree.path, runner)
    (psql,) = [c for c in runner.calls if "psql" in c]
    assert psql[:5] == ["runuser", "-u", "postgres", "--", "psql"]
    assert psql[psql.index("-h") + 1] == "/var/run/postgresql" and psql[psql.index("-p") + 1] == "5432"


def test_the_estimate_uses_the_postmasters_measured_private_memory(host_tree):
    debian12_db_host(host_tree)
    found = host.read_databases(host_tree.path, clients())
    estimate = host.estimate_of(found.databases[1])
    settings = found.databases[1].settings
    # the postmaster maps the main segment and two small SysV ones (4 + 28 kB)
    measured = pg.PgMeasured(postmaster_private_kb=3032, other_segments_kb=32)
    assert estimate == pg.estimate("15/main", settings, pg.configured_peak(settings), measured)


def test_a_cluster_that_refuses_us_is_reported_with_the_reason_and_still_measured(host_tree):
    debian12_db_host(host_tree)
    runner = FakeRunner([(["pg_lsclusters"], ok(db_text("pg_lsclusters-running.json"))),
                         (["psql"], failure("fail-psql-as-root"))])
    found = host.read_databases(host_tree.path, runner)
    cluster = found.databases[1]
    assert cluster.settings is None and cluster.failure.kind == cmd.NO_AUTH
    assert 'role "root" does not exist' in cluster.failure.reason
    assert cluster.charge.charged_kb > 0 and host.estimate_of(cluster) is None
    assert found.databases[0].failure.kind == cmd.NO_CLIENT  # no rule for mariadb: as if not installed


def test_a_stopped_debian_cluster_is_found_by_pg_lsclusters_and_read_with_postgres_c(host_tree):
    host_tree.file("/etc/passwd", "postgres:x:103:105::/var/lib/postgresql:/bin/bash\n")
    runner = FakeRunner([(["pg_lsclusters", "--json"], ok(db_text("pg_lsclusters-down.json")))]
                        + postgres_c_rules(db_text("pg15-postgres-C-installed.txt")))
    found = host.read_databases(host_tree.path, runner)
    (cluster,) = found.databases
    assert (cluster.server.name, cluster.server.running, cluster.server.user) == ("15/main", False, "postgres")
    assert cluster.server.binary == "/usr/lib/postgresql/15/bin/postgres"
    assert cluster.settings.source == "postgres -C" and cluster.charge is None


def test_without_pg_lsclusters_there_is_no_stopped_cluster_and_no_complaint(host_tree):
    found = host.read_databases(host_tree.path, FakeRunner())
    assert found.databases == () and found.notes == ()


def test_a_pg_lsclusters_that_answers_garbage_is_a_host_note(host_tree):
    found = host.read_databases(host_tree.path, FakeRunner([(["pg_lsclusters"], ok("oops"))]))
    assert found.databases == () and "pg_lsclusters answered something else" in found.notes[0]


def test_an_installed_mariadb_that_is_not_running_is_read_from_its_option_files(host_tree):
    host_tree.file("/usr/sbin/mariadbd", b"\x7fELF")
    runner = FakeRunner([(["/usr/sbin/mariadbd", "--version"], ok(db_text("mariadbd-version.txt"))),
                         (["my_print_defaults", "--mysqld"], ok(db_text("mariadb1011-my_print_defaults-30conn.txt")))])
    (maria,) = host.read_databases(host_tree.path, runner).databases
    assert not maria.server.running and maria.settings.source == "option files"
    assert (maria.settings.max_connections, maria.settings.sort_buffer_kb, maria.settings.version) == (
        30, 32768, "10.11.18-MariaDB-0+deb12u1")


def test_an_installed_mariadb_whose_option_files_cannot_be_read_says_why(host_tree):
    host_tree.file("/usr/sbin/mariadbd", b"\x7fELF")
    runner = FakeRunner([(["--version"], ok(db_text("mariadbd-version.txt")))])
    (maria,) = host.read_databases(host_tree.path, runner).databases
    assert maria.failure.kind == cmd.NO_CLIENT and "my_print_defaults" in maria.failure.reason


def test_a_redis_server_is_found_by_its_process_title_and_read(host_tree):
    plant_process(host_tree, 8531, "redis-server", 1, 0, (DB_FIXTURES / "proc" / "redis" / "cmdline").read_bytes(),
                  smaps="")
    runner = FakeRunner([(["redis-cli"], ok(db_text("redis70-info-memory-maxmemory64mb.txt")))])
    (server,) = host.read_databases(host_tree.path, runner).databases
    assert (server.server.engine, server.server.name, server.server.port) == (
        "redis", "redis-server 127.0.0.1:16399", 16399)
    assert isinstance(server.settings, redis.RedisSettings)
    assert host.estimate_of(server).peak_kb == 2 * 64 * 1024


def test_a_mysqld_that_says_it_is_mariadb_is_reported_as_mariadb(host_tree):
    plant_process(host_tree, 900, "mysqld", 1, 0, b"/usr/sbin/mysqld\0--socket=/run/mysqld/mysqld.sock\0")
    runner = FakeRunner([(["mysql"], ok(db_text(MY_SETTINGS)))])
    (server,) = host.read_databases(host_tree.path, runner).databases
    assert server.server.engine == "mariadb" and server.server.socket == "/run/mysqld/mysqld.sock"
    assert [c[0] for c in runner.calls if "-e" in c] == ["mysql"]


def test_a_reading_serialises_for_a_module_result(host_tree):
    debian12_db_host(host_tree)
    found = host.read_databases(host_tree.path, clients()).as_dict()
    assert found["databases"][1]["server"]["name"] == "15/main"
    assert found["databases"][1]["settings"]["major"] == "15"
    assert found["databases"][0]["charge"]["mode2_kb"] == 532888 + 2144
    assert CAPTURED_MARIADB == found["databases"][0]["server"]["pid"]
