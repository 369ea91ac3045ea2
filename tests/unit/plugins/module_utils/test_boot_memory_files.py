"""Reading what decides the next boot's memory from a host's files (_boot.memory_files).

Every test plants a fake host in host_tree; its ``path`` is the ``host_path`` the reader maps
logical paths through, so links inside the tree are followed inside it.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import zram
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory_files as bf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_meminfo

GIB = 1024 * 1024
HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
MEMINFO = """MemTotal:        4028732 kB
MemFree:         2912348 kB
MemAvailable:    3521004 kB
SwapTotal:        851964 kB
SwapFree:         851964 kB
CommitLimit:     2866328 kB
Committed_AS:     906880 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
"""


def swaps_line(path: str, kind: str, size_kb: int, prio: int = -2) -> str:
    return "%-40s%s\t%d\t\t0\t\t%d\n" % (path, "partition" if kind == "partition" else "file\t", size_kb, prio)


@pytest.fixture
def host(host_tree):
    """A systemd host as Debian 12 lays it out: generators in /lib, systemd running."""
    host_tree.directory("/run/systemd/system")
    host_tree.file("/lib/systemd/system-generators/systemd-fstab-generator", b"\x7fELF")
    host_tree.file("/proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=6c1b ro quiet\n")
    host_tree.file("/proc/meminfo", MEMINFO)
    host_tree.file("/proc/sys/vm/nr_hugepages", "0\n")
    host_tree.directory("/sys/kernel/mm/hugepages/hugepages-2048kB")
    host_tree.directory("/sys/kernel/mm/hugepages/hugepages-1048576kB")
    host_tree.file("/etc/fstab", "UUID=6c1b / ext4 errors=remount-ro 0 1\n")
    host_tree.file("/proc/swaps", HEADER)
    return host_tree


def read(host):
    return bf.read_boot_memory(host.path)


def boot_swap(host):
    return bf.host_boot_swap(read(host), host.path, 4028732)


def test_a_plain_debian_host_reads_as_systemd_with_the_fstab_generator_and_hugetlb(host):
    got = read(host)
    assert got.systemd and got.hugetlb_supported
    assert got.generators == {bf.FSTAB_GENERATOR: bm.GENERATOR_PRESENT, bf.ZRAM_GENERATOR: bm.GENERATOR_ABSENT}
    assert (got.default_huge_page_kb, got.huge_page_sizes_kb) == (2048, (2048, 1048576))
    assert got.params[-1] == ("quiet", None)
    assert got.notes == ()


def test_swap_switched_on_by_hand_is_not_counted(host):
    host.file("/swapfile", b"")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 785404))
    swap = boot_swap(host)
    assert swap.swaptotal_kb == 0
    assert bm.FIX_HAND_SWAP in swap.items[0].why


def test_a_swap_file_in_fstab_is_counted(host):
    host.file("/swapfile", b"")
    host.file("/etc/fstab", "UUID=6c1b / ext4 errors=remount-ro 0 1\n/swapfile none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 785404))
    swap = boot_swap(host)
    assert (swap.swaptotal_kb, swap.items[0].source) == (785404, "/etc/fstab:2")


def test_a_swap_file_reached_through_a_symlinked_directory_name_in_fstab_is_the_same_file(host):
    host.file("/data/swap/swapfile", b"")
    host.link("/swap", "/data/swap/swapfile")
    host.file("/etc/fstab", "/swap none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/data/swap/swapfile", "file", 65532))
    assert boot_swap(host).swaptotal_kb == 65532


def test_a_uuid_entry_is_matched_through_the_by_uuid_link(host):
    # A regular file stands in for the device node: same_node compares st_dev and st_ino then.
    host.file("/dev/sdb2", b"")
    host.link("/dev/disk/by-uuid/0a4f6d2e-1b3c", "../../sdb2")
    host.file("/etc/fstab", "UUID=0a4f6d2e-1b3c none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/dev/sdb2", "partition", 2097148))
    swap = boot_swap(host)
    assert swap.swaptotal_kb == 2097148 and swap.items[0].source == "/etc/fstab:1"


def test_a_device_node_under_another_name_is_the_same_block_device(host):
    """/proc/swaps says /dev/dm-1; fstab says /dev/mapper/vg0-swap, its own node of 253:1."""
    for name in ("/dev/dm-1", "/dev/mapper/vg0-swap"):
        real = host.path(name)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        os.mknod(real, stat.S_IFBLK | 0o600, os.makedev(253, 1))
    host.file("/etc/fstab", "/dev/mapper/vg0-swap none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/dev/dm-1", "partition", 1048572))
    assert boot_swap(host).swaptotal_kb == 1048572
    same = bf.same_node_on(host.path)
    os.mknod(host.path("/dev/dm-2"), stat.S_IFBLK | 0o600, os.makedev(253, 2))
    assert same("/dev/dm-1", "/dev/dm-2") is False
    assert same("/dev/dm-1", "/dev/nothing") is None


@pytest.mark.parametrize("options, counted", [("sw", True), ("sw,noauto", False), ("sw,nofail", False)])
def test_fstab_options_are_read_from_the_file(host, options, counted):
    host.file("/swapfile", b"")
    host.file("/etc/fstab", "/swapfile none swap %s 0 0\n" % options)
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 65532))
    assert boot_swap(host).swaptotal_kb == (65532 if counted else 0)


def test_a_masked_fstab_generator_counts_no_fstab_swap(host):
    """The lab's image masks every generator this way."""
    host.file("/swapfile", b"")
    host.link("/etc/systemd/system-generators/systemd-fstab-generator", "/dev/null")
    host.file("/etc/fstab", "/swapfile none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 65532))
    got = read(host)
    assert got.generators[bf.FSTAB_GENERATOR] == bm.GENERATOR_MASKED
    swap = bf.host_boot_swap(got, host.path, 4028732)
    assert swap.swaptotal_kb == 0 and "masked" in swap.items[0].why


SWAP_UNIT = "[Unit]\nDescription=Database swap\n\n[Swap]\nWhat=/var/swapfile\n\n[Install]\nWantedBy=swap.target\n"


@pytest.mark.parametrize("enabled", [True, False])
def test_a_swap_unit_counts_when_a_wants_link_enables_it(host, enabled):
    host.file("/var/swapfile", b"")
    host.file("/etc/systemd/system/var-swapfile.swap", SWAP_UNIT)
    if enabled:
        host.link("/etc/systemd/system/swap.target.wants/var-swapfile.swap", "../var-swapfile.swap")
    host.file("/proc/swaps", HEADER + swaps_line("/var/swapfile", "file", 131068))
    got = read(host)
    assert [(u.name, u.what, u.enabled, u.masked) for u in got.swap_units] == \
        [("var-swapfile.swap", "/var/swapfile", enabled, False)]
    assert bf.host_boot_swap(got, host.path, 4028732).swaptotal_kb == (131068 if enabled else 0)


def test_a_unit_in_etc_replaces_one_of_the_same_name_in_lib_and_a_mask_there_masks_fstab(host):
    host.file("/lib/systemd/system/a.swap", "[Swap]\nWhat=/lib-says\n")
    host.file("/etc/systemd/system/a.swap", "[Swap]\nWhat=/etc-says\n")
    host.link("/etc/systemd/system/swapfile.swap", "/dev/null")
    host.file("/swapfile", b"")
    host.file("/etc/fstab", "/swapfile none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 65532))
    got = read(host)
    assert {(u.name, u.what, u.masked) for u in got.swap_units} == {
        ("a.swap", "/etc-says", False), ("swapfile.swap", None, True)}
    assert bf.host_boot_swap(got, host.path, 4028732).swaptotal_kb == 0


def test_a_fifo_planted_as_a_unit_or_fstab_does_not_hang_the_reader(host, deadline):
    host.fifo("/etc/systemd/system/evil.swap")
    os.unlink(host.path("/etc/fstab"))
    host.fifo("/etc/fstab")
    with deadline(5):
        got = read(host)
    assert got.fstab is None and got.swap_units == ()
    assert any("evil.swap" in n for n in got.notes) and any("/etc/fstab" in n for n in got.notes)


def test_zram_generator_config_and_its_drop_ins_are_read_in_order(host):
    host.file("/usr/lib/systemd/system-generators/zram-generator", b"\x7fELF")
    host.file("/usr/lib/systemd/zram-generator.conf", "[zram0]\nzram-size = min(ram / 2, 4096)\n")
    host.file("/usr/lib/systemd/zram-generator.conf.d/10-vendor.conf", "[zram0]\nzram-size = ram\n")
    host.file("/etc/systemd/zram-generator.conf.d/10-vendor.conf", "[zram0]\nzram-size = ram / 4\n")
    host.file("/etc/systemd/zram-generator.conf.d/README", "not a conf file\n")
    host.file("/proc/swaps", HEADER + swaps_line("/dev/zram0", "partition", 2014364, 100))
    got = read(host)
    assert [path for path, _data in got.zram_generator_files] == [
        "/usr/lib/systemd/zram-generator.conf", "/etc/systemd/zram-generator.conf.d/10-vendor.conf"]
    swap = bf.host_boot_swap(got, host.path, 4028732)
    # ram / 4 of 3934 MB: 983.6 MB, i.e. 1007183 kB of disk less mkswap's page.
    assert swap.swaptotal_kb == zram._swap_kb_of_disksize(int(4028732 / 1024 / 4 * 1024 * 1024))
    assert swap.items[0].counted and "ram / 4" in swap.items[0].why


def test_zramswap_counts_when_its_service_is_enabled(host):
    host.file("/lib/systemd/system/zramswap.service", "[Service]\nExecStart=/usr/sbin/zramswap start\n")
    host.link("/etc/systemd/system/multi-user.target.wants/zramswap.service", "/lib/systemd/system/zramswap.service")
    host.file("/etc/default/zramswap", "ALGO=zstd\nPERCENT=25\n")
    host.file("/proc/swaps", HEADER + swaps_line("/dev/zram0", "partition", 1007180, 100))
    got = read(host)
    assert got.zramswap_enabled
    assert bf.host_boot_swap(got, host.path, 4028732).swaptotal_kb == 1007180


def test_without_systemd_no_swap_is_counted(host):
    os.rmdir(host.path("/run/systemd/system"))
    host.file("/swapfile", b"")
    host.file("/etc/fstab", "/swapfile none swap sw 0 0\n")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 65532))
    got = read(host)
    assert not got.systemd and any("systemd is not running" in n for n in got.notes)
    assert bf.host_boot_swap(got, host.path, 4028732).swaptotal_kb == 0


