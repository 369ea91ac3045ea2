# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner's module options in one place: their argument spec and their translation
into PlanOptions. Used by the overcommit and overcommit_info modules (docs: doc_fragments/planner.py).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ansible_collections.dbfleet.memory.plugins.module_utils.planner import (
    DEFAULT_ADMIN_RESERVE_MB,
    DEFAULT_HEADROOM_PCT,
    DEFAULT_KERNEL_RESERVE_PCT,
    KIB_PER_MIB,
    PREFER_CHOICES,
    PROFILE_MODES,
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
)


def plan_options_from_params(params: Mapping[str, Any]) -> PlanOptions:
    """Module parameters (MiB at the edge) to PlanOptions (kB inside)."""
    return PlanOptions(
        profiles=tuple(params["profile"]),
        workload_commit_kb=params["workload_commit_mb"] * KIB_PER_MIB,
        headroom_pct=params["headroom_pct"],
        kernel_reserve_pct=params["kernel_reserve_pct"],
        admin_reserve_kb=params["admin_reserve_mb"] * KIB_PER_MIB,
        prefer=params["prefer"],
    )


# Two-digit prefix of the drop-in's name: 10-98 keeps it among the usual NN- names.
DROPIN_PRIORITY_RANGE = (10, 98)


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
