"""A fake /proc and sysctl.d tree for the apply modules' tests.

The fake kernel behaves like mm/util.c where it matters: writing the ratio zeroes
kbytes and vice versa, CommitLimit follows the values, and it can refuse a write, or
take a write and still report an error. Every write goes through the module's real
write_live into the fake /proc/sys tree first, so that path is tested too.
"""

from __future__ import annotations

import os
import stat

PATH = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
MEMTOTAL_KB = 4000000
SWAP_KB = 1000000
PLAN = {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "87", "vm.overcommit_memory": "2"}
PLAN_LIMIT_KB = MEMTOTAL_KB * 87 // 100 + SWAP_KB
CONTENT = (
    "# Managed by Ansible role dbfleet.memory.overcommit; do not edit.\n"
    "vm.admin_reserve_kbytes = 131072\n"
    "vm.overcommit_ratio = 87\n"
    "vm.overcommit_memory = 2\n"
)
BOOT = {"overcommit_memory": "0", "overcommit_ratio": "50", "overcommit_kbytes": "0", "admin_reserve_kbytes": "8192"}
# Read, never written: the kernel's boot default min(free/32, 128 MiB) on a host this size.
USER_RESERVE_KB = "131072"
# The swap of meminfo's SwapTotal, as the kernel lists it and as /etc/fstab brings it back at boot.
PROC_SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
              "/swapfile                               file\t\t%d\t\t0\t\t-2\n" % SWAP_KB)
SWAP_FSTAB = "# <file system> <mount point> <type> <options> <dump> <pass>\n/swapfile none swap sw 0 0\n"
DEBIAN_SYSCTL_CONF = "#\n# /etc/sysctl.conf - Configuration file for setting system variables\n#kernel.domainname = x\n"


class FakeKernel:
    def __init__(self, root, real_write_live=None):
        self.root = root
        self.vm = root / "proc" / "sys" / "vm"
        self.writes = []
        self.refuse = set()
        self.error_after_effect = set()
        self.real_write_live = real_write_live
        self.commit_limit_skew_kb = 0  # a kernel whose CommitLimit is not what the formula says
        self.committed_as_kb = 1000000
        self.hugepage_kb = 0  # with hugetlb (give_hugetlb): the default huge page size

    def get(self, name):
        return (self.vm / name).read_text().strip()

    def set(self, name, value):
        (self.vm / name).write_text(value + "\n")

    def live(self):
        return {name: self.get(name) for name in BOOT}

    def set_committed(self, kb):
        self.committed_as_kb = kb
        self.update_meminfo()

    def update_meminfo(self):
        kbytes = int(self.get("overcommit_kbytes"))
        limit = (kbytes if kbytes else MEMTOTAL_KB * int(self.get("overcommit_ratio")) // 100) + SWAP_KB
        limit += self.commit_limit_skew_kb
        huge = ("HugePages_Total:       0\nHugepagesize:   %8d kB\nHugetlb:               0 kB\n" % self.hugepage_kb
                if self.hugepage_kb else "")
        (self.root / "proc" / "meminfo").write_text(
            "MemTotal:       %8d kB\nSwapTotal:      %8d kB\nCommitLimit:    %8d kB\nCommitted_AS:   %8d kB\n"
            % (MEMTOTAL_KB, SWAP_KB, limit, self.committed_as_kb) + huge
        )

    def give_hugetlb(self, hugepage_kb=2048):
        """A kernel with hugetlb, no huge pages reserved now (x86_64's 2 MiB pages by default)."""
        self.hugepage_kb = hugepage_kb
        self.set("nr_hugepages", "0")
        sizes = self.root / "sys" / "kernel" / "mm" / "hugepages" / ("hugepages-%dkB" % hugepage_kb)
        sizes.mkdir(parents=True)
        (sizes / "nr_hugepages").write_text("0\n")
        self.update_meminfo()

    def write(self, key, value):
        self.writes.append((key, value))
        if key in self.refuse:
            raise OSError(22, "Invalid argument")
        name = key.split(".", 1)[1]
        if self.real_write_live is not None:
            self.real_write_live(key, value)
        self.set(name, value)
        if name == "overcommit_ratio":
            self.set("overcommit_kbytes", "0")
        elif name == "overcommit_kbytes":
            self.set("overcommit_ratio", "0")
        self.update_meminfo()
        if key in self.error_after_effect:
            raise OSError(5, "Input/output error")


LOCK_FILE = "run/dbfleet-memory-overcommit.lock"


def snapshot(root):
    """Every file and link under the fake root, to prove that nothing changed.

    The lock file under /run is left out: a run that took the lock and then refused leaves
    that empty tmpfs file behind by design (flock needs a file; the kernel drops the lock).
    """
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if p == os.path.join(str(root), LOCK_FILE):
                continue
            out[p] = os.readlink(p) if os.path.islink(p) else (open(p).read(), stat.S_IMODE(os.lstat(p).st_mode))
    return out


def plant_systemd_host(root):
    (root / "run" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    generators = root / "usr" / "lib" / "systemd" / "system-generators"
    generators.mkdir(parents=True, exist_ok=True)
    (generators / "systemd-fstab-generator").write_text("")
    (root / "swapfile").write_bytes(b"")
    (root / "etc" / "fstab").write_text(SWAP_FSTAB)
    (root / "proc" / "swaps").write_text(PROC_SWAPS)
    (root / "proc" / "cmdline").write_text("BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/vda1 ro quiet\n")


def no_systemd(root):
    """The fake host without systemd as PID 1 (sd_booted: no /run/systemd/system)."""
    (root / "run" / "systemd" / "system").rmdir()
