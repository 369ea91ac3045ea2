# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB and MySQL: read a server's memory settings, estimate its commit charge, say what would fit.

Reading, read-only, through the server's own client as root over its unix socket (Debian's
root authenticates by the socket's peer credentials, unix_socket / auth_socket, no password):
``SHOW GLOBAL VARIABLES`` and ``SHOW GLOBAL STATUS``, and with the Performance Schema on,
``SHOW ENGINE PERFORMANCE_SCHEMA STATUS`` for its memory. A stopped server: its option files
through ``my_print_defaults``, the compiled defaults for what they leave out.

The estimate follows MySQLTuner's "maximum possible memory usage" (mysqltuner.pl, its memory
calculations): global buffers + per-thread buffers x max_connections + Performance Schema, with
four changes, each measured in the lab on MariaDB 10.11:

* the server's own overhead beyond its configured buffers (background threads each with an
  8 MiB stack, InnoDB's structures, the heap) is counted: about 120 MiB idle;
* each connection thread is charged its ``thread_stack`` plus about 128 kB (THD, network
  buffers, its malloc arena's first pages);
* a join buffer is ``min(join_buffer_size, join_buffer_space_limit)`` while
  ``optimize_join_buffer_size`` is on (MariaDB's default: the limit caps all join buffers of one
  query);
* ``binlog_cache_size`` counts only with the binary log on.

Per-thread buffers are allocated when a query needs them and freed after it, from glibc's
thread arenas: commit charge only under mode 2 (procfs explains), which is the mode this
estimate is for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db.fit import fix_target_kb
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import (
    MARIADB, MYSQL, Estimate, Fix, Server, Term)
from ansible_collections.dbfleet.memory.plugins.module_utils._db.procfs import Charge
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import (
    KIB, SizeError, kb_from_bytes, mib_text, mysql_bytes, size_text)

SIZE_VARIABLES = (
    "key_buffer_size", "innodb_buffer_pool_size", "innodb_additional_mem_pool_size", "innodb_log_buffer_size",
    "query_cache_size", "aria_pagecache_buffer_size", "read_buffer_size", "read_rnd_buffer_size", "sort_buffer_size",
    "thread_stack", "join_buffer_size", "join_buffer_space_limit", "binlog_cache_size", "tmp_table_size",
    "max_heap_table_size", "temptable_max_ram")
OTHER_VARIABLES = ("version", "max_connections", "log_bin", "performance_schema", "optimizer_switch")
STATUS_NAMES = ("Max_used_connections", "Threads_connected", "Threads_cached")
REQUIRED = ("version", "max_connections", "innodb_buffer_pool_size", "sort_buffer_size", "join_buffer_size",
            "thread_stack")

# Compiled defaults for what option files leave out (a stopped server): MariaDB 10.11's as its
# SHOW GLOBAL VARIABLES shows them on Debian 12 (tests/unit/fixtures/db), MySQL 8.0's from its
# reference manual. Bytes.
DEFAULTS: Dict[str, Dict[str, str]] = {
    MARIADB: {
        "max_connections": "151", "key_buffer_size": "134217728", "innodb_buffer_pool_size": "134217728",
        "innodb_log_buffer_size": "16777216", "query_cache_size": "1048576", "aria_pagecache_buffer_size": "134217728",
        "read_buffer_size": "131072", "read_rnd_buffer_size": "262144", "sort_buffer_size": "2097152",
        "thread_stack": "299008", "join_buffer_size": "262144", "join_buffer_space_limit": "2097152",
        "binlog_cache_size": "32768", "tmp_table_size": "16777216", "max_heap_table_size": "16777216",
        "log_bin": "OFF", "performance_schema": "OFF", "optimizer_switch": "optimize_join_buffer_size=on",
    },
    MYSQL: {
        "max_connections": "151", "key_buffer_size": "8388608", "innodb_buffer_pool_size": "134217728",
        "innodb_log_buffer_size": "16777216", "read_buffer_size": "131072", "read_rnd_buffer_size": "262144",
        "sort_buffer_size": "262144", "thread_stack": "1048576", "join_buffer_size": "262144",
        "binlog_cache_size": "32768", "tmp_table_size": "16777216", "max_heap_table_size": "16777216",
        "temptable_max_ram": "1073741824", "log_bin": "ON", "performance_schema": "ON",
    },
}

# Constants from lab runs on MariaDB 10.11.18 (Debian 12, x86_64), held by the calibration
# (guide_sizing.rst, "Calibration"; make lab-sizing) but for a stopped server's overhead, which it does
# not measure; mode-2 terms (procfs): an idle server
# right after its start, less its global buffers, and what one more connection thread adds
# beyond its thread_stack.
DEFAULT_SERVER_OVERHEAD_KB = 120 * KIB
THREAD_BASE_KB = 128
CALIBRATED = ((MARIADB, "10.11"),)
CLIENT_TIMEOUT_S = 20
MIN_BUFFER_KB = 32  # below this a sort or join buffer is useless; MariaDB's own minimum is lower

_SOURCES = {
    "global": "MySQLTuner: key_buffer_size + innodb_buffer_pool_size + innodb_additional_mem_pool_size + "
              "innodb_log_buffer_size + query_cache_size + aria_pagecache_buffer_size",
    "thread": "MySQLTuner's per-thread terms; join buffer capped by join_buffer_space_limit (MariaDB "
              "optimize_join_buffer_size); binlog_cache_size only with log_bin",
    "stack": "thread_stack per connection thread (MySQLTuner) + a thread base calibrated on MariaDB 10.11",
    "ps": "SHOW ENGINE PERFORMANCE_SCHEMA STATUS, performance_schema.memory (MySQLTuner)",
    "overhead": "the running server's charge less its buffers and threads (120 MiB, provisional, when stopped)",
    "temptable": "MySQL 8 TempTable: temptable_max_ram, shared by all sessions",
}


class MyParseError(ValueError):
    """A client output that does not hold what was asked for."""


@dataclass(frozen=True)
class MySqlSettings:
    """Sizes in kB."""

    engine: str  # mariadb or mysql
    version: str  # as the server says it: "10.11.18-MariaDB-0+deb12u1"
    max_connections: int
    innodb_buffer_pool_kb: int
    sort_buffer_kb: int
    join_buffer_kb: int
    thread_stack_kb: int
    key_buffer_kb: int = 0
    innodb_additional_mem_pool_kb: int = 0
    innodb_log_buffer_kb: int = 0
    query_cache_kb: int = 0
    aria_pagecache_kb: int = 0
    read_buffer_kb: int = 0
    read_rnd_buffer_kb: int = 0
    join_buffer_space_limit_kb: Optional[int] = None  # MariaDB only
    optimize_join_buffer_size: bool = False
    binlog_cache_kb: int = 0
    log_bin: bool = False
    tmp_table_kb: int = 0
    max_heap_table_kb: int = 0
    temptable_max_ram_kb: Optional[int] = None  # MySQL 8 only
    performance_schema: bool = False
    performance_schema_kb: Optional[int] = None  # read from the running server when on
    source: str = "server"  # "server" or "option files"
    max_used_connections: Optional[int] = None
    threads_connected: Optional[int] = None
    threads_cached: Optional[int] = None

    @property
    def major(self) -> str:
        return ".".join(self.version.split("-")[0].split(".")[:2])

    @property
    def join_kb(self) -> int:
        """One query's join buffers: capped by join_buffer_space_limit when MariaDB optimizes their size."""
        if self.optimize_join_buffer_size and self.join_buffer_space_limit_kb is not None:
            return min(self.join_buffer_kb, self.join_buffer_space_limit_kb)
        return self.join_buffer_kb

    @property
    def tmp_kb(self) -> int:
        """An in-memory temporary table per thread: min(tmp_table_size, max_heap_table_size); MySQL 8's
        TempTable engine is global instead (temptable_max_ram)."""
        if self.temptable_max_ram_kb is not None:
            return 0
        return min(self.tmp_table_kb, self.max_heap_table_kb)

    @property
    def global_kb(self) -> int:
        return sum((self.key_buffer_kb, self.innodb_buffer_pool_kb, self.innodb_additional_mem_pool_kb,
                    self.innodb_log_buffer_kb, self.query_cache_kb, self.aria_pagecache_kb))

    def as_dict(self) -> Dict[str, object]:
        out = asdict(self)
        out["major"] = self.major
        return out


def engine_of(version: str) -> str:
    return MARIADB if "mariadb" in version.lower() else MYSQL


def settings_from(values: Mapping[str, str], source: str, engine: Optional[str] = None) -> MySqlSettings:
    """Lower-cased variable/status names -> MySqlSettings; raises MyParseError."""
    missing = [name for name in REQUIRED if name not in values]
    if missing:
        raise MyParseError("no value for %s" % ", ".join(missing))
    version = values["version"]

    def size(name: str) -> Optional[int]:
        return kb_from_bytes(mysql_bytes(values[name])) if name in values else None

    def count(name: str) -> Optional[int]:
        if name not in values:
            return None
        if not values[name].strip().isdigit():
            raise MyParseError("%s is not a count: %r" % (name, values[name]))
        return int(values[name])

    def on(name: str) -> bool:
        return values.get(name, "OFF").strip().upper() in ("ON", "1", "TRUE")

    try:
        return MySqlSettings(
            engine=engine or engine_of(version), version=version, max_connections=count("max_connections") or 0,
            innodb_buffer_pool_kb=size("innodb_buffer_pool_size") or 0, sort_buffer_kb=size("sort_buffer_size") or 0,
            join_buffer_kb=size("join_buffer_size") or 0, thread_stack_kb=size("thread_stack") or 0,
            key_buffer_kb=size("key_buffer_size") or 0,
            innodb_additional_mem_pool_kb=size("innodb_additional_mem_pool_size") or 0,
            innodb_log_buffer_kb=size("innodb_log_buffer_size") or 0, query_cache_kb=size("query_cache_size") or 0,
            aria_pagecache_kb=size("aria_pagecache_buffer_size") or 0, read_buffer_kb=size("read_buffer_size") or 0,
            read_rnd_buffer_kb=size("read_rnd_buffer_size") or 0,
            join_buffer_space_limit_kb=size("join_buffer_space_limit"),
            optimize_join_buffer_size="optimize_join_buffer_size=on" in values.get("optimizer_switch", ""),
            binlog_cache_kb=size("binlog_cache_size") or 0, log_bin=on("log_bin"),
            tmp_table_kb=size("tmp_table_size") or 0, max_heap_table_kb=size("max_heap_table_size") or 0,
            temptable_max_ram_kb=size("temptable_max_ram"), performance_schema=on("performance_schema"),
            source=source, max_used_connections=count("max_used_connections"),
            threads_connected=count("threads_connected"), threads_cached=count("threads_cached"))
    except SizeError as exc:
        raise MyParseError(str(exc)) from exc


# --- reading a running server --------------------------------------------------------------------

def _in_list(names: Tuple[str, ...]) -> str:
    return ", ".join("'%s'" % name for name in names)


VARIABLES_SQL = "SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s)" % _in_list(SIZE_VARIABLES + OTHER_VARIABLES)
STATUS_SQL = "SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % _in_list(STATUS_NAMES)
PS_SQL = "SHOW ENGINE PERFORMANCE_SCHEMA STATUS"


def client_command(server: Server, sql: str, client: str) -> List[str]:
    """The client as root (the module's user) over the unix socket: batch, no column names."""
    argv = [client, "-N", "-B", "--connect-timeout=5", "--protocol=socket"]
    if server.socket:
        argv.append("--socket=" + server.socket)
    return argv + ["-e", sql]


def parse_pairs(text: str) -> Dict[str, str]:
    """SHOW ... -N -B output: "name<TAB>value" rows -> {lower-case name: value}."""
    pairs: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("\t")
        if not sep or not name.strip() or " " in name.strip():
            raise MyParseError("a row is not name<TAB>value: %r" % line[:120])
        pairs[name.strip().lower()] = value
    return pairs


def parse_performance_schema_kb(text: str) -> int:
    """SHOW ENGINE PERFORMANCE_SCHEMA STATUS (Type, Name, Status): its performance_schema.memory row."""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].strip() == "performance_schema.memory" and parts[2].strip().isdigit():
            return kb_from_bytes(int(parts[2]))
    raise MyParseError("no performance_schema.memory row")


