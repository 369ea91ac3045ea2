"""dbfleet.memory.oom_priority on a fake systemd host: drop-ins, live main PIDs, refusals, no restart.

The hosts below are Debian 12 with postgresql (cluster 15-main, an instance of postgresql@.service,
postmaster PID 812 with five children), a PGDG host (postgresql-16.service) and MariaDB 10.11
(mariadb.service with its mysql/mysqld aliases, PID 930). See fake_systemd.py for the model.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._oom import transaction as oom_host
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core
from ansible_collections.dbfleet.memory.plugins.module_utils._oom.host import describe_host
from ansible_collections.dbfleet.memory.plugins.module_utils._host.lock import LOCK_PATH
from ansible_collections.dbfleet.memory.plugins.modules import oom_priority
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import snapshot
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_systemd import (
    DEBIAN_PG_ONESHOT,
    DEBIAN_PG_TEMPLATE,
    DIRECT_PG_UNIT,
    MARIADB_UNIT,
    PG_ENV,
    PGDG_UNIT,
    PLAIN_ENV,
)

PG_DROPIN = "/etc/systemd/system/postgresql@.service.d/90-dbfleet-oom.conf"
DIRECT_DROPIN = "/etc/systemd/system/postgresql.service.d/90-dbfleet-oom.conf"
MARIADB_DROPIN = "/etc/systemd/system/mariadb.service.d/90-dbfleet-oom.conf"
POSTMASTER = 812
BACKENDS = (813, 814, 815, 816, 817)
MARIADBD = 930


def debian_pg(systemd, environ=PG_ENV):
    systemd.unit_file("postgresql@.service", DEBIAN_PG_TEMPLATE)
    systemd.unit_file("postgresql.service", DEBIAN_PG_ONESHOT)
    systemd.process(POSTMASTER, -900, environ)
    for pid in BACKENDS:
        systemd.process(pid, 0, environ)
    systemd.load("postgresql.service", unit_type="oneshot")
    systemd.load("postgresql@15-main.service", main_pid=POSTMASTER)


def direct_pg(systemd, environ=PG_ENV):
    """postgresql.service running the postmaster itself (at its unit's -200), with five backends."""
    systemd.unit_file("postgresql.service", DIRECT_PG_UNIT)
    systemd.process(POSTMASTER, -200, environ)
    for pid in BACKENDS:
        systemd.process(pid, 0, environ)
    systemd.load("postgresql.service", main_pid=POSTMASTER)


def mariadb(systemd):
    systemd.unit_file("mariadb.service", MARIADB_UNIT)
    systemd.process(MARIADBD, 0)
    systemd.load("mariadb.service", main_pid=MARIADBD, aliases=("mysql.service", "mysqld.service"))


def text(systemd, path):
    return (systemd.root / path.lstrip("/")).read_text()


def exists(systemd, path):
    return (systemd.root / path.lstrip("/")).exists()


def by_unit(result):
    return {u["unit"]: u for u in result["units"]}


SHOW = ["systemctl", "show", "--no-pager", "--property=" + ",".join(core.SHOW_PROPERTIES), "--"]


# --- PostgreSQL ----------------------------------------------------------------------------------

def test_a_debian_cluster_gets_oom_policy_in_the_template_directory_and_pg_ctlcluster_keeps_the_score(
        systemd, run_module):
    """pg_ctlcluster writes -900 to itself after systemd's OOMScoreAdjust= and sets PG_OOM_ADJUST_FILE
    in an environment it builds from scratch: a unit score or Environment= would never arrive."""
    debian_pg(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    assert result["changed"] and result["daemon_reload"] and not result["live_applied"]
    header, service = text(systemd, PG_DROPIN).split("[Service]\n")
    assert service == "OOMPolicy=continue\n"
    assert "# pg_ctlcluster starts the postmaster at -900 itself" in header
    assert systemd.configured["postgresql@15-main.service"]["OOMPolicy"] == "continue"
    assert systemd.score(POSTMASTER) == -900 and result["live_changes"] == []
    units = by_unit(result)
    assert units["postgresql@15-main.service"]["status"] == "managed"
    assert units["postgresql@15-main.service"]["live"].startswith("left to pg_ctlcluster")
    assert units["postgresql.service"]["status"] == "oneshot"  # Debian's /bin/true unit gets nothing
    assert not exists(systemd, "/etc/systemd/system/postgresql.service.d")


def test_a_postmaster_started_with_pg_oom_adjust_file_is_brought_to_minus_1000_live(systemd, run_module):
    direct_pg(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    assert result["changed"] and result["daemon_reload"] and result["live_applied"]
    service = text(systemd, DIRECT_DROPIN).split("[Service]\n")[1]
    assert service == ("OOMScoreAdjust=-1000\n"
                       "Environment=PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj PG_OOM_ADJUST_VALUE=0\n"
                       "OOMPolicy=continue\n")
    assert systemd.configured["postgresql.service"]["OOMScoreAdjust"] == "-1000"
    # The postmaster only; its backends keep the 0 they set themselves.
    assert systemd.score(POSTMASTER) == -1000
    assert [systemd.score(pid) for pid in BACKENDS] == [0] * 5
    assert result["live_changes"] == [{"unit": "postgresql.service", "pid": POSTMASTER, "before": -200, "after": -1000}]


def test_the_exact_systemctl_commands_are_show_reload_show(systemd, run_module):
    debian_pg(systemd)
    run_module(oom_priority.main, {"profile": ["postgresql"]})
    patterns = ["postgresql@*.service", "postgresql-[0-9]*.service", "postgresql.service", "patroni.service"]
    show = SHOW + patterns + ["systemd-oomd.service"]
    assert systemd.commands == [show, ["systemctl", "daemon-reload"], show]


def test_a_postmaster_started_without_pg_oom_adjust_file_is_left_for_the_next_restart(systemd, run_module):
    direct_pg(systemd, environ=PLAIN_ENV)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed and result["changed"] and not result["live_applied"]
    assert "OOMScoreAdjust=-1000" in text(systemd, DIRECT_DROPIN)
    assert systemd.score(POSTMASTER) == -200
    live = by_unit(result)["postgresql.service"]["live"]
    assert live.startswith("takes effect at the next restart") and "PG_OOM_ADJUST_FILE" in live


def test_a_pgdg_unit_gets_its_own_directory_even_when_stopped(systemd, run_module):
    (systemd.root / "usr/lib/systemd/system").mkdir(parents=True, exist_ok=True)
    systemd.unit_file("postgresql-16.service", PGDG_UNIT, where="usr/lib/systemd/system")
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    path = "/etc/systemd/system/postgresql-16.service.d/90-dbfleet-oom.conf"
    assert "OOMPolicy=continue" in text(systemd, path)
    assert [f["path"] for f in result["files"]] == [path] and result["live_changes"] == []


def test_a_template_with_no_cluster_yet_is_prepared_for_the_first_one(systemd, run_module):
    systemd.unit_file("postgresql@.service", DEBIAN_PG_TEMPLATE)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed and exists(systemd, PG_DROPIN)
    assert by_unit(result)["postgresql@.service"]["live"] == "no instance loaded: applies when one starts"
    # Judged by the template's own text: it runs pg_ctlcluster, so only the policy is written.
    assert text(systemd, PG_DROPIN).split("[Service]\n")[1] == "OOMPolicy=continue\n"


# --- MariaDB, masked and missing units -----------------------------------------------------------

def test_mariadb_and_its_aliases_are_one_unit_at_minus_600(systemd, run_module):
    mariadb(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert not failed, result.get("msg")
    assert [f["path"] for f in result["files"]] == [MARIADB_DROPIN]
    assert "OOMScoreAdjust=-600\n" in text(systemd, MARIADB_DROPIN)
    assert "OOMPolicy" not in text(systemd, MARIADB_DROPIN) and "Environment" not in text(systemd, MARIADB_DROPIN)
    assert systemd.score(MARIADBD) == -600
    assert list(by_unit(result)) == ["mariadb.service"]


def test_a_masked_unit_gets_nothing(systemd, run_module):
    systemd.unit_file("mariadb.service", MARIADB_UNIT)
    systemd.mask("mariadb.service")
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert not failed and not result["changed"] and "daemon-reload" not in systemd.verbs()
    assert by_unit(result)["mariadb.service"]["status"] == "masked"
    assert not exists(systemd, MARIADB_DROPIN)


def test_a_missing_unit_named_explicitly_is_reported_and_warned(systemd, run_module):
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "units": ["pg-main.service"]})
    assert not failed and not result["changed"]
    assert by_unit(result)["pg-main.service"]["status"] == "missing"
    assert "pg-main.service: not found (systemd: LoadState=not-found" in str(result["warnings"])
    assert snapshot(systemd.root) == before


def test_a_unit_named_beside_another_databases_profile_is_refused_and_nothing_changes(systemd, run_module):
    """PostgreSQL's -1000 and PG_OOM_ADJUST_FILE in MariaDB's drop-in would make mysqld unkillable."""
    mariadb(systemd)
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "units": ["mariadb.service"]})
    assert failed and result["option"] == "units"
    assert result["msg"].startswith("units: mariadb.service runs mariadb, which is not in profile (postgresql)")
    assert snapshot(systemd.root) == before and systemd.commands == []


