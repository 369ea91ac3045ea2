"""Container detection: which evidence on the target says "container", and which says nothing.

A container called a host writes the node's kernel (vm.* is not namespaced); a host called a
container only loses its live write. The file contents below are what these files hold on
real hosts and in real containers (ids shortened).
"""

from __future__ import annotations

import os
import threading

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host.container import (
    EVIDENCE,
    MARKERS,
    READ_CAP_BYTES,
    ContainerVerdict,
    detect_container,
    read_evidence,
    sanitize_kind,
)

CID = "3f1c0e2b7a9d5c8e4f6a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6"
POD = "pod8e1b2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e"

# --- A real kernel: Debian 12 on a VM, Debian 13, a UML guest, a Kubernetes node ---------------
DEBIAN12_PID1_ENVIRON = b"HOME=/\0init=/sbin/init\0TERM=linux\0BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64\0"
UML_PID1_ENVIRON = b"HOME=/\0TERM=linux\0"
HOST_CGROUP_V2 = b"0::/init.scope\n"
HOST_CGROUP_V1 = (b"12:pids:/init.scope\n11:memory:/init.scope\n10:cpu,cpuacct:/\n9:devices:/init.scope\n"
                  b"1:name=systemd:/init.scope\n0::/init.scope\n")
DEBIAN12_MOUNTINFO = (
    b"22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    b"23 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    b"24 28 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4010700k,nr_inodes=1002675,mode=755\n"
    b"26 28 0:23 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=805220k,mode=755\n"
    b"28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    b"29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
)
UML_MOUNTINFO = (b"20 1 98:0 / / rw,noatime shared:1 - ext4 /dev/ubda rw\n"
                 b"21 20 0:19 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n")
# A node running pods: the containers' roots are mounted on the node, but not at "/".
NODE_MOUNTINFO = DEBIAN12_MOUNTINFO + (
    b"1402 26 0:313 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/" + CID.encode() + b"/rootfs "
    b"rw,relatime shared:610 - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1."
    b"overlayfs/snapshots/2102/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    b"/2104/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2104/work\n"
    b"1417 26 0:52 / /var/lib/docker/overlay2/5f1c/merged rw,relatime shared:620 - overlay overlay "
    b"rw,lowerdir=/var/lib/docker/overlay2/l/ABC,upperdir=/var/lib/docker/overlay2/5f1c/diff,"
    b"workdir=/var/lib/docker/overlay2/5f1c/work\n"
)
SYSTEMD_STATUS = (b"Name:\tsystemd\nUmask:\t0000\nState:\tS (sleeping)\nTgid:\t1\nNgid:\t0\nPid:\t1\nPPid:\t0\n"
                  b"TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t256\nNSpid:\t1\n"
                  b"VmPeak:\t  166500 kB\nVmSize:\t  102292 kB\nVmRSS:\t   12236 kB\nThreads:\t1\n")
KTHREADD_6_1 = (b"Name:\tkthreadd\nUmask:\t0000\nState:\tS (sleeping)\nTgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\n"
                b"TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t \nNStgid:\t2\n"
                b"NSpid:\t2\nNSpgid:\t0\nNSsid:\t0\nThreads:\t1\nSigQ:\t0/31537\nCapEff:\t000001ffffffffff\n"
                b"Cpus_allowed_list:\t0-3\nvoluntary_ctxt_switches:\t148\nnonvoluntary_ctxt_switches:\t3\n")
KTHREADD_6_12 = KTHREADD_6_1.replace(b"NSsid:\t0\n", b"NSsid:\t0\nKthread:\t1\n")

DEBIAN12_VM = {"pid1_environ": DEBIAN12_PID1_ENVIRON, "pid1_cgroup": HOST_CGROUP_V2,
               "pid1_mountinfo": DEBIAN12_MOUNTINFO, "self_mountinfo": DEBIAN12_MOUNTINFO,
               "pid1_status": SYSTEMD_STATUS, "pid2_status": KTHREADD_6_1}
