"""A host whose Committed_AS makes mode 2 infeasible: the role failed it (asserted in
converge) and left sysctl.d untouched."""

from __future__ import annotations

from expectations import FAILING, container_hosts

testinfra_hosts = container_hosts(FAILING)


def test_failed_host_has_no_dropin_and_no_temp_file(host):
    listing = sorted(host.run("ls -A /etc/sysctl.d").stdout.split())
    assert listing == ["README.sysctl"]  # trixie's stock /etc/sysctl.d, nothing added