def test_an_alias_that_resolves_to_another_databases_unit_is_refused_and_nothing_changes(systemd, run_module):
    """The name given says nothing; the unit systemd resolves it to does."""
    systemd.unit_file("mariadb.service", MARIADB_UNIT)
    systemd.process(MARIADBD, 0)
    systemd.load("mariadb.service", main_pid=MARIADBD, aliases=("db-main.service",))
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "units": ["db-main.service"]})
    assert failed and result["msg"].startswith("Nothing changed: mariadb.service runs mariadb")
    assert snapshot(systemd.root) == before and systemd.verbs() == ["show"]


def test_each_unit_gets_only_its_own_databases_settings(systemd, run_module):
    direct_pg(systemd)
    mariadb(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql", "mariadb"],
                                                    "units": ["mariadb.service", "postgresql.service"]})
    assert not failed, result.get("msg")
    assert text(systemd, MARIADB_DROPIN).split("[Service]\n")[1] == "OOMScoreAdjust=-600\n"
    assert "PG_OOM_ADJUST_FILE" in text(systemd, DIRECT_DROPIN)
    assert (systemd.score(MARIADBD), systemd.score(POSTMASTER)) == (-600, -1000)


def test_absent_removes_our_drop_in_from_a_unit_named_beside_another_databases_profile(systemd, run_module):
    """What an earlier version wrote there (PostgreSQL's settings in MariaDB's drop-in) can be removed by name."""
    mariadb(systemd)
    run_module(oom_priority.main, {"profile": ["mariadb"]})
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "units": ["mariadb.service"],
                                                    "state": "absent"})
    assert not failed, result.get("msg")
    assert result["files"] == [{"path": MARIADB_DROPIN, "action": "remove", "why": "state=absent"}]
    assert systemd.score(MARIADBD) == 0


