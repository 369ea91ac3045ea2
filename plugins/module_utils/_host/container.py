# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is the target a container? Decided from evidence read on the target, and which evidence decided.

Why it matters: vm.* sysctls are not namespaced. In a privileged container a write to
/proc/sys/vm changes the HOST kernel, so ``live: auto`` must stay file-only there. A host
called a container only loses its live write; a container called a host writes the node's
kernel. So any one piece of container evidence is enough, and "host" is what remains.

Two halves, so the rule is testable without a container:

* ``read_evidence(host_path)`` reads every path of ``EVIDENCE`` on the host by regular_file's
  rule: it never opens anything but a regular file (a FIFO planted as /run/.containerenv cannot
  hang it), keeps at most ``READ_CAP_BYTES`` (whole lines only), and gives None for what is
  absent or unreadable and b"" for a marker that exists (or anything there that is not a
  regular file).
* ``detect_container(evidence)`` judges those bytes. It does no I/O.

The order of the checks decides only the *name* we report, never container-or-not: a
container manager naming itself comes first, then Kubernetes (an orchestrator tells the
operator more than the engine under it), then the engines' marker files, then the engine
named by pid 1's cgroup path or by where the root file system comes from, and last the
kernel facts that name no engine (a cgroup namespace, a PID namespace of its own). The same
layering as systemd-detect-virt (src/basic/virt.c), which also puts /.dockerenv after the
managers' own statements because the file can end up in an image built from a container.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file

# name -> logical host path. The reader prefixes each path with host_path().
EVIDENCE: Dict[str, str] = {
    "container_manager": "/run/host/container-manager",  # a manager's own word (systemd-nspawn)
    "systemd_container": "/run/systemd/container",  # systemd in a container records what it was told
    "pid1_environ": "/proc/1/environ",  # container=..., KUBERNETES_SERVICE_HOST=...
    "containerenv": "/run/.containerenv",  # podman (and CRI-O) create it in every container
    "dockerenv": "/.dockerenv",  # docker creates it in every container
    "k8s_secrets_run": "/run/secrets/kubernetes.io",  # the kubelet mounts the service account here
    "k8s_secrets_var_run": "/var/run/secrets/kubernetes.io",
    "pid1_cgroup": "/proc/1/cgroup",  # names the engine with cgroup v1, or v2 without a namespace
    "pid1_mountinfo": "/proc/1/mountinfo",  # the root file system comes from an engine's image store
    "self_mountinfo": "/proc/self/mountinfo",  # the same, when pid 1's is not readable
    "cgroup_type": "/sys/fs/cgroup/cgroup.type",  # the root cgroup has none: we see a nested one
    "pid1_status": "/proc/1/status",  # /proc is ours to read at all
    "pid2_status": "/proc/2/status",  # kthreadd in the init PID namespace
}
# Existence is the evidence: the reader gives b"" when the path exists (a file or a directory).
MARKERS = frozenset({"dockerenv", "k8s_secrets_run", "k8s_secrets_var_run", "cgroup_type"})
# /proc/<pid>/mountinfo on a node with thousands of mounts stays far below this.
READ_CAP_BYTES = 1024 * 1024

KIND_KUBERNETES = "kubernetes"
KIND_OTHER = "container-other"  # a container by the kernel's facts, no engine named

# Pid 1's cgroup path, first match wins (libpod before the machine.slice it sits in).
_CGROUP_ENGINES: Tuple[Tuple[str, str], ...] = (
    ("libpod", "podman"),  # /machine.slice/libpod-<id>.scope, /libpod_parent/libpod-<id>
    ("docker", "docker"),  # /docker/<id>, /system.slice/docker-<id>.scope
    ("containerd", "containerd"),  # /system.slice/containerd.service/..., cri-containerd-<id>.scope
    ("nerdctl", "containerd"),
    ("lxc.payload", "lxc"),  # LXC 4+ and LXD
    ("/lxc/", "lxc"),  # older LXC
    ("systemd-nspawn", "systemd-nspawn"),  # /machine.slice/systemd-nspawn@<name>.service/payload
    ("/machine.slice/", "systemd-nspawn"),  # machined's other containers: /machine.slice/machine-<name>.scope
)
# Where the root mount comes from (its source, root or options in mountinfo).
_IMAGE_STORES: Tuple[Tuple[str, str], ...] = (
    ("io.containerd.snapshotter", "containerd"),  # containerd, k3s, nerdctl
    ("/var/lib/docker/", "docker"),
    ("/containers/storage/", "podman"),  # containers/storage: podman, CRI-O, buildah
    ("/var/lib/lxc/", "lxc"),
    ("/storage-pools/", "lxc"),  # LXD and Incus
    ("/var/lib/machines/", "systemd-nspawn"),
)
_SAFE_KIND = re.compile(r"[^A-Za-z0-9_.-]")
_UNSHOWN = re.compile(r"[^\x20-\x7e]")
_SHOWN_CHARS = 100


