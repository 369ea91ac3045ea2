"""After converge: the drop-ins systemd reads, and nothing where nothing belongs."""

from __future__ import annotations

import json

import pytest

from helpers import MARIADB_DROPIN, PG_DROPIN, show

testinfra_hosts = ["podman://oom-bookworm", "podman://oom-trixie"]
CLUSTER = {"oom-bookworm": "postgresql@15-main.service", "oom-trixie": "postgresql@17-main.service"}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


@pytest.fixture
def result(host):
    return json.loads(host.file("/var/tmp/dbfleet-oom-result.json").content_string)


def test_the_cluster_drop_in_is_in_the_templates_directory(host):
    dropin = host.file(PG_DROPIN)
    assert dropin.is_file and (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)
    text = dropin.content_string
    assert "Managed by Ansible: dbfleet.memory.oom_priority" in text
    service = text.split("[Service]\n", 1)[1]
    assert "Environment=PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj PG_OOM_ADJUST_VALUE=0\n" in service
    assert "OOMPolicy=continue\n" in service


def test_in_a_container_the_negative_score_is_left_out_and_said_to_be_ineffective(host, name, result):
    text = host.file(PG_DROPIN).content_string
    assert "OOMScoreAdjust=" not in text.split("[Service]\n", 1)[1]
    assert "OOMScoreAdjust=-1000: ineffective in a container (podman)" in text
    units = {u["unit"]: u for u in result["units"]}
    assert result["container"] == "podman"
    assert units[CLUSTER[name]]["status"] == "ineffective"


def test_systemd_reads_the_drop_in_for_the_running_cluster(host, name):
    assert PG_DROPIN in show(host, "DropInPaths", CLUSTER[name])
    assert show(host, "OOMPolicy", CLUSTER[name]) == "continue"
    assert show(host, "NeedDaemonReload", CLUSTER[name]) == "no"


def test_debians_oneshot_postgresql_service_gets_nothing(host, result):
    assert not host.file("/etc/systemd/system/postgresql.service.d").exists
    assert {u["unit"]: u["status"] for u in result["units"]}["postgresql.service"] == "oneshot"
