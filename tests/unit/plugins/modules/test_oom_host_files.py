"""How _oom.host reads unit files, /proc/PID files and its own drop-ins (regular_file's one rule).

Unit files are read as systemd reads them, through their links (Debian's mysql.service alias
of mariadb.service); nothing but a regular file is ever opened; a file larger than the cap is
unreadable, never cut; and our own drop-ins are read without following links, with "cannot
tell" never taken for "gone".
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import decide as oom_decide
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import host as oom_host
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_systemd import DIRECT_PG_UNIT, PG_ENV

OUR_DROPIN = "/etc/systemd/system/mariadb.service.d/90-dbfleet-oom.conf"
OUR_TEXT = "[Service]\nOOMScoreAdjust=-600\n"


@pytest.fixture
def opened(monkeypatch):
    calls = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


def test_a_fifo_where_a_unit_file_should_be_is_never_opened(kernel, host_tree, opened):
    """Failed before the fix: _read_small had no lstat and opened whatever was there (a FIFO, or a
    device, where an open can act) before fstat told it apart."""
    path = "/etc/systemd/system/postgresql.service.d/50-pipe.conf"
    fifo = host_tree.fifo(path)
    assert oom_host._read_small(path) is None  # pylint: disable=protected-access
    assert fifo not in opened
    assert oom_host.read_unit_text(path) is None
    assert fifo not in opened


def test_a_unit_file_larger_than_the_cap_is_unreadable_not_cut_into_another_value(systemd, monkeypatch):
    """Failed before the fix: the reader kept the first 1 MiB, so a cut falling inside
    "OOMScoreAdjust=-1000" made the unit's own score -1."""
    line = "OOMScoreAdjust=-1000\n"
    head = "[Service]\nType=notify\nExecStart=/usr/bin/postgres -D /srv/pg\n# "
    pad = oom_host._TEXT_CAP_BYTES - len(head) - len("\n") - len("OOMScoreAdjust=-1")  # pylint: disable=protected-access
    systemd.unit_file("postgresql.service", head + "x" * pad + "\n" + line)
    systemd.process(812, -1000, PG_ENV)
    systemd.load("postgresql.service", main_pid=812)
    host = oom_host.read_host_units(systemd.run, ["postgresql"])
    unit = host.units["postgresql.service"]
    assert host.file_texts[unit.fragment_path] is None
    assert oom_decide.unit_own_score(unit, host) is None


def test_a_unit_file_reached_through_an_alias_link_is_read_from_the_link_target(kernel, host_tree):
    """Debian's MariaDB package links /etc/systemd/system/mysql.service to mariadb.service; the
    link is followed inside the host tree, as systemd does on the host."""
    host_tree.file("/lib/systemd/system/mariadb.service", "[Service]\nOOMScoreAdjust=-600\n")
    host_tree.link("/etc/systemd/system/mysql.service", "/lib/systemd/system/mariadb.service")
    assert oom_host.read_unit_text("/etc/systemd/system/mysql.service") == "[Service]\nOOMScoreAdjust=-600\n"


def test_a_masked_unit_link_reads_as_no_text(kernel, host_tree, opened):
    host_tree.link("/etc/systemd/system/redis-server.service", "/dev/null")
    assert oom_host.read_unit_text("/etc/systemd/system/redis-server.service") is None
    assert opened == []


def test_proc_files_are_read_by_the_same_rule(kernel, host_tree):
    host_tree.file("/proc/812/oom_score_adj", "-900\n")
    host_tree.file("/proc/812/environ", PG_ENV)
    proc = oom_host.read_process(812)
    assert (proc.oom_score_adj, proc.readable_environ) == (-900, True)
    gone = oom_host.read_process(813)
    assert (gone.oom_score_adj, gone.readable_environ) == (None, False)


def test_our_drop_in_as_a_symlink_is_refused_not_followed(kernel, host_tree):
    """Failed before the fix: open(2) followed the link and the run took the target for ours."""
    host_tree.link(OUR_DROPIN, host_tree.file("/srv/elsewhere.conf", OUR_TEXT))
    with pytest.raises(oom_host.Refused, match="exists but is not a regular file \\(symlink\\)"):
        oom_host.read_ours()


def test_our_drop_in_that_cannot_be_opened_is_refused_with_the_reason(kernel, host_tree, refuse):
    refuse("open", host_tree.file(OUR_DROPIN, OUR_TEXT))
    with pytest.raises(oom_host.Refused, match="cannot be read whole \\(cannot open: Permission denied\\)"):
        oom_host.read_ours()


def test_our_drop_in_read_whole(kernel, host_tree):
    host_tree.file(OUR_DROPIN, OUR_TEXT)
    host_tree.file("/etc/systemd/system/mariadb.service.d/override.conf", "[Service]\n")
    assert oom_host.read_ours() == {OUR_DROPIN: OUR_TEXT}


def test_a_removal_whose_read_back_cannot_open_the_file_is_not_taken_for_done(kernel, host_tree, refuse, monkeypatch):
    """Failed before the fix: a read-back that could not open the file read as "gone"."""
    refuse("open", host_tree.file(OUR_DROPIN, OUR_TEXT))
    monkeypatch.setattr(files, "remove_file", lambda _path: None)  # a removal that did not happen
    with pytest.raises(files.StepError, match="does not read back as removed \\(still there\\)"):
        files.apply_file(files.FileChange(OUR_DROPIN, OUR_TEXT.encode(), None, "state=absent", prune_dir=True), [])


def test_a_unit_using_the_direct_pg_unit_still_reads_its_own_score(systemd):
    systemd.unit_file("postgresql.service", DIRECT_PG_UNIT)
    systemd.process(812, -200, PG_ENV)
    systemd.load("postgresql.service", main_pid=812)
    host = oom_host.read_host_units(systemd.run, ["postgresql"])
    assert oom_decide.unit_own_score(host.units["postgresql.service"], host) == -200
