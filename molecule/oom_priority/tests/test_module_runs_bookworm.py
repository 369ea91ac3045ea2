"""oom-bookworm (PostgreSQL 15, MariaDB 10.11), after converge and idempotence: the module against
the real systemd. Refusals change nothing; a score a container honours (a positive one) goes
through drop-in, daemon-reload, read-back and the live main PID, and absent undoes it."""

from __future__ import annotations

import json

from helpers import MARIADB_DROPIN, main_pid_score, run_module, show

testinfra_hosts = ["podman://oom-bookworm"]


def test_minus_1000_on_mariadb_is_refused_and_nothing_changes(host):
    out = run_module("oom-bookworm", profile=["mariadb"], oom_score_adj=-1000)
    assert out.get("failed") and "refused for mariadb, a single-process database" in out["msg"]
    assert not host.file(MARIADB_DROPIN).exists and main_pid_score(host, "mariadb.service") == 0


def test_an_asked_for_negative_score_in_a_container_is_refused(host):
    out = run_module("oom-bookworm", profile=["mariadb"], oom_score_adj=-600)
    assert out.get("failed") and "ineffective in a container (podman" in out["msg"]
    assert not host.file(MARIADB_DROPIN).exists


def test_a_write_to_the_whole_cgroup_is_refused(host):
    out = run_module("oom-bookworm", profile=["postgresql"], live="cgroup")
    assert out.get("failed") and out["msg"].startswith("live: refused")


def test_a_score_goes_to_the_drop_in_systemd_and_the_main_pid_and_absent_undoes_it(host):
    pid = show(host, "MainPID", "mariadb.service")
    out = run_module("oom-bookworm", profile=["mariadb"], oom_score_adj=100)
    assert not out.get("failed"), out.get("msg")
    assert out["changed"] and out["daemon_reload"] and out["live_changes"] == [
        {"unit": "mariadb.service", "pid": int(pid), "before": 0, "after": 100}]
    assert "OOMScoreAdjust=100\n" in host.file(MARIADB_DROPIN).content_string
    assert show(host, "OOMScoreAdjust", "mariadb.service") == "100"
    assert main_pid_score(host, "mariadb.service") == 100
    again = run_module("oom-bookworm", profile=["mariadb"], oom_score_adj=100)
    assert not again["changed"] and not again["daemon_reload"]
    out = run_module("oom-bookworm", profile=["mariadb"], state="absent")
    assert out["changed"] and not host.file(MARIADB_DROPIN).exists
    assert not host.file("/etc/systemd/system/mariadb.service.d").exists
    assert show(host, "OOMScoreAdjust", "mariadb.service") == "0"
    assert main_pid_score(host, "mariadb.service") == 0
    assert show(host, "MainPID", "mariadb.service") == pid


def test_mariadb_in_a_container_has_nothing_with_effect_to_write(host):
    result = json.loads(host.file("/var/tmp/dbfleet-oom-result.json").content_string)
    assert {u["unit"]: u["status"] for u in result["units"]}["mariadb.service"] == "ineffective"
    # The converge wrote nothing for MariaDB (the runs above removed only what they wrote).
    assert not host.file(MARIADB_DROPIN).exists
