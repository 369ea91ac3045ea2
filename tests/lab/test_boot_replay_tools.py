"""The tool side of the boot replay against this machine's real systemd-sysctl and procps.

No guest and no kernel: each case's files are laid out in a temporary tree, and the real
tool runs in a private mount namespace where the sysctl directories are bind mounts of
that tree and /proc/sys is a tmpfs holding fake vm files (checked before the tool runs:
nothing here can write a sysctl of this machine). strace records every write under
/proc/sys. The replay runs with a stand-in kernel that just stores the text written,
as the tmpfs files do, so the comparison is about the tools alone: which files, in which
order, how lines and keys are read, globs and exclusions, one entry per key, skipped
unchanged writes and hangs. What the kernel makes of the values is the UML lab's
test_boot_replay_differential.py.

Two sets of tools: this machine's (Debian 12: systemd 252, procps 4.0.2) and Debian 13's
(systemd 257, procps 4.0.4) from the trixie root filesystem that scripts/build-rootfs.sh
builds for molecule, run with chroot inside the same kind of namespace.

Needs root, unshare(1) and strace(1) (scripts/system-deps.sh installs them); fails, never
skips, without them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import List, Tuple

import pytest

from replay_cases import CASES, START, Case

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Inside the namespace. set -e: if any mount fails, no tool runs. Exit 99: /proc/sys is not
# the fake tmpfs, so the tool must not run. With CHROOT=- the tools are this machine's and
# the case tree is bind-mounted over its sysctl directories; otherwise the tree is copied
# into the chroot (a scratch copy of a root filesystem) and the tool runs there.
NAMESPACE_SCRIPT = r"""
set -e
R=$1; C=$2; LOG=$3; shift 3
if [ "$C" = - ]; then
  C=
  mount --bind "$R/etc/sysctl.d" /etc/sysctl.d
  mount -t tmpfs none /run && mkdir -p /run/sysctl.d && mount --bind "$R/run/sysctl.d" /run/sysctl.d
  mount -t tmpfs none /usr/local/lib && mkdir -p /usr/local/lib/sysctl.d
  mount --bind "$R/usr/local/lib/sysctl.d" /usr/local/lib/sysctl.d
  mount --bind "$R/usr/lib/sysctl.d" /usr/lib/sysctl.d
  if [ -e /etc/sysctl.conf ]; then mount --bind "$R/etc/sysctl.conf" /etc/sysctl.conf; fi
  mount -t tmpfs none /proc/sys
  RUN=
else
  rm -rf "$C/etc/sysctl.d" "$C/run/sysctl.d" "$C/usr/local/lib/sysctl.d" "$C/usr/lib/sysctl.d" "$C/etc/sysctl.conf"
  mkdir -p "$C/run" "$C/usr/local/lib"
  cp -a "$R/etc/sysctl.d" "$R/etc/sysctl.conf" "$C/etc/"
  cp -a "$R/run/sysctl.d" "$C/run/"
  cp -a "$R/usr/local/lib/sysctl.d" "$C/usr/local/lib/"
  cp -a "$R/usr/lib/sysctl.d" "$C/usr/lib/"
  mount --bind /dev "$C/dev"
  mount -t proc proc "$C/proc"
  mount -t tmpfs none "$C/proc/sys"
  RUN="chroot $C"