def test_only_files_named_exactly_like_our_drop_in_are_ours(systemd, run_module):
    """A name with a final newline is not ours: systemd ignores it, and so must every run, absent too."""
    mariadb(systemd)
    others = [MARIADB_DROPIN + "\n", MARIADB_DROPIN + ".bak", MARIADB_DROPIN.replace("/90-", "/9-")]
    for path in others:
        (systemd.root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (systemd.root / path.lstrip("/")).write_text("[Service]\nOOMScoreAdjust=-600\n")
    for state in ("present", "absent"):
        failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "state": state})
        assert not failed, result.get("msg")
        assert [f["path"] for f in result["files"]] == [MARIADB_DROPIN]
        assert all(exists(systemd, path) for path in others)


def test_units_of_a_profile_that_is_not_installed_are_simply_not_found(systemd, run_module):
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb", "postgresql"]})
    assert not failed and not result["changed"] and result["units"] == [] and not result.get("warnings")


def test_redis_is_report_only_unless_a_value_is_asked_for(systemd, run_module):
    systemd.unit_file("redis-server.service", "[Service]\nExecStart=/usr/bin/redis-server\n")
    systemd.process(700, 0)
    systemd.load("redis-server.service", main_pid=700)
    failed, result = run_module(oom_priority.main, {"profile": ["redis"]})
    assert not failed and not result["changed"]
    assert by_unit(result)["redis-server.service"]["status"] == "report-only"
    failed, result = run_module(oom_priority.main, {"profile": ["redis"], "oom_score_adj": -500})
    assert not failed and result["changed"] and systemd.score(700) == -500
    # Asked no more: our drop-in goes, and the live score with it, as with absent.
    failed, result = run_module(oom_priority.main, {"profile": ["redis"]})
    path = "/etc/systemd/system/redis-server.service.d/90-dbfleet-oom.conf"
    assert result["files"] == [{"path": path, "action": "remove", "why": "nothing to write for redis-server.service any more"}]
    assert not exists(systemd, path) and systemd.score(700) == 0


