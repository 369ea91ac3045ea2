# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's databases: find the servers, read each through its own client, measure what each
commits now. Read-only: nothing here starts, stops, reloads or reconfigures a server.

    /proc              -> running servers (postmaster, mariadbd/mysqld, redis-server/valkey-server)
    pg_lsclusters      -> Debian's stopped PostgreSQL clusters
    /usr/sbin/mariadbd -> an installed MariaDB/MySQL that is not running
    each server        -> DatabaseReading: settings or a ReadFailure; its Charge from procfs

``read_databases(host_path, run)`` is the call; ``estimate_of`` and ``fixes_of`` apply the engine's
formula to a reading.

An engine's module (its client, settings and formulas: about half of _db) is imported only when
that engine is found on the host (``_engine``): every run of the overcommit modules reads the
databases, and most hosts run one engine or none, so the others are not compiled.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db import procfs
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import (
    MARIADB, MYSQL, POSTGRESQL, REDIS, VALKEY, DatabaseReading, Estimate, Fix, Server)
from ansible_collections.dbfleet.memory.plugins.module_utils._db.procfs import HostPath, ProcessInfo

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

_PG_MAJOR_IN_PATH = re.compile(r"/(?:postgresql|pgsql)[-/]?([0-9]+(?:\.[0-9]+)?)/")
_DEBIAN_CLUSTER = re.compile(r"/(?:etc|var/lib)/postgresql/([0-9.]+)/([^/]+)/?")
MYSQL_BINARIES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
DEBIAN_PG_BIN = "/usr/lib/postgresql/%s/bin/postgres"
# Debian's postgresql-common lists its clusters, running or not (absent elsewhere).
LSCLUSTERS_JSON = ["pg_lsclusters", "--json"]


@dataclass(frozen=True)
class HostDatabases:
    databases: Tuple[DatabaseReading, ...]
    notes: Tuple[str, ...] = ()  # host-level findings (pg_lsclusters unusable, ...)
    hugetlb_free_kb: Optional[int] = None  # free persistent huge pages of the default size

    def as_dict(self) -> Dict[str, Any]:
        return {"databases": [d.as_dict() for d in self.databases], "notes": list(self.notes),
                "hugetlb_free_kb": self.hugetlb_free_kb}


def _engine(engine: str) -> "ModuleType":
    """The module of ``engine`` (model.POSTGRESQL, MARIADB, ...): its client, settings and formulas."""
    # pylint: disable=import-outside-toplevel
    if engine == POSTGRESQL:
        from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql
        return postgresql
    if engine in (MARIADB, MYSQL):
        from ansible_collections.dbfleet.memory.plugins.module_utils._db import mysql
        return mysql
    if engine in (REDIS, VALKEY):
        from ansible_collections.dbfleet.memory.plugins.module_utils._db import redis
        return redis
    raise ValueError("unknown engine %s" % engine)


# --- finding servers ----------------------------------------------------------------------------

def _pg_name(data_dir: Optional[str], config_dir: Optional[str]) -> str:
    for path in (config_dir, data_dir):
        match = _DEBIAN_CLUSTER.search((path or "") + "/")
        if match:
            return "%s/%s" % match.groups()
    return data_dir or "?"


def _postmaster(info: ProcessInfo, procs: Dict[int, ProcessInfo], users: Dict[int, str],
                host_path: HostPath) -> Server:
    data_dir = procfs.option_value(info.argv, "-D") or postgresql_data_directory(info.argv)
    config_file = procfs.pg_config_option(info.argv, "config_file")
    config_dir = posixpath.dirname(config_file) if config_file else None
    pidfile = procfs.read_postmaster_pid(host_path, data_dir) if data_dir else None
    binary = info.argv[0] if info.argv and info.argv[0].startswith("/") else None
    major = None
    match = _PG_MAJOR_IN_PATH.search(binary or "")
    if match:
        major = match.group(1)
    elif data_dir:
        major = (procfs.read_text(host_path, data_dir.rstrip("/") + "/PG_VERSION") or "").strip() or None
    return Server(POSTGRESQL, _pg_name(data_dir, config_dir), True, info.pid, procfs.descendants(procs, info.pid),
                  users.get(info.uid), info.uid, data_dir, config_dir,
                  pidfile.port if pidfile else None, pidfile.socket_dir if pidfile else None, binary, major)


def postgresql_data_directory(argv: Sequence[str]) -> Optional[str]:
    return procfs.pg_config_option(argv, "data_directory")


