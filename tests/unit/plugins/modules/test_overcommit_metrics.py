"""dbfleet.memory.overcommit_metrics: the host's verdict as a textfile node_exporter can serve (fake host)."""

from __future__ import annotations

import os
import re
import stat

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import metrics as prometheus_textfile
from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info, overcommit_metrics

NAME = "dbfleet_overcommit.prom"
# One sample line of the text format: name, optional labels, a number.
SAMPLE = re.compile(r'^(dbfleet_overcommit_[a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[0-9]+)$')


@pytest.fixture
def textfile_dir(tmp_path):
    directory = tmp_path / "node-exporter"
    directory.mkdir()
    return directory


def parse(text):
    """{name: (labels text, value)}; fails unless each sample follows its own HELP and TYPE gauge lines."""
    lines = text.splitlines()
    metrics = {}
    for index in range(0, len(lines), 3):
        help_line, type_line, sample = lines[index:index + 3]
        match = SAMPLE.match(sample)
        assert match, sample
        name = match.group(1)
        assert help_line.startswith("# HELP %s " % name) and type_line == "# TYPE %s gauge" % name, lines[index:index + 3]
        assert name not in metrics
        metrics[name] = (match.group(2) or "", int(match.group(3)))
    return metrics


def test_writes_the_verdict_the_info_module_gives_in_bytes(kernel, run_module, textfile_dir):
    path = str(textfile_dir / NAME)
    failed, result = run_module(overcommit_metrics.main, {"textfile": path, "profile": ["postgresql"]})
    assert not failed and result["changed"]
    _failed, info = run_module(overcommit_info.main, {"profile": ["postgresql"]})
    metrics = parse((textfile_dir / NAME).read_text())
    assert result["metrics"] == (textfile_dir / NAME).read_text()
    assert metrics["dbfleet_overcommit_planned_commit_limit_bytes"][1] == info["commit_limit_kb"] * 1024
    assert metrics["dbfleet_overcommit_lower_bound_bytes"][1] == info["bounds"]["lower_kb"] * 1024
    assert metrics["dbfleet_overcommit_upper_bound_bytes"][1] == info["bounds"]["upper_kb"] * 1024
    assert metrics["dbfleet_overcommit_planned_mode"][1] == 2
    assert metrics["dbfleet_overcommit_plan_safe"][1] == 1 and metrics["dbfleet_overcommit_next_boot_safe"][1] == 1
    # A fresh host: the drop-in is not there yet, so applying would change it.
    assert metrics["dbfleet_overcommit_dropin_in_force"][1] == 0
    assert metrics["dbfleet_overcommit_apply_would_change"][1] == 1 and metrics["dbfleet_overcommit_apply_refused"][1] == 0
    assert metrics["dbfleet_overcommit_info"] == (
        '{profile="postgresql",verdict="safe",planned_mode="2",limit_by="ratio",'
        'dropin="/etc/sysctl.d/90-dbfleet-overcommit.conf",container=""}', 1)
    # The configured peak is a metric only when the report knows it; today it does not.
    assert "dbfleet_overcommit_database_configured_peak_bytes" not in metrics
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(textfile_dir)) == [NAME]  # no temporary file left behind


def test_after_the_role_applies_the_dropin_is_in_force_and_a_second_write_changes_nothing(kernel, run_module, textfile_dir):
    path = textfile_dir / NAME
    assert not run_module(overcommit.main, {"profile": ["postgresql"]})[0]
    _failed, first = run_module(overcommit_metrics.main, {"textfile": str(path), "profile": ["postgresql"]})
    metrics = parse(path.read_text())
    assert metrics["dbfleet_overcommit_dropin_in_force"][1] == 1 and metrics["dbfleet_overcommit_apply_would_change"][1] == 0
    written_ns = path.stat().st_mtime_ns
    failed, again = run_module(overcommit_metrics.main, {"textfile": str(path), "profile": ["postgresql"]})
    assert not failed and first["changed"] and not again["changed"]
    assert path.stat().st_mtime_ns == written_ns