# --- refusals ------------------------------------------------------------------------------------

def test_minus_1000_for_a_single_process_database_is_refused_unless_named(systemd, run_module):
    mariadb(systemd)
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "oom_score_adj": -1000})
    assert failed and "OOMScoreAdjust=-1000 refused for mariadb, a single-process database" in result["msg"]
    assert "allow_unkillable" in result["msg"]
    assert snapshot(systemd.root) == before and systemd.verbs() == ["show"]
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "oom_score_adj": -1000,
                                                    "allow_unkillable": ["mariadb.service"]})
    assert not failed and systemd.score(MARIADBD) == -1000


def test_a_write_to_every_process_of_a_cgroup_is_refused_before_the_host_is_read(systemd, run_module):
    debian_pg(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "live": "cgroup"})
    assert failed and result["option"] == "live" and "children" in result["msg"]
    assert systemd.commands == [] and not exists(systemd, PG_DROPIN)


def container(systemd):
    (systemd.root / "run/.containerenv").write_text('engine="podman-4.9.3"\n')


def test_in_a_container_a_negative_default_is_ineffective_and_not_written(systemd, run_module):
    container(systemd)
    direct_pg(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    dropin = text(systemd, DIRECT_DROPIN)
    assert "OOMScoreAdjust" not in dropin.split("[Service]")[1]
    assert "OOMPolicy=continue" in dropin and "PG_OOM_ADJUST_FILE" in dropin
    assert by_unit(result)["postgresql.service"]["status"] == "ineffective"
    assert "OOMScoreAdjust=-1000 is ineffective in a container (podman" in str(result["warnings"])
    assert systemd.score(POSTMASTER) == -200 and result["live_changes"] == []


def test_in_a_container_an_asked_for_negative_value_is_refused(systemd, run_module):
    container(systemd)
    mariadb(systemd)
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "oom_score_adj": -600})
    assert failed and "ineffective in a container" in result["msg"] and result["msg"].startswith("Nothing changed")
    assert snapshot(systemd.root) == before


def test_a_later_drop_in_that_would_override_ours_is_refused_by_name(systemd, run_module):
    mariadb(systemd)
    (systemd.root / "etc/systemd/system/mariadb.service.d").mkdir(parents=True)
    (systemd.root / "etc/systemd/system/mariadb.service.d/override.conf").write_text("[Service]\nOOMScoreAdjust=0\n")
    systemd.load("mariadb.service", main_pid=MARIADBD, aliases=("mysql.service",))
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert failed and "mariadb.service.d/override.conf sets OOMScoreAdjust=0" in result["msg"]
    assert not exists(systemd, MARIADB_DROPIN) and systemd.score(MARIADBD) == 0