def running_servers(host_path: HostPath) -> List[Server]:
    procs = procfs.scan_processes(host_path)
    users = procfs.user_names(host_path)
    servers: List[Server] = []
    for info in procs.values():
        parent = procs.get(info.ppid)
        if info.comm in procfs.PG_COMMS:
            if parent is None or parent.comm not in procfs.PG_COMMS:  # backends are its children
                servers.append(_postmaster(info, procs, users, host_path))
        elif info.comm in procfs.MYSQL_COMMS:
            if parent is None or parent.comm not in procfs.MYSQL_COMMS:
                engine = MARIADB if info.comm == "mariadbd" else MYSQL
                servers.append(Server(engine, info.comm, True, info.pid, procfs.descendants(procs, info.pid),
                                      users.get(info.uid), info.uid,
                                      procfs.option_value(info.argv, "--datadir"), None,
                                      _int(procfs.option_value(info.argv, "--port")),
                                      procfs.option_value(info.argv, "--socket"),
                                      info.argv[0] if info.argv else None))
        elif info.comm in procfs.REDIS_COMMS:
            if parent is None or parent.comm not in procfs.REDIS_COMMS:  # a save child is its own
                host, port = _engine(REDIS).listen_address(info.argv)
                engine = VALKEY if info.comm.startswith("valkey") else REDIS
                servers.append(Server(engine, "%s %s:%d" % (info.comm, host, port), True, info.pid,
                                      procfs.descendants(procs, info.pid), users.get(info.uid), info.uid,
                                      port=port, socket=host))
    return sorted(servers, key=lambda s: (s.engine, s.name))


def _int(text: Optional[str]) -> Optional[int]:
    return int(text) if text and text.isdigit() else None


def stopped_postgresql(run: cmd.Runner, running: Sequence[Server], users: Dict[int, str]) -> Tuple[List[Server], List[str]]:
    """Debian's clusters that are down, from pg_lsclusters (absent elsewhere: then there are none we
    can know of without a process)."""
    outcome = cmd.run_bounded(run, LSCLUSTERS_JSON)
    if outcome.rc in (cmd.NOT_FOUND_RC, cmd.CANNOT_RUN_RC):
        return [], []
    if not outcome.ok:
        return [], ["pg_lsclusters failed, stopped clusters are not listed: %s" % cmd.failure(outcome, "pg_lsclusters").reason]
    postgresql = _engine(POSTGRESQL)
    try:
        clusters = postgresql.parse_lsclusters_json(outcome.out)
    except postgresql.PgParseError as exc:
        return [], ["pg_lsclusters answered something else, stopped clusters are not listed: %s" % exc]
    seen = {posixpath.normpath(s.data_dir) for s in running if s.engine == POSTGRESQL and s.data_dir}
    servers = []
    for cluster in clusters:
        if cluster.running or posixpath.normpath(cluster.data_dir) in seen:
            continue
        servers.append(Server(POSTGRESQL, "%s/%s" % (cluster.version, cluster.name), False, None, (),
                              users.get(cluster.owner_uid) if cluster.owner_uid is not None else None,
                              cluster.owner_uid, cluster.data_dir, cluster.config_dir, cluster.port,
                              cluster.socket_dir, DEBIAN_PG_BIN % cluster.version, cluster.version))
    return servers, []


def stopped_mysql(host_path: HostPath, running: Sequence[Server]) -> List[Server]:
    """An installed MariaDB/MySQL server with no process: its option files say what it would use."""
    if any(s.engine in (MARIADB, MYSQL) for s in running):
        return []
    for binary in MYSQL_BINARIES:
        if os.path.exists(host_path(binary)):
            engine = MARIADB if binary.endswith("mariadbd") else MYSQL
            return [Server(engine, posixpath.basename(binary), False, binary=binary)]
    return []


_VERSION_WORD = re.compile(r"\bVer\s+([0-9][^\s,]*)")


def server_version(run: cmd.Runner, server: Server) -> Tuple[Optional[str], Optional[cmd.ReadFailure]]:
    outcome = cmd.run_bounded(run, [server.binary or server.name, "--version"])
    what = "%s %s, stopped (%s --version)" % (server.engine, server.name, server.binary)
    if not outcome.ok:
        return None, cmd.failure(outcome, what)
    match = _VERSION_WORD.search(outcome.out)
    if match is None:
        return None, cmd.garbage(outcome, what, "no version in its output")
    return match.group(1), None


# --- reading ----------------------------------------------------------------------------------------

