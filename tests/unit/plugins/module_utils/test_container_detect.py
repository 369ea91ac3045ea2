"""Container detection from evidence read on the target."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils.container_detect import detect_container, sanitize_kind

HOST_CGROUP_V2 = "0::/init.scope\n"
HOST_CGROUP_V1 = "12:memory:/init.scope\n11:cpu,cpuacct:/\n1:name=systemd:/init.scope\n"


@pytest.mark.parametrize(
    "evidence, kind",
    [
        ({}, None),
        ({"pid1_cgroup": HOST_CGROUP_V2, "pid1_environ": b"HOME=/\0TERM=linux\0"}, None),
        ({"pid1_cgroup": HOST_CGROUP_V1}, None),
        ({"systemd_container": "podman\n"}, "podman"),
        ({"systemd_container": "systemd-nspawn"}, "systemd-nspawn"),
        ({"containerenv": ""}, "podman"),
        ({"containerenv": 'engine="podman-4.3.1"\nname="x"\n'}, "podman"),
        ({"dockerenv": True}, "docker"),
        ({"pid1_environ": b"PATH=/bin\0container=lxc\0"}, "lxc"),
        ({"pid1_environ": "container=oci\0"}, "oci"),
        ({"pid1_cgroup": "12:memory:/docker/0123abcd\n"}, "docker"),
        ({"pid1_cgroup": "0::/kubepods/burstable/pod1/abc\n"}, "kubernetes"),
        ({"pid1_cgroup": "0::/lxc.payload.web1\n"}, "lxc"),
        ({"pid1_cgroup": "0::/machine.slice/libpod-123.scope\n"}, "podman"),
        ({"systemd_container": "", "pid1_cgroup": HOST_CGROUP_V2}, None),
    ],
)
def test_detect_container(evidence, kind):
    assert detect_container(**evidence) == kind


def test_sanitize_kind_keeps_target_text_printable():
    assert sanitize_kind("pod man\x1b[31m") == "pod_man__31m"
    assert sanitize_kind(None) is None
