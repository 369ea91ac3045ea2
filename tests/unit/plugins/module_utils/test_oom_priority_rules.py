"""The pure OOM-priority rules: parsing systemd's answers, which rule a unit gets, describe_units.

SHOW_BOOKWORM is `systemctl show` on Debian 12 with postgresql 15 and mariadb-server 10.11 in a
podman container (systemd 252), as the molecule scenario's probe printed it.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._oom import decide as oom_decide
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core

SHOW_BOOKWORM = """Type=notify
MainPID=2352
OOMPolicy=stop
OOMScoreAdjust=0
Id=mariadb.service
Names=mariadb.service mysqld.service mysql.service
LoadState=loaded
ActiveState=active
FragmentPath=/lib/systemd/system/mariadb.service
DropInPaths=

Type=oneshot
MainPID=0
OOMPolicy=stop
OOMScoreAdjust=0
Id=postgresql.service
Names=postgresql.service
LoadState=loaded
ActiveState=active
FragmentPath=/lib/systemd/system/postgresql.service
DropInPaths=

Type=
MainPID=0
OOMPolicy=
OOMScoreAdjust=0
Id=nosuch.service
Names=nosuch.service
LoadState=not-found
ActiveState=inactive
FragmentPath=
DropInPaths=

Type=forking
MainPID=2846
OOMPolicy=stop
OOMScoreAdjust=-900
Id=postgresql@15-main.service
Names=postgresql@15-main.service
LoadState=loaded
ActiveState=active
FragmentPath=/lib/systemd/system/postgresql@.service
DropInPaths=
"""


def units_from(text):
    return {u.unit_id: u for u in (core.unit_from_show(b) for b in core.parse_show(text))}


def host(units, processes=(), container=None, ours=None):
    return core.HostUnits(units=units, unit_files={}, processes={p.pid: p for p in processes}, ours=ours or {},
                          file_texts={}, container=container, container_evidence=None, oomd_active=False)


def test_parse_show_keeps_one_block_per_unit_and_drops_the_managers_own():
    blocks = core.parse_show("Version=252\nFeatures=+PAM\n\n" + SHOW_BOOKWORM)
    assert [b["Id"] for b in blocks] == ["mariadb.service", "postgresql.service", "nosuch.service",
                                         "postgresql@15-main.service"]
    pg = core.unit_from_show(blocks[3])
    assert (pg.main_pid, pg.oom_score_adj, pg.oom_policy, pg.unit_type) == (2846, -900, "stop", "forking")
    assert core.unit_from_show(blocks[0]).names == ("mariadb.service", "mysqld.service", "mysql.service")


@pytest.mark.parametrize("unit, template", [
    ("postgresql@15-main.service", "postgresql@.service"),
    ("postgresql@.service", None),
    ("mariadb.service", None),
])
def test_an_instance_names_its_template(unit, template):
    assert core.template_of(unit) == template


@pytest.mark.parametrize("unit, profiles, rule", [
    ("postgresql@15-main.service", ["postgresql"], "postgresql"),
    ("postgresql-16.service", ["postgresql", "mariadb"], "postgresql"),
    ("patroni.service", ["postgresql"], "postgresql"),
    ("mysql.service", ["mariadb"], "mariadb"),  # Debian's alias of mariadb.service
    ("mariadb.service", list(core.PROFILES), "mariadb"),
    ("mysqld.service", list(core.PROFILES), "mysql"),
    ("valkey-server.service", ["valkey"], "valkey"),
    ("pg-main.service", ["postgresql"], "postgresql"),  # an explicit unit takes the one database given
    ("pg-main.service", ["postgresql", "mariadb"], "generic"),
    # A unit whose name says its database keeps that database's rule, whatever else is given.
    ("mariadb.service", ["postgresql"], "mariadb"),
    ("postgresql@15-main.service", ["mariadb"], "postgresql"),
    ("redis-server.service", ["postgresql"], "redis"),
])
def test_each_unit_gets_the_rule_of_its_database(unit, profiles, rule):
    assert core.rule_for_unit(unit, profiles).name == rule


VALID = dict(oom_score_adj=None, oom_policy=None, priority=90, live="auto")


@pytest.mark.parametrize("profiles, units, refused", [
    (["postgresql"], ["mariadb.service"], "mariadb.service runs mariadb"),
    (["postgresql"], ["mysqld@replica.service"], "mysqld@replica.service runs mysql"),
    (["mariadb", "redis"], ["postgresql@.service"], "postgresql@.service runs postgresql"),
    (["postgresql", "generic"], ["valkey-server.service"], "valkey-server.service runs valkey"),
    (["postgresql"], ["pg-main.service", "patroni.service"], None),  # a name of no database: the one given
    (["mariadb"], ["mysql.service"], None),  # MariaDB's alias: the patterns of the profile given match it
    ([], ["mariadb.service"], None),  # no database profile: the name decides
    (["generic"], ["mariadb.service"], None),
])
def test_a_unit_of_a_database_not_in_profile_is_refused_by_name(profiles, units, refused):
    if refused is None:
        oom_decide.validate_request(profiles, units, allow_unkillable=[], **VALID)
        return
    with pytest.raises(core.OomInputError) as exc:
        oom_decide.validate_request(profiles, units, allow_unkillable=[], **VALID)
    assert exc.value.option == "units"
    assert refused in str(exc.value) and "add it to profile" in str(exc.value)


def test_state_absent_may_name_a_unit_of_another_database_to_clean_up_after_it():
    oom_decide.validate_request(["postgresql"], ["mariadb.service"], allow_unkillable=[], state="absent", **VALID)


def test_postgresql_common_is_not_a_pgdg_server_unit():
    files = {n: core.UnitFile(n, "/lib/systemd/system/" + n, False)
             for n in ("postgresql-common.service", "postgresql-16.service", "postgresql@.service")}
    assert core.matching_unit_files(core.candidate_names(["postgresql"], ()), files) == [
        "postgresql-16.service", "postgresql@.service"]


def test_service_settings_takes_the_last_assignment_and_ignores_comments_and_other_sections():
    text = ("[Unit]\nOOMScoreAdjust=5\n[Service]\n# OOMScoreAdjust=-600\nOOMScoreAdjust=-900\n"
            "Environment=A=1\nEnvironment=B=2\nOOMScoreAdjust=-100\n")
    assert oom_decide.service_settings(text) == {"OOMScoreAdjust": "-100", "Environment": "A=1 B=2"}


def test_the_dropin_explains_itself_with_the_rule_and_its_source():
    rule = core.RULES["postgresql"]
    text = oom_decide.render_dropin("postgresql@.service", rule, {"OOMScoreAdjust": "-1000", "OOMPolicy": "continue"}, [])
    assert "# Source: PostgreSQL manual, 'Linux Memory Overcommit'" in text
    assert text.endswith("[Service]\nOOMScoreAdjust=-1000\nOOMPolicy=continue\n")


def test_every_profile_of_the_planner_has_a_rule_with_a_reason_and_a_source():
    for name in core.PROFILES:
        assert core.RULES[name].why and core.RULES[name].source


# --- describe_units (for overcommit_info and the audit) -------------------------------------------

def test_describe_flags_a_negative_postmaster_without_pg_oom_adjust_file():
    units = units_from(SHOW_BOOKWORM)
    procs = [core.ProcessState(2846, -900, frozenset({"PATH", "PGSYSCONFDIR"})),
             core.ProcessState(2352, 0, frozenset({"PATH"}))]
    rows = {r["unit"]: r for r in core.describe_units(host(units, procs), ["postgresql", "mariadb"])}
    pg = rows["postgresql@15-main.service"]
    assert (pg["live_oom_score_adj"], pg["configured_oom_score_adj"], pg["oom_policy"]) == (-900, -900, "stop")
    assert pg["pg_oom_adjust_file"] is False and pg["backends_inherit_negative"] is True
    assert any("every new backend inherits -900" in f for f in pg["findings"])
    assert any("OOMPolicy=stop" in f for f in pg["findings"])
    maria = rows["mariadb.service"]
    assert (maria["database"], maria["live_oom_score_adj"], maria["backends_inherit_negative"]) == ("mariadb", 0, False)
    assert rows["postgresql.service"]["status"] == "oneshot"
    assert "nosuch.service" not in rows  # not asked for


def test_describe_does_not_flag_a_postmaster_that_resets_its_backends():
    units = units_from(SHOW_BOOKWORM)
    procs = [core.ProcessState(2846, -1000, frozenset({"PG_OOM_ADJUST_FILE"}))]
    row = [r for r in core.describe_units(host(units, procs), ["postgresql"]) if r["main_pid"] == 2846][0]
    assert row["pg_oom_adjust_file"] is True and row["backends_inherit_negative"] is False
    assert row["findings"] == ["OOMPolicy=stop: one OOM-killed backend stops the whole cluster",
                               "live -1000 differs from the configured -900 (until the next restart or a run)"]


def test_describe_says_unknown_when_the_environment_cannot_be_read():
    units = units_from(SHOW_BOOKWORM)
    procs = [core.ProcessState(2846, -900, frozenset(), readable_environ=False)]
    row = [r for r in core.describe_units(host(units, procs), ["postgresql"]) if r["main_pid"] == 2846][0]
    assert row["pg_oom_adjust_file"] is None and row["backends_inherit_negative"] is False


def test_validate_refuses_the_cgroup_write_and_names_the_option():
    with pytest.raises(core.OomInputError) as exc:
        oom_decide.validate_request(["postgresql"], [], None, None, 90, "cgroup", [])
    assert exc.value.option == "live" and "Only the main PID is ever written" in str(exc.value)


@pytest.mark.parametrize("option", ["units", "allow_unkillable"])
@pytest.mark.parametrize("name", [
    "mariadb.service\n",  # a "$" matches before a final newline
    "mariadb.service\r",
    "mariadb.service ",
    "\nmariadb.service",
    "maria db.service",
    "../mariadb.service",
    "mariadb.socket",
    "",
])
def test_a_unit_name_with_anything_after_service_is_refused_by_option(option, name):
    units, allow = ([name], []) if option == "units" else ([], [name])
    with pytest.raises(core.OomInputError) as exc:
        oom_decide.validate_request(["mariadb"], units, allow_unkillable=allow, **VALID)
    assert exc.value.option == option and repr(name) in str(exc.value) and "NAME.service" in str(exc.value)


@pytest.mark.parametrize("name", ["mariadb.service", "postgresql@15-main.service", "postgresql@.service",
                                  "dev-disk-by\\x2duuid.service", "a:b_c.d.service"])
def test_a_service_unit_name_is_accepted(name):
    oom_decide.validate_request(["generic"], [name], allow_unkillable=[name], **VALID)
