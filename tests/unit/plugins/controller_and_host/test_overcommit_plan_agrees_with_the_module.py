"""The overcommit_plan filter plans from overcommit_info's facts exactly as the module planned on the host.

Controller-side code (the filter) checked against a module run on the fake host: ansible-test units runs the
tests under plugins/modules/ with only what a module may import, so these live here (see conftest.py).
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.filter.overcommit_plan import overcommit_plan
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import NO_DATABASE_PEAK
from ansible_collections.dbfleet.memory.plugins.plugin_utils.facts_plan import DATABASES_NOTE
from ansible_collections.dbfleet.memory.plugins.modules import overcommit_info


@pytest.fixture
def meminfo_file(kernel, meminfo_text):
    """Writes a real-format meminfo fixture into the fake host and returns its host path."""

    def write(name):
        path = kernel.root / "var" / "tmp" / "meminfo"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(meminfo_text(name))
        return "/var/tmp/meminfo"

    return write


PLAN_FIELDS = ("profile", "mode", "limit_by", "sysctl", "commit_limit_kb", "formula", "committed_as_kb", "safe",
               "verdict", "reasons", "memory", "bounds", "commit_state", "options")


@pytest.mark.parametrize("fixture, args", [
    ("small-vm-2g-noswap", {"profile": ["postgresql"]}),
    ("oracle-hugepages-300g", {"profile": ["oracle"], "workload_commit_mb": 200000, "headroom_pct": 10}),
    ("db-host-256g-swap", {"profile": ["mysql"], "prefer": "kbytes", "admin_reserve_mb": 256}),
    ("vm-4g-overcommitted", {"profile": ["generic"]}),  # an unsafe plan: the same refusal, the same numbers
    ("multi-hugepage-sizes", {"profile": ["redis"]}),
])
def test_the_filter_plans_from_the_modules_facts_exactly_as_the_module_planned(
        kernel, run_module, meminfo_file, fixture, args):
    kernel.set("user_reserve_kbytes", "65536")  # not the default: the filter must take the host's
    failed, result = run_module(overcommit_info.main, dict(args, facts=True, meminfo_path=meminfo_file(fixture)))
    assert not failed
    filter_args = {k: (v[0] if k == "profile" else v) for k, v in args.items()}
    from_cache = overcommit_plan(result["ansible_facts"], **filter_args)
    for name in PLAN_FIELDS:
        if name != "reasons":
            assert from_cache[name] == result[name], name
    # The facts carry no database: the filter says so rather than judge peaks it does not know. The
    # module read the fake host's and found none.
    assert from_cache["reasons"] == [r for r in result["reasons"] if r != NO_DATABASE_PEAK] + [DATABASES_NOTE % "warn"]
    assert (NO_DATABASE_PEAK in result["reasons"]) == (result["mode"] == 2) and result["databases"] == []
    assert from_cache["databases"] is None
    assert from_cache["source"] == "overcommit_info facts"
    assert from_cache["live_values"]["vm.overcommit_memory"] == result["live_values"]["vm.overcommit_memory"]
    # setup's facts of the same host would not know Committed_AS: that is what the precise facts add.
    assert from_cache["committed_as_kb"] is not None


def test_hostvars_carry_the_same_facts_at_the_top_level(kernel, run_module):
    _failed, result = run_module(overcommit_info.main, {"facts": True})
    hostvars = {"ansible_memtotal_mb": 1, "ansible_swaptotal_mb": 0,
                "dbfleet_overcommit": result["ansible_facts"]["dbfleet_overcommit"]}
    assert overcommit_plan(hostvars)["commit_limit_kb"] == result["commit_limit_kb"]
