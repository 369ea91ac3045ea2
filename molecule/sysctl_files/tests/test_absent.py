"""state=absent removes our drop-in and nothing else."""

from __future__ import annotations

testinfra_hosts = ["podman://absent"]


def test_absent_removes_only_the_drop_in(host):
    assert not host.file("/etc/sysctl.d/90-dbfleet-overcommit.conf").exists
    check = host.run("sha256sum --check --quiet /var/tmp/dbfleet-sysctl-before.txt")
    assert check.rc == 0, check.stdout + check.stderr
    fingerprinted = host.file("/var/tmp/dbfleet-sysctl-before.txt").content_string
    assert "/etc/sysctl.d/50-unrelated.conf" in fingerprinted
    assert "/etc/sysctl.d/95-vendor-override.conf" in fingerprinted
