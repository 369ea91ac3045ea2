"""The alert rules load in Prometheus and behave as their unit tests say (promtool, Debian's prometheus package).

promtool is required: without it the test fails, it does not skip (scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "prometheus" / "dbfleet_overcommit_rules.yml"
RULE_TESTS = HERE / "dbfleet_overcommit_rules_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (scripts/system-deps.sh)")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)


def test_the_rules_file_is_valid():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0 and "SUCCESS: 7 rules found" in proc.stdout, proc.stdout + proc.stderr


def test_the_rules_pass_their_unit_tests():
    proc = promtool("test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test():
    import yaml

    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert tested == alerts
