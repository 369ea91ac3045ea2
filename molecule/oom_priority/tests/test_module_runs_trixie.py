"""oom-trixie (PostgreSQL 17, a masked mariadb.service, a missing pgbouncer.service)."""

from __future__ import annotations

import json

from helpers import PG_DROPIN, run_module, show

testinfra_hosts = ["podman://oom-trixie"]


def test_a_masked_unit_and_a_missing_one_are_reported_and_untouched(host):
    result = json.loads(host.file("/var/tmp/dbfleet-oom-result.json").content_string)
    statuses = {u["unit"]: u["status"] for u in result["units"]}
    assert statuses["mariadb.service"] == "masked" and statuses["pgbouncer.service"] == "missing"
    assert host.file("/etc/systemd/system/mariadb.service").linked_to == "/dev/null"
    assert not host.file("/etc/systemd/system/mariadb.service.d").exists
    assert not host.file("/etc/systemd/system/pgbouncer.service.d").exists


def test_absent_removes_the_cluster_drop_in_and_systemd_forgets_it(host):
    check = run_module("oom-trixie", check=True, profile=["postgresql"], state="absent")
    assert check["changed"] and host.file(PG_DROPIN).exists
    out = run_module("oom-trixie", profile=["postgresql"], state="absent")
    assert out["changed"] and out["files"] == [{"path": PG_DROPIN, "action": "remove", "why": "state=absent"}]
    assert not host.file(PG_DROPIN).exists
    assert show(host, "OOMPolicy", "postgresql@17-main.service") == "stop"
