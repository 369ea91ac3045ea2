# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The types every engine module shares: a server, its reading, an estimate made of named terms,
and the verdict on whether it fits. Plain data with ``as_dict`` for module results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._db.commands import ReadFailure
from ansible_collections.dbfleet.memory.plugins.module_utils._db.procfs import Charge, ProcessCharge
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import mib_text

POSTGRESQL = "postgresql"
MARIADB = "mariadb"
MYSQL = "mysql"
REDIS = "redis"
VALKEY = "valkey"
ENGINES = (POSTGRESQL, MARIADB, MYSQL, REDIS, VALKEY)


@dataclass(frozen=True)
class Server:
    """One database server on the host: running (found in /proc) or configured and stopped."""

    engine: str
    name: str  # "15/main", "mariadbd", "redis-server 127.0.0.1:6379"
    running: bool
    pid: Optional[int] = None  # the postmaster / mariadbd / redis-server
    pids: Tuple[int, ...] = ()  # it and every process below it
    user: Optional[str] = None
    uid: Optional[int] = None
    data_dir: Optional[str] = None
    config_dir: Optional[str] = None  # Debian's /etc/postgresql/VER/NAME
    port: Optional[int] = None
    socket: Optional[str] = None  # PostgreSQL: the socket directory; MariaDB: the socket; Redis: host
    binary: Optional[str] = None
    major_version: Optional[str] = None  # "15" from the binary's path, when it says

    def as_dict(self) -> Dict[str, Any]:
        return {"engine": self.engine, "name": self.name, "running": self.running, "pid": self.pid,
                "processes": len(self.pids), "user": self.user, "data_dir": self.data_dir,
                "config_dir": self.config_dir, "port": self.port, "socket": self.socket}


@dataclass(frozen=True)
class Term:
    """One named part of an estimate: its value and the one-line formula with the host's numbers."""

    name: str
    kb: int
    formula: str
    source: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """A database's commit charge at one load (its configured peak, or a calibration load point)."""

    engine: str
    server: str
    version: str
    load: str  # what is busy, in words
    terms: Tuple[Term, ...]
    calibrated: bool  # the formula was checked against Committed_AS on this engine and major version
    notes: Tuple[str, ...] = ()

    @property
    def peak_kb(self) -> int:
        return sum(term.kb for term in self.terms)

    def term_kb(self, name: str) -> int:
        return sum(term.kb for term in self.terms if term.name == name)

    @property
    def formula(self) -> str:
        """One line: the terms by name and value, and the sum."""
        return "%s = %s" % (" + ".join("%s %s" % (t.name, mib_text(t.kb)) for t in self.terms if t.kb),
                            mib_text(self.peak_kb))

    def as_dict(self) -> Dict[str, Any]:
        return {"engine": self.engine, "server": self.server, "version": self.version, "load": self.load,
                "peak_kb": self.peak_kb, "formula": self.formula, "terms": [t.as_dict() for t in self.terms],
                "calibrated": self.calibrated, "notes": list(self.notes)}


@dataclass(frozen=True)
class Fix:
    """One way to make a configured peak fit, in the database's own terms."""

    setting: str  # "work_mem", "max_connections", "sort_buffer_size+join_buffer_size", "swap"
    current: str
    proposed: str
    peak_after_kb: int
    how: str  # how to apply it: "ALTER SYSTEM SET work_mem = '2MB'; SELECT pg_reload_conf()"
    restart: bool  # the setting only takes effect at a server restart

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitVerdict:
    fits: bool
    peak_kb: int
    room_kb: int
    shortfall_kb: int  # peak - room when it does not fit, else 0
    text: str
    fixes: Tuple[Fix, ...] = ()

    @property
    def verdict(self) -> str:
        return "fits" if self.fits else "does not fit"

    def as_dict(self) -> Dict[str, Any]:
        return {"fits": self.fits, "verdict": self.verdict, "peak_kb": self.peak_kb, "room_kb": self.room_kb,
                "shortfall_kb": self.shortfall_kb, "text": self.text, "fixes": [f.as_dict() for f in self.fixes]}


@dataclass(frozen=True)
class DatabaseReading:
    """What the host said about one server: its settings (engine-specific type) or why not, and
    what its processes commit now (running servers only)."""

    server: Server
    settings: Optional[Any] = None  # postgresql.PgSettings, mysql.MySqlSettings, redis.RedisSettings
    failure: Optional[ReadFailure] = None
    charge: Optional[Charge] = None
    process_charges: Dict[int, ProcessCharge] = field(default_factory=dict, repr=False)

    @property
    def readable(self) -> bool:
        return self.settings is not None

    def as_dict(self) -> Dict[str, Any]:
        settings = self.settings.as_dict() if self.settings is not None else None
        return {"server": self.server.as_dict(), "settings": settings,
                "failure": self.failure.as_dict() if self.failure else None,
                "charge": self.charge.as_dict() if self.charge else None}
