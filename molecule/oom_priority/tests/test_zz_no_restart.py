"""Last: across converge, idempotence and every module run above, no database restarted."""

from __future__ import annotations

testinfra_hosts = ["podman://oom-bookworm", "podman://oom-trixie"]
RECORD = ("systemctl show -p Id,MainPID,ActiveEnterTimestamp,NRestarts 'postgresql@*.service' mariadb.service")


def test_main_pid_start_time_and_restarts_are_unchanged(host):
    before = host.file("/var/tmp/dbfleet-oom-before.txt").content_string
    assert "MainPID=" in before
    assert host.check_output(RECORD) == before.rstrip("\n")
