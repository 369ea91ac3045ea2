"""Loads and measurements on a real PostgreSQL 15 and MariaDB 10.11 for test_db_calibration.py,
test_db_sizing.py and busyhour.py.

The product's reader runs in the guest (guest/db_sizing_probe.py on an uploaded copy of
plugins/module_utils/_db); this file configures the servers, runs the busy loads and reads the
kernel. A load holds every connection at its memory peak at the same moment, behind a barrier,
so one reading of Committed_AS sees them all:

* PostgreSQL: pgbench runs N clients of one SQL file; each query's sort/hash output passes a
  qual that takes a shared advisory lock, which a holder session keeps exclusive: every backend
  finishes its sort or hash (work_mem full), then waits with its memory held. The backends'
  process titles ("... SELECT waiting") show where each is without a new connection, so the
  count works even when mode 2 refuses new processes. Releasing: SIGTERM to the holder's backend.
* MariaDB: mariadb-slap runs N client threads (its stack limit lowered to 256 kB, so the client
  itself commits little). A sort waits on GET_LOCK at the last row it reads, when its sort buffer
  is allocated and full; a join waits at its first output row, when its join buffer is full. The
  holder's lock ends with its SLEEP even if no new connection can be made to KILL it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import tarfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dbguest import MARIADB_UNIT, PG_UNIT, mariadb, psql, wait_for_databases
from umlab import GuestSpec, Lab, LabError, check_host

REPO = Path(__file__).resolve().parents[2]
MODULE_UTILS = REPO / "plugins" / "module_utils"
PROBE = Path(__file__).parent / "guest" / "db_sizing_probe.py"
ON_GUEST = "/opt/dbsizing"
MY_CONF = "/etc/mysql/mariadb.conf.d/95-dbsize.cnf"
PG_LOAD_SQL = "/tmp/dbsize-load.sql"
PGBENCH_LOG = "/tmp/dbsize-pgbench.log"
SLAP_LOG = "/tmp/dbsize-slap-%s.log"
KB_PER_ROW = 1  # the PostgreSQL table "wide": about 1 kB per row (30 md5 texts, not compressed)
WIDE_ROWS = 40000
NARROW_ROWS = 600000  # MariaDB "narrow": sort rows of about 76 bytes in the sort buffer
BARRIER_S = 300  # the longest a holder keeps the barrier closed


def upload_product(lab: Lab, guest: str) -> None:
    """The collection's _db package, the one file of _host it reads with (regular_file.py) and the
    probe, as one tar over SSH."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        base = "ansible_collections/dbfleet/memory/plugins/module_utils"
        for path in sorted((MODULE_UTILS / "_db").glob("*.py")) + [MODULE_UTILS / "_host" / "regular_file.py"]:
            tar.add(path, arcname=f"{base}/{path.relative_to(MODULE_UTILS)}")
        tar.add(PROBE, arcname="db_sizing_probe.py")
    lab.run(guest, f"rm -rf {ON_GUEST} && mkdir -p {ON_GUEST} && base64 -d | tar -x -C {ON_GUEST}",
            input_text=base64.b64encode(buf.getvalue()).decode())


@contextmanager
def sizing_lab(spec: GuestSpec) -> Iterator[Lab]:
    """A db-flavour guest with both servers up, the product's reader uploaded and the loads'
    tables in both servers."""
    check_host()
    with Lab([spec]) as lab:
        wait_for_databases(lab, spec.name)
        upload_product(lab, spec.name)
        pg_prepare(lab, spec.name)
        my_prepare(lab, spec.name)
        yield lab


