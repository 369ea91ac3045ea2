# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner's options, defined once: their names, types, choices and defaults, and their
translation into PlanOptions.

Everything else that names them derives from PLANNER_ARGUMENT_SPEC or is checked against it by
tests/unit/plugins/test_planner_options.py: the argument spec of the overcommit and overcommit_info
modules (this dict), the options the overcommit_plan filter and the audit_report action plan from
facts with (plugin_utils/facts_plan.py, through checked_planner_values), the doc fragment
doc_fragments/planner.py, the role's meta/argument_specs.yml and its task, and the playbooks
audit and plan_report, which pass each option as the role's variable ``overcommit_<option>``.
A knob added here and missed in one of them fails that test.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Mapping

from ansible_collections.dbfleet.memory.plugins.module_utils._common.profiles import DROPIN_PRIORITY_RANGE, PROFILE_MODES
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    DEFAULT_ADMIN_RESERVE_MB,
    DEFAULT_HEADROOM_PCT,
    DATABASE_PEAK_CHOICES,
    DEFAULT_KERNEL_RESERVE_PCT,
    KIB_PER_MIB,
    PREFER_CHOICES,
    PlanInputError,
    PlanOptions,
    validate_options,
)

PLANNER_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    profile=dict(type="list", elements="str", choices=list(PROFILE_MODES), default=["generic"]),
    workload_commit_mb=dict(type="int", default=0),
    headroom_pct=dict(type="int", default=DEFAULT_HEADROOM_PCT),
    kernel_reserve_pct=dict(type="int", default=DEFAULT_KERNEL_RESERVE_PCT),
    admin_reserve_mb=dict(type="int", default=DEFAULT_ADMIN_RESERVE_MB),
    prefer=dict(type="str", choices=list(PREFER_CHOICES), default="auto"),
    database_peak=dict(type="str", choices=list(DATABASE_PEAK_CHOICES), default="warn"),
)
PLANNER_OPTIONS = tuple(PLANNER_ARGUMENT_SPEC)

# The role's variable for an option, which the playbooks also read from the inventory.
ROLE_VARIABLE_PREFIX = "overcommit_"

_SIGNED_DECIMAL = re.compile(r"-?[0-9]+")

DEFAULT_DROPIN_PRIORITY = 90

# What both modules take, so that overcommit_info answers for what the overcommit module would do
# with the same options: the planner's options and the drop-in's priority (which files shadow it).
SHARED_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    PLANNER_ARGUMENT_SPEC,
    dropin_priority=dict(type="int", default=DEFAULT_DROPIN_PRIORITY),
)


def role_variable(option: str) -> str:
    """``overcommit_<option>``, the role's variable (and the inventory's) for a planner option."""
    return ROLE_VARIABLE_PREFIX + option


def plan_options_from_params(params: Mapping[str, Any]) -> PlanOptions:
    """Module parameters (MiB at the edge) to PlanOptions (kB inside)."""
    return PlanOptions(
        profiles=tuple(params["profile"]),
        workload_commit_kb=params["workload_commit_mb"] * KIB_PER_MIB,
        headroom_pct=params["headroom_pct"],
        kernel_reserve_pct=params["kernel_reserve_pct"],
        admin_reserve_kb=params["admin_reserve_mb"] * KIB_PER_MIB,
        prefer=params["prefer"],
        database_peak=params["database_peak"],
    )


def checked_options(params: Mapping[str, Any]) -> PlanOptions:
    """Every option the overcommit modules share, checked before the host is read; PlanInputError
    names the option and what is allowed, so bad input changes nothing."""
    low, high = DROPIN_PRIORITY_RANGE
    if not low <= params["dropin_priority"] <= high:
        raise PlanInputError("dropin_priority", "must be between %d and %d (a two-digit file name prefix), got %d"
                             % (low, high, params["dropin_priority"]))
    options = plan_options_from_params(params)
    validate_options(options)
    return options


def _as_int(option: str, value: Any) -> int:
    """A whole number as the modules' int options take it: an int (not a bool), ASCII digits with an
    optional sign (an extra var given as -e name=30000 arrives as the text "30000"), or a finite float
    with no fraction. Not True for 1, 1.5 cut to 1, inf or nan from a JSON fact cache, "1_0" or
    non-ASCII digits, which int() would take. The planner then checks the range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _SIGNED_DECIMAL.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise PlanInputError(option, "must be a whole number, got %r" % (value,))


def _as_list(option: str, value: Any) -> List[str]:
    # As the module's list type: one name, a comma-separated string of names, or a list of names.
    if isinstance(value, str):
        return [name.strip() for name in value.split(",")]
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        return list(value)
    raise PlanInputError(option, "must be a name or a list of names, got %r" % (value,))


def checked_planner_values(values: Mapping[str, Any]) -> Dict[str, Any]:
    """The planner's options given outside a module (the overcommit_plan filter's arguments, a host's
    overcommit_* variables in the audit_report action), typed and checked against
    PLANNER_ARGUMENT_SPEC as the module's argument spec would check them, with its defaults for what
    is missing. Ready for plan_options_from_params. PlanInputError names the option."""
    unknown = sorted(set(values) - set(PLANNER_ARGUMENT_SPEC))
    if unknown:
        raise PlanInputError(unknown[0], "not a planner option; the options are %s" % ", ".join(PLANNER_OPTIONS))
    params: Dict[str, Any] = {}
    for option, spec in PLANNER_ARGUMENT_SPEC.items():
        if option not in values or values[option] is None:
            default = spec["default"]
            params[option] = list(default) if isinstance(default, list) else default
            continue
        value = values[option]
        if spec["type"] == "int":
            value = _as_int(option, value)
        elif spec["type"] == "list":
            value = _as_list(option, value)
        elif not isinstance(value, str):
            raise PlanInputError(option, "must be a string, got %r" % (value,))
        choices = spec.get("choices")
        if choices:
            wrong = [item for item in (value if isinstance(value, list) else [value]) if item not in choices]
            if wrong:
                raise PlanInputError(option, "must be %s of %s, got %s" % (
                    "one or more" if spec["type"] == "list" else "one", ", ".join(choices), ", ".join(map(repr, wrong))))
        params[option] = value
    return params
