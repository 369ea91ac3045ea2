"""Whether a configured peak fits the room the plan leaves, and the fixes when it does not."""

from __future__ import annotations

import pytest
from conftest import db_text

from ansible_collections.dbfleet.memory.plugins.module_utils._db import fit
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql as pg
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Estimate, Fix, Term

MIB = 1024


@pytest.mark.parametrize("committed_as_kb, databases_kb, expected_kb", [
    (700 * MIB, 680 * MIB, 20 * MIB),
    (100 * MIB, 120 * MIB, 0),  # a reading taken while a server grew: never negative
])
def test_everything_else_is_committed_as_less_the_databases_own_charge(committed_as_kb, databases_kb, expected_kb):
    assert fit.everything_else_kb(committed_as_kb, databases_kb) == expected_kb


@pytest.mark.parametrize("room_kb, committed_as_kb, databases_kb, headroom_pct, expected_kb", [
    # the planner's rule solved for the peaks: room x 100 / (100 + headroom) - everything else
    (734 * MIB, 180 * MIB, 166 * MIB, 20, 734 * MIB * 100 // 120 - 14 * MIB),
    (734 * MIB, 180 * MIB, 166 * MIB, 0, 720 * MIB),
    (100 * MIB, 500 * MIB, 0, 20, 100 * MIB * 100 // 120 - 500 * MIB),  # no room at all: negative
])
def test_the_databases_room_is_the_planners_lower_bound_solved_for_their_peaks(
        room_kb, committed_as_kb, databases_kb, headroom_pct, expected_kb):
    assert fit.databases_room_kb(room_kb, committed_as_kb, databases_kb, headroom_pct) == expected_kb


@pytest.mark.parametrize("shortfall_kb, headroom_pct, swap_kb", [(100 * MIB, 20, 120 * MIB), (1, 20, 2), (500, 0, 500)])
def test_swap_makes_up_a_shortfall_grossed_up_by_the_headroom(shortfall_kb, headroom_pct, swap_kb):
    assert fit.swap_needed_kb(shortfall_kb, headroom_pct) == swap_kb


def estimate(kb: int) -> Estimate:
    return Estimate("postgresql", "15/main", "15", "configured peak", (Term("shared memory", kb, "x"),), True)


def test_a_peak_within_the_room_fits_and_lists_no_fix():
    verdict = fit.judge(estimate(500 * MIB), 600 * MIB)
    assert (verdict.fits, verdict.verdict, verdict.shortfall_kb, verdict.fixes) == (True, "fits", 0, ())
    assert verdict.text.startswith("postgresql 15/main fits: configured peak 500 MiB <= room 600 MiB")


def test_a_peak_beyond_the_room_does_not_fit_and_lists_the_engines_fixes_then_swap():
    engine_fix = Fix("work_mem", "32MB", "2MB", 590 * MIB, "ALTER SYSTEM ...", False)
    verdict = fit.judge(estimate(700 * MIB), 600 * MIB, [engine_fix], headroom_pct=20)
    assert not verdict.fits and verdict.verdict == "does not fit" and verdict.shortfall_kb == 100 * MIB
    assert [f.setting for f in verdict.fixes] == ["work_mem", "swap"]
    assert verdict.fixes[1].proposed == "+120 MiB"
    assert "by 100 MiB" in verdict.text and "work_mem 32MB -> 2MB; or swap SwapTotal -> +120 MiB" in verdict.text


def test_the_lab_proofs_configuration_does_not_fit_600_mib_and_its_fix_does():
    proof = pg.parse_settings_rows(db_text("pg15-settings-30conn-workmem32MB.txt"))
    peak = pg.estimate("15/main", proof, pg.configured_peak(proof))
    verdict = fit.judge(peak, 600 * MIB, pg.fixes("15/main", proof, pg.configured_peak(proof), 600 * MIB), 20)
    assert not verdict.fits and verdict.fixes[0].setting == "work_mem"
    fixed = pg.parse_settings_rows(db_text("pg15-settings-30conn-workmem1600kB.txt"))
    assert fit.judge(pg.estimate("15/main", fixed, pg.configured_peak(fixed)), 600 * MIB).fits
