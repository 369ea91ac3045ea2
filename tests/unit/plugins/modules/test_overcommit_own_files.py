"""Our own drop-in as the overcommit module finds it, and as it reads back what it wrote.

The rule (_host.files.read_own): a file named NN-dbfleet-overcommit.conf is ours only when
it can be read in full. Anything else there (a FIFO, a symlink, a directory, a file too large to
read whole, one that cannot be opened or even lstat'ed) is refused with nothing changed: a run
must never take it for absent, overwrite it without having read it, or remove it, because a
rollback could not put back what it never read. The same reader verifies what a run wrote and
removed; "cannot tell" is never "gone".
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.modules import overcommit
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import BOOT, CONTENT, snapshot

DROPIN = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
PG = {"profile": ["postgresql"]}


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("make, kind", [
    pytest.param(lambda tree: tree.fifo(DROPIN), "fifo", id="fifo"),
    pytest.param(lambda tree: tree.link(DROPIN, "/usr/lib/sysctl.d/50-pid-max.conf"), "symlink", id="symlink"),
    pytest.param(lambda tree: tree.directory(DROPIN), "directory", id="directory"),
])
def test_a_dropin_name_that_is_not_a_regular_file_is_refused_and_left_alone(kernel, host_tree, run_module, deadline,
                                                                            make, kind, state):
    make(host_tree)
    with deadline(20):
        failed, result = run_module(overcommit.main, dict(PG, state=state))
    assert failed and result["msg"] == (
        "Nothing changed: %s exists but is not a regular file (%s); look at it and remove it by hand"
        % (DROPIN, kind))
    assert kernel.writes == [] and os.path.lexists(host_tree.path(DROPIN))


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_dropin_too_large_to_read_whole_is_refused_not_overwritten(kernel, host_tree, run_module, monkeypatch,
                                                                     state):
    """Failed before the fix: the drop-in reader had no cap, so any size was read into memory
    and then overwritten or removed. Now it is refused at the cap the boot replay uses."""
    monkeypatch.setattr(files, "MAX_FILE_BYTES", len(CONTENT) - 1)
    host_tree.file(DROPIN, CONTENT)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, dict(PG, state=state))
    assert failed and result["msg"] == (
        "Nothing changed: %s exists but cannot be read whole (larger than %d bytes): a run could neither check "
        "it nor put it back on a rollback; look at it and remove it by hand" % (DROPIN, len(CONTENT) - 1))
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_a_dropin_that_cannot_be_opened_is_refused_not_a_traceback(kernel, host_tree, run_module, refuse):
    """Failed before the fix: the OSError from open(2) escaped read_host as a traceback."""
    refuse("open", host_tree.file(DROPIN, CONTENT))
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed and result["msg"] == (
        "Nothing changed: %s exists but cannot be read whole (cannot open: Permission denied): a run could neither "
        "check it nor put it back on a rollback; look at it and remove it by hand" % DROPIN)
    assert snapshot(kernel.root) == before and kernel.writes == []


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_dropin_behind_a_refused_lstat_is_not_taken_for_absent(kernel, host_tree, run_module, refuse, state):
    """Failed before the fix: any lstat error read as "absent". state=present then wrote over the
    unread file and, its read-back failing the same way, reported a complete rollback while the new
    content stayed; state=absent said "nothing to do" and left the drop-in to the next boot."""
    refuse("lstat", host_tree.file(DROPIN, "# someone's content\nvm.overcommit_ratio = 60\n"))
    failed, result = run_module(overcommit.main, dict(PG, state=state))
    assert failed and result["msg"].startswith(
        "Nothing changed: %s exists but cannot be read whole (cannot lstat: Permission denied)" % DROPIN)
    assert kernel.writes == [] and kernel.live() == BOOT
    with open(host_tree.path(DROPIN)) as handle:
        assert handle.read() == "# someone's content\nvm.overcommit_ratio = 60\n"


def test_a_removal_that_cannot_be_read_back_is_not_taken_for_done(kernel, host_tree, refuse):
    """Failed before the fix: after removing a file, an lstat error read as "absent", so a removal
    that never happened passed its read-back."""
    refuse("lstat", host_tree.file(DROPIN, CONTENT))
    change = files.FileChange(DROPIN, CONTENT.encode(), None, "state=absent")
    with pytest.raises(files.StepError,  # pylint: disable=protected-access
                       match=r"does not read back as removed \(cannot lstat: Permission denied\)"):
        files.apply_file(change, [])  # pylint: disable=protected-access
    assert os.path.exists(host_tree.path(DROPIN))


def test_a_write_that_cannot_be_read_back_fails_the_step_naming_why(kernel, host_tree, refuse):
    refuse("open", host_tree.path(DROPIN))
    change = files.FileChange(DROPIN, None, CONTENT.encode(), "the planned drop-in")
    with pytest.raises(files.StepError,  # pylint: disable=protected-access
                       match=r"does not read back as written \(cannot open: Permission denied\)"):
        files.apply_file(change, [])  # pylint: disable=protected-access


def test_a_file_named_like_our_drop_in_with_a_trailing_newline_is_not_ours(kernel, run_module):
    """Failed before the fix: '$' matched before the newline, so '90-dbfleet-overcommit.conf\\n' was
    taken for our drop-in (and overwritten or removed with it)."""
    from ansible_collections.dbfleet.memory.plugins.modules import overcommit
    odd = kernel.root / "etc/sysctl.d/90-dbfleet-overcommit.conf\n"
    odd.write_text("# someone else's\n")
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert odd.read_text() == "# someone else's\n" and result["changed"] is False
