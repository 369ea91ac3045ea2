# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is the target a container? Decided from evidence read on the target.

Why it matters: vm.* sysctls are not namespaced. In a privileged container a
write to /proc/sys/vm changes the HOST kernel, so the apply step must stay
file-only there. The caller reads the evidence (files may be missing or
unreadable: pass None); this function only judges it, so it is testable
without a container.
"""

from __future__ import annotations

import re
from typing import Optional, Union

# Checked in this order: the most specific evidence first.
EVIDENCE_PATHS = {
    "systemd_container": "/run/systemd/container",  # written by systemd when it detects one
    "containerenv": "/run/.containerenv",  # podman, always
    "dockerenv": "/.dockerenv",  # docker, always
    "pid1_environ": "/proc/1/environ",  # container=... set by podman, lxc, nspawn
    "pid1_cgroup": "/proc/1/cgroup",  # cgroup v1 paths name the engine
}

_CGROUP_HINTS = (
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("docker", "docker"),
    ("containerd", "containerd"),
    ("lxc.payload", "lxc"),
    ("/lxc/", "lxc"),
    ("machine.slice/systemd-nspawn", "systemd-nspawn"),
)


def _text(data: Union[str, bytes, None]) -> Optional[str]:
    if data is None:
        return None
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def detect_container(
    systemd_container: Union[str, bytes, None] = None,
    containerenv: Union[str, bytes, None] = None,
    dockerenv: bool = False,
    pid1_environ: Union[str, bytes, None] = None,
    pid1_cgroup: Union[str, bytes, None] = None,
) -> Optional[str]:
    """The container kind ("podman", "docker", "lxc", ...) or None for a real kernel.

    ``containerenv`` is the content of /run/.containerenv (an empty string when
    the file exists but is empty, None when absent); ``dockerenv`` says whether
    /.dockerenv exists.
    """
    kind = (_text(systemd_container) or "").strip()
    if kind:
        return kind
    if containerenv is not None:
        return "podman"
    if dockerenv:
        return "docker"
    environ = _text(pid1_environ)
    if environ:
        for entry in environ.split("\0"):
            if entry.startswith("container="):
                return entry.split("=", 1)[1].strip() or "container"
    cgroup = _text(pid1_cgroup)
    if cgroup:
        for line in cgroup.splitlines():
            path = line.split(":", 2)[-1]
            for hint, name in _CGROUP_HINTS:
                if hint in path:
                    return name
    return None


_SAFE_KIND = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_kind(kind: Optional[str]) -> Optional[str]:
    """Keep a detected kind printable: the evidence is target-controlled text."""
    if kind is None:
        return None
    return _SAFE_KIND.sub("_", kind)[:64] or "container"
