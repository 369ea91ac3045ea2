"""The order of live writes and the ratio/kbytes quirk of mm/util.c."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import writes as sw

BOOT = {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0",
        "vm.admin_reserve_kbytes": "8192"}
STRICT_RATIO = {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87", "vm.admin_reserve_kbytes": "131072"}


def keys(writes):
    return [w.key for w in writes]


@pytest.mark.parametrize(
    "live, desired, expected",
    [
        pytest.param(BOOT, STRICT_RATIO,
                     [("vm.admin_reserve_kbytes", "8192", "131072"), ("vm.overcommit_ratio", "50", "87"),
                      ("vm.overcommit_memory", "0", "2")], id="entering-mode-2-reserve-limit-mode"),
        pytest.param(dict(BOOT, **{"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87",
                                   "vm.admin_reserve_kbytes": "131072"}),
                     {"vm.overcommit_memory": "1"},
                     [("vm.overcommit_memory", "2", "1")], id="leaving-mode-2-for-redis"),
        pytest.param(dict(BOOT, **{"vm.overcommit_memory": "2", "vm.overcommit_ratio": "80"}),
                     {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.admin_reserve_kbytes": "131072"},
                     [("vm.overcommit_memory", "2", "0"), ("vm.admin_reserve_kbytes", "8192", "131072"),
                      ("vm.overcommit_ratio", "80", "50")], id="leaving-mode-2-mode-first-then-rest"),
        pytest.param(dict(BOOT, **{"vm.overcommit_memory": "2", "vm.overcommit_ratio": "80"}),
                     {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87"},
                     [("vm.overcommit_ratio", "80", "87")], id="staying-in-mode-2-only-the-limit"),
        pytest.param(dict(BOOT, **{"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87",
                                   "vm.admin_reserve_kbytes": "131072"}),
                     STRICT_RATIO, [], id="converged-no-writes"),
        pytest.param(BOOT, {"vm.overcommit_memory": "2", "vm.overcommit_kbytes": "250000000",
                            "vm.admin_reserve_kbytes": "131072"},
                     [("vm.admin_reserve_kbytes", "8192", "131072"), ("vm.overcommit_kbytes", "0", "250000000"),
                      ("vm.overcommit_memory", "0", "2")], id="entering-mode-2-with-kbytes"),
        pytest.param(dict(BOOT, **{"vm.overcommit_memory": "2", "vm.overcommit_ratio": "0",
                                   "vm.overcommit_kbytes": "250000000", "vm.admin_reserve_kbytes": "131072"}),
                     {"vm.overcommit_memory": "2", "vm.overcommit_kbytes": "250000000", "vm.admin_reserve_kbytes": "131072"},
                     [], id="kbytes-converged-ignores-the-zeroed-ratio"),
        pytest.param(dict(BOOT, **{"vm.overcommit_ratio": "0", "vm.overcommit_kbytes": "1000"}),
                     {"vm.overcommit_ratio": "0"},
                     [("vm.overcommit_ratio", "0", "0")], id="ratio-written-to-clear-live-kbytes-even-if-equal"),
        pytest.param(dict(BOOT, **{"vm.overcommit_ratio": "0", "vm.overcommit_kbytes": "1000"}),
                     {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87"},
                     [("vm.overcommit_ratio", "0", "87"), ("vm.overcommit_memory", "0", "2")],
                     id="switch-kbytes-to-ratio-writes-only-ratio"),
        pytest.param(BOOT, {"vm.overcommit_ratio": 87}, [("vm.overcommit_ratio", "50", "87")],
                     id="an-int-is-its-decimal-string"),
    ],
)
def test_plan_writes(live, desired, expected):
    assert [(w.key, w.before, w.after) for w in sw.plan_writes(live, desired)] == expected


def test_unmanaged_pair_member_is_never_written():
    for desired in ({"vm.overcommit_ratio": "87"}, {"vm.overcommit_kbytes": "1000"}):
        other = ({"vm.overcommit_ratio", "vm.overcommit_kbytes"} - set(desired)).pop()
        live = dict(BOOT, **{"vm.overcommit_ratio": "1", "vm.overcommit_kbytes": "5"})
        assert other not in keys(sw.plan_writes(live, desired))


@pytest.mark.parametrize(
    "desired, fragment",
    [
        ({"vm.overcommit_ratio": "80", "vm.overcommit_kbytes": "1000"}, "exclude each other"),
        ({"vm.overcommit_kbytes": "0"}, "swap only"),
        ({"vm.overcommit_memory": "3"}, "must be 0, 1 or 2"),
        ({"vm.swappiness": "10"}, "unsupported key(s) vm.swappiness"),
        ({"vm.overcommit_ratio": "-1"}, "vm.overcommit_ratio = '-1' is refused: write a plain decimal number"),
        ({"vm.overcommit_ratio": "8O"}, "vm.overcommit_ratio = '8O' is refused"),
        ({"vm.overcommit_ratio": ""}, "vm.overcommit_ratio = '' is refused"),
        ({"vm.overcommit_ratio": " 087\n"}, "the kernel would refuse ' 087\\n'"),
        ({"vm.overcommit_ratio": "010"}, "the kernel would read '010' as 8"),
        ({"vm.admin_reserve_kbytes": "+131072"}, "vm.admin_reserve_kbytes = '+131072' is refused"),
    ],
)
def test_invalid_desired_values_are_refused(desired, fragment):
    with pytest.raises(ValueError, match=None) as exc:
        sw.validate_desired(desired)
    assert fragment in str(exc.value)


def test_simulate_models_the_pair_quirk():
    live = dict(BOOT, **{"vm.overcommit_ratio": "0", "vm.overcommit_kbytes": "1000"})
    after = sw.simulate(live, [sw.Write("vm.overcommit_ratio", "0", "87")])
    assert (after["vm.overcommit_ratio"], after["vm.overcommit_kbytes"]) == ("87", "0")
    after = sw.simulate(BOOT, [sw.Write("vm.overcommit_kbytes", "0", "1000")])
    assert (after["vm.overcommit_ratio"], after["vm.overcommit_kbytes"]) == ("0", "1000")


def test_rollback_after_entering_mode_2_leaves_mode_first_and_restores_kbytes():
    before = dict(BOOT, **{"vm.overcommit_ratio": "0", "vm.overcommit_kbytes": "4000000"})
    forward = sw.plan_writes(before, STRICT_RATIO)
    now = sw.simulate(before, forward)
    back = sw.rollback_writes(forward, before)
    assert [(w.key, w.after) for w in back] == [
        ("vm.overcommit_memory", "0"),
        ("vm.overcommit_kbytes", "4000000"),  # not "ratio = 0", which would leave kbytes zeroed
        ("vm.admin_reserve_kbytes", "8192"),
    ]
    assert sw.simulate(now, back) == before


def test_rollback_of_a_partial_apply_undoes_only_what_was_written_newest_first():
    forward = sw.plan_writes(BOOT, STRICT_RATIO)[:2]  # the mode write was refused
    back = sw.rollback_writes(forward, BOOT)
    assert [(w.key, w.after) for w in back] == [("vm.overcommit_ratio", "50"), ("vm.admin_reserve_kbytes", "8192")]
