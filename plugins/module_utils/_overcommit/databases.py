# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's databases in the plan: their demand for the one lower-bound rule, and a line for each.

    _db.host.read_databases  -> HostDatabases (settings or why not, charge now)
    demand_of                -> planner.DatabaseDemand (charge of the estimated ones, sum of peaks)
    planner.plan_overcommit  -> plan.database_verdict: check_commit_state with the peaks in the demand
    judge                    -> one DatabaseLine per server: fits, or does not fit with its fixes

Each database's room is its own peak plus what the rule says the demand may still grow by
(planner.room_for_more_kb on the database verdict): no second copy of the inequality. A server
that could not be read has no estimate; its charge stays in "everything else" (it is committed
now and nobody knows its peak), and its line says why it was not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._db import fit
from ansible_collections.dbfleet.memory.plugins.module_utils._db import host as dbhost
from ansible_collections.dbfleet.memory.plugins.module_utils._db import procfs
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import DatabaseReading, Estimate, FitVerdict
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import mib_text
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    CommitStateVerdict,
    DatabaseDemand,
    room_for_more_kb,
    swap_for_demand_kb,
)


@dataclass(frozen=True)
class DatabaseLine:
    """One server as the module returns it and the plan's reasons name it."""

    engine: str
    server: str
    running: bool
    failure: Optional[Dict[str, Any]]  # why it could not be read, None when it was
    charged_kb: Optional[int]  # what its processes commit now (running servers only)
    estimate: Optional[Estimate]  # its configured peak with the formula
    verdict: Optional[FitVerdict]  # None when unread, or when the plan's mode compares nothing

    @property
    def readable(self) -> bool:
        return self.failure is None

    @property
    def fits(self) -> Optional[bool]:
        return self.verdict.fits if self.verdict is not None else None

    @property
    def reason(self) -> str:
        """The plan's line for this database."""
        name = "%s %s" % (self.engine, self.server)
        if self.failure is not None:
            return "%s could not be read (%s: %s): its configured peak is unknown, and only what it commits now " \
                   "counts." % (name, self.failure["kind"], self.failure["reason"])
        if self.estimate is None:  # a reading is either a failure or an estimate (line_of)
            raise ValueError("database line %s has neither a failure nor an estimate" % name)
        if self.verdict is None:
            return "%s: configured peak %s (%s); the planned mode compares no commit charge with a limit." % (
                name, mib_text(self.estimate.peak_kb), self.estimate.formula)
        return self.verdict.text + "."

    def as_dict(self) -> Dict[str, Any]:
        return {
            "engine": self.engine, "server": self.server, "running": self.running, "readable": self.readable,
            "failure": self.failure, "charged_kb": self.charged_kb,
            "configured_peak_kb": self.estimate.peak_kb if self.estimate else None,
            "formula": self.estimate.formula if self.estimate else None,
            "estimate": self.estimate.as_dict() if self.estimate else None,
            "fits": self.fits, "verdict": self.verdict.verdict if self.verdict else None,
            "room_kb": self.verdict.room_kb if self.verdict else None,
            "shortfall_kb": self.verdict.shortfall_kb if self.verdict else 0,
            "fixes": [f.as_dict() for f in self.verdict.fixes] if self.verdict else [],
            "reason": self.reason,
        }


def estimates_of(found: dbhost.HostDatabases) -> List[Optional[Estimate]]:
    """Each reading's configured peak, None for one that could not be read."""
    return [dbhost.estimate_of(reading, None, found.hugetlb_free_kb) for reading in found.databases]


def demand_of(found: dbhost.HostDatabases) -> DatabaseDemand:
    """What the lower bound needs to know of the databases: the charge now of those whose peak is
    estimated (an unread one's charge stays in everything else) and the sum of their peaks."""
    estimates = estimates_of(found)
    known = [(r, e) for r, e in zip(found.databases, estimates) if e is not None]
    readings = [r for r, _estimate in known]
    charge = procfs.combine(r.charge for r in readings if r.charge is not None)
    return DatabaseDemand(charged_kb=charge.charged_kb, peaks_kb=sum(e.peak_kb for _reading, e in known),
                          servers=tuple("%s %s" % (r.server.engine, r.server.name) for r in readings))


def _line(reading: DatabaseReading, estimate: Optional[Estimate], verdict: Optional[FitVerdict]) -> DatabaseLine:
    return DatabaseLine(
        engine=reading.server.engine, server=reading.server.name, running=reading.server.running,
        failure=reading.failure.as_dict() if reading.failure else None,
        charged_kb=reading.charge.charged_kb if reading.charge else None, estimate=estimate, verdict=verdict)


def judge(found: dbhost.HostDatabases, database_verdict: Optional[CommitStateVerdict],
          headroom_pct: int) -> Tuple[DatabaseLine, ...]:
    """One line per server. ``database_verdict`` is the plan's (check_commit_state with the peaks
    in the demand); None, or a mode that compares nothing, gives lines without a verdict."""
    more_kb = room_for_more_kb(database_verdict, headroom_pct) if database_verdict is not None else None
    lines = []
    for reading, estimate in zip(found.databases, estimates_of(found)):
        verdict = None
        if estimate is not None and more_kb is not None:
            room_kb = estimate.peak_kb + more_kb
            verdict = fit.judge(estimate, room_kb, dbhost.fixes_of(reading, room_kb, None, found.hugetlb_free_kb),
                                lambda short_kb: swap_for_demand_kb(short_kb, headroom_pct))
        lines.append(_line(reading, estimate, verdict))
    return tuple(lines)
