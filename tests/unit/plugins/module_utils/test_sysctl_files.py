"""Reading the sysctl directories from a host without ever blocking (sysctl_files).

Every test builds a small host tree in host_tree (under tmp_path); its ``path`` is the
``host_path`` that maps logical paths into it.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr


@pytest.fixture
def host(host_tree):
    """The host tree with the five sysctl.d directories."""
    for directory in sf.SYSCTL_D_DIRS:
        host_tree.directory(directory)
    return host_tree


@pytest.fixture
def opened(monkeypatch):
    """The paths os.open was called with."""
    calls = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: calls.append(str(p)) or real_open(p, *a, **k))
    return calls


def read(host):
    return sf.read_sysctl_sources(host.path)


def test_reads_conf_files_of_all_five_directories_and_sysctl_conf(host):
    """Finding 7: /run/sysctl.d and /usr/local/lib/sysctl.d are read like the others."""
    for directory in sf.SYSCTL_D_DIRS:
        host.file(directory + "/50-a.conf", "vm.overcommit_memory = 0\n")
    host.file("/etc/sysctl.conf", "vm.overcommit_ratio = 50\n")
    host.file("/etc/sysctl.d/README", "not a conf file\n")
    sources = read(host)
    assert sorted(sources) == sorted([d + "/50-a.conf" for d in sf.SYSCTL_D_DIRS] + ["/etc/sysctl.conf"])
    assert all(s.status == sf.STATUS_FILE for s in sources.values())
    assert sources["/run/sysctl.d/50-a.conf"].data == b"vm.overcommit_memory = 0\n"


def test_data_is_raw_bytes_even_when_not_utf8(host):
    """Finding 10: a Latin-1 comment used to raise UnicodeDecodeError (or drop the file)."""
    raw = b"# r\xe9glage\nvm.overcommit_ratio = 87\n\xff\xfe\n"
    host.file("/etc/sysctl.d/60-latin1.conf", raw)
    assert read(host)["/etc/sysctl.d/60-latin1.conf"].data == raw


def test_a_fifo_named_conf_is_skipped_without_blocking(host, deadline):
    """Finding 7: a FIFO named 99-x.conf made the module hang forever in open()."""
    host.fifo("/etc/sysctl.d/99-x.conf")
    host.file("/etc/sysctl.d/90-ours.conf", "vm.overcommit_ratio = 87\n")
    with deadline(5):
        sources = read(host)
    fifo = sources["/etc/sysctl.d/99-x.conf"]
    assert (fifo.status, fifo.kind, fifo.data) == (sf.STATUS_SKIPPED, sf.KIND_FIFO, None)
    assert "fifo" in fifo.note
    assert sources["/etc/sysctl.d/90-ours.conf"].status == sf.STATUS_FILE


def test_a_symlink_to_a_fifo_is_skipped_without_blocking(host, deadline):
    host.fifo("/run/sysctl.d/pipe")
    host.link("/etc/sysctl.d/98-pipe.conf", "/run/sysctl.d/pipe")
    with deadline(5):
        src = read(host)["/etc/sysctl.d/98-pipe.conf"]
    assert (src.status, src.kind, src.target) == (sf.STATUS_SKIPPED, sf.KIND_FIFO, "/run/sysctl.d/pipe")


def test_sysctl_conf_as_a_fifo_does_not_block_either(host, deadline):
    host.fifo("/etc/sysctl.conf")
    with deadline(5):
        src = read(host)["/etc/sysctl.conf"]
    assert src.kind == sf.KIND_FIFO


@pytest.mark.parametrize("target", ["/dev/null", "../../dev/null"])
def test_symlink_to_dev_null_is_masked(host, target):
    host.link("/etc/sysctl.d/50-default.conf", target)
    src = read(host)["/etc/sysctl.d/50-default.conf"]
    assert (src.status, src.kind, src.data) == (sf.STATUS_MASKED, sf.KIND_DEV_NULL, None)


def test_a_chain_of_links_ending_at_dev_null_is_masked(host):
    host.link("/run/sysctl.d/mask", "/dev/null")
    host.link("/etc/sysctl.d/50-default.conf", "/run/sysctl.d/mask")
    assert read(host)["/etc/sysctl.d/50-default.conf"].status == sf.STATUS_MASKED


def test_empty_file_is_a_file_with_no_data(host):
    """Neither tool filters masks at listing time: an empty file simply has no lines."""
    host.file("/etc/sysctl.d/50-default.conf", b"")
    src = read(host)["/etc/sysctl.d/50-default.conf"]
    assert (src.status, src.data, src.note) == (sf.STATUS_FILE, b"", "empty file")


def test_relative_link_is_followed_inside_the_tree(host):
    """Debian 12's /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf."""
    host.file("/etc/sysctl.conf", "vm.overcommit_memory = 2\n")
    host.link("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf")
    src = read(host)["/etc/sysctl.d/99-sysctl.conf"]
    assert (src.status, src.data, src.target) == (sf.STATUS_FILE, b"vm.overcommit_memory = 2\n", "/etc/sysctl.conf")


def test_absolute_link_stays_inside_the_tree(host):
    host.file("/usr/lib/sysctl.d/real.txt", "vm.overcommit_ratio = 1\n")
    host.link("/etc/sysctl.d/70-abs.conf", "/usr/lib/sysctl.d/real.txt")
    assert read(host)["/etc/sysctl.d/70-abs.conf"].data == b"vm.overcommit_ratio = 1\n"


