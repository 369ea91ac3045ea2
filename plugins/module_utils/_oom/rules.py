# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which process the OOM killer picks on a database host: the rules, pure. No Ansible, no I/O.

    profiles + explicit units -> the units to look for (find_targets)
    what the host holds       -> per unit: the drop-in to write, the live write, or why not
                                 (decide.py, which only oom_priority runs)
    the same host data        -> a report per database unit (describe_units), for overcommit_info

The host side (reading unit files, ``systemctl show``, /proc/PID) is _oom/host.py; the writes are
_oom/transaction.py. The kernel and systemd facts behind the rules are in the module's documentation
and the guides; the per-database values carry their own sentence and source (RULES).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._common.profiles import PROFILE_MODES

# The planner's profile names, so one host variable can feed both roles.
PROFILES: Tuple[str, ...] = tuple(PROFILE_MODES)

OOM_SCORE_ADJ_MIN = -1000  # the kernel's "never chosen"
OOM_SCORE_ADJ_MAX = 1000
OOM_POLICIES = ("continue", "stop", "kill")
PG_ENV_FILE = "PG_OOM_ADJUST_FILE"

SYSTEMD_ETC = "/etc/systemd/system"
# Where unit files live, highest priority first (systemd.unit(5), "System Unit Search Path").
UNIT_DIRS: Tuple[str, ...] = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                              "/usr/lib/systemd/system", "/lib/systemd/system")
OUR_SUFFIX = "-dbfleet-oom.conf"
# \Z, not $: "$" also matches before a final newline, and "90-dbfleet-oom.conf\n" is not ours.
OUR_NAME = re.compile(r"[0-9]{2}" + re.escape(OUR_SUFFIX) + r"\Z")
DEFAULT_PRIORITY = 90

LIVE_CHOICES = ("auto", "never", "cgroup")
STATE_CHOICES = ("present", "absent")

# The properties the host reader asks `systemctl show` for; describe_units and decide use them.
SHOW_PROPERTIES: Tuple[str, ...] = ("Id", "Names", "LoadState", "ActiveState", "SubState", "Type", "MainPID",
                                    "OOMScoreAdjust", "OOMPolicy", "ManagedOOMPreference", "FragmentPath",
                                    "DropInPaths", "NeedDaemonReload")
OOMD_UNIT = "systemd-oomd.service"


