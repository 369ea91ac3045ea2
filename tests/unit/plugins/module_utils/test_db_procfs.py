"""What the database processes commit now (procfs): the kernel's own flags, read from smaps.

The captured smaps are those of Debian 12's PostgreSQL 15 and MariaDB 10.11 in a lab guest; the
expected numbers were added up from the same files by a separate script at capture time.
"""

from __future__ import annotations

import pytest
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    CAPTURED_MARIADB,
    CAPTURED_PG,
    db_text,
    debian12_db_host,
    plant_captured,
    plant_process,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import procfs

POSTMASTER, BACKEND = 6907, 7363
# The shared segments of the cluster: the main one (shared_memory_size 143MB), the SysV header
# (one page), and two SysV dynamic shared memory segments.
PG_SEGMENTS_KB = 146016 + 4 + 28 + 1024


def smaps(*vmas: str) -> str:
    """smaps entries from "start-end perms dev inode path | flags" shorthands."""
    out = []
    for vma in vmas:
        head, _sep, flags = vma.partition(" | ")
        span, perms, dev, inode, *path = head.split()
        out.append("%s %s 00000000 %s %s %s\nSize: 4 kB\nRss: 4 kB\nVmFlags: %s\n"
                   % (span, perms, dev, inode, " ".join(path), flags))
    return "".join(out)


@pytest.mark.parametrize("text, private_kb, extra_kb, segments_kb, huge_kb", [
    # a private writable mapping the kernel accounts: charged
    (smaps("00400000-00500000 rw-p 00:00 0 | rd wr mr mw me ac"), 1024, 0, 0, 0),
    # RELRO: read-only now, charged once it was writable ("ac" stays)
    (smaps("00400000-00401000 r--p 08:01 77 /usr/lib/libc.so.6 | rd mr mw me ac"), 4, 0, 0, 0),
    # text of a library: never charged
    (smaps("00400000-00500000 r-xp 08:01 77 /usr/lib/libc.so.6 | rd ex mr mw me"), 0, 0, 0, 0),
    # a glibc thread arena made with MAP_NORESERVE: charged only in mode 2
    (smaps("4c000000-4c085000 rw-p 00:00 0 | rd wr mr mw me nr"), 0, 532, 0, 0),
    # its PROT_NONE reserve: charged in no mode
    (smaps("4c085000-50000000 ---p 00:00 0 | mr mw me nr"), 0, 0, 0, 0),
    # shared anonymous memory: charged once, as a segment
    (smaps("43bcf000-4ca67000 rw-s 00:01 3 /dev/zero (deleted) | rd wr sh mr mw me ms"), 0, 0, 146016, 0),
    (smaps("4ca67000-4ca68000 rw-s 00:01 0 /SYSV00003988 (deleted) | rd wr sh mr mw me ms"), 0, 0, 4, 0),
    (smaps("7f0000000000-7f0000100000 rw-s 00:19 12 /dev/shm/PostgreSQL.1 | rd wr sh mr mw me ms"), 0, 0, 1024, 0),
    # a shared mapping of an ordinary file, or of io_uring's rings: not charged
    (smaps("43b6f000-43b76000 r--s 08:01 5062 /usr/lib/gconv/gconv-modules.cache | rd sh mr mw me ms"), 0, 0, 0, 0),
    (smaps("43c48000-43c5b000 rw-s 00:0a 487 anon_inode:[io_uring] | rd wr sh mr mw me ms"), 0, 0, 0, 0),
    # huge pages: never charged, whether private or shared
    (smaps("40000000-80000000 rw-s 00:0f 9 /anon_hugepage (deleted) | rd wr sh mr mw me ms ht"), 0, 0, 0, 1048576),
])
def test_each_kind_of_mapping_is_charged_as_the_kernel_charges_it(text, private_kb, extra_kb, segments_kb, huge_kb):
    charge = procfs.charge_of_vmas(1, procfs.parse_vmas(text))
    assert (charge.private_kb, charge.mode2_extra_kb, sum(kb for _k, kb in charge.segments), charge.hugetlb_kb) == (
        private_kb, extra_kb, segments_kb, huge_kb)
    assert charge.exact


@pytest.mark.parametrize("pid, private_kb, extra_kb, segments_kb", [
    (POSTMASTER, 3032, 0, 146016 + 4 + 28),
    (BACKEND, 4504, 0, PG_SEGMENTS_KB),
    (CAPTURED_MARIADB, 532888, 2144, 0),
])
def test_the_captured_servers_charge_what_their_smaps_add_up_to(host_tree, pid, private_kb, extra_kb, segments_kb):
    plant_captured(host_tree, pid)
    charge = procfs.read_process_charge(host_tree.path, pid)
    assert charge is not None
    assert (charge.private_kb, charge.mode2_extra_kb, sum(kb for _k, kb in charge.segments)) == (
        private_kb, extra_kb, segments_kb)


