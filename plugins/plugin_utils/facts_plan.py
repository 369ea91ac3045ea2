# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan vm.overcommit_* from a host's facts, on the controller, with no host contacted.

Controller side only (plugin_utils, not module_utils): two plugins plan from facts, the
``overcommit_plan`` filter and the ``audit_report`` action (for a host that did not answer, or an
audit over the fact cache), and both must plan exactly alike. Pure Python, no Ansible import:
a problem with the facts raises FactsPlanError, which each caller turns into its own error.

Two kinds of facts, the precise one winning when both are present:

* ``dbfleet_overcommit`` (overcommit_info with ``facts: true``, see _overcommit/facts.py): the
  memory shape in kB with Committed_AS, huge pages and the page size, and the host's
  vm.user_reserve_kbytes, so the plan is the one the module made on the host.
* ``setup``'s memory facts: MiB, no Committed_AS, no huge pages (only as the caller gives them),
  no user reserve (the kernel's default cap is assumed, and the reasons say so).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.facts import (
    FACTS_KEY,
    FACTS_SCHEMA,
    USER_RESERVE_KEY,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import (
    checked_planner_values,
    plan_options_from_params,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    DEFAULT_USER_RESERVE_KB,
    KIB_PER_MIB,
    PLAIN_DECIMAL,
    KEY_ADMIN_RESERVE as ADMIN_RESERVE_KEY,
    PlanInputError,
    copied_advice_verdict,
    plan_overcommit,
)

# The facts carry no database: their configured peaks are judged on the host only.
DATABASES_NOTE = (
    "No databases are known from facts: their configured peaks were not read or judged here (database_peak=%s "
    "has nothing to act on). overcommit_info on the host reads them.")
USER_RESERVE_NOTE = (
    "vm.user_reserve_kbytes is not in the facts: the lower bound assumes the kernel's default cap, %d kB "
    "(%d MiB). The module reads the host's live value." % (DEFAULT_USER_RESERVE_KB, DEFAULT_USER_RESERVE_KB // KIB_PER_MIB)
)

# The "source" of a plan: from overcommit_info's own facts (the real Committed_AS and live values,
# so the audit assesses such a row like a live one), or from setup's memory facts.
SOURCE_OVERCOMMIT_FACTS = "overcommit_info facts"
SOURCE_SETUP_FACTS = "facts"
# The facts a plan can be made from: overcommit_info's own, or setup's memory facts.
PLANNABLE_FACT_KEYS = (FACTS_KEY, "memtotal_mb")

_MEMORY_FIELDS = ("memtotal_kb", "swaptotal_kb", "hugetlb_kb", "committed_as_kb", "commit_limit_kb", "page_size_kb")
# What the precise facts carry besides the memory shape, returned as they are.
_PASSED_ON = ("gathered_at", "live_values", "live_commit_state", "boot_now_unsafe", "container")


class FactsPlanError(ValueError):
    """The facts or the options cannot give a plan; the message names the problem."""


def _fact(facts: Mapping[str, Any], name: str) -> Any:
    """Read a fact from ansible_facts (no prefix) or from hostvars (ansible_ prefix)."""
    for key in (name, "ansible_" + name):
        if key in facts:
            return facts[key]
    return None


def _whole_mib(name: str, value: Any) -> int:
    """A number of MiB from facts or the hugetlb_mb option: an int (not a bool) or ASCII digits, 0 or more.
    A JSON fact cache keeps Infinity and NaN, and int() would cut 1.5, read "١٢" and take True for 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and PLAIN_DECIMAL.match(value.strip()):
        return int(value.strip())
    raise FactsPlanError("%s must be a whole number of MiB, 0 or more (an integer or ASCII digits), got %r"
                         % (name, value))


def _dict_fact(name: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FactsPlanError("%s must be a dict, got %s" % (name, type(value).__name__))
    return value


def memory_from_facts(facts: Mapping[str, Any], hugetlb_mb: Any = 0) -> MemoryShape:
    """The memory shape from setup's facts: MiB, no Committed_AS, huge pages only as given."""
    found: Dict[str, Optional[int]] = {}
    for name, part in (("memtotal_mb", "real"), ("swaptotal_mb", "swap")):
        value, name_used = _fact(facts, name), name
        if value is None:  # setup's other spelling, read only when needed
            memory_mb = _dict_fact("memory_mb", _fact(facts, "memory_mb"))
            value = _dict_fact("memory_mb." + part, memory_mb.get(part)).get("total")
            name_used = "memory_mb.%s.total" % part
        found[name] = None if value is None else _whole_mib(name_used, value)
    memtotal_mb, swaptotal_mb = found["memtotal_mb"], found["swaptotal_mb"]
    if memtotal_mb is None or swaptotal_mb is None:
        raise FactsPlanError("facts lack memtotal_mb/swaptotal_mb (gather the 'hardware' subset)")
    hugetlb = _whole_mib("hugetlb_mb", hugetlb_mb)
    if memtotal_mb <= 0:
        raise FactsPlanError("memtotal_mb must be more than 0, got %d" % memtotal_mb)
    if hugetlb > memtotal_mb:
        raise FactsPlanError("hugetlb_mb must be between 0 and memtotal_mb (%d), got %d" % (memtotal_mb, hugetlb))
    return MemoryShape(memtotal_kb=memtotal_mb * KIB_PER_MIB, swaptotal_kb=swaptotal_mb * KIB_PER_MIB,
                       hugetlb_kb=hugetlb * KIB_PER_MIB, committed_as_kb=None)


def _cached_int(name: str, value: Any, optional: bool = False) -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FactsPlanError("%s.memory.%s must be an integer >= 0 in kB, got %r" % (FACTS_KEY, name, value))
    return value


def memory_from_overcommit_facts(cached: Any) -> Tuple[MemoryShape, Optional[int]]:
    """The MemoryShape and vm.user_reserve_kbytes that overcommit_info read, back from its facts."""
    if not isinstance(cached, dict):
        raise FactsPlanError("%s must be a dict, got %s" % (FACTS_KEY, type(cached).__name__))
    if cached.get("schema") != FACTS_SCHEMA:
        raise FactsPlanError(
            "%s has schema %r, this collection reads %d: run dbfleet.memory.overcommit_info with "
            "facts=true again to refresh the cache" % (FACTS_KEY, cached.get("schema"), FACTS_SCHEMA))
    memory = cached.get("memory") or {}
    values = {name: _cached_int(name, memory.get(name), optional=name in ("committed_as_kb", "commit_limit_kb"))
              for name in _MEMORY_FIELDS}
    if values["memtotal_kb"] <= 0 or values["hugetlb_kb"] > values["memtotal_kb"] or values["page_size_kb"] <= 0:
        raise FactsPlanError("%s.memory cannot come from one host: %r" % (FACTS_KEY, memory))
    live_values = cached.get("live_values") or {}
    if not isinstance(live_values, dict):
        raise FactsPlanError("%s.live_values must be a dict, got %s" % (FACTS_KEY, type(live_values).__name__))
    return MemoryShape(**values), _live_kb(live_values, USER_RESERVE_KEY)


def _live_kb(live_values: Mapping[str, Any], key: str) -> Optional[int]:
    """A live value of the cached facts, or None when not there."""
    value = live_values.get(key)
    if value is None:
        return None
    # overcommit_info writes the kernel's value as read back: plain decimal digits, nothing else.
    if not PLAIN_DECIMAL.match(str(value)):
        raise FactsPlanError("%s.live_values.%s must be a plain decimal number of kB, got %r" % (FACTS_KEY, key, value))
    return int(value)


def plan_from_facts(facts: Any, *, hugetlb_mb: Any = 0, **options: Any) -> Dict[str, Any]:
    """The plan result the overcommit_plan filter documents, from ansible_facts or a host's hostvars.

    ``options`` are the planner's (module_utils/plan_args.py PLANNER_ARGUMENT_SPEC, the modules'
    options), typed, checked and defaulted exactly as the modules' argument spec does."""
    if not isinstance(facts, dict):
        raise FactsPlanError("input must be a host's facts (a dict), got %s" % type(facts).__name__)
    cached = _fact(facts, FACTS_KEY)
    user_reserve_kb = None
    if cached is not None:
        if hugetlb_mb:
            raise FactsPlanError("hugetlb_mb is for setup facts; the %s fact has the host's own huge pages" % FACTS_KEY)
        memory, user_reserve_kb = memory_from_overcommit_facts(cached)
    else:
        memory = memory_from_facts(facts, hugetlb_mb)
    try:
        planned = plan_options_from_params(checked_planner_values(options))
        # The host's own value when its facts have it (as the module plans); else the kernel's cap,
        # as the reasons then say.
        planned = replace(planned, user_reserve_kb=DEFAULT_USER_RESERVE_KB if user_reserve_kb is None else user_reserve_kb)
        plan = plan_overcommit(memory, planned)
    except (PlanInputError, TypeError, ValueError) as exc:
        raise FactsPlanError(str(exc))
    result = plan.as_dict()
    if user_reserve_kb is None:
        result["reasons"].append(USER_RESERVE_NOTE)
    result["reasons"].append(DATABASES_NOTE % planned.database_peak)
    result["databases"] = None
    if cached is None:
        result["source"] = SOURCE_SETUP_FACTS
        return result
    result["source"] = SOURCE_OVERCOMMIT_FACTS
    result.update((name, cached.get(name)) for name in _PASSED_ON)
    admin_reserve_kb = _live_kb(cached.get("live_values") or {}, ADMIN_RESERVE_KEY)
    if admin_reserve_kb is not None:
        # The copied advice (mode 2, ratio 100) judged by the planner's rule, as overcommit_info judges it.
        result["ratio100_commit_state"] = copied_advice_verdict(memory, admin_reserve_kb, planned).as_dict()
    return result
