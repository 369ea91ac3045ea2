# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's report files on the controller: atomic, idempotent, honest in check mode."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.dbfleet.memory.plugins.plugin_utils.report_files import (
    ReportWriteError,
    write_reports,
)

ALL = {"markdown": "# report\n", "html": "<p>report</p>\n", "json": "{}\n", "csv": "host\n"}


def names(paths):
    return [os.path.basename(p) for p in paths]


def test_writes_every_format_into_a_new_directory(tmp_path):
    dest = tmp_path / "audit" / "today"
    outcome = write_reports(str(dest), ALL)
    assert outcome.created_dir
    assert names(outcome.paths) == ["report.md", "report.html", "report.json", "report.csv"]
    assert names(outcome.changed_paths) == names(outcome.paths)
    assert (dest / "report.html").read_text() == "<p>report</p>\n"
    assert stat.S_IMODE((dest / "report.csv").stat().st_mode) == 0o644
    assert sorted(os.listdir(dest)) == ["report.csv", "report.html", "report.json", "report.md"]  # no temp file


def test_the_same_report_again_changes_nothing_and_keeps_the_mtime(tmp_path):
    write_reports(str(tmp_path), ALL)
    os.utime(tmp_path / "report.md", (1, 1))
    outcome = write_reports(str(tmp_path), dict(ALL, json='{"hosts": 1}\n'))
    assert names(outcome.changed_paths) == ["report.json"]
    assert not outcome.created_dir
    assert (tmp_path / "report.md").stat().st_mtime == 1
    assert (tmp_path / "report.json").read_text() == '{"hosts": 1}\n'


def test_check_mode_says_what_would_change_and_writes_nothing(tmp_path):
    dest = tmp_path / "audit"
    outcome = write_reports(str(dest), ALL, check_mode=True)
    assert outcome.created_dir and names(outcome.changed_paths) == ["report.md", "report.html", "report.json", "report.csv"]
    assert not dest.exists()


def test_only_the_formats_asked_for(tmp_path):
    outcome = write_reports(str(tmp_path), {"html": "<p/>"})
    assert names(outcome.paths) == ["report.html"] and os.listdir(tmp_path) == ["report.html"]


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path):
    (tmp_path / "audit").write_text("not a directory")
    with pytest.raises(ReportWriteError, match="audit exists and is not a directory"):
        write_reports(str(tmp_path / "audit"), ALL)


def test_an_unknown_format_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown report format.*pdf.*allowed: markdown, html, json, csv"):
        write_reports(str(tmp_path / "audit"), dict(ALL, pdf="%PDF"))
    assert not (tmp_path / "audit").exists()


def test_a_write_that_fails_names_the_file_and_leaves_no_temporary_file(tmp_path):
    write_reports(str(tmp_path), ALL)
    (tmp_path / "report.html").unlink()
    (tmp_path / "report.html").mkdir()  # rename onto a directory fails
    with pytest.raises(ReportWriteError, match="cannot write .*report.html"):
        write_reports(str(tmp_path), dict(ALL, html="<p>new</p>"))
    assert sorted(os.listdir(tmp_path)) == ["report.csv", "report.html", "report.json", "report.md"]