def read_running(server: Server, run: cmd.Runner) -> Union[MySqlSettings, cmd.ReadFailure]:
    what = "%s %s (client as root over the socket)" % (server.engine, server.name)
    clients = ["mariadb", "mysql"] if server.engine == MARIADB else ["mysql", "mariadb"]
    outcome = cmd.run_bounded(run, client_command(server, VARIABLES_SQL + "; " + STATUS_SQL, clients[0]),
                              CLIENT_TIMEOUT_S)
    client = clients[0]
    if outcome.rc in (cmd.NOT_FOUND_RC, cmd.CANNOT_RUN_RC):  # MariaDB before 10.4 and MySQL ship only "mysql"
        client = clients[1]
        outcome = cmd.run_bounded(run, client_command(server, VARIABLES_SQL + "; " + STATUS_SQL, client),
                                  CLIENT_TIMEOUT_S)
    if not outcome.ok:
        return cmd.failure(outcome, what)
    try:
        settings = settings_from(parse_pairs(outcome.out), "server")
    except MyParseError as exc:
        return cmd.garbage(outcome, what, str(exc))
    if settings.performance_schema:
        ps = cmd.run_bounded(run, client_command(server, PS_SQL, client), CLIENT_TIMEOUT_S)
        if not ps.ok:
            return cmd.failure(ps, what + ", Performance Schema memory")
        try:
            settings = replace(settings, performance_schema_kb=parse_performance_schema_kb(ps.out))
        except MyParseError as exc:
            return cmd.garbage(ps, what, str(exc))
    return settings


