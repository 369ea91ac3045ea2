"""dbfleet.memory.plan_report says what the role would do: the same variables, the same verdict.

Both tasks are the collection's own YAML, templated by ansible-core with the variables a user would set (in the
inventory or with -e, where a number arrives as text); plan_report's overcommit_info task and the role's overcommit
task (in check mode) then run against the same fake host. Before, plan_report passed only the profile and the
drop-in's priority: with overcommit_workload_commit_mb=30000 it said "safe" where the role refused.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info
from ansible_collections.dbfleet.memory.tests.unit.plugins.task_args import module_args, role_defaults

# The fake host: 4000000 kB of RAM, 1000000 kB of swap, 1000000 kB committed (fake_kernel.py).
COMBINATIONS = [
    # variables, the verdict both must give ("safe", "unsafe", "refused": safe but shadowed, "invalid")
    ({}, "safe"),
    ({"overcommit_workload_commit_mb": 30000}, "unsafe"),
    ({"overcommit_workload_commit_mb": "30000"}, "unsafe"),
    ({"overcommit_workload_commit_mb": "2500"}, "safe"),
    ({"overcommit_workload_commit_mb": 2500, "overcommit_headroom_pct": 80}, "unsafe"),
    ({"overcommit_workload_commit_mb": 2500, "overcommit_kernel_reserve_pct": 50}, "unsafe"),
    ({"overcommit_admin_reserve_mb": 4000}, "unsafe"),
    ({"overcommit_admin_reserve_mb": 512, "overcommit_prefer": "kbytes"}, "safe"),
    ({"overcommit_profile": ["redis"], "overcommit_workload_commit_mb": 30000}, "safe"),
    ({"overcommit_profile": "postgresql,mysql", "overcommit_prefer": "ratio"}, "safe"),
    ({"overcommit_profile": ["postgresql", "redis"]}, "invalid"),
    ({"overcommit_headroom_pct": 150}, "invalid"),
    ({"overcommit_prefer": "pages"}, "invalid"),
    # No database on the fake host: enforcing their peaks adds nothing to the demand.
    ({"overcommit_database_peak": "enforce"}, "safe"),
    ({"overcommit_database_peak": "strict"}, "invalid"),
    # A later file sets the ratio: the role refuses (shadowing: fail), the report says it would be refused.
    ({"overcommit_dropin_priority": 10}, "refused"),
]
SHADOWING_FILE = "etc/sysctl.d/50-tuning.conf"


@pytest.mark.parametrize("variables, verdict", COMBINATIONS, ids=[str(v) for v, _verdict in COMBINATIONS])
def test_plan_report_and_the_role_give_the_same_verdict(kernel, run_module, variables, verdict):
    (kernel.root / SHADOWING_FILE).write_text("vm.overcommit_ratio = 60\n")
    report_args = module_args("playbooks/plan_report.yml", "dbfleet.memory.overcommit_info", variables)
    role_args = module_args("roles/overcommit/tasks/main.yml", "dbfleet.memory.overcommit",
                            dict(role_defaults(), **variables))
    report_failed, report = run_module(overcommit_info.main, report_args)
    role_failed, role = run_module(overcommit.main, dict(role_args, _ansible_check_mode=True))

    if verdict == "invalid":
        assert report_failed and role_failed
        assert report["msg"] == role["msg"]
        return
    assert not report_failed, report.get("msg")
    assert role_failed == (report["would_refuse"] is not None), (report["would_refuse"], role.get("msg"))
    plan = role["plan"]
    assert (plan["verdict"], plan["sysctl"], plan["commit_limit_kb"]) == (report["verdict"], report["sysctl"],
                                                                          report["commit_limit_kb"])
    assert plan["bounds"] == report["bounds"] and plan["options"] == report["options"]
    if verdict == "refused":
        assert report["verdict"] == "safe" and "50-tuning.conf" in report["would_refuse"] and "50-tuning.conf" in role["msg"]
    else:
        assert report["verdict"] == verdict
        assert role_failed == (verdict == "unsafe")


def test_the_combinations_cover_both_verdicts_and_every_planner_option():
    from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import PLANNER_OPTIONS, role_variable

    verdicts = {verdict for _variables, verdict in COMBINATIONS}
    assert verdicts == {"safe", "unsafe", "refused", "invalid"}
    given = {name for variables, _verdict in COMBINATIONS for name in variables}
    assert {role_variable(option) for option in PLANNER_OPTIONS} <= given


def test_plan_report_prints_each_databases_line_or_that_there_is_none(kernel, run_module):
    failed, report = run_module(overcommit_info.main, module_args("playbooks/plan_report.yml",
                                                                  "dbfleet.memory.overcommit_info", {}))
    assert not failed and report["databases"] == []
    msg = module_args("playbooks/plan_report.yml", "ansible.builtin.debug", {"overcommit_plan_result": report})["msg"]
    assert "databases (database_peak=warn): ['none found on this host']" in msg
    lines = [{"reason": "postgresql 15/main does not fit: configured peak 3989 MiB > room 3000 MiB"},
             {"reason": "mariadb mariadbd fits: configured peak 400 MiB <= room 3500 MiB"}]
    msg = module_args("playbooks/plan_report.yml", "ansible.builtin.debug",
                      {"overcommit_plan_result": dict(report, databases=lines)})["msg"]
    assert "databases (database_peak=warn): ['%s', '%s']" % (lines[0]["reason"], lines[1]["reason"]) in msg