class OomInputError(ValueError):
    """Bad input, found before the host is read; ``option`` names the module option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__("%s: %s" % (option, message))
        self.option = option


@dataclass(frozen=True)
class DatabaseRule:
    """What one database wants from the OOM killer, and why."""

    name: str
    unit_patterns: Tuple[str, ...]
    oom_score_adj: Optional[int]  # None: report only, write nothing unless asked
    oom_policy: Optional[str]
    environment: Tuple[Tuple[str, str], ...]
    # One process (threads) holds all the data: at -1000 it can never be chosen, even when it is
    # itself the runaway, and a host-wide OOM then finds nothing to kill and panics.
    single_process: bool
    why: str
    source: str

    def as_dict(self) -> Dict[str, Any]:
        return {"database": self.name, "oom_score_adj": self.oom_score_adj, "oom_policy": self.oom_policy,
                "environment": dict(self.environment), "single_process": self.single_process,
                "unit_patterns": list(self.unit_patterns), "why": self.why, "source": self.source}


_MYSQL_UNITS = ("mariadb.service", "mariadb@*.service", "mysql.service", "mysqld.service", "mysql@*.service",
                "mysqld@*.service")
_MYSQL_WHY = ("The server is one process: -600 makes it a late choice without making it unkillable, so a "
              "runaway mysqld/mariadbd can still be stopped by the kernel instead of a panic.")
_MYSQL_SOURCE = ("MariaDB's own units carry '# OOMScoreAdjust=-600' as the suggested value "
                 "(support-files/mariadb.service.in); MySQL's upstream unit sets none.")
_REDIS_WHY = ("Redis 6.0.7+ and Valkey set their own scores with oom-score-adj and oom-score-adj-values "
              "(primary, replica, background save child) and change them when the role changes: set them "
              "there; a unit value is written only when asked for with oom_score_adj.")

RULES: Dict[str, DatabaseRule] = {
    "postgresql": DatabaseRule(
        name="postgresql",
        # Debian/Ubuntu clusters are instances of postgresql@.service; PGDG packages ship
        # postgresql-NN.service; Red Hat's own package and many hand-made hosts postgresql.service
        # (on Debian that one is a oneshot that starts the clusters, and is skipped as such).
        unit_patterns=("postgresql@*.service", "postgresql-[0-9]*.service", "postgresql.service",
                       "patroni.service"),
        oom_score_adj=-1000, oom_policy="continue",
        environment=((PG_ENV_FILE, "/proc/self/oom_score_adj"), ("PG_OOM_ADJUST_VALUE", "0")),
        single_process=False,
        why=("The postmaster at -1000 is never chosen, and PG_OOM_ADJUST_FILE with PG_OOM_ADJUST_VALUE=0 "
             "puts each backend back at 0, so the kernel kills the runaway backend; OOMPolicy=continue "
             "lets PostgreSQL's own crash recovery reset the sessions instead of systemd stopping the "
             "whole cluster."),
        source=("PostgreSQL manual, 'Linux Memory Overcommit' (server-start, since 9.5); the PGDG unit "
                "files set the same three values; systemd.service(5) OOMPolicy= (default stop)."),
    ),
    "mariadb": DatabaseRule("mariadb", _MYSQL_UNITS, -600, None, (), True, _MYSQL_WHY, _MYSQL_SOURCE),
    "mysql": DatabaseRule("mysql", _MYSQL_UNITS, -600, None, (), True, _MYSQL_WHY, _MYSQL_SOURCE),
    "redis": DatabaseRule("redis", ("redis-server.service", "redis-server@*.service", "redis.service",
                                    "redis@*.service"), None, None, (), True, _REDIS_WHY,
                          "redis.conf, 'oom-score-adj' and 'oom-score-adj-values' (Redis 6.0.7+)."),
    "valkey": DatabaseRule("valkey", ("valkey*.service",), None, None, (), True, _REDIS_WHY,
                           "valkey.conf, 'oom-score-adj' and 'oom-score-adj-values'."),
    "oracle": DatabaseRule(
        "oracle", ("oracle-ohasd.service", "dbora.service"), None, None, (), False,
        "Oracle publishes no value for its processes: report only; give oom_score_adj to choose one.",
        "No public Oracle recommendation; oracle-ohasd.service is Grid Infrastructure's unit, dbora.service "
        "the name Oracle's documentation uses for automatic startup."),
    "generic": DatabaseRule(
        "generic", (), None, None, (), True,
        "No database-specific rule: list the units and give oom_score_adj to choose a value.",
        "None; the process model is unknown, so -1000 is treated as for a single-process database."),
}


# --- inputs from the host ----------------------------------------------------------------------

@dataclass(frozen=True)
class UnitFile:
    """A unit file name found in the unit directories, and whether the winning entry masks it."""

    name: str
    path: str
    masked: bool


@dataclass(frozen=True)
class UnitState:
    """One unit as ``systemctl show`` reports it (see parse_show)."""

    unit_id: str
    names: Tuple[str, ...]
    load_state: str
    active_state: str
    sub_state: str
    unit_type: str
    main_pid: int
    oom_score_adj: Optional[int]  # what the next start uses
    oom_policy: Optional[str]
    managed_oom_preference: Optional[str]
    fragment_path: str
    dropin_paths: Tuple[str, ...]
    need_daemon_reload: bool

    @property
    def running(self) -> bool:
        return self.main_pid > 0


@dataclass(frozen=True)
class ProcessState:
    """A unit's main process: its live score and the names in its environment (values unused)."""

    pid: int
    oom_score_adj: Optional[int]
    environ_names: FrozenSet[str]
    readable_environ: bool = True