# --- a stopped server: option files ------------------------------------------------------------

def print_defaults_command(engine: str) -> List[str]:
    # MariaDB's --mysqld reads the groups mariadbd itself reads ([mysqld], [server], [mariadb],
    # [mariadbd], their -VERSION forms, [client-server], [galera]); MySQL's tool takes groups.
    return ["my_print_defaults", "--mysqld"] if engine == MARIADB else ["my_print_defaults", "mysqld", "server"]


def parse_print_defaults(text: str) -> Dict[str, str]:
    """``--name=value`` lines -> {name: value}, dashes as underscores, the last one winning (as the
    server reads them)."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.startswith("--"):
            raise MyParseError("not an option: %r" % line[:120])
        name, sep, value = line[2:].partition("=")
        name = name.replace("-", "_").lower()
        for prefix in ("loose_", "maximum_"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        values[name] = value if sep else "ON"
    return values


def read_stopped(server: Server, run: cmd.Runner, version: str) -> Union[MySqlSettings, cmd.ReadFailure]:
    what = "%s %s, stopped (option files)" % (server.engine, server.name)
    outcome = cmd.run_bounded(run, print_defaults_command(server.engine), CLIENT_TIMEOUT_S)
    if not outcome.ok:
        return cmd.failure(outcome, what)
    try:
        options = parse_print_defaults(outcome.out)
    except MyParseError as exc:
        return cmd.garbage(outcome, what, str(exc))
    values = dict(DEFAULTS[server.engine])
    values.update({name: value for name, value in options.items()
                   if name in SIZE_VARIABLES + OTHER_VARIABLES})
    values["version"] = version
    try:
        return settings_from(values, "option files", server.engine)
    except MyParseError as exc:
        return cmd.ReadFailure(cmd.GARBAGE, "%s: %s" % (what, exc), outcome.argv)


# --- the estimate ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MyLoad:
    """What is busy at one moment; ``configured_peak`` is MySQLTuner's maximum."""

    label: str
    connections: int  # connection threads that exist
    sorts: int = 0  # connections holding a full sort buffer
    joins: int = 0  # connections holding a full join buffer
    reads: int = 0  # connections holding read_buffer_size + read_rnd_buffer_size
    tmp_tables: int = 0  # connections holding an in-memory temporary table
    binlog_caches: int = 0  # connections with a binlog cache (log_bin on)


