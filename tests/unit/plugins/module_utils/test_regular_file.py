"""The one rule for reading a host file (regular_file): never block, never open anything but a regular file.

Every test plants its node in host_tree (under tmp_path) and reads it by its real path.
"""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf

CAP_BYTES = 64


@pytest.fixture
def opened(monkeypatch):
    """Every (path, flags) os.open is called with."""
    calls = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        calls.append((str(path), flags))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


def test_a_regular_file_is_read_whole_with_the_non_blocking_flags(host_tree, opened):
    path = host_tree.file("/90-x.conf", b"vm.overcommit_ratio = 87\n")
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.data, got.kind, got.reason) == (rf.STATUS_READ, b"vm.overcommit_ratio = 87\n",
                                                            rf.KIND_REGULAR, None)
    assert got.is_read and got.node is not None and got.node.st_size == 25
    flags = opened[0][1]
    for flag in (os.O_NONBLOCK, os.O_NOFOLLOW, os.O_NOCTTY, os.O_CLOEXEC):
        assert flags & flag
    assert flags & os.O_ACCMODE == os.O_RDONLY


def test_nothing_at_the_path_is_absent(host_tree):
    got = rf.read_regular_file(host_tree.path("/x.conf"), CAP_BYTES)
    assert (got.status, got.data, got.node) == (rf.STATUS_ABSENT, None, None)


def test_a_path_under_a_file_is_absent(host_tree):
    host_tree.file("/file", "")
    got = rf.read_regular_file(host_tree.path("/file/x.conf"), CAP_BYTES)  # ENOTDIR: it cannot exist
    assert got.status == rf.STATUS_ABSENT


def test_a_fifo_is_reported_and_never_opened(host_tree, opened, deadline):
    path = host_tree.fifo("/99-pipe.conf")
    with deadline(5):
        got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.kind, got.data) == (rf.STATUS_NOT_REGULAR, rf.KIND_FIFO, None)
    assert got.reason == "not a regular file (fifo); not opened" and opened == []


def test_a_symlink_is_reported_and_never_followed(host_tree, opened):
    secret = host_tree.file("/shadow", "root:$6$secret\n")
    path = host_tree.link("/link.conf", secret)
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.kind, got.data) == (rf.STATUS_NOT_REGULAR, rf.KIND_SYMLINK, None)
    assert opened == []


def test_a_directory_is_reported_and_never_opened(host_tree, opened):
    path = host_tree.directory("/80-dir.conf")
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.kind) == (rf.STATUS_NOT_REGULAR, rf.KIND_DIRECTORY) and opened == []


def test_a_socket_is_reported_and_never_opened(host_tree, opened):
    got = rf.read_regular_file(host_tree.unix_socket("/s"), CAP_BYTES)
    assert (got.status, got.kind) == (rf.STATUS_NOT_REGULAR, rf.KIND_SOCKET) and opened == []


def test_a_device_is_reported_with_its_numbers_and_never_opened(opened):
    """/dev/null itself: sysctl_files tells a mask by its device numbers."""
    got = rf.read_regular_file("/dev/null", CAP_BYTES)
    assert (got.status, got.kind) == (rf.STATUS_NOT_REGULAR, rf.KIND_CHAR_DEVICE)
    assert got.node.st_rdev == os.makedev(1, 3) and opened == []


def test_more_than_the_cap_is_too_large_and_keeps_only_the_first_cap_bytes(host_tree):
    path = host_tree.file("/big", b"a" * CAP_BYTES + b"b")
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.data, got.reason) == (rf.STATUS_TOO_LARGE, b"a" * CAP_BYTES,
                                                  "larger than %d bytes" % CAP_BYTES)
    assert not got.is_read


def test_exactly_the_cap_is_read(host_tree):
    path = host_tree.file("/full", b"a" * CAP_BYTES)
    assert rf.read_regular_file(path, CAP_BYTES).data == b"a" * CAP_BYTES


def test_the_cap_holds_for_procfs_files_whose_size_says_zero():
    """/proc/self/status reports st_size 0 and still has content: the cap counts what read() returns."""
    assert os.stat("/proc/self/status").st_size == 0
    assert rf.read_regular_file("/proc/self/status", 1 << 20).data.startswith(b"Name:")
    assert rf.read_regular_file("/proc/self/status", 5).status == rf.STATUS_TOO_LARGE


def test_a_refused_open_is_unreadable_with_the_reason(host_tree, refuse):
    path = host_tree.file("/environ", b"container=podman\0")
    refuse("open", path)
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.reason, got.errno_code, got.data) == (
        rf.STATUS_UNREADABLE, "cannot open: Permission denied", errno.EACCES, None)


def test_a_refused_lstat_is_unreadable_not_absent(host_tree, refuse):
    """EACCES on a directory on the way says nothing about whether the file exists."""
    path = host_tree.file("/90-x.conf", "x\n")
    refuse("lstat", path)
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.reason) == (rf.STATUS_UNREADABLE, "cannot lstat: Permission denied")