def test_huge_pages_from_the_command_line_and_the_files(host):
    host.file("/proc/cmdline", "root=/dev/sda1 ro default_hugepagesz=1G hugepagesz=1G hugepages=2 "
                               "hugepagesz=2M hugepages=512\n")
    got = read(host)
    assert bf.host_boot_hugetlb(got, None).hugetlb_kb == 2 * GIB + 512 * 2048
    # vm.nr_hugepages from the files sets the default size's (1G) pool.
    assert bf.host_boot_hugetlb(got, "1").hugetlb_kb == 1 * GIB + 512 * 2048


def test_a_kernel_without_hugetlb_is_told_by_the_missing_nr_hugepages(host):
    """As on User-mode Linux: no /proc/sys/vm/nr_hugepages, no /sys/kernel/mm/hugepages."""
    os.unlink(host.path("/proc/sys/vm/nr_hugepages"))
    host.file("/proc/cmdline", "mem=512M hugepages=64\n")
    got = read(host)
    assert not got.hugetlb_supported
    assert bf.host_boot_hugetlb(got, None).hugetlb_kb == 0


def test_command_line_sysctls_are_read_from_proc_cmdline_as_start_values(host):
    host.file("/proc/cmdline", "root=/dev/sda1 sysctl.vm.overcommit_memory=2 sysctl/vm/overcommit_ratio=70\n")
    got = read(host)
    memory = memory_from_meminfo(MEMINFO)
    start = bm.boot_start(memory, got.params, got.default_huge_page_kb, got.hugetlb_supported)
    assert (start["vm.overcommit_memory"], start["vm.overcommit_ratio"], start["vm.user_reserve_kbytes"]) \
        == ("2", "70", str(4028732 // 32))


def test_the_next_boot_of_this_host_and_its_commit_limit(host):
    """Swap by hand today (fstab lists none), 256 huge pages reserved by the command line."""
    host.file("/swapfile", b"")
    host.file("/proc/swaps", HEADER + swaps_line("/swapfile", "file", 851964))
    host.file("/proc/cmdline", "root=/dev/sda1 ro hugepages=256\n")
    got = read(host)
    now = memory_from_meminfo(MEMINFO)
    nxt = bm.next_boot_memory(now, bf.host_boot_swap(got, host.path, now.memtotal_kb),
                              bf.host_boot_hugetlb(got, None))
    assert (nxt.swaptotal_kb, nxt.hugetlb_kb) == (0, 256 * 2048)
    assert commit_limit_kb(now.memtotal_kb, now.hugetlb_kb, now.swaptotal_kb, 50) == 2866328  # the kernel's now
    # ((1007183 - 131072 pages) * 50 / 100 + 0) pages of 4 kB: 1711 MiB instead of 2799 MiB.
    assert commit_limit_kb(nxt.memtotal_kb, nxt.hugetlb_kb, nxt.swaptotal_kb, 50) == 1752220


def test_writers_it_cannot_model_and_a_pending_grub_change_are_reported(host):
    host.file("/etc/systemd/system/tune.service", "[Service]\nExecStart=/usr/sbin/sysctl -w vm.overcommit_ratio=95\n")
    host.link("/etc/systemd/system/multi-user.target.wants/tune.service", "../tune.service")
    host.file("/lib/systemd/system/dphys-swapfile.service", "[Service]\nExecStart=/sbin/dphys-swapfile swapon\n")
    host.link("/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service",
              "/lib/systemd/system/dphys-swapfile.service")
    host.link("/etc/systemd/system/masked.service", "/dev/null")
    host.file("/etc/rc.local", "#!/bin/sh\nswapon /extra\nexit 0\n")
    host.file("/etc/cron.d/boot", "@reboot root /opt/boot.sh\n")
    host.file("/etc/cloud/cloud.cfg.d/90-swap.cfg", "swap:\n  filename: /swap.img\n")
    host.file("/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="hugepages=128"\n')
    found = bf.host_unmodelled(read(host))
    assert found == [
        "/etc/cloud/cloud.cfg.d/90-swap.cfg:1: swap:",
        "/etc/cron.d/boot:1: @reboot root /opt/boot.sh",
        "/etc/rc.local:2: swapon /extra",
        "/etc/systemd/system/tune.service:2: ExecStart=/usr/sbin/sysctl -w vm.overcommit_ratio=95",
        "/lib/systemd/system/dphys-swapfile.service:2: ExecStart=/sbin/dphys-swapfile swapon",
        "/etc/default/grub (GRUB_CMDLINE_LINUX, GRUB_CMDLINE_LINUX_DEFAULT) sets hugepages=128, which /proc/cmdline "
        "lacks: a later boot may differ (not modelled)",
    ]


def test_scripts_that_enabled_units_run_are_scanned_but_binaries_and_modelled_units_are_not(host):
    """The lab's own lab-setup.service switches swap on from a script: only reading it shows that."""
    host.file("/etc/systemd/system/lab-setup.service", "[Service]\nType=oneshot\nExecStart=/usr/local/sbin/lab-setup\n")
    host.file("/usr/local/sbin/lab-setup", "#!/bin/sh\nset -eu\n# enables swap\nif [ -b /dev/ubdb ]; then\n"
                                           "  swapon /dev/ubdb\nfi\n")
    host.file("/lib/systemd/system/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D\n")
    host.link("/etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
    host.file("/usr/sbin/sshd", b"\x7fELF" + b"swapon" * 100)
    host.file("/lib/systemd/system/zramswap.service", "[Service]\nExecStart=/usr/sbin/zramswap start\n")
    host.link("/etc/systemd/system/multi-user.target.wants/zramswap.service", "/lib/systemd/system/zramswap.service")
    host.file("/usr/sbin/zramswap", "#!/usr/bin/env bash\nswapon -p 100 /dev/zram0\n")
    assert bf.host_unmodelled(read(host)) == ["/usr/local/sbin/lab-setup:5: swapon /dev/ubdb"]


def test_an_unreadable_proc_swaps_counts_nothing_and_says_so(host, refuse):
    host.file("/swapfile", b"")
    host.file("/etc/fstab", "/swapfile none swap sw 0 0\n")
    refuse("open", host.path("/proc/swaps"))
    got = read(host)
    assert got.proc_swaps is None and any("/proc/swaps: not read" in n for n in got.notes)
    assert bf.host_boot_swap(got, host.path, 4028732).swaptotal_kb == 0