def test_an_unsafe_plan_and_an_unsafe_next_boot_are_written_not_failed(kernel, run_module, textfile_dir):
    kernel.set_committed(4900000)
    (kernel.root / "etc/sysctl.conf").write_text("vm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n")
    failed, result = run_module(overcommit_metrics.main, {"textfile": str(textfile_dir / NAME), "workload_commit_mb": 30000})
    assert not failed and result["verdict"] == "unsafe" and result["boot_now_unsafe"]
    metrics = parse((textfile_dir / NAME).read_text())
    assert metrics["dbfleet_overcommit_plan_safe"][1] == 0 and metrics["dbfleet_overcommit_apply_refused"][1] == 1
    assert metrics["dbfleet_overcommit_next_boot_safe"][1] == 0
    assert metrics["dbfleet_overcommit_workload_commit_bytes"][1] == 30000 * 1024 * 1024


def test_check_mode_writes_nothing_and_diff_shows_the_text(kernel, run_module, textfile_dir):
    failed, result = run_module(overcommit_metrics.main, {"textfile": str(textfile_dir / NAME), "_ansible_check_mode": True,
                                                          "_ansible_diff": True})
    assert not failed and result["changed"]
    assert os.listdir(textfile_dir) == []
    assert result["diff"]["before"] == "" and result["diff"]["after"] == result["metrics"]


@pytest.mark.parametrize("name, message", [
    ("dbfleet_overcommit.txt", "must name a file ending in .prom"),
    (".dbfleet_overcommit.prom", "must name a file ending in .prom"),
    ("missing/dbfleet_overcommit.prom", "the directory"),
])
def test_a_textfile_the_collector_would_not_read_fails_naming_the_option(kernel, run_module, textfile_dir, name, message):
    failed, result = run_module(overcommit_metrics.main, {"textfile": str(textfile_dir / name)})
    assert failed and result["msg"].startswith("textfile: ") and message in result["msg"], result["msg"]
    assert result["option"] == "textfile"


def test_a_symlink_under_the_textfile_name_is_left_alone(kernel, run_module, textfile_dir, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    os.symlink(target, textfile_dir / NAME)
    failed, result = run_module(overcommit_metrics.main, {"textfile": str(textfile_dir / NAME)})
    assert failed and "it is left as it is" in result["msg"]
    assert os.path.islink(textfile_dir / NAME) and target.read_text() == "keep\n"


def test_bad_planner_options_fail_as_in_the_info_module(kernel, run_module, textfile_dir):
    failed, result = run_module(overcommit_metrics.main, {"textfile": str(textfile_dir / NAME), "headroom_pct": 150})
    assert failed and result["msg"] == "headroom_pct: must be between 0 and 100, got 150"
    assert os.listdir(textfile_dir) == []


REPORT = {"profile": ["postgresql"], "verdict": "safe", "mode": 2, "limit_by": "ratio", "safe": True,
          "commit_limit_kb": 1000, "bounds": {"lower_kb": 800, "upper_kb": 1200}, "options": {"workload_commit_kb": 0},
          "boot_now_unsafe": [], "files": [], "shadowing": {}, "would_change": False, "would_refuse": None,
          "container": None}


def test_the_configured_peak_becomes_a_metric_when_the_report_knows_it():
    text = prometheus_textfile.render(dict(REPORT, database_configured_peak_kb=4096), 90)
    assert parse(text)["dbfleet_overcommit_database_configured_peak_bytes"] == ("", 4096 * 1024)


def test_label_values_are_escaped_as_the_text_format_requires():
    text = prometheus_textfile.render(dict(REPORT, container='pod"man\\x\nnext'), 90)
    assert parse(text)["dbfleet_overcommit_info"][0].endswith('container="pod\\"man\\\\x\\nnext"}')


def test_a_shadowed_dropin_is_not_in_force():
    shadowed = {"vm.overcommit_ratio": {"status": "shadowed"}, "vm.overcommit_memory": {"status": "ours"}}
    assert parse(prometheus_textfile.render(dict(REPORT, shadowing=shadowed), 90))["dbfleet_overcommit_dropin_in_force"][1] == 0
    assert parse(prometheus_textfile.render(REPORT, 90))["dbfleet_overcommit_dropin_in_force"][1] == 1


def test_every_metric_is_documented_in_the_module():
    for name in prometheus_textfile.METRICS:
        assert "C(dbfleet_overcommit_%s)" % name in overcommit_metrics.DOCUMENTATION, name