def test_a_cluster_counts_its_shared_segments_once_however_many_processes_map_them(host_tree):
    debian12_db_host(host_tree)
    for pid in CAPTURED_PG[2:]:  # the auxiliary processes were captured without smaps: use the backend's
        plant_captured(host_tree, BACKEND, as_pid=pid)
    total, per_pid = procfs.charge_of_pids(host_tree.path, CAPTURED_PG)
    assert total.shared_kb == PG_SEGMENTS_KB
    assert total.private_kb == 3032 + 4 * 4504
    assert total.charged_kb == total.private_kb + PG_SEGMENTS_KB
    assert sorted(per_pid) == sorted(CAPTURED_PG) and total.exact and total.unreadable == ()


def test_a_process_gone_between_listing_and_reading_is_named_and_the_total_is_not_exact(host_tree):
    plant_captured(host_tree, POSTMASTER)
    total = procfs.charge_of_pids(host_tree.path, [POSTMASTER, 99999])[0]
    assert total.unreadable == (99999,) and not total.exact
    assert total.private_kb == 3032


def test_maps_alone_counts_private_writable_mappings_and_says_it_is_not_exact(host_tree):
    host_tree.file("/proc/%d/maps" % POSTMASTER, db_text("proc/%d/maps.gz" % POSTMASTER))
    charge = procfs.read_process_charge(host_tree.path, POSTMASTER)
    assert charge is not None and not charge.exact
    # RELRO pages are read-only in maps: 1180 kB of the 3032 kB the kernel charges are missed.
    assert charge.private_kb == 3032 - 1180


def test_two_readings_combined_still_count_a_segment_once():
    seg = (("00:01", 3, "/dev/zero (deleted)"), 1000)
    one = procfs.sum_charges([procfs.ProcessCharge(1, 10, 0, (seg,), 0, True)])
    both = procfs.combine([one, one])
    assert (both.private_kb, both.shared_kb) == (20, 1000)


@pytest.mark.parametrize("text", ["not a mapping\n", "VmFlags: rd wr\n"])
def test_text_that_is_not_maps_is_refused(text):
    with pytest.raises(procfs.MapsError):
        procfs.parse_vmas(text)


def test_an_unreadable_smaps_falls_back_to_maps_and_garbage_in_both_gives_nothing(host_tree):
    host_tree.file("/proc/5/smaps", "garbage\n")
    host_tree.file("/proc/5/maps", "garbage too\n")
    assert procfs.read_process_charge(host_tree.path, 5) is None


# --- finding the servers -------------------------------------------------------------------------

@pytest.mark.parametrize("argv, names, expected", [
    (["postgres", "-D", "/srv/pg"], ("-D",), "/srv/pg"),
    (["postgres", "-D/srv/pg"], ("-D",), "/srv/pg"),
    (["mariadbd", "--datadir=/srv/my", "--datadir", "/srv/other"], ("--datadir",), "/srv/other"),
    (["mariadbd"], ("--socket",), None),
])
def test_command_line_options_are_read_as_the_servers_read_them(argv, names, expected):
    assert procfs.option_value(argv, *names) == expected


def test_a_postmasters_config_file_option_is_read():
    argv = ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main", "-c",
            "config_file=/etc/postgresql/15/main/postgresql.conf"]
    assert procfs.pg_config_option(argv, "config_file") == "/etc/postgresql/15/main/postgresql.conf"
    assert procfs.pg_config_option(["postgres", "--data-directory=/x"], "data_directory") == "/x"


def test_postmaster_pid_says_where_the_cluster_listens(host_tree):
    host_tree.file("/var/lib/postgresql/15/main/postmaster.pid", db_text("postmaster.pid"))
    got = procfs.read_postmaster_pid(host_tree.path, "/var/lib/postgresql/15/main")
    assert got == procfs.PostmasterPid(6907, "/var/lib/postgresql/15/main", 5432, "/var/run/postgresql")


@pytest.mark.parametrize("text", ["", "not-a-pid\n", None])
def test_a_missing_or_broken_postmaster_pid_says_nothing(host_tree, text):
    if text is not None:
        host_tree.file("/data/postmaster.pid", text)
    assert procfs.read_postmaster_pid(host_tree.path, "/data") is None


def test_descendants_are_the_server_and_everything_below_it(host_tree):
    plant_process(host_tree, 10, "postgres", 1, 103, b"postgres\0")
    plant_process(host_tree, 11, "postgres", 10, 103, b"postgres: checkpointer\0")
    plant_process(host_tree, 12, "postgres", 11, 103, b"postgres: odd grandchild\0")
    plant_process(host_tree, 13, "bash", 1, 0, b"bash\0")
    procs = procfs.scan_processes(host_tree.path)
    assert procfs.descendants(procs, 10) == (10, 11, 12)


def test_a_process_with_an_unreadable_status_is_skipped(host_tree):
    host_tree.file("/proc/20/status", "Name:\tpostgres\n")  # no PPid, no Uid
    host_tree.file("/proc/20/cmdline", b"postgres\0")
    assert procfs.scan_processes(host_tree.path) == {}
