"""The modules read the host's databases and judge their configured peaks (database_peak).

The fake host (fake_kernel.py: 4000000 kB of RAM, 1000000 kB of swap, Committed_AS 1000000 kB) gets the
lab guest's captured PostgreSQL 15/main and MariaDB 10.11 in its /proc, and their clients answer with
what the real ones printed (tests/unit/fixtures/db/): PostgreSQL with work_mem 32MB for 30 connections,
MariaDB as installed. Their configured peaks (about 3989 + 3396 MiB) cannot fit under the most this host
can back (upper bound 4600000 kB): warn says so with the fixes and changes the host anyway; enforce refuses
and changes nothing.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info, overcommit_metrics
from ansible_collections.dbfleet.memory.tests.unit.conftest import HostTree
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    CAPTURED_MARIADB,
    CAPTURED_PG,
    PASSWD,
    FakeRunner,
    db_text,
    failure,
    ok,
    plant_captured,
)
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import BOOT, snapshot

PG_PEAK_KB = 4085064
MARIADB_PEAK_KB = 3477904
PG_CHARGE_KB = 154608
MARIADB_CHARGE_KB = 532888


@pytest.fixture
def databases(kernel, monkeypatch):
    """The captured servers on the fake host, and their clients behind run_command."""
    tree = HostTree(kernel.root)
    tree.file("/etc/passwd", PASSWD)
    for pid in CAPTURED_PG + (CAPTURED_MARIADB,):
        plant_captured(tree, pid)
    tree.file("/var/lib/postgresql/15/main/postmaster.pid", db_text("postmaster.pid"))
    tree.file("/var/lib/postgresql/15/main/PG_VERSION", "15\n")
    runner = FakeRunner([(["pg_lsclusters", "--json"], ok(db_text("pg_lsclusters-running.json"))),
                         (["psql"], ok(db_text("pg15-settings-30conn-workmem32MB.txt"))),
                         (["mariadb"], ok(db_text("mariadb1011-variables-status-installed.txt")))])
    from ansible.module_utils import basic

    seen = []

    def run_command(_self, args, **kwargs):
        if args[0] == "systemctl":  # the OOM side's reading: no systemd on this fake host
            return 127, "", "systemctl: command not found (fake host)"
        seen.append(kwargs)
        return runner(args)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    runner.kwargs = seen
    return runner


def test_overcommit_info_returns_each_database_with_its_charge_peak_formula_and_fixes(kernel, run_module, databases):
    failed, result = run_module(overcommit_info.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    assert result["verdict"] == "safe" and result["would_refuse"] is None  # warn: the verdict stands
    maria, cluster = result["databases"]
    assert [(d["engine"], d["server"], d["readable"], d["charged_kb"], d["configured_peak_kb"], d["fits"])
            for d in result["databases"]] == [
        ("mariadb", "mariadbd", True, MARIADB_CHARGE_KB, MARIADB_PEAK_KB, False),
        ("postgresql", "15/main", True, PG_CHARGE_KB, PG_PEAK_KB, False)]
    assert cluster["formula"].startswith("shared memory 139 MiB + ")
    assert [fix["setting"] for fix in cluster["fixes"]][-1] == "swap"
    verdict = result["database_verdict"]
    # everything else 1000000 - 687496 kB, plus both peaks
    assert verdict["demand_kb"] == 1000000 - PG_CHARGE_KB - MARIADB_CHARGE_KB + PG_PEAK_KB + MARIADB_PEAK_KB
    assert not verdict["safe"] and result["options"]["database_peak"] == "warn"
    # the plan's reasons carry the verdict and one line per database
    assert any(r.startswith("The databases' configured peaks do not fit (mariadb mariadbd, postgresql 15/main), "
                            "warning only") for r in result["reasons"])
    assert result["reasons"][-1] == cluster["reason"]
    assert cluster["reason"].startswith("postgresql 15/main does not fit: configured peak 3989 MiB > room ")
    # read-only clients, and a missing one is a reading failure rather than fail_json
    assert all(kw.get("handle_exceptions") is False for kw in databases.kwargs)
    assert {call[0] for call in databases.calls} <= {"pg_lsclusters", "runuser", "psql", "mariadb", "mysql",
                                                     "postgres", "my_print_defaults", "redis-cli"}


def test_warn_changes_the_host_and_warns_with_the_numbers_and_the_fix(kernel, run_module, databases):
    failed, result = run_module(overcommit.main, {"profile": ["postgresql"]})
    assert not failed, result.get("msg")
    assert kernel.live()["overcommit_memory"] == "2"
    warning = [str(w) for w in result["warnings"] if "configured peaks do not fit" in str(w)]
    assert len(warning) == 1 and "postgresql 15/main does not fit" in warning[0] and "Fix: " in warning[0]
    assert [d["fits"] for d in result["databases"]] == [False, False]


def test_enforce_refuses_and_changes_nothing_with_the_same_numbers(kernel, run_module, databases):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {"profile": ["postgresql"], "database_peak": "enforce"})
    assert failed and result["msg"].startswith("Unsafe overcommit plan, nothing changed: ")
    assert "enforced (database_peak=enforce): the plan is unsafe" in result["msg"]
    assert "postgresql 15/main does not fit: configured peak 3989 MiB > room " in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == [] and kernel.live() == BOOT


def test_overcommit_info_with_enforce_says_the_run_would_refuse_with_the_same_numbers(kernel, run_module, databases):
    failed, result = run_module(overcommit_info.main, {"profile": ["postgresql"], "database_peak": "enforce"})
    assert not failed and result["verdict"] == "unsafe"
    assert result["database_verdict"] == result["commit_state"]
    assert result["would_refuse"].startswith("Unsafe overcommit plan, nothing changed: ")
    assert result["databases"][1]["reason"] in result["would_refuse"]


def test_an_unreadable_database_is_reported_with_its_reason_and_judged_by_nothing(kernel, run_module, databases):
    databases.rules.insert(0, (("mariadb",), failure("fail-mariadb-no-auth")))
    failed, result = run_module(overcommit_info.main, {"profile": ["postgresql"], "database_peak": "enforce"})
    assert not failed
    maria = result["databases"][0]
    assert (maria["readable"], maria["failure"]["kind"], maria["configured_peak_kb"], maria["fits"]) == (
        False, "no-auth", None, None)
    assert maria["reason"].startswith("mariadb mariadbd could not be read (no-auth: ")
    # its charge stays in everything else; only PostgreSQL's peak joins the demand
    assert result["bounds"]["demand_kb"] == 1000000 - PG_CHARGE_KB + PG_PEAK_KB


def test_the_metrics_carry_the_sum_of_the_known_configured_peaks(kernel, run_module, databases, tmp_path):
    textfile = tmp_path / "textfiles" / "dbfleet_overcommit.prom"
    textfile.parent.mkdir()
    failed, result = run_module(overcommit_metrics.main, {"profile": ["postgresql"], "textfile": str(textfile)})
    assert not failed, result.get("msg")
    assert result["report"]["database_configured_peak_kb"] == PG_PEAK_KB + MARIADB_PEAK_KB
    assert "dbfleet_overcommit_database_configured_peak_bytes %d\n" % ((PG_PEAK_KB + MARIADB_PEAK_KB) * 1024) in \
        result["metrics"]


def test_state_absent_reads_no_database(kernel, run_module, databases):
    failed, _result = run_module(overcommit.main, {"state": "absent"})
    assert not failed and databases.calls == []


def test_the_modules_import_the_db_layer_only_when_the_reader_is_called():
    """Issue 15: a run pays the import of what it uses. A fresh interpreter imports both modules and
    makes a reader: no _db module is loaded until the reader runs."""
    import os
    import subprocess
    import sys

    code = ("import sys\n"
            "from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info\n"
            "from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import api\n"
            "reader = api.databases_reader(lambda argv, **kw: (127, '', 'not here'))\n"
            "before = sorted(n for n in sys.modules if '.module_utils._db' in n)\n"
            "reader()\n"
            "after = sorted(n for n in sys.modules if '.module_utils._db' in n)\n"
            "print(len(before), len(after) > 0)\n")
    # The child imports the collection from where this interpreter does (a checkout under in-env.sh, or
    # ansible-test units' installed tree, whose path is set up in sys.path and not in the environment).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.split() == ["0", "True"]


def test_enforce_lets_a_run_take_a_host_from_a_limit_its_peak_misses_to_one_it_fits(kernel, run_module, databases):
    """Live mode 2 at ratio 50 leaves non-root about 2.7 GiB: PostgreSQL as installed (configured peak 3706 MiB)
    does not fit it. The plan (ratio 90) does, with no headroom: enforce must not refuse the run that fixes it,
    whose steps pass through the old limit."""
    databases.rules.insert(0, (("psql",), ok(db_text("pg15-settings-installed.txt"))))
    databases.rules.insert(0, (("mariadb",), failure("fail-mariadb-no-auth")))
    kernel.set("overcommit_memory", "2")
    kernel.set_committed(500000)
    args = {"profile": ["postgresql"], "database_peak": "enforce", "headroom_pct": 0}
    failed, result = run_module(overcommit.main, args)
    assert not failed, result.get("msg")
    verdict = result["plan"]["database_verdict"]
    assert verdict["safe"] and verdict["demand_kb"] == 500000 - PG_CHARGE_KB + 3794948
    assert kernel.live()["overcommit_ratio"] == "90" and kernel.live()["overcommit_memory"] == "2"