@dataclass(frozen=True)
class HostUnits:
    """Everything decide() and describe_units() need, read by _oom.host.read_host_units()."""

    units: Dict[str, UnitState]  # by every name systemctl answered for (Id and requested names)
    unit_files: Dict[str, UnitFile]  # by name, the winning entry of the unit directories
    processes: Dict[int, ProcessState]
    ours: Dict[str, str]  # path of each NN-dbfleet-oom.conf under /etc/systemd/system -> text
    file_texts: Dict[str, Optional[str]]  # fragment and drop-in texts, by path (None: unreadable)
    container: Optional[str]
    container_evidence: Optional[str]
    oomd_active: bool


def parse_show(text: str) -> List[Dict[str, str]]:
    """``systemctl show -p ... UNIT...`` output: one dict per unit (blocks split by blank lines).
    Blocks without an Id (the manager's own properties) are dropped."""
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current.get("Id"):
                blocks.append(current)
            current = {}
            continue
        key, eq, value = line.partition("=")
        if eq:
            current[key] = value
    return blocks


def _int_or_none(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def unit_from_show(props: Mapping[str, str]) -> UnitState:
    return UnitState(
        unit_id=props["Id"], names=tuple(props.get("Names", "").split()) or (props["Id"],),
        load_state=props.get("LoadState", ""), active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""), unit_type=props.get("Type", ""),
        main_pid=_int_or_none(props.get("MainPID")) or 0,
        oom_score_adj=_int_or_none(props.get("OOMScoreAdjust")),
        oom_policy=props.get("OOMPolicy") or None,
        managed_oom_preference=props.get("ManagedOOMPreference") or None,
        fragment_path=props.get("FragmentPath", ""),
        dropin_paths=tuple(props.get("DropInPaths", "").split()),
        need_daemon_reload=props.get("NeedDaemonReload") == "yes")


def parse_environ(data: bytes) -> FrozenSet[str]:
    """The variable names of a /proc/PID/environ."""
    return frozenset(entry.split(b"=", 1)[0].decode("utf-8", "replace")
                     for entry in data.split(b"\0") if b"=" in entry)


# --- what to look for ---------------------------------------------------------------------------

def template_of(unit: str) -> Optional[str]:
    """postgresql@15-main.service -> postgresql@.service; None for a unit that is no instance."""
    prefix, at, rest = unit.partition("@")
    if not at or not rest or rest.startswith("."):
        return None
    return prefix + "@" + rest[rest.rfind("."):]


def is_template(unit: str) -> bool:
    prefix, at, rest = unit.partition("@")
    return bool(at) and rest.startswith(".")


def databases_of(unit: str) -> List[str]:
    """The databases whose unit patterns name ``unit`` (an instance also through its template), in
    PROFILES order: the engine the unit runs, as far as its name tells."""
    tmpl = template_of(unit)

    def matches(rule: DatabaseRule) -> bool:
        return any(fnmatch.fnmatchcase(unit, pat) or (tmpl is not None and fnmatch.fnmatchcase(tmpl, pat.replace("*", "")))
                   for pat in rule.unit_patterns)

    return [name for name in PROFILES if name != "generic" and matches(RULES[name])]


def rule_for_unit(unit: str, profiles: Sequence[str]) -> DatabaseRule:
    """The rule of the database ``unit`` runs: a profile given whose patterns match it (the one named
    in the unit's name first: mariadb.service is MariaDB's even where mysql.service is too); else any
    database whose patterns match it (a unit never gets another engine's settings: see
    decide.foreign_database); else, for a name of no known database, the one database profile given; else
    generic."""
    databases = [p for p in profiles if p != "generic"]
    found = databases_of(unit)
    pick = [name for name in found if name in databases] or found
    if pick:
        named = [name for name in pick if unit.startswith(name)]
        return RULES[(named or pick)[0]]
    return RULES[databases[0]] if len(databases) == 1 else RULES["generic"]


