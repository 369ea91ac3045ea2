"""Taking over lines of other sysctl files: commented out with the original kept, and put back exactly."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils.takeover import (
    MARKER,
    comment_out,
    has_marks,
    is_editable,
    restore,
)

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
    assert restore(comment_out(SEED_ADVICE, [2, 3])) == (SEED_ADVICE, 2)


def test_taking_over_twice_does_not_nest_markers():
    once = comment_out(SEED_ADVICE, [2])
    assert comment_out(once, [2]) == once


def test_files_that_are_not_utf8_stay_byte_for_byte():
    latin1 = b"# caf\xe9\nvm.overcommit_ratio = 100\n"
    assert restore(comment_out(latin1, [2])) == (latin1, 1)
    assert comment_out(latin1, [2]).startswith(b"# caf\xe9\n")


@pytest.mark.parametrize("path, editable", [
    ("/etc/sysctl.conf", True),
    ("/etc/sysctl.d/99-tuning.conf", True),
    ("/usr/lib/sysctl.d/50-default.conf", False),
    ("/lib/sysctl.d/50-default.conf", False),
    ("/run/sysctl.d/10-runtime.conf", False),
    ("/usr/local/lib/sysctl.d/10-local.conf", False),
])
def test_only_files_under_etc_are_editable(path, editable):
    assert is_editable(path) is editable