def read_server(server: Server, run: cmd.Runner) -> DatabaseReading:
    settings: Any
    if server.engine == POSTGRESQL:
        postgresql = _engine(POSTGRESQL)
        settings = postgresql.read_running(server, run) if server.running else postgresql.read_stopped(server, run)
    elif server.engine in (MARIADB, MYSQL):
        mysql = _engine(server.engine)
        if server.running:
            settings = mysql.read_running(server, run)
        else:
            version, failed = server_version(run, server)
            settings = failed if failed is not None else mysql.read_stopped(server, run, version or "")
        if isinstance(settings, mysql.MySqlSettings) and settings.engine != server.engine:
            server = replace(server, engine=settings.engine)  # a "mysqld" that says it is MariaDB
    elif server.engine in (REDIS, VALKEY):
        settings = _engine(server.engine).read_running(server, run)
    else:  # pragma: no cover - running_servers makes no other engine
        settings = cmd.ReadFailure(cmd.FAILED, "unknown engine %s" % server.engine)
    if isinstance(settings, cmd.ReadFailure):
        return DatabaseReading(server, failure=settings)
    return DatabaseReading(server, settings=settings)


def _hugetlb_free_kb(host_path: HostPath) -> Optional[int]:
    text = procfs.read_text(host_path, "/proc/meminfo") or ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["HugePages_Free"].split()[0]) * int(fields["Hugepagesize"].split()[0])
    except (KeyError, ValueError, IndexError):
        return None


def read_databases(host_path: HostPath, run: cmd.Runner, include_stopped: bool = True) -> HostDatabases:
    """Every database server on the host, read and measured."""
    running = running_servers(host_path)
    servers = list(running)
    notes: List[str] = []
    if include_stopped:
        stopped, pg_notes = stopped_postgresql(run, running, procfs.user_names(host_path))
        servers += stopped + stopped_mysql(host_path, running)
        notes += pg_notes
    readings = []
    for server in servers:
        reading = read_server(server, run)
        if server.running:
            charge, per_pid = procfs.charge_of_pids(host_path, server.pids)
            reading = replace(reading, charge=charge, process_charges=per_pid)
        readings.append(reading)
    return HostDatabases(tuple(readings), tuple(notes), _hugetlb_free_kb(host_path))


def databases_charge(host: HostDatabases) -> procfs.Charge:
    """What all the databases' processes commit now, each shared segment once."""
    return procfs.combine(r.charge for r in host.databases if r.charge is not None)


# --- the engines' formulas on a reading -------------------------------------------------------------

def estimate_of(reading: DatabaseReading, load: Any = None, hugetlb_free_kb: Optional[int] = None) -> Optional[Estimate]:
    """The estimate at ``load`` (default: the configured peak), or None when the reading failed."""
    settings = reading.settings
    server = reading.server
    if settings is None:
        return None
    if server.engine == POSTGRESQL:
        postgresql = _engine(POSTGRESQL)
        if isinstance(settings, postgresql.PgSettings):
            measured = postgresql.PgMeasured.from_charges(reading.process_charges.get(server.pid or -1))
            return postgresql.estimate(server.name, settings, load or postgresql.configured_peak(settings), measured,
                                       hugetlb_free_kb)
    elif server.engine in (MARIADB, MYSQL):
        mysql = _engine(MYSQL)
        if isinstance(settings, mysql.MySqlSettings):
            return mysql.estimate(server.name, settings, load or mysql.configured_peak(settings),
                                  mysql.measure(settings, reading.charge))
    elif server.engine in (REDIS, VALKEY):
        redis = _engine(REDIS)
        if isinstance(settings, redis.RedisSettings):
            return redis.estimate(server.name, server.engine, settings)
    return None


def fixes_of(reading: DatabaseReading, room_kb: int, load: Any = None,
             hugetlb_free_kb: Optional[int] = None) -> List[Fix]:
    settings = reading.settings
    server = reading.server
    if settings is None:
        return []
    if server.engine == POSTGRESQL:
        postgresql = _engine(POSTGRESQL)
        if isinstance(settings, postgresql.PgSettings):
            measured = postgresql.PgMeasured.from_charges(reading.process_charges.get(server.pid or -1))
            return postgresql.fixes(server.name, settings, load or postgresql.configured_peak(settings), room_kb,
                                    measured, hugetlb_free_kb)
    elif server.engine in (MARIADB, MYSQL):
        mysql = _engine(MYSQL)
        if isinstance(settings, mysql.MySqlSettings):
            return mysql.fixes(server.name, settings, load or mysql.configured_peak(settings), room_kb,
                               mysql.measure(settings, reading.charge))
    return []