@pytest.mark.parametrize(
    "make, kind",
    [
        pytest.param(lambda h, p: h.link(p, "/nowhere/x.conf"), sf.KIND_DANGLING, id="dangling-link"),
        pytest.param(lambda h, p: h.directory(p), sf.KIND_DIRECTORY, id="directory"),
        pytest.param(lambda h, p: h.link(p, p), sf.KIND_UNREADABLE, id="self-loop"),
    ],
)
def test_other_nodes_are_skipped_with_their_kind(host, make, kind):
    make(host, "/etc/sysctl.d/80-odd.conf")
    src = read(host)["/etc/sysctl.d/80-odd.conf"]
    assert (src.status, src.kind, src.data) == (sf.STATUS_SKIPPED, kind, None)
    assert src.note


def test_a_socket_is_skipped_not_opened(host):
    host.unix_socket("/run/sysctl.d/60-sock.conf")
    src = read(host)["/run/sysctl.d/60-sock.conf"]
    assert (src.status, src.kind) == (sf.STATUS_SKIPPED, sf.KIND_SOCKET)


def test_hidden_conf_names_are_read_because_procps_reads_them(host):
    host.file("/etc/sysctl.d/.hidden.conf", "vm.overcommit_memory = 1\n")
    assert read(host)["/etc/sysctl.d/.hidden.conf"].status == sf.STATUS_FILE


def test_missing_directories_and_sysctl_conf_are_simply_absent(host_tree):
    assert read(host_tree) == {}


def test_oversized_file_is_skipped(host, monkeypatch):
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 10)
    host.file("/etc/sysctl.d/10-big.conf", "vm.overcommit_ratio = 87\n")
    src = read(host)["/etc/sysctl.d/10-big.conf"]
    assert (src.status, src.kind) == (sf.STATUS_SKIPPED, sf.KIND_TOO_LARGE)


def test_the_dev_null_device_itself_is_masked_not_opened(host, monkeypatch):
    """A bind mount or a copied device node can put the device itself at a sysctl.d name."""
    real_open = os.open
    opened = []
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    src = sf.read_source("/etc/sysctl.d/50-null.conf",
                         lambda p: "/dev/null" if p == "/etc/sysctl.d/50-null.conf" else host.path(p))
    assert (src.status, src.kind, src.note) == (sf.STATUS_MASKED, sf.KIND_DEV_NULL, "the /dev/null device")
    assert opened == []


@pytest.mark.parametrize("plant, kind", [
    pytest.param(lambda tree, path: tree.fifo(path), sf.KIND_FIFO, id="fifo"),
    pytest.param(lambda tree, path: tree.char_device(path, 1, 5), sf.KIND_CHAR_DEVICE, id="char-device-zero"),
    pytest.param(lambda tree, path: tree.char_device(path, 5, 0), sf.KIND_CHAR_DEVICE, id="char-device-tty"),
])
def test_a_real_fifo_or_device_other_than_dev_null_is_read_as_what_hangs_the_boot(host, deadline, opened, plant,
                                                                                  kind):
    """The node itself, planted: the reader never opens it and names its kind, and from that
    kind the replay knows that both tools block on it and apply nothing."""
    node = plant(host, "/etc/sysctl.d/60-node.conf")
    host.file("/etc/sysctl.d/90-dbfleet-overcommit.conf", "vm.overcommit_ratio = 87\n")
    with deadline(5):
        sources = read(host)
    src = sources["/etc/sysctl.d/60-node.conf"]
    assert (src.status, src.kind, src.data) == (sf.STATUS_SKIPPED, kind, None)
    assert node not in opened
    for rules in sr.RULE_SETS:
        result = sr.replay(sources, rules, sk.KERNEL_BOOT_DEFAULTS)
        assert (result.hung_on, result.end) == ("/etc/sysctl.d/60-node.conf", sk.KERNEL_BOOT_DEFAULTS), rules.name


def test_a_real_dev_null_device_node_is_a_mask_that_hangs_nothing(host):
    host.char_device("/etc/sysctl.d/90-dbfleet-overcommit.conf", 1, 3)  # a copy of /dev/null's node
    host.file("/usr/lib/sysctl.d/90-dbfleet-overcommit.conf", "vm.overcommit_ratio = 87\n")
    sources = read(host)
    src = sources["/etc/sysctl.d/90-dbfleet-overcommit.conf"]
    assert (src.status, src.kind) == (sf.STATUS_MASKED, sf.KIND_DEV_NULL)
    for rules in sr.RULE_SETS:
        result = sr.replay(sources, rules, sk.KERNEL_BOOT_DEFAULTS)
        assert result.hung_on is None and result.end[sk.RATIO] == "50", rules.name  # the masked file's 87 is not read


def test_a_file_that_cannot_be_opened_is_skipped_with_the_reason(host, refuse):
    refuse("open", host.file("/etc/sysctl.d/60-secret.conf", "vm.overcommit_ratio = 87\n"))
    src = read(host)["/etc/sysctl.d/60-secret.conf"]
    assert (src.status, src.kind, src.note, src.data) == (sf.STATUS_SKIPPED, sf.KIND_UNREADABLE,
                                                          "cannot open: Permission denied", None)