def test_a_read_error_is_unreadable(host_tree, monkeypatch):
    path = host_tree.file("/x", "x\n")

    def fail(_fd, _n):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "read", fail)
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.status, got.reason, got.errno_code) == (rf.STATUS_UNREADABLE, "cannot read: Input/output error",
                                                        errno.EIO)


def _lstat_sees(monkeypatch, swapped_path, seen_instead):
    """lstat of swapped_path reports seen_instead's node: the path was swapped after the lstat."""
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: real_lstat(
        str(seen_instead) if str(p) == str(swapped_path) else p, *a, **k))


def test_a_fifo_swapped_in_after_the_lstat_is_opened_without_blocking_and_not_read(host_tree, monkeypatch, deadline):
    regular = host_tree.file("/regular", "x\n")
    fifo = host_tree.fifo("/99-x.conf")
    _lstat_sees(monkeypatch, fifo, regular)
    with deadline(5):
        got = rf.read_regular_file(fifo, CAP_BYTES)
    assert (got.status, got.kind, got.reason) == (rf.STATUS_NOT_REGULAR, rf.KIND_FIFO,
                                                  "became a fifo after lstat; not read")


def test_a_symlink_swapped_in_after_the_lstat_is_not_followed(host_tree, monkeypatch):
    regular = host_tree.file("/regular", "x\n")
    link = host_tree.link("/link", regular)
    _lstat_sees(monkeypatch, link, regular)
    got = rf.read_regular_file(link, CAP_BYTES)
    assert (got.status, got.kind, got.data) == (rf.STATUS_NOT_REGULAR, rf.KIND_SYMLINK, None)


def test_another_regular_file_swapped_in_after_the_lstat_is_not_read(host_tree, monkeypatch):
    first = host_tree.file("/first", "what lstat saw\n")
    second = host_tree.file("/second", "what open found\n")
    _lstat_sees(monkeypatch, second, first)
    got = rf.read_regular_file(second, CAP_BYTES)
    assert (got.status, got.data) == (rf.STATUS_UNREADABLE, None)
    assert got.reason == "replaced by another file between lstat and open; not read"


@pytest.mark.parametrize("mode, kind", [(0o100644, rf.KIND_REGULAR), (0o040755, rf.KIND_DIRECTORY),
                                        (0o120777, rf.KIND_SYMLINK), (0o010644, rf.KIND_FIFO),
                                        (0o020666, rf.KIND_CHAR_DEVICE), (0o060660, rf.KIND_BLOCK_DEVICE),
                                        (0o140755, rf.KIND_SOCKET), (0o000644, rf.KIND_OTHER)])
def test_kind_of_names_every_node_type(mode, kind):
    assert rf.kind_of(mode) == kind


def test_resolve_links_follows_a_chain_inside_the_tree(host_tree):
    host_tree.file("/lib/mariadb.service", "[Service]\n")
    host_tree.link("/etc/mysql.service", "/lib/mariadb.service")  # absolute: stays in the tree
    host_tree.link("/etc/mysqld.service", "mysql.service")
    assert rf.resolve_links("/etc/mysqld.service", host_tree.path) == ("/lib/mariadb.service", None)


@pytest.mark.parametrize("target, want", [
    ("/dev/null", ("/dev/null", None)),
    ("/nowhere", ("/nowhere", "dangling")),
    ("/etc/x", ("/etc/x", "loop")),
])
def test_resolve_links_stops_at_dev_null_and_names_a_dangling_link_or_a_loop(host_tree, target, want):
    host_tree.link("/etc/x", target)
    assert rf.resolve_links("/etc/x", host_tree.path) == want


def test_a_read_back_counts_as_absent_only_when_nothing_is_there(host_tree, refuse):
    path = host_tree.path("/90-x.conf")
    assert rf.read_regular_file(path, CAP_BYTES).not_absent() is None
    host_tree.file("/90-x.conf", "x\n")
    assert rf.read_regular_file(path, CAP_BYTES).not_absent() == "still there"
    refuse("lstat", path)
    assert rf.read_regular_file(path, CAP_BYTES).not_absent() == "cannot lstat: Permission denied"


def test_a_read_back_holds_the_content_only_when_read_whole(host_tree):
    path = host_tree.file("/90-x.conf", b"a" * CAP_BYTES + b"b")
    assert rf.read_regular_file(path, CAP_BYTES).not_holding(b"a" * CAP_BYTES) == "larger than 64 bytes"
    host_tree.file("/90-x.conf", b"new\n")
    got = rf.read_regular_file(path, CAP_BYTES)
    assert (got.not_holding(b"new\n"), got.not_holding(b"old\n")) == (None, "other content")
    assert rf.read_regular_file(host_tree.path("/gone"), CAP_BYTES).not_holding(b"new\n") == "absent"
