"""After converge: the drop-ins systemd reads, and nothing where nothing belongs."""

from __future__ import annotations

import json

import pytest

from helpers import PG_DROPIN, show

testinfra_hosts = ["podman://oom-bookworm", "podman://oom-trixie"]
CLUSTER = {"oom-bookworm": "postgresql@15-main.service", "oom-trixie": "postgresql@17-main.service"}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


@pytest.fixture
def result(host):
    return json.loads(host.file("/var/tmp/dbfleet-oom-result.json").content_string)


def test_the_cluster_drop_in_is_in_the_templates_directory_with_the_policy_only(host, name, result):
    """Debian's clusters start through pg_ctlcluster, which sets the postmaster's score (-900) and
    PG_OOM_ADJUST_FILE itself in an environment of its own: only OOMPolicy= has effect there."""
    dropin = host.file(PG_DROPIN)
    assert dropin.is_file and (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)
    header, service = dropin.content_string.split("[Service]\n")
    assert "Managed by Ansible: dbfleet.memory.oom_priority" in header
    assert "# pg_ctlcluster starts the postmaster at -900 itself" in header
    assert service == "OOMPolicy=continue\n"
    unit = {u["unit"]: u for u in result["units"]}[CLUSTER[name]]
    assert result["container"] == "podman"
    assert unit["status"] == "managed" and unit["live"].startswith("left to pg_ctlcluster")


def test_systemd_reads_the_drop_in_for_the_running_cluster(host, name):
    assert PG_DROPIN in show(host, "DropInPaths", CLUSTER[name])
    assert show(host, "OOMPolicy", CLUSTER[name]) == "continue"
    assert show(host, "NeedDaemonReload", CLUSTER[name]) == "no"


def test_debians_oneshot_postgresql_service_gets_nothing(host, result):
    assert not host.file("/etc/systemd/system/postgresql.service.d").exists
    assert {u["unit"]: u["status"] for u in result["units"]}["postgresql.service"] == "oneshot"
