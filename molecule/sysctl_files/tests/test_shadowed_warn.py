"""With overcommit_shadowing=warn the drop-in is written and the result names the winner."""

from __future__ import annotations

import json

testinfra_hosts = ["podman://shadow-warn"]


def test_warned_drop_in_is_written_and_reported_shadowed(host):
    assert host.file("/etc/sysctl.d/90-dbfleet-overcommit.conf").is_file
    result = json.loads(host.file("/var/tmp/dbfleet-apply-result.json").content_string)
    entry = result["shadowing"]["vm.overcommit_memory"]
    assert entry["status"] == "shadowed"
    # Replayed per tool version: procps writes every line in file order, so the later file decides.
    assert entry["by_tool"]["procps-4.0.2 boot"] == {
        "value": "0", "decided_by": "/etc/sysctl.d/99-zz-tuning.conf:1", "ours": False}
    assert entry["by_tool"]["systemd-257 boot"]["value"] == "0"
    assert result["shadowing"]["vm.overcommit_ratio"]["status"] == "ours"
