# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a database's configured peak fit the room the plan leaves it, and if not, what would.

The room is not computed here: it comes from the planner's one lower-bound rule
(_overcommit/planner.check_commit_state, with the databases' configured peaks in the demand),
which the _overcommit layer solves for each database (_overcommit/databases.py). This module
compares one estimate with that room and lists the fixes: the engine's own (smaller
per-connection memory, fewer connections behind a pooler) and swap, whose size for a shortfall
the caller gives by the same rule (``swap_for``).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Estimate, Fix, FitVerdict
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import mib_text, mib_text_up


# A fix aims this far inside the room: the next reading measures the server's overhead and the
# host's Committed_AS again, which must not turn "fits" back into "does not fit". They move by a
# few percent of the room, and after a busy hour by more: glibc keeps the arenas the load's threads
# used, so MariaDB's measured overhead rose 121 -> 139 MiB (and 121 -> 135) after the lab proof's
# 26 connections, where a 98 % target left 11.6 MiB of slack on a 579 MiB room.
FIX_TARGET_PCT = 98
BUSY_HOUR_DRIFT_KB = 32 * 1024


def fix_target_kb(room_kb: int) -> int:
    return max(0, room_kb * FIX_TARGET_PCT // 100 - BUSY_HOUR_DRIFT_KB)


def judge(estimate: Estimate, room_kb: int, engine_fixes: Sequence[Fix] = (),
          swap_for: Optional[Callable[[int], int]] = None) -> FitVerdict:
    """``swap_for(shortfall_kb)``: the swap that makes up a shortfall of demand (the planner's
    swap_for_demand_kb with the plan's headroom); without it no swap fix is listed."""
    peak_kb = estimate.peak_kb
    if peak_kb <= room_kb:
        return FitVerdict(True, peak_kb, room_kb, 0,
                          "%s %s fits: configured peak %s <= room %s (%s)" % (
                              estimate.engine, estimate.server, mib_text(peak_kb), mib_text(room_kb), estimate.formula))
    shortfall_kb = peak_kb - room_kb
    fixes: List[Fix] = list(engine_fixes)
    if swap_for is not None:
        swap_kb = swap_for(shortfall_kb)
        fixes.append(Fix("swap", "SwapTotal", "+%s" % mib_text_up(swap_kb), peak_kb,
                         "add at least %s of swap: CommitLimit grows by its size, and these settings then fit"
                         % mib_text_up(swap_kb), restart=False))
    fix_text = "; or ".join("%s %s -> %s" % (f.setting, f.current, f.proposed) for f in fixes)
    # No room at all: the rest of the demand alone is already that much over the limit.
    room_text = mib_text(room_kb) if room_kb > 0 else "none (%s short without it)" % mib_text(-room_kb)
    return FitVerdict(False, peak_kb, room_kb, shortfall_kb,
                      "%s %s does not fit: configured peak %s > room %s by %s (%s).%s" % (
                          estimate.engine, estimate.server, mib_text(peak_kb), room_text,
                          mib_text_up(shortfall_kb), estimate.formula, " Fix: %s" % fix_text if fixes else ""),
                      tuple(fixes))