@dataclass(frozen=True)
class ContainerVerdict:
    """kind: None on a host, else a printable name ("docker", "kubernetes", "container-other", ...).
    evidence: what decided, as "path: what it said"; target text in it is sanitised."""

    kind: Optional[str]
    evidence: Optional[str]

    @property
    def is_container(self) -> bool:
        return self.kind is not None

    def as_dict(self) -> Dict[str, Optional[str]]:
        return {"kind": self.kind, "evidence": self.evidence}


def sanitize_kind(kind: Optional[str]) -> Optional[str]:
    """Keep a detected kind printable: the evidence is target-controlled text."""
    if kind is None:
        return None
    return _SAFE_KIND.sub("_", kind)[:64] or "container"


def _show(text: str) -> str:
    """Target text for the evidence string: printable ASCII, bounded."""
    text = _UNSHOWN.sub("?", text)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _text(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else data.decode("utf-8", "replace")


def _first_line(data: Optional[bytes]) -> str:
    text = _text(data) or ""
    return text.splitlines()[0].strip() if text.strip() else ""


def _environ(data: Optional[bytes]) -> Dict[str, str]:
    entries = (entry.partition("=") for entry in (_text(data) or "").split("\0") if "=" in entry)
    return {name: value for name, _eq, value in entries}


def _status_fields(data: Optional[bytes]) -> Dict[str, str]:
    fields = {}
    for line in (_text(data) or "").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields[name.strip()] = value.strip()
    return fields


def _cgroup_paths(data: Optional[bytes]) -> Iterator[str]:
    """The path of each /proc/<pid>/cgroup line ("12:memory:/docker/<id>", "0::/")."""
    for line in (_text(data) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            yield parts[2]


def _root_mount(data: Optional[bytes]) -> Optional[Tuple[str, str]]:
    """(fstype, whole line) of the mount that is "/" now: the last one listed there."""
    found = None
    for line in (_text(data) or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - " in line:
            after = line.split(" - ", 1)[1].split()
            found = (after[0] if after else "?", line)
    return found


def _named(path_name: str, kind: str, said: str) -> ContainerVerdict:
    return ContainerVerdict(sanitize_kind(kind), "%s: %s" % (EVIDENCE[path_name], _show(said)))


def _containerenv_engine(data: bytes) -> str:
    for line in (_text(data) or "").splitlines():
        name, _eq, value = line.partition("=")
        if name.strip() == "engine":
            return value.strip().strip('"')
    return ""


def _is_kthreadd(status: Dict[str, str]) -> bool:
    # Kernel threads have no parent and no memory map; only newer kernels add "Kthread: 1".
    parentless_kthreadd = status.get("Name") == "kthreadd" and status.get("PPid") == "0"
    return parentless_kthreadd and "VmSize" not in status and status.get("Kthread", "1") == "1"


def detect_container(evidence: Mapping[str, Optional[bytes]]) -> ContainerVerdict:
    """The verdict from ``evidence`` (EVIDENCE name -> bytes, None when absent or unreadable)."""
    ev = evidence

    # 1. A container manager names itself.
    for name in ("container_manager", "systemd_container"):
        value = _first_line(ev.get(name))
        if value:
            return _named(name, value, value)
    environ = _environ(ev.get("pid1_environ"))
    named_by_env = environ.get("container", "").strip()
    if named_by_env and named_by_env != "oci":
        return _named("pid1_environ", named_by_env, "container=" + named_by_env)

    # 2. Kubernetes: the kubelet gives every pod its API address and (usually) a service account.
    if "KUBERNETES_SERVICE_HOST" in environ:
        return ContainerVerdict(KIND_KUBERNETES, "%s: KUBERNETES_SERVICE_HOST=%s" % (
            EVIDENCE["pid1_environ"], _show(environ["KUBERNETES_SERVICE_HOST"])))
    for name in ("k8s_secrets_run", "k8s_secrets_var_run"):
        if ev.get(name) is not None:
            return ContainerVerdict(KIND_KUBERNETES, "%s exists" % EVIDENCE[name])
    for path in _cgroup_paths(ev.get("pid1_cgroup")):
        if "kubepods" in path:
            return ContainerVerdict(KIND_KUBERNETES, "%s: %s" % (EVIDENCE["pid1_cgroup"], _show(path)))

    # 3. The engines' marker files.
    containerenv = ev.get("containerenv")
    if containerenv is not None:
        engine = _containerenv_engine(containerenv)
        return ContainerVerdict("podman", "%s exists%s" % (
            EVIDENCE["containerenv"], ", engine=%s" % _show(engine) if engine else ""))
    if ev.get("dockerenv") is not None:
        return ContainerVerdict("docker", "%s exists" % EVIDENCE["dockerenv"])

    # 4. Pid 1's cgroup path names an engine (cgroup v1, or v2 without a cgroup namespace).
    for path in _cgroup_paths(ev.get("pid1_cgroup")):
        for hint, kind in _CGROUP_ENGINES:
            if hint in path:
                return ContainerVerdict(kind, "%s: %s" % (EVIDENCE["pid1_cgroup"], _show(path)))

    # 5. The root file system comes from an engine's image store. Our own root counts too: with
    #    --pid=host, pid 1's mountinfo shows the node's root and only ours shows the image.
    for name in ("pid1_mountinfo", "self_mountinfo"):
        root = _root_mount(ev.get(name))
        if root is None:
            continue
        fstype, line = root
        for hint, kind in _IMAGE_STORES:
            if hint in line:
                return ContainerVerdict(kind, "%s: / is %s from %s" % (EVIDENCE[name], _show(fstype), hint))

    if named_by_env == "oci":  # images set it; it names no engine, and nothing above did either
        return _named("pid1_environ", "oci", "container=oci")

    # 6. Kernel facts that name no engine.
    if ev.get("cgroup_type") is not None:
        return ContainerVerdict(KIND_OTHER, "%s exists: the cgroup root here is a nested cgroup "
                                            "(a cgroup namespace)" % EVIDENCE["cgroup_type"])
    pid2 = _status_fields(ev.get("pid2_status"))
    if ev.get("pid1_status") is not None and not _is_kthreadd(pid2):
        seen = "absent" if ev.get("pid2_status") is None else "Name=%s PPid=%s" % (
            _show(pid2.get("Name", "?")), _show(pid2.get("PPid", "?")))
        return ContainerVerdict(KIND_OTHER, "%s: %s, no kernel thread visible (a PID namespace of its own)"
                                % (EVIDENCE["pid2_status"], seen))

    if _is_kthreadd(pid2):
        return ContainerVerdict(None, "no container evidence; %s: kthreadd (the init PID namespace)"
                                % EVIDENCE["pid2_status"])
    return ContainerVerdict(None, "no container evidence")


def read_evidence(host_path: Callable[[str], str]) -> Dict[str, Optional[bytes]]:
    """Every EVIDENCE path read on this host; ``host_path`` maps a logical path to the real one."""
    return {name: _exists(host_path(path)) if name in MARKERS else _read_regular(host_path(path))
            for name, path in EVIDENCE.items()}


def _exists(real: str) -> Optional[bytes]:
    return b"" if os.path.lexists(real) else None


def _read_regular(real: str) -> Optional[bytes]:
    """A regular file's bytes (procfs files are regular files of size 0), read by regular_file's
    rule; None when absent or unreadable; b"" when something else is there (a FIFO, a device, a
    symlink, a directory): it exists, which may be evidence, and what it holds is never read."""
    got = regular_file.read_regular_file(real, READ_CAP_BYTES)
    if got.status == regular_file.STATUS_NOT_REGULAR:
        return b""
    if got.status == regular_file.STATUS_TOO_LARGE and got.data is not None:
        # Keep whole lines (or environ entries) only: a cut line could read as another mount.
        data = got.data
        return data[:max(data.rfind(b"\n"), data.rfind(b"\0")) + 1]
    return got.data if got.is_read else None


def detect() -> Tuple[Optional[str], Optional[str]]:
    """This host's container kind and the evidence that decided, or (None, why not) on a kernel of its own."""
    verdict = detect_container(read_evidence(files.host_path))
    return verdict.kind, verdict.evidence


def systemd_booted() -> bool:
    """sd_booted(3): systemd is PID 1 exactly when /run/systemd/system is a directory."""
    return os.path.isdir(files.host_path("/run/systemd/system"))
