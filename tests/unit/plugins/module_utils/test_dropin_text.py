"""The drop-in lists its keys in the order that is safe to apply from a fresh kernel.

A boot applies the file line by line; entering mode 2 is safe only as admin reserve, then the
limit, then the mode (the role README says why the file is rendered in Python for this).
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.dropin import render_dropin
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import PlanOptions, plan_overcommit

SMALL_HOST = MemoryShape(memtotal_kb=16384000, swaptotal_kb=4194300, hugetlb_kb=0, committed_as_kb=3200000)
BIG_HOST = MemoryShape(memtotal_kb=528280000, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=104857600)


def keys_in_file_order(text):
    return [line.split("=")[0].strip() for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("memory, limit_key", [
    (SMALL_HOST, "vm.overcommit_ratio"),
    (BIG_HOST, "vm.overcommit_kbytes"),
])
def test_a_mode_2_drop_in_sets_the_admin_reserve_then_the_limit_then_the_mode(memory, limit_key):
    plan = plan_overcommit(memory, PlanOptions(profiles=("postgresql",))).as_dict()
    assert plan["limit_by"] == limit_key.split("_")[-1]
    assert keys_in_file_order(render_dropin(plan)) == ["vm.admin_reserve_kbytes", limit_key, "vm.overcommit_memory"]


def test_a_mode_1_drop_in_sets_only_the_mode():
    plan = plan_overcommit(SMALL_HOST, PlanOptions(profiles=("redis",))).as_dict()
    assert keys_in_file_order(render_dropin(plan)) == ["vm.overcommit_memory"]
