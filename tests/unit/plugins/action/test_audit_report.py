"""The audit_report action's rows: whatever a host's cached facts or registered result hold, the
host gets a row that says what is wrong, never a traceback that loses the whole report."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.action.audit_report import row_for_host
from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import STATUS_FAILED, render

MIB_FORM = "must be a whole number of MiB, 0 or more (an integer or ASCII digits), got "


@pytest.mark.parametrize("from_cache", [True, False], ids=["from-cache", "host-down"])
@pytest.mark.parametrize("facts, message", [
    ({"memtotal_mb": 16384, "swaptotal_mb": float("inf")}, "swaptotal_mb " + MIB_FORM + "inf"),
    ({"memtotal_mb": 16384, "swaptotal_mb": float("nan")}, "swaptotal_mb " + MIB_FORM + "nan"),
    ({"memtotal_mb": 16384, "swaptotal_mb": -1}, "swaptotal_mb " + MIB_FORM + "-1"),
    ({"memtotal_mb": 16384, "swaptotal_mb": False}, "swaptotal_mb " + MIB_FORM + "False"),
])
def test_cached_memory_facts_that_are_no_whole_number_give_a_failed_row_naming_the_fact(from_cache, facts, message):
    host_vars = {"ansible_facts": facts, "audit": {"unreachable": True, "msg": "ssh: Connection refused"}}
    row = row_for_host("db1", host_vars, "audit", from_cache)
    assert row.status == STATUS_FAILED
    assert row.message == "cannot plan from the cached facts: " + message
    assert "db1" in render([row], "markdown")


def test_a_planner_variable_that_is_no_whole_number_gives_a_failed_row_naming_it():
    host_vars = {"ansible_facts": {"memtotal_mb": 16384, "swaptotal_mb": 0}, "overcommit_workload_commit_mb": float("inf")}
    row = row_for_host("db1", host_vars, "audit", True)
    assert (row.status, row.message) == (
        STATUS_FAILED, "cannot plan from the cached facts: workload_commit_mb: must be a whole number, got inf")


@pytest.mark.parametrize("registered", [
    {"failed": True, "msg": "\n"},
    {"unreachable": True, "msg": " "},
])
def test_a_host_whose_failure_message_is_blank_keeps_its_row(registered):
    row = row_for_host("db1", {"audit": registered}, "audit", False)
    assert (row.host, row.message) == ("db1", "no message")
    assert "| db1 |" in render([row], "markdown")
