"""A later file or /etc/sysctl.conf shadows the drop-in: the role failed the host
(the failing task and its message are asserted in converge) and left no trace."""

from __future__ import annotations

testinfra_hosts = ["podman://shadow-later-file", "podman://shadow-sysctl-conf"]


def test_refused_drop_in_leaves_no_trace(host):
    listing = host.run("ls -A /etc/sysctl.d").stdout.split()
    assert not host.file("/etc/sysctl.d/90-dbfleet-overcommit.conf").exists
    assert not [n for n in listing if n.startswith(".dbfleet-")]
    assert "99-zz-tuning.conf" in listing or host.file("/etc/sysctl.conf").contains("vm.overcommit_ratio = 50")