def candidate_names(profiles: Sequence[str], units: Sequence[str]) -> List[str]:
    """What the host reader asks systemctl about: the patterns (globs match loaded units only,
    so the reader adds the matching unit files it finds on disk) and the explicit names."""
    out: List[str] = []
    for name in profiles:
        for pat in RULES[name].unit_patterns:
            if pat not in out:
                out.append(pat)
    for unit in units:
        if unit not in out:
            out.append(unit)
    return out


def matching_unit_files(patterns: Sequence[str], unit_files: Mapping[str, UnitFile]) -> List[str]:
    """Unit files on disk that a pattern names: templates (postgresql@.service) and plain units."""
    out = []
    for name in sorted(unit_files):
        for pat in patterns:
            instance_of = is_template(name) and "@" in pat and fnmatch.fnmatchcase(name, pat.replace("*", ""))
            if fnmatch.fnmatchcase(name, pat) or instance_of:
                out.append(name)
                break
    return out


# --- a request and the units it targets -------------------------------------------------------

@dataclass(frozen=True)
class Request:
    state: str = "present"
    profiles: Tuple[str, ...] = ()
    units: Tuple[str, ...] = ()
    oom_score_adj: Optional[int] = None  # overrides every rule's value
    oom_policy: Optional[str] = None  # overrides every rule's policy
    allow_unkillable: Tuple[str, ...] = ()
    live: str = "auto"
    priority: int = DEFAULT_PRIORITY


@dataclass
class LiveWrite:
    """One write of a main PID's /proc/PID/oom_score_adj."""

    unit: str
    pid: int
    before: int
    after: int

    def as_dict(self) -> Dict[str, Any]:
        return {"unit": self.unit, "pid": self.pid, "before": self.before, "after": self.after}


@dataclass
class UnitDecision:
    """One unit (or template) and what happens to it."""

    unit: str  # the Id, or the template's name
    database: str
    status: str  # managed | report-only | masked | missing | oneshot | ineffective | removed
    dropin: Optional[str] = None  # the drop-in path that serves it
    settings: Dict[str, str] = field(default_factory=dict)
    live: str = ""  # what happens to the running process, in words
    live_write: Optional[LiveWrite] = None
    notes: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"unit": self.unit, "database": self.database, "status": self.status, "dropin": self.dropin,
                "settings": dict(self.settings), "live": self.live, "notes": list(self.notes),
                "live_write": self.live_write.as_dict() if self.live_write else None}


def dropin_owner(unit_id: str) -> str:
    """The name whose .d directory carries our drop-in: the template's for an instance, so every
    instance (today's and the next cluster created) gets it."""
    return template_of(unit_id) or unit_id


def find_targets(request: Request, host: HostUnits) -> Tuple[Dict[str, List[UnitState]], List[UnitDecision]]:
    """owner (unit or template) -> its loaded units; plus decisions for names that are masked,
    missing or oneshot (nothing to manage)."""
    owners: Dict[str, List[UnitState]] = {}
    skipped: List[UnitDecision] = []
    patterns = candidate_names(request.profiles, ())
    seen = set()
    for name in matching_unit_files(patterns, host.unit_files) + [u for u in request.units if is_template(u)]:
        if is_template(name):
            uf = host.unit_files.get(name)
            if uf is None:
                skipped.append(UnitDecision(name, rule_for_unit(name, request.profiles).name, "missing",
                                            live="no such template unit file"))
            elif uf.masked:
                skipped.append(UnitDecision(name, rule_for_unit(name, request.profiles).name, "masked",
                                            live="masked (%s -> /dev/null): not written" % uf.path))
            else:
                owners.setdefault(name, [])
    explicit = [u for u in request.units if not is_template(u)]
    for key, unit in sorted(host.units.items()):
        if unit.unit_id in seen:
            continue
        requested = key in explicit or any(n in explicit for n in unit.names)
        matched = requested or any(fnmatch.fnmatchcase(n, pat) for n in (key,) + unit.names for pat in patterns)
        if not matched:
            continue
        seen.add(unit.unit_id)
        database = rule_for_unit(unit.unit_id, request.profiles).name
        if unit.load_state == "masked":
            skipped.append(UnitDecision(unit.unit_id, database, "masked", live="masked: not written"))
        elif unit.load_state != "loaded":
            if requested:
                skipped.append(UnitDecision(key, database, "missing",
                                            live="systemd: LoadState=%s; nothing written" % unit.load_state))
        elif unit.unit_type == "oneshot" and not unit.running and not requested:
            # Debian's postgresql.service: /bin/true that pulls in the clusters' instances.
            skipped.append(UnitDecision(unit.unit_id, database, "oneshot",
                                        live="a oneshot unit with no process of its own; its instances carry the database"))
        else:
            owners.setdefault(dropin_owner(unit.unit_id), []).append(unit)
    return owners, skipped