@pytest.mark.parametrize("plant, kind", [
    pytest.param(lambda tree: tree.link(LOCK_PATH, "/etc/systemd/system/x.conf"), "symlink", id="symlink"),
    pytest.param(lambda tree: tree.directory(LOCK_PATH), "directory", id="directory"),
    pytest.param(lambda tree: tree.fifo(LOCK_PATH), "fifo", id="fifo"),
])
def test_a_lock_path_that_is_not_a_regular_file_fails_clearly_and_changes_nothing(systemd, host_tree, run_module,
                                                                                  deadline, plant, kind):
    mariadb(systemd)
    plant(host_tree)
    before = snapshot(systemd.root)
    with deadline(10):
        failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert failed and result["msg"].startswith(
        "Nothing changed: the host lock %s is a %s, not a regular file" % (host_tree.path(LOCK_PATH), kind))
    assert snapshot(systemd.root) == before and systemd.commands == []


def test_bad_input_names_the_option_and_the_allowed_values_and_changes_nothing(systemd, run_module):
    mariadb(systemd)
    before = snapshot(systemd.root)
    failed, result = run_module(oom_priority.main, {"profile": ["postgres"]})
    assert failed and "profile" in result["msg"] and "postgresql" in result["msg"] and "valkey" in result["msg"]
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "oom_score_adj": -1001})
    assert failed and result["msg"] == "oom_score_adj: must be between -1000 and 1000, got -1001"
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "units": ["../etc/passwd"]})
    assert failed and result["option"] == "units"
    assert snapshot(systemd.root) == before and systemd.commands == []


# --- check mode, idempotence, absent, rollback ---------------------------------------------------

def test_check_mode_predicts_the_run_and_changes_nothing(systemd, run_module):
    debian_pg(systemd)
    mariadb(systemd)
    before = snapshot(systemd.root)
    args = {"profile": ["postgresql", "mariadb"]}
    failed, predicted = run_module(oom_priority.main, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed and predicted["changed"]
    assert snapshot(systemd.root) == before and systemd.verbs() == ["show"]
    assert [d["after_header"] for d in predicted["diff"]] == [MARIADB_DROPIN, PG_DROPIN, "live oom_score_adj"]
    assert predicted["diff"][2]["before"] == "/proc/930/oom_score_adj (mariadb.service) = 0\n"
    assert predicted["diff"][2]["after"] == "/proc/930/oom_score_adj (mariadb.service) = -600\n"
    failed, result = run_module(oom_priority.main, args)
    assert result["files"] == predicted["files"] and result["live_changes"] == predicted["live_changes"]


def test_a_second_run_changes_nothing_and_reloads_nothing(systemd, run_module):
    debian_pg(systemd)
    mariadb(systemd)
    args = {"profile": ["postgresql", "mariadb"]}
    run_module(oom_priority.main, args)
    systemd.commands.clear()
    failed, result = run_module(oom_priority.main, args)
    assert not failed and not result["changed"] and result["files"] == [] and result["live_changes"] == []
    assert systemd.verbs() == ["show"]


def test_absent_removes_our_drop_ins_and_restores_each_units_own_value_live(systemd, run_module):
    direct_pg(systemd)
    mariadb(systemd)
    args = {"profile": ["postgresql", "mariadb"]}
    run_module(oom_priority.main, args)
    assert (systemd.score(POSTMASTER), systemd.score(MARIADBD)) == (-1000, -600)
    failed, result = run_module(oom_priority.main, dict(args, state="absent"))
    assert not failed and result["changed"]
    assert not exists(systemd, DIRECT_DROPIN) and not exists(systemd, MARIADB_DROPIN)
    assert not exists(systemd, "/etc/systemd/system/postgresql.service.d")
    # The PostgreSQL unit says -200; MariaDB's unit sets nothing (its -600 is a comment).
    assert (systemd.score(POSTMASTER), systemd.score(MARIADBD)) == (-200, 0)
    assert [systemd.score(pid) for pid in BACKENDS] == [0] * 5
    failed, again = run_module(oom_priority.main, dict(args, state="absent"))
    assert not failed and not again["changed"]


def test_absent_in_check_mode_predicts_the_units_own_value(systemd, run_module):
    direct_pg(systemd)
    run_module(oom_priority.main, {"profile": ["postgresql"]})
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "state": "absent",
                                                    "_ansible_check_mode": True})
    assert not failed and result["live_changes"] == [{"unit": "postgresql.service", "pid": POSTMASTER,
                                                      "before": -1000, "after": -200}]
    assert exists(systemd, DIRECT_DROPIN) and systemd.score(POSTMASTER) == -1000


