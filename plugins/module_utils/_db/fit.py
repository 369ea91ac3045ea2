# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a database's configured peak fit the room the host can give it, and if not, what would.

The room comes from the plan. The planner's lower bound (planner.check_commit_state) requires

    demand x (1 + headroom_pct / 100) <= room for non-root processes
                                         (CommitLimit - admin reserve - user reserve - 1 page)

With the databases at their peaks, demand is "everything else committed now" (Committed_AS less
what the databases' processes commit now, procfs) plus the peaks. ``databases_room_kb`` solves
that inequality for the peaks; at integration it belongs next to check_commit_state, which
should then take the peaks as part of its demand instead of this module restating its rule.

``judge`` compares one estimate with its room and lists the fixes: the engine's own (smaller
per-connection memory, fewer connections behind a pooler) and swap, which raises CommitLimit by
its size and so the room by size x 100 / (100 + headroom_pct).
"""

from __future__ import annotations

from typing import List, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Estimate, Fix, FitVerdict
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import mib_text


# A fix aims this far inside the room: the next reading measures the server's overhead and the
# host's Committed_AS again, and they move by a MiB or two (lab: MariaDB's overhead 113 -> 114 MiB
# after a SET GLOBAL), which must not turn "fits" back into "does not fit".
FIX_TARGET_PCT = 98


def fix_target_kb(room_kb: int) -> int:
    return room_kb * FIX_TARGET_PCT // 100


def everything_else_kb(committed_as_kb: int, databases_charged_kb: int) -> int:
    """Committed_AS less the databases' own charge now: what the rest of the host commits."""
    return max(0, committed_as_kb - databases_charged_kb)


def databases_room_kb(nonroot_room_kb: int, committed_as_kb: int, databases_charged_kb: int,
                      headroom_pct: int) -> int:
    """How much the databases' peaks may add up to under the planner's lower bound (module docstring)."""
    return (nonroot_room_kb * 100 // (100 + headroom_pct)
            - everything_else_kb(committed_as_kb, databases_charged_kb))


def swap_needed_kb(shortfall_kb: int, headroom_pct: int) -> int:
    """Swap that makes up ``shortfall_kb`` of room: CommitLimit grows by the swap, the room by
    swap x 100 / (100 + headroom)."""
    return -(-shortfall_kb * (100 + headroom_pct) // 100)


def judge(estimate: Estimate, room_kb: int, engine_fixes: Sequence[Fix] = (), headroom_pct: int = 0) -> FitVerdict:
    peak_kb = estimate.peak_kb
    if peak_kb <= room_kb:
        return FitVerdict(True, peak_kb, room_kb, 0,
                          "%s %s fits: configured peak %s <= room %s (%s)" % (
                              estimate.engine, estimate.server, mib_text(peak_kb), mib_text(room_kb), estimate.formula))
    shortfall_kb = peak_kb - room_kb
    swap_kb = swap_needed_kb(shortfall_kb, headroom_pct)
    fixes: List[Fix] = list(engine_fixes) + [
        Fix("swap", "SwapTotal", "+%s" % mib_text(swap_kb), peak_kb,
            "add at least %s of swap: CommitLimit grows by its size, and these settings then fit" % mib_text(swap_kb),
            restart=False)]
    fix_text = "; or ".join("%s %s -> %s" % (f.setting, f.current, f.proposed) for f in fixes)
    return FitVerdict(False, peak_kb, room_kb, shortfall_kb,
                      "%s %s does not fit: configured peak %s > room %s by %s (%s). Fix: %s" % (
                          estimate.engine, estimate.server, mib_text(peak_kb), mib_text(room_kb),
                          mib_text(shortfall_kb), estimate.formula, fix_text), tuple(fixes))
