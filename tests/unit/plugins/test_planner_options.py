"""One definition of the planner's options: every place that names them agrees with module_utils/plan_args.py.

PLANNER_ARGUMENT_SPEC is the modules' argument spec. The filter and the audit action check their values with it,
the doc fragment, the role's argument spec and task and both playbooks must say the same; a knob added to the spec
and missed anywhere fails here.
"""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.dbfleet.memory.plugins.action.audit_report import cached_plan
from ansible_collections.dbfleet.memory.plugins.doc_fragments.planner import ModuleDocFragment
from ansible_collections.dbfleet.memory.plugins.filter import overcommit_plan as plan_filter
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import (
    PLANNER_ARGUMENT_SPEC,
    PLANNER_OPTIONS,
    SHARED_ARGUMENT_SPEC,
    checked_planner_values,
    plan_options_from_params,
    role_variable,
)
from ansible_collections.dbfleet.memory.tests.unit.plugins.task_args import COLLECTION, module_args, role_defaults

SPEC_KEYS = ("type", "elements", "choices", "default")
# A value other than the default for every option, valid for the planner.
OTHER_VALUES = {
    "profile": ["postgresql", "mysql"],
    "workload_commit_mb": 30000,
    "headroom_pct": 35,
    "kernel_reserve_pct": 25,
    "admin_reserve_mb": 256,
    "prefer": "kbytes",
    "database_peak": "enforce",
}
FACTS = {"memtotal_mb": 65536, "swaptotal_mb": 8192}


def spec_of(option):
    return {key: PLANNER_ARGUMENT_SPEC[option].get(key) for key in SPEC_KEYS}


def test_every_option_has_a_value_here_that_differs_from_its_default():
    assert set(OTHER_VALUES) == set(PLANNER_OPTIONS)
    assert all(OTHER_VALUES[o] != PLANNER_ARGUMENT_SPEC[o]["default"] for o in PLANNER_OPTIONS)


def test_the_modules_take_every_planner_option_and_the_dropin_priority():
    from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info, overcommit_metrics

    for module in (overcommit, overcommit_info, overcommit_metrics):
        options = yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment")
        assert "dbfleet.memory.planner" in options, module.__name__
    assert set(SHARED_ARGUMENT_SPEC) == set(PLANNER_OPTIONS) | {"dropin_priority"}


@pytest.mark.parametrize("option", PLANNER_OPTIONS)
def test_the_doc_fragment_documents_the_option_as_the_spec_defines_it(option):
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(documented) == set(PLANNER_OPTIONS)
    assert {key: documented[option].get(key) for key in SPEC_KEYS} == spec_of(option)


def test_the_filter_documents_the_planner_options_through_the_fragment_only():
    doc = yaml.safe_load(plan_filter.DOCUMENTATION)
    assert doc["extends_documentation_fragment"] == ["dbfleet.memory.planner"]
    assert not set(doc["options"]) & set(PLANNER_OPTIONS)


@pytest.mark.parametrize("option", PLANNER_OPTIONS)
def test_the_filter_plans_with_each_option_as_the_module_would(option):
    value = OTHER_VALUES[option]
    plan = plan_filter.overcommit_plan(FACTS, **{option: value})
    expected = plan_options_from_params(checked_planner_values({option: value}))
    assert plan["profile"] == list(expected.profiles)
    assert {k: v for k, v in plan["options"].items() if k != "user_reserve_kb"} == {
        "workload_commit_kb": expected.workload_commit_kb, "headroom_pct": expected.headroom_pct,
        "kernel_reserve_pct": expected.kernel_reserve_pct, "admin_reserve_kb": expected.admin_reserve_kb,
        "prefer": expected.prefer, "database_peak": expected.database_peak}


@pytest.mark.parametrize("option", PLANNER_OPTIONS)
def test_the_audit_action_plans_a_host_from_the_cache_with_each_of_its_role_variables(option):
    host_vars = {"ansible_facts": FACTS, role_variable(option): OTHER_VALUES[option]}
    for plan, expected in ((cached_plan(host_vars), plan_filter.overcommit_plan(FACTS, **{option: OTHER_VALUES[option]})),
                           (cached_plan({"ansible_facts": FACTS}), plan_filter.overcommit_plan(FACTS))):
        assert (plan["profile"], plan["options"]) == (expected["profile"], expected["options"])
    assert cached_plan(host_vars) != cached_plan({"ansible_facts": FACTS})