HOST_VERDICT = ("no container evidence; /proc/2/status: kthreadd (the init PID namespace)")

# --- Containers ---------------------------------------------------------------------------------
SLEEP_STATUS = (b"Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\nNgid:\t0\nPid:\t1\nPPid:\t0\n"
                b"NSpid:\t1\nVmSize:\t    2484 kB\nThreads:\t1\n")
EXEC_SHELL_STATUS = (b"Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\n"
                     b"NSpid:\t2\nVmSize:\t    2580 kB\nThreads:\t1\n")
DOCKER_ENVIRON = b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0HOSTNAME=3f1c0e2b7a9d\0HOME=/root\0"
PODMAN_ENVIRON = b"container=podman\0PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0HOME=/root\0"
K8S_ENVIRON = (b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0HOSTNAME=pg-0\0"
               b"KUBERNETES_SERVICE_PORT=443\0KUBERNETES_PORT=tcp://10.96.0.1:443\0"
               b"KUBERNETES_SERVICE_HOST=10.96.0.1\0HOME=/root\0")
LXC_ENVIRON = b"container=lxc\0container_ttys=pts/0 pts/1\0"
NSPAWN_ENVIRON = b"container=systemd-nspawn\0container_uuid=9a1f3c5e7b2d4f6a8c0e1b3d5f7a9c2e\0"


def cgroup_v1(path):
    return "".join("%d:%s:%s\n" % (n, c, path) for n, c in
                   ((12, "pids"), (11, "memory"), (10, "cpu,cpuacct"), (1, "name=systemd"))).encode()


CGROUP_NS_ROOT = b"0::/\n"  # cgroup v2 with a cgroup namespace: every engine looks the same


def root_mount(fstype, source, options):
    return ("1529 1439 0:298 / / rw,relatime master:445 - %s %s %s\n"
            "1530 1529 0:301 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
            % (fstype, source, options)).encode()


CONTAINERD_ROOT = root_mount("overlay", "overlay", "rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1."
                             "overlayfs/snapshots/2103/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter."
                             "v1.overlayfs/snapshots/2104/fs,workdir=/var/lib/containerd/io.containerd.snapshotter."
                             "v1.overlayfs/snapshots/2104/work")
DOCKER_ROOT = root_mount("overlay", "overlay", "rw,lowerdir=/var/lib/docker/overlay2/l/QX3Z:/var/lib/docker/overlay2/"
                         "l/7TQD,upperdir=/var/lib/docker/overlay2/5f1c/diff,workdir=/var/lib/docker/overlay2/5f1c/work")
PODMAN_ROOT = root_mount("overlay", "overlay", "rw,lowerdir=/var/lib/containers/storage/overlay/l/ZP4D,"
                         "upperdir=/var/lib/containers/storage/overlay/9e2a/diff,"
                         "workdir=/var/lib/containers/storage/overlay/9e2a/work")
LXC_ROOT = b"1201 1190 8:1 /var/lib/lxc/web1/rootfs / rw,relatime - ext4 /dev/sda1 rw,errors=remount-ro\n"
K8S_SYSTEMD_SLICE = ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-%s.slice/cri-containerd-%s.scope"
                     % (POD.replace("-", "_"), CID))
SHOWN_CHARS = 100  # target text in the evidence string is cut here
IN_OWN_PID_NS = {"pid1_status": SLEEP_STATUS}  # /proc/2 absent: no kernel thread in sight


def evidence(*parts, **items):
    merged = {}
    for part in parts:
        merged.update(part)
    merged.update(items)
    return merged


DOCKER_V1 = evidence(IN_OWN_PID_NS, dockerenv=b"", pid1_environ=DOCKER_ENVIRON,
                     pid1_cgroup=cgroup_v1("/docker/" + CID), pid1_mountinfo=DOCKER_ROOT, self_mountinfo=DOCKER_ROOT)
DOCKER_V2 = evidence(DOCKER_V1, pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b"")
PODMAN_V1 = evidence(IN_OWN_PID_NS, containerenv=b"", pid1_environ=PODMAN_ENVIRON,
                     pid1_cgroup=cgroup_v1("/machine.slice/libpod-%s.scope" % CID), pid1_mountinfo=PODMAN_ROOT)
