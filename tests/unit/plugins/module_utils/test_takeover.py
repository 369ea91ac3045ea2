"""Taking over lines of other sysctl files: commented out with the original kept, and put back exactly."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.takeover import (
    MARKER,
    comment_out,
    has_marks,
    is_editable,
    ledger_after,
    ledger_lines,
    marks,
    parse_ledger,
    restore,
)

CONF = "/etc/sysctl.conf"

SEED_ADVICE = b"# tuned by hand\nvm.overcommit_memory = 2\r\nvm.overcommit_ratio=100\nkernel.pid_max = 65536"


def test_lines_are_commented_out_with_the_original_kept_after_the_marker():
    taken = comment_out(SEED_ADVICE, [2, 3])
    assert taken.splitlines() == [
        b"# tuned by hand",
        MARKER + b"vm.overcommit_memory = 2",
        MARKER + b"vm.overcommit_ratio=100",
        b"kernel.pid_max = 65536",
    ]
    assert b"\r\n" in taken  # line endings are the file's own
    assert has_marks(taken) and not has_marks(SEED_ADVICE)


def test_restore_gives_back_the_exact_bytes():
    taken = comment_out(SEED_ADVICE, [2, 3])
    result = restore(taken, CONF, set(marks(taken, CONF)))
    assert (result.data, result.restored, result.left) == (SEED_ADVICE, 2, 0)


def test_restore_leaves_marked_lines_that_no_ledger_of_ours_lists():
    """Failed before the fix: absent un-commented every marked line, also one typed by hand or
    copied from another host's file, which no run of ours wrote."""
    copied = comment_out(b"vm.overcommit_ratio = 100\n", [1])
    ours = comment_out(b"vm.overcommit_memory = 2\n", [1])
    text = ours + copied
    result = restore(text, CONF, set(marks(ours, CONF)))
    assert result.data == b"vm.overcommit_memory = 2\n" + copied and (result.restored, result.left) == (1, 1)


def test_a_mark_is_ours_only_in_the_file_the_ledger_names():
    taken = comment_out(SEED_ADVICE, [3])
    elsewhere = restore(taken, "/etc/sysctl.d/60-copy.conf", set(marks(taken, CONF)))
    assert elsewhere.data == taken and elsewhere.left == 1


def test_the_ledger_round_trips_through_the_drop_in_text():
    entries = {key: CONF for key in marks(comment_out(SEED_ADVICE, [2, 3]), CONF)}
    dropin = ("vm.overcommit_memory = 2\n" + "\n".join(ledger_lines(entries)) + "\n").encode()
    assert parse_ledger(dropin) == entries and len(entries) == 2


def test_the_ledger_keeps_our_marks_adds_new_ones_and_never_adopts_someone_elses():
    someone_elses = comment_out(b"vm.overcommit_kbytes = 0\n", [1])
    before = {CONF: SEED_ADVICE + b"\n" + someone_elses}
    after = {CONF: comment_out(before[CONF], [2, 3])}
    ledger = ledger_after({}, before, after)
    assert set(ledger) == set(marks(comment_out(SEED_ADVICE, [2, 3]), CONF))
    # A later run finds the same marks: the ledger stays, whatever the run does now.
    assert ledger_after(ledger, after, after) == ledger


def test_taking_over_twice_does_not_nest_markers():
    once = comment_out(SEED_ADVICE, [2])
    assert comment_out(once, [2]) == once


def test_files_that_are_not_utf8_stay_byte_for_byte():
    latin1 = b"# caf\xe9\nvm.overcommit_ratio = 100\n"
    taken = comment_out(latin1, [2])
    assert restore(taken, CONF, set(marks(taken, CONF))).data == latin1
    assert comment_out(latin1, [2]).startswith(b"# caf\xe9\n")


@pytest.mark.parametrize("path, editable", [
    ("/etc/sysctl.conf", True),
    ("/etc/sysctl.d/99-tuning.conf", True),
    ("/usr/lib/sysctl.d/50-default.conf", False),
    ("/lib/sysctl.d/50-default.conf", False),
    ("/run/sysctl.d/10-runtime.conf", False),
    ("/usr/local/lib/sysctl.d/10-local.conf", False),
    ("/etc/tuned/db/tuned.conf", True),
    ("/usr/lib/tuned/throughput-performance/tuned.conf", False),
])
def test_only_files_under_etc_are_editable(path, editable):
    assert is_editable(path) is editable