# --- the report for overcommit_info --------------------------------------------------------------

def describe_units(host: HostUnits, profiles: Sequence[str] = PROFILES, units: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Per database unit found: live and configured scores, OOMPolicy and what is at risk.

    Keys: unit, database, status (found, or why there is nothing to report: masked, missing (a
    unit asked for by name), oneshot (Debian's postgresql.service)), load_state, active_state,
    main_pid, live_oom_score_adj (None: not running or unreadable), configured_oom_score_adj (what
    the next start uses), oom_policy, managed_oom_preference, pg_oom_adjust_file (PostgreSQL:
    True/False from the postmaster's environment, None when unknown), backends_inherit_negative
    (PostgreSQL whose new backends start below 0), our_dropin, findings (sentences).
    """
    request = Request(profiles=tuple(profiles), units=tuple(units))
    owners, skipped = find_targets(request, host)
    out: List[Dict[str, Any]] = []
    for owner in sorted(owners):
        ours = [p for p in host.ours if p.startswith("%s/%s.d/" % (SYSTEMD_ETC, owner))]
        for unit in owners[owner]:
            rule = rule_for_unit(unit.unit_id, profiles)
            proc = host.processes.get(unit.main_pid) if unit.running else None
            live = proc.oom_score_adj if proc else None
            findings: List[str] = []
            has_file: Optional[bool] = None
            inherit = False
            if rule.name == "postgresql" and proc is not None and proc.readable_environ:
                has_file = PG_ENV_FILE in proc.environ_names
                inherit = live is not None and live < 0 and not has_file
                if inherit:
                    findings.append("the postmaster runs at %d without %s: every new backend inherits %d, so a "
                                    "runaway backend is protected too" % (live, PG_ENV_FILE, live))
            if unit.oom_policy == "stop" and rule.name == "postgresql":
                findings.append("OOMPolicy=stop: one OOM-killed backend stops the whole cluster")
            if live is not None and unit.oom_score_adj is not None and live != unit.oom_score_adj:
                findings.append("live %d differs from the configured %d (until the next restart or a run)"
                                % (live, unit.oom_score_adj))
            if live is not None and live <= OOM_SCORE_ADJ_MIN and rule.single_process:
                findings.append("a single-process database at -1000: if it is the runaway, nothing can be killed")
            out.append({
                "unit": unit.unit_id, "database": rule.name, "status": "found", "load_state": unit.load_state,
                "active_state": unit.active_state, "main_pid": unit.main_pid or None,
                "live_oom_score_adj": live, "configured_oom_score_adj": unit.oom_score_adj,
                "oom_policy": unit.oom_policy, "managed_oom_preference": unit.managed_oom_preference,
                "pg_oom_adjust_file": has_file, "backends_inherit_negative": inherit,
                "our_dropin": ours[0] if ours else None, "findings": findings})
    for d in skipped:
        out.append({"unit": d.unit, "database": d.database, "status": d.status, "load_state": None, "active_state": None,
                    "main_pid": None, "live_oom_score_adj": None, "configured_oom_score_adj": None,
                    "oom_policy": None, "managed_oom_preference": None, "pg_oom_adjust_file": None,
                    "backends_inherit_negative": False, "our_dropin": None, "findings": [d.live]})
    return out