PODMAN_V2 = evidence(PODMAN_V1, pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b"")
K8S_V1 = evidence(IN_OWN_PID_NS, pid1_environ=K8S_ENVIRON, k8s_secrets_run=b"", k8s_secrets_var_run=b"",
                  pid1_cgroup=cgroup_v1("/kubepods/burstable/%s/%s" % (POD, CID)), pid1_mountinfo=CONTAINERD_ROOT)
K8S_V2 = evidence(K8S_V1, pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b"")
LXC_V1 = evidence(pid1_environ=LXC_ENVIRON, pid1_cgroup=cgroup_v1("/lxc/web1"), pid1_mountinfo=LXC_ROOT,
                  pid1_status=SYSTEMD_STATUS)
LXD_V2 = evidence(LXC_V1, systemd_container=b"lxc\n", pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b"")
NSPAWN_V1 = evidence(container_manager=b"systemd-nspawn\n", systemd_container=b"systemd-nspawn\n",
                     pid1_environ=NSPAWN_ENVIRON, pid1_status=SYSTEMD_STATUS,
                     pid1_cgroup=cgroup_v1("/machine.slice/systemd-nspawn@web1.service/payload"))
NSPAWN_V2 = evidence(NSPAWN_V1, pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b"")

# name: (evidence, kind, evidence that decided).
CASES = {
    # Real kernels: never a container, whatever they run.
    "debian12-vm": (DEBIAN12_VM, None, HOST_VERDICT),
    "debian12-cgroup-v1": (evidence(DEBIAN12_VM, pid1_cgroup=HOST_CGROUP_V1), None, HOST_VERDICT),
    "debian13-vm": (evidence(DEBIAN12_VM, pid2_status=KTHREADD_6_12), None, HOST_VERDICT),
    "uml-guest": (evidence(DEBIAN12_VM, pid1_environ=UML_PID1_ENVIRON, pid1_mountinfo=UML_MOUNTINFO,
                           self_mountinfo=UML_MOUNTINFO), None, HOST_VERDICT),
    "kubernetes-node-with-pods-and-docker": (evidence(DEBIAN12_VM, pid1_mountinfo=NODE_MOUNTINFO,
                                                      self_mountinfo=NODE_MOUNTINFO), None, HOST_VERDICT),
    "nothing-readable": ({}, None, "no container evidence"),
    "proc-pids-hidden-hidepid": (evidence(DEBIAN12_VM, pid1_environ=None, pid1_status=None, pid2_status=None),
                                 None, "no container evidence"),
    # One row per engine and cgroup version, with everything that engine leaves.
    "docker-cgroup-v1": (DOCKER_V1, "docker", "/.dockerenv exists"),
    "docker-cgroup-v2": (DOCKER_V2, "docker", "/.dockerenv exists"),
    "podman-cgroup-v1": (PODMAN_V1, "podman", "/proc/1/environ: container=podman"),
    "podman-cgroup-v2": (PODMAN_V2, "podman", "/proc/1/environ: container=podman"),
    "kubernetes-containerd-cgroup-v1": (K8S_V1, "kubernetes", "/proc/1/environ: KUBERNETES_SERVICE_HOST=10.96.0.1"),
    # The issue's case: no container=, no /.dockerenv, cgroup "0::/".
    "kubernetes-containerd-cgroup-v2": (K8S_V2, "kubernetes", "/proc/1/environ: KUBERNETES_SERVICE_HOST=10.96.0.1"),
    "lxc-cgroup-v1": (LXC_V1, "lxc", "/proc/1/environ: container=lxc"),
    "lxd-cgroup-v2": (LXD_V2, "lxc", "/run/systemd/container: lxc"),
    "nspawn-cgroup-v1": (NSPAWN_V1, "systemd-nspawn", "/run/host/container-manager: systemd-nspawn"),
    "nspawn-cgroup-v2": (NSPAWN_V2, "systemd-nspawn", "/run/host/container-manager: systemd-nspawn"),
    # The wiring of each piece of evidence alone (a container that lacks the stronger ones).
    "podman-systemd-image": (evidence(PODMAN_V2, systemd_container=b"podman\n"), "podman",
                             "/run/systemd/container: podman"),
    "podman-privileged-containerenv": (evidence(containerenv=b'engine="podman-4.3.1"\nname="db"\nrootless=0\n'),
                                       "podman", "/run/.containerenv exists, engine=podman-4.3.1"),
    "docker-cgroup-v1-no-dockerenv": (evidence(DOCKER_V1, dockerenv=None), "docker",
                                      "/proc/1/cgroup: /docker/" + CID),
    "docker-cgroup-v2-no-dockerenv": (evidence(DOCKER_V2, dockerenv=None), "docker",
                                      "/proc/1/mountinfo: / is overlay from /var/lib/docker/"),
    "kubernetes-var-run-secrets-only": (evidence(k8s_secrets_var_run=b""), "kubernetes",
                                        "/var/run/secrets/kubernetes.io exists"),
    "kubernetes-run-secrets-only": (evidence(k8s_secrets_run=b""), "kubernetes", "/run/secrets/kubernetes.io exists"),
    "kubernetes-systemd-cgroup-driver-v1": (evidence(pid1_cgroup=cgroup_v1(K8S_SYSTEMD_SLICE)), "kubernetes",
                                            "/proc/1/cgroup: " + K8S_SYSTEMD_SLICE[:SHOWN_CHARS] + "..."),
    "kubernetes-v2-no-env-no-service-account": (
        evidence(K8S_V2, pid1_environ=DOCKER_ENVIRON, k8s_secrets_run=None, k8s_secrets_var_run=None),
        "containerd", "/proc/1/mountinfo: / is overlay from io.containerd.snapshotter"),
    "containerd-root-seen-only-by-us-pid-host": (
        evidence(DEBIAN12_VM, self_mountinfo=CONTAINERD_ROOT), "containerd",
        "/proc/self/mountinfo: / is overlay from io.containerd.snapshotter"),
    "nerdctl-cgroup-v1": (evidence(pid1_cgroup=cgroup_v1("/system.slice/nerdctl-%s.scope" % CID[:12])),
                          "containerd", "/proc/1/cgroup: /system.slice/nerdctl-%s.scope" % CID[:12]),
    "podman-v2-root-only": (evidence(pid1_mountinfo=PODMAN_ROOT), "podman",
                            "/proc/1/mountinfo: / is overlay from /containers/storage/"),
    "lxc-payload-cgroup": (evidence(pid1_cgroup=b"0::/lxc.payload.web1/init.scope\n"), "lxc",
                           "/proc/1/cgroup: /lxc.payload.web1/init.scope"),
    "lxc-root-only": (evidence(pid1_mountinfo=LXC_ROOT), "lxc", "/proc/1/mountinfo: / is ext4 from /var/lib/lxc/"),
    "nspawn-machine-scope-cgroup": (evidence(pid1_cgroup=cgroup_v1("/machine.slice/machine-web1.scope/payload")),
                                    "systemd-nspawn", "/proc/1/cgroup: /machine.slice/machine-web1.scope/payload"),
    "cgroup-namespace-only": (evidence(pid1_cgroup=CGROUP_NS_ROOT, cgroup_type=b""), "container-other",
                              "/sys/fs/cgroup/cgroup.type exists: the cgroup root here is a nested cgroup "
                              "(a cgroup namespace)"),
    "own-pid-namespace-only": (evidence(IN_OWN_PID_NS, pid1_cgroup=CGROUP_NS_ROOT), "container-other",
                               "/proc/2/status: absent, no kernel thread visible (a PID namespace of its own)"),
    "docker-exec-shell-is-pid-2": (evidence(IN_OWN_PID_NS, pid2_status=EXEC_SHELL_STATUS), "container-other",
                                   "/proc/2/status: Name=sh PPid=0, no kernel thread visible "
                                   "(a PID namespace of its own)"),
    "process-named-kthreadd-is-not-a-kernel-thread": (
        evidence(IN_OWN_PID_NS, pid2_status=EXEC_SHELL_STATUS.replace(b"Name:\tsh", b"Name:\tkthreadd")),
        "container-other", "/proc/2/status: Name=kthreadd PPid=0, no kernel thread visible (a PID namespace of its own)"),
    # container=oci names no engine: other evidence names it when there is some.
    "oci-image-under-podman": (evidence(PODMAN_V2, pid1_environ=b"container=oci\0"), "podman", "/run/.containerenv exists"),
    "oci-image-alone": (evidence(pid1_environ=b"container=oci\0", pid1_status=SYSTEMD_STATUS,
                                 pid2_status=KTHREADD_6_1), "oci", "/proc/1/environ: container=oci"),
    # Kubernetes beats the engine under it (dockershim, CRI-O's /run/.containerenv).
    "kubernetes-on-docker": (evidence(DOCKER_V1, pid1_environ=K8S_ENVIRON), "kubernetes",
                             "/proc/1/environ: KUBERNETES_SERVICE_HOST=10.96.0.1"),
    "kubernetes-on-cri-o": (evidence(PODMAN_V2, pid1_environ=K8S_ENVIRON), "kubernetes",
                            "/proc/1/environ: KUBERNETES_SERVICE_HOST=10.96.0.1"),
}