def configured_peak(settings: MySqlSettings) -> MyLoad:
    count = settings.max_connections
    return MyLoad(label="configured peak: %d connections, each with every per-thread buffer (MySQLTuner)" % count,
                  connections=count, sorts=count, joins=count, reads=count, tmp_tables=count,
                  binlog_caches=count if settings.log_bin else 0)


@dataclass(frozen=True)
class MyMeasured:
    overhead_kb: Optional[int] = None  # the running server's charge less its buffers and threads


def measure(settings: MySqlSettings, charge: Optional[Charge]) -> MyMeasured:
    """The server's overhead from its mode-2 charge now: the idle part the settings do not name."""
    if charge is None or settings.source != "server":
        return MyMeasured()
    threads = (settings.threads_connected or 0) + (settings.threads_cached or 0)
    threads_kb = threads * (settings.thread_stack_kb + THREAD_BASE_KB)
    named_kb = settings.global_kb + (settings.performance_schema_kb or 0) + threads_kb
    return MyMeasured(max(0, charge.mode2_kb - named_kb))


def estimate(server_name: str, settings: MySqlSettings, load: MyLoad, measured: MyMeasured = MyMeasured()) -> Estimate:
    s = settings
    terms = [Term("global buffers", s.global_kb,
                  "key_buffer_size %s + innodb_buffer_pool_size %s + innodb_log_buffer_size %s + query_cache_size %s"
                  " + aria_pagecache_buffer_size %s%s" % (
                      mib_text(s.key_buffer_kb), mib_text(s.innodb_buffer_pool_kb), mib_text(s.innodb_log_buffer_kb),
                      mib_text(s.query_cache_kb), mib_text(s.aria_pagecache_kb),
                      " + innodb_additional_mem_pool_size %s" % mib_text(s.innodb_additional_mem_pool_kb)
                      if s.innodb_additional_mem_pool_kb else ""), _SOURCES["global"])]
    if s.temptable_max_ram_kb:
        terms.append(Term("TempTable", s.temptable_max_ram_kb, "temptable_max_ram %s" % mib_text(s.temptable_max_ram_kb),
                          _SOURCES["temptable"]))
    if s.performance_schema:
        ps_kb = s.performance_schema_kb or 0
        terms.append(Term("performance schema", ps_kb, "performance_schema.memory %s" % mib_text(ps_kb)
                          if s.performance_schema_kb is not None else "on, size unknown while stopped: 0 counted",
                          _SOURCES["ps"]))
    overhead_kb = measured.overhead_kb if measured.overhead_kb is not None else DEFAULT_SERVER_OVERHEAD_KB
    terms.append(Term("server overhead", overhead_kb,
                      "measured now: charge less global buffers and threads %s" % mib_text(overhead_kb)
                      if measured.overhead_kb is not None
                      else "MariaDB 10.11 idle in the lab, less its buffers: %s" % mib_text(overhead_kb),
                      _SOURCES["overhead"]))
    thread_kb = s.thread_stack_kb + THREAD_BASE_KB
    terms.append(Term("connection threads", load.connections * thread_kb,
                      "%d connections x (thread_stack %s + thread base %s)" % (
                          load.connections, mib_text(s.thread_stack_kb), mib_text(THREAD_BASE_KB)), _SOURCES["stack"]))
    parts = [("sort_buffer_size", load.sorts, s.sort_buffer_kb),
             ("join buffer (min(join_buffer_size, join_buffer_space_limit))"
              if s.optimize_join_buffer_size and s.join_buffer_space_limit_kb is not None else "join_buffer_size",
              load.joins, s.join_kb),
             ("read_buffer_size + read_rnd_buffer_size", load.reads, s.read_buffer_kb + s.read_rnd_buffer_kb),
             ("min(tmp_table_size, max_heap_table_size)", load.tmp_tables, s.tmp_kb),
             ("binlog_cache_size", load.binlog_caches if s.log_bin else 0, s.binlog_cache_kb)]
    per_thread_kb = sum(count * kb for _name, count, kb in parts)
    if per_thread_kb:
        terms.append(Term("per-thread buffers", per_thread_kb,
                          " + ".join("%d x %s %s" % (count, name, mib_text(kb)) for name, count, kb in parts
                                     if count and kb), _SOURCES["thread"]))
    calibrated = (s.engine, s.major) in CALIBRATED
    notes = () if calibrated else ("%s %s: the formula was calibrated on MariaDB 10.11 only." % (s.engine, s.major),)
    return Estimate(s.engine, server_name, s.major, load.label, tuple(terms), calibrated, notes)