def test_absent_removes_the_template_drop_in_and_its_directory(systemd, run_module):
    debian_pg(systemd)
    run_module(oom_priority.main, {"profile": ["postgresql"]})
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"], "state": "absent"})
    assert not failed and result["files"] == [{"path": PG_DROPIN, "action": "remove", "why": "state=absent"}]
    assert not exists(systemd, "/etc/systemd/system/postgresql@.service.d")
    assert systemd.configured["postgresql@15-main.service"]["OOMPolicy"] == "stop"
    assert systemd.score(POSTMASTER) == -900 and result["live_changes"] == []


def test_oomd_active_adds_managed_oom_preference_avoid(systemd, run_module):
    systemd.oomd(active=True)
    mariadb(systemd)
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert not failed and result["oomd_active"]
    assert "ManagedOOMPreference=avoid\n" in text(systemd, MARIADB_DROPIN)


def test_a_systemd_that_does_not_take_the_drop_in_is_rolled_back(systemd, run_module):
    mariadb(systemd)
    systemd.ignore_dropins = True
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert failed and result["msg"].startswith("Apply failed, rolled back")
    assert "systemd reports OOMScoreAdjust=0, the drop-in sets -600" in result["msg"]
    assert not exists(systemd, MARIADB_DROPIN) and systemd.score(MARIADBD) == 0
    assert systemd.verbs() == ["show", "daemon-reload", "show", "daemon-reload"]
    assert result["rollback"] == {"complete": True, "left": []}


def test_a_live_drift_alone_is_a_change_that_check_mode_predicts(systemd, run_module):
    """The drop-in is in place; someone wrote the main PID's score back to 0 (choom, a restart
    script). Nothing on disk differs, and the run still changes the host."""
    mariadb(systemd)
    run_module(oom_priority.main, {"profile": ["mariadb"]})
    systemd.process(MARIADBD, 0)
    drift = [{"unit": "mariadb.service", "pid": MARIADBD, "before": 0, "after": -600}]
    failed, predicted = run_module(oom_priority.main, {"profile": ["mariadb"], "_ansible_check_mode": True})
    assert not failed and (predicted["changed"], predicted["files"], predicted["live_changes"]) == (True, [], drift)
    assert systemd.score(MARIADBD) == 0
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    assert not failed and (result["changed"], result["files"], result["live_changes"]) == (True, [], drift)
    assert result["live_applied"] and not result["daemon_reload"] and systemd.score(MARIADBD) == -600