def probe(lab: Lab, guest: str, clients: list[int] = ()) -> dict:
    """The product's reading of the guest's databases and their charge now (calibration; the
    proofs take their verdicts from overcommit_info)."""
    args = [f"{ON_GUEST}/db_sizing_probe.py", ON_GUEST]
    if clients:
        args += ["--clients", ",".join(map(str, clients))]
    proc = lab.run(guest, "python3 " + " ".join(shlex.quote(a) for a in args), check=False, timeout=180)
    if proc.returncode != 0:
        raise LabError(f"{guest}: the probe failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def reading(found: dict, engine: str) -> dict:
    """The probe's reading of the one server of this engine."""
    matches = [d for d in found["host"]["databases"] if d["server"]["engine"] == engine]
    if len(matches) != 1:
        raise LabError(f"expected one {engine} server, the probe found {[d['server'] for d in matches]}")
    return matches[0]


# --- PostgreSQL -----------------------------------------------------------------------------------

def _wait_answer(lab: Lab, guest: str, client, server: str, timeout_s: float) -> None:
    """Until ``client`` (dbguest.psql or dbguest.mariadb) gets an answer to SELECT 1."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client(lab, guest, "SELECT 1", check=False) == "1":
            return
        time.sleep(1)
    raise LabError(f"{guest}: {server} does not answer after {timeout_s} s")


def wait_pg(lab: Lab, guest: str, timeout_s: float = 180) -> None:
    _wait_answer(lab, guest, psql, "PostgreSQL", timeout_s)


def pg_configure(lab: Lab, guest: str, settings: dict[str, str]) -> None:
    """Back to the cluster's files, then these settings (ALTER SYSTEM), then a restart."""
    psql(lab, guest, "ALTER SYSTEM RESET ALL")
    for name, value in settings.items():
        psql(lab, guest, f"ALTER SYSTEM SET {name} = '{value}'")
    lab.run(guest, f"systemctl restart {PG_UNIT}", timeout=180)
    wait_pg(lab, guest)


def pg_prepare(lab: Lab, guest: str) -> None:
    psql(lab, guest, "CREATE TABLE IF NOT EXISTS wide AS SELECT g AS id, (SELECT string_agg(md5(g::text || ':' || "
                     f"i::text), '') FROM generate_series(1, 30) i) AS v FROM generate_series(1, {WIDE_ROWS}) g",
         timeout=300)
    psql(lab, guest, "ANALYZE wide")


def pg_load_sql(kind: str, rows: int) -> str:
    """One query per client; parallel workers off, so each connection is one backend; JIT off
    except where the kind asks for it (then for every query, whatever its cost)."""
    head = "SET max_parallel_workers_per_gather = 0;\n"
    head += "SET jit = on;\nSET jit_above_cost = 0;\n" if kind.endswith("+jit") else "SET jit = off;\n"
    gate = "WHERE pg_advisory_lock_shared(1)::text = ''"
    kind = kind.removesuffix("+jit")
    if kind == "sort":
        return head + (f"SELECT count(*) FROM (SELECT v FROM wide WHERE id <= {rows} ORDER BY v OFFSET 0) s {gate};\n")
    if kind == "hash":
        return head + ("SET enable_sort = off;\n"
                       f"SELECT count(*) FROM (SELECT v, count(*) FROM wide WHERE id <= {rows} GROUP BY v OFFSET 0) s"
                       f" {gate};\n")
    if kind == "sort+hash":
        return head + ("SET enable_sort = off;\n"
                       f"SELECT count(*) FROM (SELECT * FROM (SELECT v, count(*) FROM wide WHERE id <= {rows} GROUP BY v"
                       f" OFFSET 0) h ORDER BY v DESC OFFSET 0) s {gate};\n")
    raise ValueError(kind)


_PG_TITLE = re.compile(r"^([0-9]+) postgres: \S+: postgres postgres \[local\] (\S+)( waiting)?$")


def _pg_titles(lab: Lab, guest: str, holder: int) -> tuple[int, int]:
    """(backends of the load still working, backends waiting at the barrier), from process titles."""
    out = lab.run(guest, "ps -eo pid=,args=", check=False).stdout
    working = waiting = 0
    for line in out.splitlines():
        match = _PG_TITLE.match(line.strip())
        if match and int(match.group(1)) != holder and match.group(2) != "idle":
            if match.group(3):
                waiting += 1
            else:
                working += 1
    return working, waiting


class Settling:
    """When a load has settled: every client is either at the barrier or has given up, for
    SETTLED_POLLS polls in a row. A client that is still connecting shows nowhere (no backend, no
    thread yet) and one that gave up may not say so where we look, so a picture that has not
    changed for STILL_POLLS polls counts as settled too."""
    SETTLED_POLLS = 3
    STILL_POLLS = 10

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.settled = self.still = 0
        self.last: tuple | None = None

    def see(self, busy: int, waiting: int, gave_up: int, client_running: bool) -> bool:
        """One poll: ``busy`` clients still working, ``waiting`` at the barrier, ``gave_up`` known
        to have ended with an error; True once the load has settled."""
        quiet = busy == 0 and (waiting or not client_running)
        accounted = waiting + gave_up >= self.clients or not client_running
        self.settled = self.settled + 1 if quiet and accounted else 0
        picture = (busy, waiting, gave_up)
        self.still = self.still + 1 if quiet and picture == self.last else 0
        self.last = picture
        return self.settled >= self.SETTLED_POLLS or self.still >= self.STILL_POLLS


def _pids(lab: Lab, guest: str, pattern: str) -> list[int]:
    return [int(p) for p in lab.run(guest, f"pgrep {pattern} || true").stdout.split()]


@dataclass
class LoadResult:
    clients: int
    held: int  # connections seen at the barrier with their memory held
    found: dict | None  # the probe's reading at the barrier
    log: str
    seconds: float
    # MariaDB: what the load's threads held at the barrier (PROCESSLIST.MEMORY_USED, kB). Its filesort
    # and join cache retry a failed allocation with a smaller buffer, so ENOMEM shows here, not in a log.
    thread_memory_kb: int | None = None

    @property
    def out_of_memory(self) -> list[str]:
        """The clients' lines that report a server's ENOMEM: PostgreSQL's "ERROR:  out of memory", MariaDB's
        "Out of memory (Needed N bytes)" / "Out of sort memory" / a thread it could not create. A client that
        ran out of memory itself ("2008 Client run out of memory") is not the server's."""
        return [line for line in self.log.splitlines()
                if re.search(r"out of memory|out of sort memory|Cannot allocate memory|errno 12|new thread", line, re.I)
                and "Client run out of memory" not in line]


def pg_busy(lab: Lab, guest: str, clients: int, kind: str, rows: int, settle_s: float = 240) -> LoadResult:
    """N clients each run one query of `kind` over `rows` rows; measured with all of them at the barrier."""
    started = time.monotonic()
    lab.put(guest, PG_LOAD_SQL, pg_load_sql(kind, rows))
    # Advisory locks belong to a database: the holder works in the load's database, "postgres".
    lab.run(guest, f"rm -f {PGBENCH_LOG}; setsid -f runuser -u postgres -- psql -XAtq -d postgres -c "
                   f"'SELECT pg_advisory_lock(1), pg_sleep({BARRIER_S})' >/dev/null 2>&1 </dev/null")
    deadline = time.monotonic() + 30
    holder = ""
    while not holder.isdigit():
        if time.monotonic() > deadline:
            raise LabError(f"{guest}: the barrier's holder did not take its lock")
        time.sleep(0.5)
        holder = psql(lab, guest, "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
                                  " AND l.mode = 'ExclusiveLock'", check=False)
    lab.run(guest, f"cd /tmp && setsid -f runuser -u postgres -- pgbench -n -c {clients} -j 1 -t 1 -f {PG_LOAD_SQL} "
                   f"postgres >{PGBENCH_LOG} 2>&1 </dev/null")
    held, settling = 0, Settling(clients)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        time.sleep(1)
        working, waiting = _pg_titles(lab, guest, int(holder))
        bench = _pids(lab, guest, "-x pgbench")
        aborted = lab.run(guest, f"grep -c ' aborted ' {PGBENCH_LOG} || true").stdout.strip()
        held = waiting
        if settling.see(working, waiting, int(aborted or 0), bool(bench)):
            break
    found = probe(lab, guest, _pids(lab, guest, "-x pgbench") + _pids(lab, guest, "-x runuser")
                  + _pids(lab, guest, "-x psql"))
    lab.run(guest, f"kill -TERM {holder}")  # the holder's backend: its lock goes with it
    deadline = time.monotonic() + settle_s
    while _pids(lab, guest, "-x pgbench") and time.monotonic() < deadline:
        time.sleep(1)
    log = lab.run(guest, f"cat {PGBENCH_LOG}", check=False).stdout
    return LoadResult(clients, held, found, log, time.monotonic() - started)


# --- MariaDB ------------------------------------------------------------------------------------

def wait_my(lab: Lab, guest: str, timeout_s: float = 180) -> None:
    _wait_answer(lab, guest, mariadb, "MariaDB", timeout_s)


def my_configure(lab: Lab, guest: str, settings: dict[str, str]) -> None:
    """These settings in an option file of their own, then a restart (a fresh server: glibc's
    arenas of earlier loads gone)."""
    lab.put(guest, MY_CONF, "[mariadbd]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    lab.run(guest, f"systemctl restart {MARIADB_UNIT}", timeout=180)
    wait_my(lab, guest)


def my_prepare(lab: Lab, guest: str) -> None:
    md5s = ", ".join(f"MD5(seq+{i})" for i in range(30))
    mariadb(lab, guest, "CREATE DATABASE IF NOT EXISTS lab; USE lab;"
                        " CREATE TABLE IF NOT EXISTS narrow (id INT NOT NULL PRIMARY KEY, h CHAR(32) CHARACTER SET"
                        f" latin1 NOT NULL) ENGINE=InnoDB SELECT seq AS id, MD5(seq) AS h FROM seq_1_to_{NARROW_ROWS};"
                        " CREATE TABLE IF NOT EXISTS wide (id INT NOT NULL, k INT NOT NULL, v VARCHAR(1000) CHARACTER"
                        f" SET latin1 NOT NULL) ENGINE=InnoDB SELECT seq AS id, seq % 1000 AS k, CONCAT({md5s}) AS v"
                        f" FROM seq_1_to_{WIDE_ROWS};"
                        " CREATE TABLE IF NOT EXISTS small (k INT NOT NULL, w VARCHAR(1000) CHARACTER SET latin1 NOT"
                        " NULL) ENGINE=InnoDB SELECT seq AS k, REPEAT('y', 900) AS w FROM seq_1_to_20;"
                        " ANALYZE TABLE narrow, wide, small", timeout=600)


TAG = "dbsize-load"


def my_sort_sql(rows: int) -> str:
    # The gate is evaluated at the last row the range scan reads: the sort buffer is allocated (in
    # full, when the estimate says the rows need it) and filled. Only the last sorted row goes to
    # the client (an OFFSET past all others; too large for MariaDB's priority queue, so a full
    # filesort): mariadb-slap stores whole results, and in mode 2 a client holding 600 000 rows
    # meets ENOMEM itself ("2008 Client run out of memory").
    return (f"SELECT /* {TAG} */ id FROM narrow WHERE id <= {rows} AND (id < {rows} OR"
            f" GET_LOCK('dbsize', {BARRIER_S}) + RELEASE_LOCK('dbsize') >= 0) ORDER BY h LIMIT 1 OFFSET {rows - 1}")


def my_join_sql() -> str:
    # Block nested loop: the join buffer fills with rows of `wide` before the first row comes out.
    return (f"SELECT /* {TAG} */ STRAIGHT_JOIN LENGTH(a.v) + IF(@b IS NULL, (@b := GET_LOCK('dbsize', {BARRIER_S}))"
            " + RELEASE_LOCK('dbsize'), 0) FROM wide a JOIN small b ON a.k = b.k")


def _slap(lab: Lab, guest: str, name: str, count: int, sql: str) -> None:
    lab.run(guest, f"rm -f {SLAP_LOG % name}; ulimit -s 256; setsid -f mariadb-slap --create-schema=lab --no-drop"
                   f" --concurrency={count} --iterations=1 --number-of-queries={count} --query={shlex.quote(sql)}"
                   f" >{SLAP_LOG % name} 2>&1 </dev/null")


def my_busy(lab: Lab, guest: str, sorts: int, joins: int, sort_rows: int, settle_s: float = 240) -> LoadResult:
    started = time.monotonic()
    lab.run(guest, f"setsid -f mariadb -NB -e \"SELECT GET_LOCK('dbsize', 5), SLEEP({BARRIER_S})\" >/dev/null 2>&1"
                   " </dev/null")
    deadline = time.monotonic() + 30
    while mariadb(lab, guest, "SELECT IS_USED_LOCK('dbsize') IS NOT NULL", check=False) != "1":
        if time.monotonic() > deadline:
            raise LabError(f"{guest}: the barrier's holder did not take its lock")
        time.sleep(0.5)
    if sorts:
        _slap(lab, guest, "sort", sorts, my_sort_sql(sort_rows))
    if joins:
        _slap(lab, guest, "join", joins, my_join_sql())
    held, settling = 0, Settling(sorts + joins)
    query = (f"SELECT COUNT(*), COALESCE(SUM(STATE = 'User lock'), 0) FROM information_schema.PROCESSLIST"
             f" WHERE INFO LIKE '%{TAG}%' AND INFO NOT LIKE '%PROCESSLIST%'")
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        time.sleep(1)
        answer = mariadb(lab, guest, query, check=False).split()
        if len(answer) != 2 or not all(a.isdigit() for a in answer):
            continue  # no connection to be had now: look again
        total, waiting = map(int, answer)
        slaps = _pids(lab, guest, "-x mariadb-slap")
        held = waiting
        if settling.see(total - waiting, waiting, 0, bool(slaps)):
            break
    found = probe(lab, guest, _pids(lab, guest, "-x mariadb-slap") + _pids(lab, guest, "-x mariadb"))
    used = mariadb(lab, guest, "SELECT COALESCE(SUM(MEMORY_USED), 0) FROM information_schema.PROCESSLIST"
                               f" WHERE INFO LIKE '%{TAG}%' AND INFO NOT LIKE '%PROCESSLIST%'", check=False)
    holder = mariadb(lab, guest, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(%'"
                                 " AND INFO NOT LIKE '%PROCESSLIST%'", check=False)
    if holder.isdigit():
        mariadb(lab, guest, f"KILL {holder}", check=False)
    deadline = time.monotonic() + settle_s + BARRIER_S
    while _pids(lab, guest, "-x mariadb-slap") and time.monotonic() < deadline:
        time.sleep(1)
    log = "".join(lab.run(guest, f"cat {SLAP_LOG % name} 2>/dev/null", check=False).stdout for name in ("sort", "join"))
    return LoadResult(sorts + joins, held, found, log, time.monotonic() - started,
                      int(used) // 1024 if used.isdigit() else None)


# --- the kernel ---------------------------------------------------------------------------------

def make_live_changes(lab: Lab, guest: str, live_changes: list[dict]) -> None:
    """The live writes overcommit_info says applying would make, in its order (entering mode 2:
    reserve, limit, mode), as the overcommit module makes them."""
    for change in live_changes:
        lab.run(guest, f"sysctl -q -w {change['key']}={change['after']}")


# What the product finds a stopped server by: Debian's cluster list, MariaDB's installed binary.
STOPPED_FOUND_BY = {PG_UNIT: "/usr/bin/pg_lsclusters", MARIADB_UNIT: "/usr/sbin/mariadbd"}


@contextmanager
def not_installed(lab: Lab, guest: str, unit: str) -> Iterator[None]:
    """The server of ``unit`` stopped and, for the product, not installed. The product counts a
    stopped server's configured peak too (it starts at the next boot); a proof about one database
    needs a host with only that one, as a single-database host is."""
    found_by = STOPPED_FOUND_BY[unit]
    lab.run(guest, f"systemctl stop {unit}" + (" mariadb.socket" if unit == MARIADB_UNIT else ""), timeout=180)
    lab.run(guest, f"mv {found_by} {found_by}.lab-hidden")
    try:
        yield
    finally:
        lab.run(guest, f"mv {found_by}.lab-hidden {found_by}", check=False)
        lab.run(guest, f"systemctl start {unit}", check=False, timeout=180)


def back_to_mode0(lab: Lab, guest: str) -> None:
    """Leaving mode 2: the mode first (a root shell survives a failing fork; power-cycle if even that fails)."""
    try:
        lab.run(guest, "sysctl -q -w vm.overcommit_memory=0", timeout=30)
    except LabError:
        try:
            with lab.open_shell(guest) as shell:
                shell.run("echo 0 > /proc/sys/vm/overcommit_memory")
        except LabError:
            lab.power_cycle(guest)