# --- what would fit -------------------------------------------------------------------------------

def _round_kb(kb: int) -> int:
    return kb // 4 * 4


def fixes(server_name: str, settings: MySqlSettings, load: MyLoad, room_kb: int,
          measured: MyMeasured = MyMeasured()) -> List[Fix]:
    """Lower sort_buffer_size and join_buffer_size by one factor (keeping their ratio), or
    max_connections; each proposal checked with ``estimate``."""
    def peak(candidate: MySqlSettings, candidate_load: MyLoad = load) -> int:
        return estimate(server_name, candidate, candidate_load, measured).peak_kb

    out: List[Fix] = []
    now_kb = peak(settings)
    if now_kb <= room_kb:
        return out
    room_kb = fix_target_kb(room_kb)
    none_kb = peak(replace(settings, sort_buffer_kb=0, join_buffer_kb=0))
    if room_kb > none_kb and now_kb > none_kb:
        share = (room_kb - none_kb) / (now_kb - none_kb)
        sort_kb, join_kb = _round_kb(int(settings.sort_buffer_kb * share)), _round_kb(int(settings.join_buffer_kb * share))
        while sort_kb >= MIN_BUFFER_KB and peak(replace(settings, sort_buffer_kb=sort_kb, join_buffer_kb=join_kb)) > room_kb:
            sort_kb, join_kb = _round_kb(sort_kb * 15 // 16), _round_kb(join_kb * 15 // 16)
        if sort_kb >= MIN_BUFFER_KB and join_kb >= MIN_BUFFER_KB:
            smaller = replace(settings, sort_buffer_kb=sort_kb, join_buffer_kb=join_kb)
            out.append(Fix("sort_buffer_size+join_buffer_size",
                           "%s, %s" % (size_text(settings.sort_buffer_kb), size_text(settings.join_buffer_kb)),
                           "%s, %s" % (size_text(sort_kb), size_text(join_kb)), peak(smaller),
                           "SET GLOBAL sort_buffer_size = %d, join_buffer_size = %d;  -- new connections use them; "
                           "also in the option files ([mariadbd]) for the next start"
                           % (sort_kb * KIB, join_kb * KIB), restart=False))
    best: Optional[int] = None
    low, high = 1, settings.max_connections - 1
    while low <= high:
        middle = (low + high) // 2
        if peak(replace(settings, max_connections=middle), _fewer(load, middle)) <= room_kb:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    if best is not None:
        out.append(Fix("max_connections", str(settings.max_connections), str(best),
                       peak(replace(settings, max_connections=best), _fewer(load, best)),
                       "SET GLOBAL max_connections = %d;  -- and in the option files; with a pooler (ProxySQL, "
                       "MaxScale) taking the clients" % best, restart=False))
    return out


def _fewer(load: MyLoad, connections: int) -> MyLoad:
    def cap(count: int) -> int:
        return min(count, connections)
    return replace(load, connections=cap(load.connections), sorts=cap(load.sorts), joins=cap(load.joins),
                   reads=cap(load.reads), tmp_tables=cap(load.tmp_tables), binlog_caches=cap(load.binlog_caches))
