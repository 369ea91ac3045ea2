"""With overcommit_shadowing=warn the drop-in is written and the result names the winner."""

from __future__ import annotations

import json

testinfra_hosts = ["podman://shadow-warn"]


def test_warned_drop_in_is_written_and_reported_shadowed(host):
    assert host.file("/etc/sysctl.d/90-dbfleet-overcommit.conf").is_file
    result = json.loads(host.file("/var/tmp/dbfleet-apply-result.json").content_string)
    entry = result["shadowing"]["vm.overcommit_memory"]
    assert entry["status"] == "shadowed"
    assert entry["systemd"] == {"path": "/etc/sysctl.d/99-zz-tuning.conf", "value": "0", "lineno": 1, "ours": False}
    assert result["shadowing"]["vm.overcommit_ratio"]["status"] == "ours"
