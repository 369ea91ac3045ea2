# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: read a cluster's memory settings, estimate its commit charge, say what would fit.

Reading, read-only, through the cluster's own tools as its owner:

* a running cluster: ``psql`` on its socket (peer authentication as the owner needs no
  password), one SELECT on pg_settings and pg_stat_activity;
* a stopped cluster (Debian's ``pg_lsclusters`` names it): ``postgres -C NAME`` for each
  setting, which reads the configuration files exactly as the server would and, for
  shared_memory_size (15+), computes it; it needs the server down, which it is.

The estimate (``estimate``) is a sum of named terms; each source is cited in its Term and in
docs/docsite/rst/guide_sizing.rst, where the lab's calibration table shows it against
Committed_AS on PostgreSQL 15:

* shared memory: ``shared_memory_size`` (15+; the server's own total of its main segment),
  charged once, nothing when huge pages back it;
* every process (backends, autovacuum, background and parallel workers, WAL senders, the
  auxiliary processes): a fork is charged its postmaster's private writable memory, and a
  backend adds about 1 MiB as it starts (catalog caches; measured);
* query memory: each sort node may use ``work_mem`` and each hash node ``work_mem x
  hash_mem_multiplier`` before spilling (PostgreSQL manual, "Resource Consumption"), in every
  connection and every parallel worker;
* maintenance: each autovacuum worker ``autovacuum_work_mem`` (or ``maintenance_work_mem``;
  before 17 a vacuum never uses more than 1 GB of it), and a manual VACUUM or CREATE INDEX
  ``maintenance_work_mem``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple, Union

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db.fit import fix_target_kb
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import (
    POSTGRESQL, Estimate, Fix, Server, Term)
from ansible_collections.dbfleet.memory.plugins.module_utils._db.procfs import ProcessCharge
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import (
    KIB, SizeError, mib_text, pg_int, pg_memory_kb, pg_real, size_text)

# The settings read, with the unit pg_settings gives each memory setting (postgres -C prints the
# number in that unit, without it). The unit test checks this table against a real pg_settings.
MEMORY_UNITS: Dict[str, str] = {
    "shared_memory_size": "MB", "shared_buffers": "8kB", "wal_buffers": "8kB", "temp_buffers": "8kB",
    "work_mem": "kB", "maintenance_work_mem": "kB", "autovacuum_work_mem": "kB", "huge_page_size": "kB",
    "min_dynamic_shared_memory": "MB",
}
COUNT_SETTINGS = ("server_version_num", "max_connections", "superuser_reserved_connections", "autovacuum_max_workers",
                  "max_worker_processes", "max_parallel_workers", "max_wal_senders",
                  "shared_memory_size_in_huge_pages")
TEXT_SETTINGS = ("huge_pages", "autovacuum", "archive_mode", "hash_mem_multiplier", "jit")
SETTINGS: Tuple[str, ...] = tuple(MEMORY_UNITS) + COUNT_SETTINGS + TEXT_SETTINGS
REQUIRED = ("server_version_num", "shared_buffers", "max_connections", "work_mem", "maintenance_work_mem",
            "autovacuum_max_workers", "max_worker_processes")
CLIENT_BACKENDS = "dbfleet.client_backends"  # a row our query adds: the connections open now

# Constants from lab runs on PostgreSQL 15.18 (Debian 12, x86_64), held by the calibration
# (guide_sizing.rst, "Calibration"; make lab-sizing): the postmaster's private charge, and
# what a backend adds to the copy it inherits once it has started and run a query.
DEFAULT_POSTMASTER_PRIVATE_KB = 3072
BACKEND_START_KB = 1024
# What one work_mem-bounded node leaves charged, per kB of its limit (calibrated, as above): a
# sort that outgrows work_mem writes runs and merges them, and glibc keeps the freed run memory
# in the heap while the merge allocates its buffers (1.35-1.45 x work_mem); a hash table holds its
# hash_mem and its bucket array (1.04-1.09 x hash_mem). The heap keeps what a finished node freed
# as long as anything allocated later sits above it, so the nodes of one query add up.
SORT_NODE_PCT = 140
HASH_NODE_PCT = 105
# A backend that JIT-compiles loads LLVM: libLLVM's relocated data (7.6 MiB, charged per process)
# and LLVM's own heap; calibrated, as above (Debian's LLVM 14).
JIT_KB = 12 * KIB
# checkpointer, background writer, WAL writer (the archiver only with archive_mode).
AUX_PROCESSES = 3
# Before 17, VACUUM stores dead tuples in one array of at most 1 GB (MaxAllocSize), whatever
# maintenance_work_mem says (src/backend/access/heap/vacuumlazy.c).
VACUUM_CAP_KB = 1024 * KIB
VACUUM_UNCAPPED_FROM = 170000
CALIBRATED_MAJORS = ("15",)
MIN_WORK_MEM_KB = 64
PSQL_TIMEOUT_S = 20

_SOURCES = {
    "shm": "PostgreSQL 15+ shared_memory_size (the server's own total of its main shared segment)",
    "shm_old": "approximation before 15: shared_buffers + wal_buffers + 10 % (not calibrated)",
    "fork": "fork(2) charges a copy of the postmaster's private writable memory (mm/mmap.c dup_mmap); "
            "start growth calibrated on PostgreSQL 15",
    "query": "PostgreSQL manual, Resource Consumption: work_mem per sort/hash node, hash_mem_multiplier; "
             "postgresqltuner counts work_mem x 1.5 per connection, pgtune divides by 3; node factors "
             "calibrated on PostgreSQL 15",
    "jit": "PostgreSQL manual, JIT Compilation (jit, jit_above_cost); LLVM's charge per backend "
           "calibrated on PostgreSQL 15",
    "maint": "PostgreSQL manual: maintenance_work_mem, autovacuum_work_mem; postgresqltuner's "
             "autovacuum_max_workers x maintenance_work_mem",
    "temp": "PostgreSQL manual: temp_buffers, allocated only in sessions that touch temporary tables",
    "dsm": "measured: the other shared segments the running cluster has (dynamic shared memory)",
}


class PgParseError(ValueError):
    """A settings text that does not hold what was asked for."""


@dataclass(frozen=True)
class PgSettings:
    """The settings the estimate uses; memory in kB, -1 where PostgreSQL says "unset"."""

    version_num: int
    shared_buffers_kb: int
    max_connections: int
    work_mem_kb: int
    maintenance_work_mem_kb: int
    autovacuum_max_workers: int
    max_worker_processes: int
    shared_memory_size_kb: Optional[int] = None  # 15+
    wal_buffers_kb: int = -1
    temp_buffers_kb: int = 8 * KIB
    autovacuum_work_mem_kb: int = -1
    hash_mem_multiplier: float = 1.0  # 13+ (2.0 from 15); before 13 hashes used work_mem
    max_parallel_workers: int = 0  # 10+
    max_wal_senders: int = 0
    superuser_reserved_connections: int = 3
    huge_pages: str = "off"
    huge_page_size_kb: int = 0
    shared_memory_size_in_huge_pages: Optional[int] = None
    min_dynamic_shared_memory_kb: int = 0
    autovacuum: bool = True
    archive_mode: str = "off"
    jit: bool = False  # on by default from 12, where the server was built with LLVM
    source: str = "server"  # "server" (pg_settings of the running cluster) or "postgres -C"
    client_backends: Optional[int] = None  # connections open when read (running cluster only)

    @property
    def major(self) -> str:
        return str(self.version_num // 10000) if self.version_num >= 100000 else "%d.%d" % (
            self.version_num // 10000, self.version_num // 100 % 100)

    @property
    def autovacuum_mem_kb(self) -> int:
        """What one autovacuum worker may use (autovacuum_work_mem, -1: maintenance_work_mem)."""
        mem_kb = self.autovacuum_work_mem_kb if self.autovacuum_work_mem_kb > 0 else self.maintenance_work_mem_kb
        return mem_kb if self.version_num >= VACUUM_UNCAPPED_FROM else min(mem_kb, VACUUM_CAP_KB)

    def as_dict(self) -> Dict[str, object]:
        out = asdict(self)
        out["major"] = self.major
        return out


def _from_values(values: Dict[str, Tuple[str, str]], source: str, client_backends: Optional[int]) -> PgSettings:
    """name -> (setting, unit) into PgSettings; raises PgParseError naming what is wrong."""
    missing = [name for name in REQUIRED if name not in values]
    if missing:
        raise PgParseError("no value for %s" % ", ".join(missing))

    def mem(name: str, default: int) -> int:
        if name not in values:
            return default
        setting, unit = values[name]
        return pg_memory_kb(setting, unit or MEMORY_UNITS[name])

    def count(name: str, default: int) -> int:
        return pg_int(values[name][0]) if name in values else default

    def text(name: str, default: str) -> str:
        return values[name][0].strip() if name in values else default

    try:
        version_num = count("server_version_num", 0)
        size_kb = mem("shared_memory_size", -1)
        return PgSettings(
            version_num=version_num, shared_buffers_kb=mem("shared_buffers", 0),
            max_connections=count("max_connections", 0), work_mem_kb=mem("work_mem", 0),
            maintenance_work_mem_kb=mem("maintenance_work_mem", 0),
            autovacuum_max_workers=count("autovacuum_max_workers", 0),
            max_worker_processes=count("max_worker_processes", 0),
            shared_memory_size_kb=size_kb if size_kb >= 0 else None,
            wal_buffers_kb=mem("wal_buffers", -1), temp_buffers_kb=mem("temp_buffers", 8 * KIB),
            autovacuum_work_mem_kb=mem("autovacuum_work_mem", -1),
            hash_mem_multiplier=pg_real(text("hash_mem_multiplier", "1")),
            max_parallel_workers=count("max_parallel_workers", 0), max_wal_senders=count("max_wal_senders", 0),
            superuser_reserved_connections=count("superuser_reserved_connections", 3),
            huge_pages=text("huge_pages", "off"), huge_page_size_kb=max(0, mem("huge_page_size", 0)),
            shared_memory_size_in_huge_pages=(count("shared_memory_size_in_huge_pages", -1)
                                              if "shared_memory_size_in_huge_pages" in values else None),
            min_dynamic_shared_memory_kb=max(0, mem("min_dynamic_shared_memory", 0)),
            autovacuum=text("autovacuum", "on") == "on", archive_mode=text("archive_mode", "off"),
            jit=text("jit", "off") == "on",
            source=source, client_backends=client_backends)
    except SizeError as exc:
        raise PgParseError(str(exc)) from exc


# --- reading a running cluster -------------------------------------------------------------------

SETTINGS_QUERY = (
    "SELECT name, setting, coalesce(unit, '') FROM pg_settings WHERE name IN (%s) "
    "UNION ALL SELECT '%s', count(*)::text, '' FROM pg_stat_activity WHERE backend_type = 'client backend'"
    % (", ".join("'%s'" % name for name in SETTINGS), CLIENT_BACKENDS))


def psql_command(server: Server) -> List[str]:
    """psql as the cluster's owner on its own socket: no password, no ~/.psqlrc (-X), never a
    prompt (-w), unaligned rows without headers (-A -t)."""
    argv = ["psql", "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "template1"]
    if server.socket:
        argv += ["-h", server.socket]
    if server.port:
        argv += ["-p", str(server.port)]
    return cmd.as_user(server.user, argv + ["-c", SETTINGS_QUERY])


def parse_settings_rows(text: str) -> PgSettings:
    """psql's "name|setting|unit" rows of SETTINGS_QUERY -> PgSettings."""
    values: Dict[str, Tuple[str, str]] = {}
    backends: Optional[int] = None
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 3:
            raise PgParseError("a row is not name|setting|unit: %r" % line[:120])
        name, setting, unit = (part.strip() for part in parts)
        if name == CLIENT_BACKENDS:
            try:
                backends = pg_int(setting)
            except SizeError as exc:
                raise PgParseError(str(exc)) from exc
        else:
            values[name] = (setting, unit)
    return _from_values(values, "server", backends)


def read_running(server: Server, run: cmd.Runner) -> Union[PgSettings, cmd.ReadFailure]:
    outcome = cmd.run_bounded(run, psql_command(server), PSQL_TIMEOUT_S)
    what = "PostgreSQL %s (psql as %s)" % (server.name, server.user or "?")
    if not outcome.ok:
        return cmd.failure(outcome, what)
    try:
        return parse_settings_rows(outcome.out)
    except PgParseError as exc:
        return cmd.garbage(outcome, what, str(exc))


# --- reading a stopped cluster ---------------------------------------------------------------------

def postgres_c_command(server: Server, name: str) -> List[str]:
    """``postgres -C NAME`` as the owner (the server refuses to run as root). On Debian -D names
    the configuration directory, whose postgresql.conf names the data directory."""
    binary = server.binary or "postgres"
    return cmd.as_user(server.user, [binary, "-C", name, "-D", server.config_dir or server.data_dir or "."])


def read_stopped(server: Server, run: cmd.Runner) -> Union[PgSettings, cmd.ReadFailure]:
    what = "PostgreSQL %s, stopped (postgres -C as %s)" % (server.name, server.user or "?")
    values: Dict[str, Tuple[str, str]] = {}
    for name in SETTINGS:
        outcome = cmd.run_bounded(run, postgres_c_command(server, name), PSQL_TIMEOUT_S)
        if not outcome.ok:
            if "unrecognized configuration parameter" in outcome.err:
                continue  # an older version without it: its default applies
            return cmd.failure(outcome, what)
        lines = [line for line in outcome.out.splitlines() if line.strip()]
        if len(lines) != 1:
            return cmd.garbage(outcome, what, "postgres -C %s printed %d lines, not one value" % (name, len(lines)))
        values[name] = (lines[0].strip(), MEMORY_UNITS.get(name, ""))
    try:
        return _from_values(values, "postgres -C", None)
    except PgParseError as exc:
        return cmd.ReadFailure(cmd.GARBAGE, "%s: %s" % (what, exc))


# --- Debian's cluster list ----------------------------------------------------------------------

@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: Optional[int]
    running: bool
    owner_uid: Optional[int]
    data_dir: str
    config_dir: Optional[str]
    socket_dir: Optional[str]


def parse_lsclusters_json(text: str) -> List[Cluster]:
    """``pg_lsclusters --json`` (postgresql-common 230+)."""
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise PgParseError("pg_lsclusters --json is not JSON: %s" % exc) from exc
    if not isinstance(rows, list):
        raise PgParseError("pg_lsclusters --json is not a list")
    clusters = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("version") or not row.get("cluster") or not row.get("pgdata"):
            raise PgParseError("a pg_lsclusters entry lacks version, cluster or pgdata: %r" % (row,))
        port = str(row.get("port", ""))
        uid = row.get("owneruid")
        clusters.append(Cluster(
            version=str(row["version"]), name=str(row["cluster"]), port=int(port) if port.isdigit() else None,
            running=bool(row.get("running")), owner_uid=uid if isinstance(uid, int) else None,
            data_dir=str(row["pgdata"]), config_dir=row.get("configdir"), socket_dir=row.get("socketdir")))
    return clusters


# --- the estimate ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PgLoad:
    """What is busy at one moment. ``configured_peak`` fills every slot the settings allow."""

    label: str
    connections: int  # client backends, each running one query of the shape below
    sort_nodes: int = 1  # work_mem-sized sorts per query
    hash_nodes: int = 1  # hash_mem-sized hashes per query
    parallel_workers: int = 0  # each runs the query's nodes with its own work_mem
    autovacuum_workers: int = 0
    maintenance_sessions: int = 0  # manual VACUUM / CREATE INDEX, each maintenance_work_mem
    temp_table_sessions: int = 0  # sessions that fill temp_buffers
    background_workers: int = 0  # max_worker_processes slots in use besides parallel workers
    wal_senders: int = 0
    jit: bool = False  # the queries JIT-compile (jit=on and costly enough)


def configured_peak(settings: PgSettings, sort_nodes: int = 1, hash_nodes: int = 1,
                    maintenance_sessions: int = 1, temp_tables: bool = False) -> PgLoad:
    """Every connection busy with one sort and one hash (pgtune's 3 x work_mem per connection at
    PostgreSQL 15's hash_mem_multiplier 2.0), all parallel workers, every autovacuum worker, and
    one manual maintenance command; with jit=on, every query JIT-compiled (the busy hour's queries
    are the costly ones). temp_buffers counts only when sessions use temporary tables."""
    parallel = min(settings.max_parallel_workers, settings.max_worker_processes)
    return PgLoad(
        label="configured peak: %d connections x (%d sort + %d hash), %d parallel workers, %d autovacuum workers"
              % (settings.max_connections, sort_nodes, hash_nodes, parallel,
                 settings.autovacuum_max_workers if settings.autovacuum else 0),
        connections=settings.max_connections, sort_nodes=sort_nodes, hash_nodes=hash_nodes,
        parallel_workers=parallel, autovacuum_workers=settings.autovacuum_max_workers if settings.autovacuum else 0,
        maintenance_sessions=maintenance_sessions,
        temp_table_sessions=settings.max_connections if temp_tables else 0,
        background_workers=settings.max_worker_processes - parallel, wal_senders=settings.max_wal_senders,
        jit=settings.jit)


@dataclass(frozen=True)
class PgMeasured:
    """What the running cluster's processes showed (procfs), where the estimate can use it."""

    postmaster_private_kb: Optional[int] = None
    other_segments_kb: int = 0  # shared segments besides the main one (dynamic shared memory)
    shm_in_huge_pages: bool = False  # the main segment is mapped from huge pages

    @classmethod
    def from_charges(cls, postmaster: Optional[ProcessCharge]) -> "PgMeasured":
        if postmaster is None:
            return cls()
        sizes = sorted((size_kb for _key, size_kb in postmaster.segments), reverse=True)
        huge = postmaster.hugetlb_kb > 0
        # The largest shmem object is the main segment, unless huge pages hold it (then none is).
        others = sizes if huge else sizes[1:]
        return cls(postmaster.private_kb + postmaster.mode2_extra_kb, sum(others), huge)


def _shared_term(settings: PgSettings, measured: PgMeasured, hugetlb_free_kb: Optional[int]) -> Term:
    if settings.shared_memory_size_kb is not None:
        size_kb, source = settings.shared_memory_size_kb, _SOURCES["shm"]
        formula = "shared_memory_size %s" % mib_text(size_kb)
    else:
        size_kb = (settings.shared_buffers_kb + max(0, settings.wal_buffers_kb)) * 11 // 10
        source = _SOURCES["shm_old"]
        formula = "(shared_buffers %s + wal_buffers %s) x 1.1" % (
            mib_text(settings.shared_buffers_kb), mib_text(max(0, settings.wal_buffers_kb)))
    in_huge = measured.shm_in_huge_pages or (
        settings.huge_pages in ("on", "try") and hugetlb_free_kb is not None and hugetlb_free_kb >= size_kb)
    if in_huge:
        return Term("shared memory", 0, "%s in huge pages (huge_pages=%s): not charged" % (formula, settings.huge_pages),
                    source)
    return Term("shared memory", size_kb, formula, source)


def process_count(settings: PgSettings, load: PgLoad) -> Tuple[int, str]:
    launcher = 1 if settings.autovacuum else 0
    archiver = 1 if settings.archive_mode in ("on", "always") else 0
    count = sum((1, AUX_PROCESSES, archiver, launcher, load.connections, load.autovacuum_workers,
                 load.parallel_workers, load.background_workers, load.wal_senders))
    text = ("(postmaster + %d auxiliary + %d connections + %d autovacuum (+%d launcher) + %d parallel + %d other "
            "workers + %d WAL senders)" % (AUX_PROCESSES + archiver, load.connections, load.autovacuum_workers,
                                           launcher, load.parallel_workers, load.background_workers,
                                           load.wal_senders))
    return count, text


def hash_mem_kb(settings: PgSettings) -> int:
    return int(settings.work_mem_kb * settings.hash_mem_multiplier)


def query_kb(settings: PgSettings, load: PgLoad) -> int:
    """What one query's sort and hash nodes leave charged in one backend or parallel worker."""
    sorts_kb = settings.work_mem_kb * SORT_NODE_PCT // 100 * load.sort_nodes
    hashes_kb = hash_mem_kb(settings) * HASH_NODE_PCT // 100 * load.hash_nodes
    return sorts_kb + hashes_kb


def estimate(server_name: str, settings: PgSettings, load: PgLoad, measured: PgMeasured = PgMeasured(),
             hugetlb_free_kb: Optional[int] = None) -> Estimate:
    """The commit charge of this cluster at ``load``: a sum of named terms (module docstring)."""
    terms = [_shared_term(settings, measured, hugetlb_free_kb)]
    if measured.other_segments_kb or settings.min_dynamic_shared_memory_kb:
        other_kb = max(measured.other_segments_kb, settings.min_dynamic_shared_memory_kb)
        terms.append(Term("other shared segments", other_kb, "dynamic shared memory segments %s" % mib_text(other_kb),
                          _SOURCES["dsm"]))
    pm_kb = measured.postmaster_private_kb if measured.postmaster_private_kb is not None \
        else DEFAULT_POSTMASTER_PRIVATE_KB
    base_kb = pm_kb + BACKEND_START_KB
    count, count_text = process_count(settings, load)
    if measured.postmaster_private_kb is not None:
        pm_text = "postmaster's private %s, measured now" % mib_text(pm_kb)
    else:
        pm_text = "postmaster's private %s, the lab's PostgreSQL 15" % mib_text(pm_kb)
    terms.append(Term("processes", count * base_kb, "%s %d x (%s + %s at start) = %d x %s" % (
        count_text, count, pm_text, mib_text(BACKEND_START_KB), count, mib_text(base_kb)), _SOURCES["fork"]))
    per_query_kb = query_kb(settings, load)
    runners = load.connections + load.parallel_workers
    if per_query_kb and runners:
        work_mem = mib_text(settings.work_mem_kb)
        formula = ("(%d connections + %d parallel workers) x (%d sort x work_mem %s x %.2f + %d hash x work_mem %s"
                   " x hash_mem_multiplier %g x %.2f)" % (
                       load.connections, load.parallel_workers, load.sort_nodes, work_mem, SORT_NODE_PCT / 100,
                       load.hash_nodes, work_mem, settings.hash_mem_multiplier, HASH_NODE_PCT / 100))
        terms.append(Term("query memory", runners * per_query_kb, formula, _SOURCES["query"]))
    if load.jit and settings.jit and runners:
        terms.append(Term("JIT", runners * JIT_KB, "%d backends compiling with LLVM x %s" % (runners, mib_text(JIT_KB)),
                          _SOURCES["jit"]))
    if load.temp_table_sessions:
        formula = "%d sessions x temp_buffers %s" % (load.temp_table_sessions, mib_text(settings.temp_buffers_kb))
        terms.append(Term("temp_buffers", load.temp_table_sessions * settings.temp_buffers_kb, formula,
                          _SOURCES["temp"]))
    autovacuum_kb = load.autovacuum_workers * settings.autovacuum_mem_kb
    maint_kb = autovacuum_kb + load.maintenance_sessions * settings.maintenance_work_mem_kb
    if maint_kb:
        formula = "%d autovacuum workers x %s + %d maintenance x maintenance_work_mem %s" % (
            load.autovacuum_workers, mib_text(settings.autovacuum_mem_kb), load.maintenance_sessions,
            mib_text(settings.maintenance_work_mem_kb))
        terms.append(Term("maintenance", maint_kb, formula, _SOURCES["maint"]))
    notes = []
    if settings.major not in CALIBRATED_MAJORS:
        notes.append("PostgreSQL %s: the formula was calibrated on %s only."
                     % (settings.major, ", ".join(CALIBRATED_MAJORS)))
    return Estimate(POSTGRESQL, server_name, settings.major, load.label, tuple(terms),
                    calibrated=settings.major in CALIBRATED_MAJORS, notes=tuple(notes))


# --- what would fit ------------------------------------------------------------------------------------

def fixes(server_name: str, settings: PgSettings, load: PgLoad, room_kb: int, measured: PgMeasured = PgMeasured(),
          hugetlb_free_kb: Optional[int] = None) -> List[Fix]:
    """Settings that bring the estimate at ``load`` within ``room_kb`` (swap is fit.judge's, the same
    for every engine); each proposal is checked with ``estimate`` itself, so the arithmetic of the
    fix and of the verdict are one."""
    def peak(candidate: PgSettings, candidate_load: PgLoad = load) -> int:
        return estimate(server_name, candidate, candidate_load, measured, hugetlb_free_kb).peak_kb

    out: List[Fix] = []
    now_kb = peak(settings)
    if now_kb <= room_kb:
        return out
    room_kb = fix_target_kb(room_kb)
    if settings.jit and load.jit and peak(replace(settings, jit=False)) <= room_kb:
        out.append(Fix("jit", "on", "off", peak(replace(settings, jit=False)),
                       "ALTER SYSTEM SET jit = off; SELECT pg_reload_conf();  -- new queries are not compiled",
                       restart=False))
    work_mem = _work_mem_fix(settings, room_kb, peak)
    if work_mem is not None:
        out.append(work_mem)
    elif settings.jit and load.jit:
        # Neither alone: both, when JIT's share is what leaves no room for any work_mem.
        both = _work_mem_fix(replace(settings, jit=False), room_kb, peak)
        if both is not None:
            out.append(Fix("jit+work_mem", "on, %s" % size_text(settings.work_mem_kb), "off, %s" % both.proposed,
                           both.peak_after_kb, "ALTER SYSTEM SET jit = off; ALTER SYSTEM SET work_mem = '%s'; "
                           "SELECT pg_reload_conf();" % both.proposed, restart=False))
    # max_connections, with a pooler in front: the largest count that fits.
    best: Optional[int] = None
    low, high = 1, settings.max_connections - 1
    while low <= high:
        middle = (low + high) // 2
        fewer = replace(settings, max_connections=middle)
        if peak(fewer, replace(load, connections=min(load.connections, middle))) <= room_kb:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    if best is not None and best > settings.superuser_reserved_connections:
        fewer = replace(settings, max_connections=best)
        out.append(Fix("max_connections", str(settings.max_connections), str(best),
                       peak(fewer, replace(load, connections=min(load.connections, best))),
                       "ALTER SYSTEM SET max_connections = %d; then restart the cluster, with a connection pooler "
                       "(PgBouncer, transaction mode) taking the clients" % best, restart=True))
    return out


def _work_mem_fix(settings: PgSettings, room_kb: int, peak: Callable[[PgSettings], int]) -> Optional[Fix]:
    """The largest work_mem (a multiple of 64 kB) whose peak fits: the peak is linear in it, so
    solve, then step down until ``peak`` agrees."""
    now_kb = peak(settings)
    without_kb = peak(replace(settings, work_mem_kb=0))
    per_kb = now_kb - without_kb
    if per_kb <= 0 or room_kb <= without_kb:
        return None
    work_mem_kb = (room_kb - without_kb) * settings.work_mem_kb // per_kb // MIN_WORK_MEM_KB * MIN_WORK_MEM_KB
    while work_mem_kb >= MIN_WORK_MEM_KB and peak(replace(settings, work_mem_kb=work_mem_kb)) > room_kb:
        work_mem_kb -= MIN_WORK_MEM_KB
    if work_mem_kb < MIN_WORK_MEM_KB or work_mem_kb >= settings.work_mem_kb:
        return None
    text = size_text(work_mem_kb)
    return Fix("work_mem", size_text(settings.work_mem_kb), text, peak(replace(settings, work_mem_kb=work_mem_kb)),
               "ALTER SYSTEM SET work_mem = '%s'; SELECT pg_reload_conf();  -- new queries use it" % text,
               restart=False)
