"""Whether a configured peak fits the room the plan leaves, and the fixes when it does not."""

from __future__ import annotations

from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    db_text,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import fit
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql as pg
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Estimate, Fix, Term

MIB = 1024


def estimate(kb: int) -> Estimate:
    return Estimate("postgresql", "15/main", "15", "configured peak", (Term("shared memory", kb, "x"),), True)


def test_a_peak_within_the_room_fits_and_lists_no_fix():
    verdict = fit.judge(estimate(500 * MIB), 600 * MIB)
    assert (verdict.fits, verdict.verdict, verdict.shortfall_kb, verdict.fixes) == (True, "fits", 0, ())
    assert verdict.text.startswith("postgresql 15/main fits: configured peak 500 MiB <= room 600 MiB")


def test_a_peak_beyond_the_room_does_not_fit_and_lists_the_engines_fixes_then_swap():
    engine_fix = Fix("work_mem", "32MB", "2MB", 590 * MIB, "ALTER SYSTEM ...", False)
    verdict = fit.judge(estimate(700 * MIB), 600 * MIB, [engine_fix], lambda short_kb: short_kb * 120 // 100)
    assert not verdict.fits and verdict.verdict == "does not fit" and verdict.shortfall_kb == 100 * MIB
    assert [f.setting for f in verdict.fixes] == ["work_mem", "swap"]
    assert verdict.fixes[1].proposed == "+120 MiB"
    assert "by 100 MiB" in verdict.text and "work_mem 32MB -> 2MB; or swap SwapTotal -> +120 MiB" in verdict.text


def test_the_lab_proofs_configuration_does_not_fit_600_mib_and_its_fix_does():
    proof = pg.parse_settings_rows(db_text("pg15-settings-30conn-workmem32MB.txt"))
    peak = pg.estimate("15/main", proof, pg.configured_peak(proof))
    verdict = fit.judge(peak, 600 * MIB, pg.fixes("15/main", proof, pg.configured_peak(proof), 600 * MIB))
    assert not verdict.fits and verdict.fixes[0].setting == "work_mem"
    fixed = pg.parse_settings_rows(db_text("pg15-settings-30conn-workmem1600kB.txt"))
    assert fit.judge(pg.estimate("15/main", fixed, pg.configured_peak(fixed)), 600 * MIB).fits


def test_without_a_swap_rule_no_swap_fix_is_invented_and_no_empty_fix_is_printed():
    verdict = fit.judge(estimate(700 * MIB), 600 * MIB)
    assert not verdict.fits and verdict.fixes == ()
    assert verdict.text.endswith("(shared memory 700 MiB = 700 MiB).")


def test_a_room_below_zero_is_said_as_no_room_and_how_far_short_the_rest_is():
    verdict = fit.judge(estimate(700 * MIB), -100 * MIB)
    assert verdict.shortfall_kb == 800 * MIB
    assert "configured peak 700 MiB > room none (100 MiB short without it) by 800 MiB" in verdict.text