@pytest.mark.parametrize("option", PLANNER_OPTIONS)
def test_the_roles_argument_spec_types_each_option_as_the_module_does(option):
    specs = yaml.safe_load((COLLECTION / "roles/overcommit/meta/argument_specs.yml").read_text())
    variable = specs["argument_specs"]["main"]["options"][role_variable(option)]
    expected = spec_of(option)
    # A knob without a default in the role leaves the module's default in force (the task omits it).
    if "default" not in variable:
        expected.pop("default")
    assert {key: variable[key] for key in SPEC_KEYS if key in variable} == {k: v for k, v in expected.items() if v is not None}
    assert role_defaults().get(role_variable(option), PLANNER_ARGUMENT_SPEC[option]["default"]) \
        == PLANNER_ARGUMENT_SPEC[option]["default"]


def base_variables(path):
    """What the task needs besides the planner's variables: the role's defaults, or the audit's textfile."""
    if path.startswith("roles/"):
        return dict(role_defaults(), overcommit_metrics_textfile="/var/lib/prometheus/node-exporter/x.prom")
    return {"overcommit_audit_textfile": "/var/lib/prometheus/node-exporter/x.prom"}


CALLERS = [
    ("roles/overcommit/tasks/main.yml", "dbfleet.memory.overcommit"),
    ("roles/overcommit/tasks/metrics.yml", "dbfleet.memory.overcommit_metrics"),
    ("playbooks/plan_report.yml", "dbfleet.memory.overcommit_info"),
    ("playbooks/audit.yml", "dbfleet.memory.overcommit_info"),
    ("playbooks/audit.yml", "dbfleet.memory.overcommit_metrics"),
]


@pytest.mark.parametrize("path, module", CALLERS)
@pytest.mark.parametrize("option", PLANNER_OPTIONS)
def test_the_role_and_both_playbooks_pass_each_role_variable_to_the_module(path, module, option):
    base = base_variables(path)
    given = module_args(path, module, dict(base, **{role_variable(option): OTHER_VALUES[option]}))
    assert given[option] == OTHER_VALUES[option]
    unset = module_args(path, module, base)
    # Unset: omitted (the module's default applies) or given as that same default.
    assert unset.get(option, PLANNER_ARGUMENT_SPEC[option]["default"]) == PLANNER_ARGUMENT_SPEC[option]["default"]


@pytest.mark.parametrize("path, module", CALLERS)
def test_the_role_and_both_playbooks_pass_the_dropin_priority(path, module):
    base = base_variables(path)
    assert module_args(path, module, dict(base, overcommit_dropin_priority=42))["dropin_priority"] == 42
    assert module_args(path, module, base).get("dropin_priority", 90) == SHARED_ARGUMENT_SPEC["dropin_priority"]["default"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"workload_commit_mb": "lots"}, "workload_commit_mb: must be a whole number, got 'lots'"),
        ({"headroom_pct": True}, "headroom_pct: must be a whole number, got True"),
        ({"workload_commit_mb": float("inf")}, "workload_commit_mb: must be a whole number, got inf"),
        ({"kernel_reserve_pct": "1_0"}, "kernel_reserve_pct: must be a whole number, got '1_0'"),
        ({"admin_reserve_mb": "\u0661\u0662"}, "admin_reserve_mb: must be a whole number"),
        ({"prefer": "pages"}, "prefer: must be one of auto, ratio, kbytes, got 'pages'"),
        ({"database_peak": "refuse"}, "database_peak: must be one of warn, enforce, got 'refuse'"),
        ({"profile": ["postgres"]}, "profile: must be one or more of generic, postgresql, mysql, mariadb, oracle, redis, valkey, got 'postgres'"),
        ({"profile": 5}, "profile: must be a name or a list of names, got 5"),
        ({"headroom": 20}, "headroom: not a planner option; the options are profile, workload_commit_mb"),
    ],
)
def test_values_from_outside_a_module_are_checked_naming_the_option_and_what_is_allowed(values, message):
    from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import PlanInputError

    with pytest.raises(PlanInputError) as raised:
        checked_planner_values(values)
    assert str(raised.value).startswith(message)


def test_values_from_extra_vars_are_read_as_the_module_reads_them():
    """-e overcommit_workload_commit_mb=30000 gives the text "30000"; -e overcommit_profile=a,b a comma list."""
    params = checked_planner_values({"workload_commit_mb": "30000", "profile": "postgresql,mysql", "headroom_pct": 25.0})
    assert params["workload_commit_mb"] == 30000 and params["profile"] == ["postgresql", "mysql"]
    assert params["headroom_pct"] == 25 and isinstance(params["headroom_pct"], int)
    assert checked_planner_values({}) == {o: PLANNER_ARGUMENT_SPEC[o]["default"] for o in PLANNER_OPTIONS}
