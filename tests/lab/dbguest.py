"""Real PostgreSQL and MariaDB in lab guests (image flavour "db"): talk to them, read
what systemd and the kernel say about them. Used by test_databases.py and the demo.

The guests run Debian's packages as installed: the cluster 15/main under
`postgresql@15-main.service` (pg_ctlcluster starts the postmaster at oom_score_adj -900 and
sets PG_OOM_ADJUST_FILE, so backends go back to 0) and `mariadb.service`.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass

from umlab import Lab, LabError

PG_UNIT = "postgresql@15-main.service"
MARIADB_UNIT = "mariadb.service"
DB_UNITS = (PG_UNIT, MARIADB_UNIT)
PG_PID_FILE = "/var/lib/postgresql/15/main/postmaster.pid"   # first line: the postmaster's PID
DB_PROFILE = ["postgresql", "mariadb"]   # the roles' profile for these guests
UNIT_READY_TIMEOUT_S = 180.0   # both databases start in 10-40 s in a UML guest (host load)

# The kernel's report of an OOM kill (mm/oom_kill.c, 6.1): host-wide or inside a memory cgroup.
OOM_KILL_LINE = re.compile(r"(?:Memory cgroup )?[Oo]ut of memory: Killed process (\d+) \(([^)]+)\).*?"
                           r"UID:(\d+).*?oom_score_adj:(-?\d+)")


def psql(lab: Lab, guest: str, sql: str, *, check: bool = True, timeout: float = 60) -> str:
    """SQL as the postgres superuser in its database "postgres" (peer auth over the socket); -At
    output, no command tags (-q)."""
    proc = lab.run(guest, "cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c " + shlex.quote(sql) + " 2>&1",
                   check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{guest}: psql `{sql}` exited {proc.returncode}: {proc.stdout.strip()}")
    return proc.stdout.strip()


def mariadb(lab: Lab, guest: str, sql: str, *, check: bool = True, timeout: float = 60) -> str:
    """SQL as MariaDB's root (unix_socket auth over the socket); tab-separated, no headers."""
    proc = lab.run(guest, "mariadb -NB -e " + shlex.quote(sql) + " 2>&1", check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{guest}: mariadb `{sql}` exited {proc.returncode}: {proc.stdout.strip()}")
    return proc.stdout.strip()


def unit_state(lab: Lab, guest: str, unit: str) -> dict[str, str]:
    out = lab.run(guest, f"systemctl show -p MainPID,ActiveState,ActiveEnterTimestamp,NRestarts,OOMPolicy,Result {unit}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for_databases(lab: Lab, guest: str, timeout_s: float = UNIT_READY_TIMEOUT_S) -> None:
    """Waits until both units are active and both servers answer SQL; fails naming the unit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = {unit: unit_state(lab, guest, unit)["ActiveState"] for unit in DB_UNITS}
        if set(states.values()) == {"active"}:
            if (psql(lab, guest, "SELECT 1", check=False) == "1"
                    and mariadb(lab, guest, "SELECT 1", check=False) == "1"):
                return
        elif "failed" in states.values():
            break
        time.sleep(1)
    status = lab.run(guest, "systemctl status --no-pager --lines=15 " + " ".join(DB_UNITS), check=False).stdout
    raise LabError(f"{guest}: databases not ready after {timeout_s:g} s: {states}\n{status}")


@dataclass(frozen=True)
class DbIdentity:
    """What changes when a database restarts, and only then."""

    postmaster_pid: int
    pg_started: str          # pg_postmaster_start_time()
    pg_unit_pid: int         # systemd's MainPID of the cluster's unit
    pg_active_since: str     # ActiveEnterTimestamp
    pg_restarts: int         # NRestarts
    mariadbd_pid: int
    mariadb_started: int     # UNIX time of the server's start: now - Uptime (+-1 s)
    mariadb_active_since: str
    mariadb_restarts: int

    def differences(self, later: "DbIdentity") -> list[str]:
        """What changed between two readings; the MariaDB start may move by the 1 s Uptime rounds to."""
        changed = [f"{name}: {getattr(self, name)} -> {getattr(later, name)}"
                   for name in self.__dataclass_fields__
                   if name != "mariadb_started" and getattr(self, name) != getattr(later, name)]
        if abs(self.mariadb_started - later.mariadb_started) > 1:
            changed.append(f"mariadb_started: {self.mariadb_started} -> {later.mariadb_started}")
        return changed

    def describe(self) -> str:
        return (f"postmaster PID {self.postmaster_pid} started {self.pg_started} (unit MainPID {self.pg_unit_pid},"
                f" active since {self.pg_active_since}, NRestarts {self.pg_restarts}); mariadbd PID"
                f" {self.mariadbd_pid} up since {time.strftime('%H:%M:%S', time.gmtime(self.mariadb_started))} UTC"
                f" (active since {self.mariadb_active_since}, NRestarts {self.mariadb_restarts})")


def identity(lab: Lab, guest: str) -> DbIdentity:
    pg, my = unit_state(lab, guest, PG_UNIT), unit_state(lab, guest, MARIADB_UNIT)
    started = mariadb(lab, guest, "SELECT UNIX_TIMESTAMP() - VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
                                  " WHERE VARIABLE_NAME = 'UPTIME'")
    return DbIdentity(
        postmaster_pid=int(lab.run(guest, f"head -1 {PG_PID_FILE}").stdout),
        pg_started=psql(lab, guest, "SELECT pg_postmaster_start_time()"),
        pg_unit_pid=int(pg["MainPID"]), pg_active_since=pg["ActiveEnterTimestamp"], pg_restarts=int(pg["NRestarts"]),
        mariadbd_pid=int(my["MainPID"]), mariadb_started=int(float(started)),
        mariadb_active_since=my["ActiveEnterTimestamp"], mariadb_restarts=int(my["NRestarts"]))


KEPT_ROWS = 20000


def write_kept_tables(lab: Lab, guest: str) -> dict[str, str]:
    """A table in each database, committed; returns their checksums (see kept_checksums)."""
    psql(lab, guest, f"DROP TABLE IF EXISTS kept; CREATE TABLE kept AS SELECT g AS id, md5(g::text) AS v"
                     f" FROM generate_series(1, {KEPT_ROWS}) g")
    mariadb(lab, guest, f"CREATE DATABASE IF NOT EXISTS lab; USE lab; CREATE OR REPLACE TABLE kept"
                        f" (id INT PRIMARY KEY, v CHAR(32)) ENGINE=InnoDB;"
                        f" INSERT INTO kept SELECT seq, MD5(seq) FROM seq_1_to_{KEPT_ROWS}")
    return kept_checksums(lab, guest)


def kept_checksums(lab: Lab, guest: str) -> dict[str, str]:
    return {"postgresql": psql(lab, guest, "SELECT count(*) || ' rows, md5 ' || md5(string_agg(v, '' ORDER BY id))"
                                           " FROM kept"),
            "mariadb": mariadb(lab, guest, "SELECT CONCAT(COUNT(*), ' rows, md5 ', MD5(GROUP_CONCAT(v ORDER BY id"
                                           " SEPARATOR ''))) FROM lab.kept")}


@dataclass(frozen=True)
class OomKill:
    pid: int
    comm: str
    uid: int
    oom_score_adj: int
    line: str


def oom_kills(kernel_log: str) -> list[OomKill]:
    """Every OOM kill the kernel reported, in order."""
    kills = []
    for line in kernel_log.splitlines():
        match = OOM_KILL_LINE.search(line)
        if match:
            kills.append(OomKill(int(match.group(1)), match.group(2), int(match.group(3)), int(match.group(4)),
                                 line.strip()))
    return kills


def process_names(lab: Lab, guest: str) -> dict[int, str]:
    """PID -> command line of every process now (to name what a kill line's PID was)."""
    out = lab.run(guest, "ps -eo pid=,user=,args=").stdout
    return {int(line.split(None, 1)[0]): line.split(None, 1)[1].strip() for line in out.splitlines() if line.strip()}