@pytest.mark.parametrize("kernel_keeps", [
    pytest.param(lambda old, new: old, id="ignored"),  # the write returns, the score stays
    pytest.param(lambda old, new: max(new, -500), id="clamped"),  # a container's floor
])
def test_a_live_write_that_does_not_stick_fails_and_rolls_back(systemd, run_module, monkeypatch, kernel_keeps):
    mariadb(systemd)

    def write_that_does_not_stick(pid, value):
        systemd.process(pid, kernel_keeps(systemd.score(pid), value))

    monkeypatch.setattr(oom_host, "write_score", write_that_does_not_stick)
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"]})
    kept = kernel_keeps(0, -600)
    assert failed and result["msg"] == (
        "Apply failed, rolled back (files and scores read back as before): /proc/%d/oom_score_adj (mariadb.service) "
        "reads back %d after writing -600" % (MARIADBD, kept))
    assert result["rollback"] == {"complete": True, "left": []} and result["changed"] is False
    assert not exists(systemd, MARIADB_DROPIN) and systemd.score(MARIADBD) == 0


def test_the_drop_in_file_is_0644_in_a_0755_directory(systemd, run_module):
    mariadb(systemd)
    run_module(oom_priority.main, {"profile": ["mariadb"]})
    path = systemd.root / MARIADB_DROPIN.lstrip("/")
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert oct(os.stat(path.parent).st_mode & 0o777) == "0o755"


def test_a_postmaster_whose_environment_cannot_be_read_is_left_for_the_next_restart(systemd, run_module):
    direct_pg(systemd)
    os.remove(systemd.root / "proc" / str(POSTMASTER) / "environ")
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert not failed and systemd.score(POSTMASTER) == -200
    live = by_unit(result)["postgresql.service"]["live"]
    assert live.startswith("takes effect at the next restart: the postmaster's environment (PID 812) is unreadable")


def test_in_a_container_the_policy_written_is_still_verified_after_the_reload(systemd, run_module):
    """Only OOMScoreAdjust is ineffective there; OOMPolicy= is checked like on a host (it was not before)."""
    container(systemd)
    debian_pg(systemd)
    systemd.ignore_dropins = True
    failed, result = run_module(oom_priority.main, {"profile": ["postgresql"]})
    assert failed and "systemd reports OOMPolicy=stop, the drop-in sets continue" in result["msg"]
    assert not exists(systemd, PG_DROPIN)


def test_absent_when_systemd_disagrees_with_the_units_files_rolls_back_before_any_live_write(systemd, run_module):
    """The live target for absent is read from the unit's files; systemd has the last word."""
    mariadb(systemd)
    run_module(oom_priority.main, {"profile": ["mariadb"]})
    systemd.forced["mariadb.service"] = "-200"
    failed, result = run_module(oom_priority.main, {"profile": ["mariadb"], "state": "absent"})
    assert failed and "systemd reports OOMScoreAdjust=-200 after the reload, the live target was 0" in result["msg"]
    assert result["rollback"] == {"complete": True, "left": []}
    assert exists(systemd, MARIADB_DROPIN) and systemd.score(MARIADBD) == -600


# --- describe_host: what overcommit_info will call ------------------------------------------------

def test_describe_host_reports_every_database_unit_read_only(systemd):
    debian_pg(systemd, environ=PLAIN_ENV)
    mariadb(systemd)
    before = snapshot(systemd.root)
    report = describe_host(systemd.run)
    assert report["error"] is None and report["container"] is None and report["oomd_active"] is False
    rows = {r["unit"]: r for r in report["units"]}
    pg = rows["postgresql@15-main.service"]
    assert (pg["live_oom_score_adj"], pg["configured_oom_score_adj"], pg["oom_policy"]) == (-900, -900, "stop")
    assert pg["backends_inherit_negative"] is True
    assert rows["mariadb.service"]["database"] == "mariadb" and rows["postgresql.service"]["status"] == "oneshot"
    assert snapshot(systemd.root) == before and systemd.verbs() == ["show"]


def test_describe_host_without_systemd_says_why_instead_of_failing(systemd):
    os.rmdir(systemd.root / "run/systemd/system")
    report = describe_host(systemd.run)
    assert report["units"] == [] and "systemd is not running here" in report["error"]
    assert systemd.commands == []