fi
cp -a "$R/proc/sys/." "$C/proc/sys/"
[ "$(stat -f -c %T "$C/proc/sys/vm/overcommit_ratio")" = tmpfs ] || exit 99
rc=0
strace -f -qq -e trace=openat,write -e signal=none -s 300 -o "$LOG" timeout 3 $RUN "$@" >/dev/null 2>&1 || rc=$?
echo "rc=$rc"
"""


def stored_text_kernel(state, key, raw):
    """A stand-in for _kernel.sysctl.kernel_write: stores the first line written, like a tmpfs file."""
    new = {k: (state.get(k) if state.get(k) is not None else sk.KERNEL_BOOT_DEFAULTS[k]) for k in sk.MANAGED_KEYS}
    new[key] = raw.split(b"\n")[0].decode("latin-1")
    return sk.KernelWrite(key, new, True, None, True, new[key])


def lay_out(case: Case, root: str, vendor_dir: str) -> None:
    for directory in ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "proc/sys/vm"):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    for name in os.listdir(vendor_dir):  # the distribution's own vendor files
        shutil.copy(os.path.join(vendor_dir, name), os.path.join(root, "usr/lib/sysctl.d", name))
    with open(os.path.join(root, "etc/sysctl.conf"), "wb") as conf:
        conf.write(case.sysctl_conf if case.sysctl_conf is not None else b"# no settings\n")
    if not case.drop_debian_link:
        os.symlink("../sysctl.conf", os.path.join(root, "etc/sysctl.d/99-sysctl.conf"))
    for node in case.nodes:
        path = root + node.path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if node.link is not None:
            os.symlink(node.link, path)
        elif node.fifo:
            os.mkfifo(path)
        elif node.directory:
            os.makedirs(path)
        else:
            with open(path, "wb") as out:
                out.write(node.data or b"")
    for key, value in START.items():
        with open(os.path.join(root, "proc/sys", key.replace(".", "/")), "w") as out:
            out.write(value + "\n")


def run_real(root: str, chroot: str, argv: List[str]) -> Tuple[bool, List[Tuple[str, bytes]]]:
    """(hung, [(key, value written)]) for the managed keys, from strace's record."""
    log = os.path.join(root, "strace.log")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "ns",
                           root, chroot, log] + argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "rc=" in proc.stdout, "namespace setup failed: %s" % proc.stderr
    hung = proc.stdout.strip().endswith("rc=124")
    fds = {}
    writes = []
    with open(log, errors="replace") as record:
        for line in record:
            pid = line.split(" ", 1)[0]
            opened = re.search(r'openat\(AT_FDCWD, "(/proc/sys/[^"]*)", .*\) = (\d+)$', line.strip())
            if opened:
                fds[(pid, opened.group(2))] = opened.group(1)
            written = re.search(r'write\((\d+), "((?:[^"\\]|\\.)*)"', line)
            if written and (pid, written.group(1)) in fds:
                path = fds[(pid, written.group(1))][len("/proc/sys/"):]
                key = "/".join(p for p in path.split("/") if p).replace("/", ".")
                value = written.group(2).encode().decode("unicode_escape").encode("latin-1")
                if key in sk.MANAGED_KEYS:
                    writes.append((key, value.split(b"\n")[0]))
    return hung, writes


def _version(argv: List[str], word: int) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()[word]


def _tool_set(chroot: str) -> Tuple[str, str, list]:
    """(chroot, vendor dir, [(rules, argv)]) for the tools of this machine (chroot "-") or a root fs."""
    prefix = [] if chroot == "-" else ["chroot", chroot]
    base = "" if chroot == "-" else chroot
    systemd_sysctl = next((p for p in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
                           if os.path.exists(base + p)), None)
    if systemd_sysctl is None:
        pytest.fail("no systemd-sysctl under %s" % (base or "/"))
    systemd_version = _version(prefix + ["systemctl", "--version"], 1)
    procps_version = _version(prefix + ["sysctl", "--version"], -1)
    found = [(sr.RULES_BY_NAME.get("systemd-" + systemd_version), [systemd_sysctl]),
             (sr.RULES_BY_NAME.get("procps-" + procps_version), ["sysctl", "--system"])]
    if any(rules is None for rules, _argv in found):
        pytest.fail("no rule set for systemd %s / procps %s" % (systemd_version, procps_version))
    return chroot, base + "/usr/lib/sysctl.d", found


@pytest.fixture(scope="module", params=["debian12-host", "debian13-rootfs"])
def tools(request, tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("strace"):
        pytest.fail("needs root, unshare and strace (scripts/system-deps.sh)")
    if request.param == "debian12-host":
        return _tool_set("-")
    tarball = subprocess.run([os.path.join(REPO, "scripts/build-rootfs.sh"), "trixie"], capture_output=True,
                             text=True, check=True).stdout.strip()
    root = str(tmp_path_factory.mktemp("trixie-root"))
    subprocess.run(["tar", "-C", root, "-xf", tarball], check=True)
    return _tool_set(root)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replayed_writes_are_the_real_tools_writes(tools, case, monkeypatch):
    chroot, vendor_dir, tool_set = tools
    monkeypatch.setattr(sr.sk, "kernel_write", stored_text_kernel)
    root = tempfile.mkdtemp(prefix="replay-tools-")
    try:
        lay_out(case, root, vendor_dir)
        sources = sf.read_sysctl_sources(lambda p: root + p)
        for rules, argv in tool_set:
            predicted = sr.replay(sources, rules, START)
            hung, real = run_real(root, chroot, argv)
            model = [(w.key, w.raw) for w in predicted.writes if not w.suppressed]
            assert (predicted.hung_on is not None, model) == (hung, real), rules.name
    finally:
        shutil.rmtree(root)