# Containers the detection before issue 8 (markers, container=, engine names in the cgroup
# path) called a host, found by running it on the rows above: these rows failed before the fix.
MISSED_BEFORE_ISSUE_8 = {
    "kubernetes-containerd-cgroup-v2", "kubernetes-v2-no-env-no-service-account", "kubernetes-run-secrets-only",
    "kubernetes-var-run-secrets-only", "docker-cgroup-v2-no-dockerenv", "podman-v2-root-only", "lxc-root-only",
    "containerd-root-seen-only-by-us-pid-host", "nerdctl-cgroup-v1", "nspawn-machine-scope-cgroup",
    "cgroup-namespace-only", "own-pid-namespace-only", "docker-exec-shell-is-pid-2",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_detect_container_says_kind_and_the_evidence_that_decided(name):
    """Every row asserts kind and evidence; MISSED_BEFORE_ISSUE_8 rows failed before the fix."""
    found, kind, decided_by = CASES[name]
    assert unknown_names(found) == set()
    assert detect_container(found) == ContainerVerdict(kind, decided_by)


def unknown_names(found):
    return set(found) - set(EVIDENCE)


def test_kubernetes_with_cgroup_v2_and_no_marker_is_a_container():
    """Issue 8, item 9; failed before the fix: a containerd pod on cgroup v2 has no container=,
    no /.dockerenv and the cgroup "0::/", and was called a host, so live: auto wrote the node's
    kernel. Each piece of evidence such a pod still shows decides alone."""
    pod = evidence(IN_OWN_PID_NS, pid1_environ=DOCKER_ENVIRON, pid1_cgroup=CGROUP_NS_ROOT)
    assert detect_container(pod).kind == "container-other"  # the PID namespace alone
    for extra in ({"cgroup_type": b""}, {"pid1_mountinfo": CONTAINERD_ROOT}, {"k8s_secrets_var_run": b""},
                  {"pid1_environ": K8S_ENVIRON}):
        assert detect_container(evidence(pod, extra)).is_container, extra
    assert not detect_container(DEBIAN12_VM).is_container
    assert all(CASES[name][1] is not None for name in MISSED_BEFORE_ISSUE_8)


def test_target_text_in_kind_and_evidence_is_printable_and_bounded():
    verdict = detect_container({"systemd_container": b"pod man\x1b[31m" + b"x" * 300 + b"\n"})
    assert verdict.kind == sanitize_kind("pod man\x1b[31m" + "x" * 300)
    assert verdict.kind.startswith("pod_man__31m") and len(verdict.kind) == 64
    assert verdict.evidence == "/run/systemd/container: pod man?[31m" + "x" * (SHOWN_CHARS - 12) + "..."
    assert detect_container({"pid1_environ": b"container=\xff\xfe\0"}).kind == "__"


def test_as_dict_is_what_a_module_returns():
    assert detect_container(DOCKER_V2).as_dict() == {"kind": "docker", "evidence": "/.dockerenv exists"}
    assert detect_container(DEBIAN12_VM).as_dict() == {"kind": None, "evidence": HOST_VERDICT}


def test_sanitize_kind_keeps_target_text_printable():
    assert sanitize_kind("pod man\x1b[31m") == "pod_man__31m"
    assert sanitize_kind(None) is None


# --- Reading the evidence on a host ----------------------------------------------------------------

def plant(root, logical, content=b""):
    real = root / logical.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(content)
    return real


def tree(root, found):
    for name, content in found.items():
        if content is None:
            continue
        if name in MARKERS:
            (root / EVIDENCE[name].lstrip("/")).mkdir(parents=True, exist_ok=True)
        else:
            plant(root, EVIDENCE[name], content)
    return lambda path: str(root) + path


@pytest.mark.parametrize("name", ["debian12-vm", "uml-guest", "docker-cgroup-v2", "kubernetes-containerd-cgroup-v2",
                                  "kubernetes-v2-no-env-no-service-account", "own-pid-namespace-only"])
def test_read_evidence_then_detect_on_a_fake_tree(tmp_path, name):
    found, kind, decided_by = CASES[name]
    read = read_evidence(tree(tmp_path, found))
    assert set(read) == set(EVIDENCE)
    assert {k: v for k, v in read.items() if v is not None} == {k: v for k, v in found.items() if v is not None}
    assert detect_container(read) == ContainerVerdict(kind, decided_by)


def test_read_evidence_never_opens_a_fifo(tmp_path):
    """Failed before the fix (dropin_apply read these with open(), which blocks on a FIFO until a
    writer comes): a FIFO planted as /run/.containerenv is seen, never opened."""
    (tmp_path / "run").mkdir()
    os.mkfifo(str(tmp_path / "run" / ".containerenv"))
    os.mkfifo(str(tmp_path / "run" / "systemd-container-fifo"))
    result = {}
    reader = threading.Thread(target=lambda: result.update(read_evidence(lambda p: str(tmp_path) + p)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "read_evidence blocked on a FIFO"
    assert result["containerenv"] == b""  # it exists: podman's marker, content unread
    assert detect_container(result).kind == "podman"


def test_read_evidence_does_not_follow_a_symlink(tmp_path):
    secret = plant(tmp_path, "/etc/shadow", b"root:$6$secret:19000:0:99999:7:::\n")
    (tmp_path / "run" / "systemd").mkdir(parents=True)
    (tmp_path / "run" / "systemd" / "container").symlink_to(secret)
    assert read_evidence(lambda p: str(tmp_path) + p)["systemd_container"] == b""


def test_read_evidence_caps_a_huge_file_at_a_whole_line(tmp_path):
    line = b"1402 26 0:313 / /run/containerd/x rw,relatime shared:610 - overlay overlay rw\n"
    plant(tmp_path, "/proc/1/mountinfo", line * (READ_CAP_BYTES // len(line) + 10))
    data = read_evidence(lambda p: str(tmp_path) + p)["pid1_mountinfo"]
    assert len(data) <= READ_CAP_BYTES and data.endswith(b"\n") and len(data) % len(line) == 0


def test_read_evidence_gives_none_for_an_unreadable_file(tmp_path, monkeypatch):
    """/proc/1/environ needs root (ptrace access to pid 1): without it, the evidence is absent."""
    environ = plant(tmp_path, "/proc/1/environ", b"container=podman\0")
    real_open = os.open

    def refuse_environ(path, *args, **kwargs):
        if path == str(environ):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_environ)
    assert read_evidence(lambda p: str(tmp_path) + p)["pid1_environ"] is None
