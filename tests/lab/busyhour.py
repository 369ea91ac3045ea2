"""A database's busy hour under the product's plan, told the way a DBA would live it: what
overcommit_info says of the database before any load, the load at its configured peak, the
product's own fix applied without a restart, what overcommit_info says then, and the same load
again. test_db_sizing.py asserts on it; `make demo` prints it. Both go through here, so the demo
shows exactly what the proof proves.

Only observations are made here; a precondition the story cannot go on without (overcommit_info
failing, no fix of the kind the engine needs) is a LabError naming it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import dbsizing as dz
from dbguest import MARIADB_UNIT, PG_PID_FILE, PG_UNIT, mariadb, oom_kills, psql
from helpers import lockout_problems
from role_runner import run_info
from umlab import Lab, LabError

from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import mib_text


def info_for(lab: Lab, guest: str, profile: str) -> dict:
    """overcommit_info on the guest, as a user runs it: the plan for ``profile`` on the guest as it
    is now, and a line for each database it found."""
    run = run_info(lab, guest, profile=profile)
    if run.returncode != 0:
        raise LabError(f"{guest}: overcommit_info failed: {run.why()}")
    return run.apply(guest)


def database_line(info: dict, engine: str) -> dict:
    """The result's `databases` item of the one running server of ``engine``."""
    lines = [d for d in info["databases"] if d["engine"] == engine and d["running"]]
    if len(lines) != 1:
        raise LabError(f"expected one running {engine} in overcommit_info's databases: {info['databases']}")
    return lines[0]


# What a server's journal says when an allocation failed inside it: MariaDB logs "Out of memory
# (Needed N bytes)"; a server that aborts on a failed allocation ends with SIGABRT, which systemd
# logs as "status=6/ABRT". Not "Aborted connection": MariaDB logs that for any client that left
# without saying goodbye.
SERVER_MEMORY_LINE = re.compile(r"out of memory|cannot allocate memory|errno 12|signal 6|/ABRT|core dumped", re.I)


@dataclass
class Load:
    """One run of the busy load and what the kernel, the server and a newcomer saw during it."""
    result: dz.LoadResult
    oom_kills: list
    lockout: list[str]
    server_lines: list[str]  # the server's own journal lines about memory, a crash or a start
    server_died: bool

    def failed_for_memory(self) -> bool:
        """The load met ENOMEM: a client was told so, or the server said so in its journal."""
        return bool(self.result.out_of_memory) or any(SERVER_MEMORY_LINE.search(line) for line in self.server_lines)

    def describe(self) -> str:
        peak = self.result.found["meminfo"]
        text = (f"{len(self.result.out_of_memory)} ENOMEM lines, {self.result.held} of {self.result.clients} held"
                f" their memory at the barrier; Committed_AS {mib_text(peak['Committed_AS'])} of CommitLimit"
                f" {mib_text(peak['CommitLimit'])}; OOM kills: {len(self.oom_kills) or 'none'};"
                f" lockout: {'; '.join(self.lockout) or 'none'}; {self.result.seconds:.0f} s")
        if self.result.thread_memory_kb is not None:
            text += f"; the load's threads held {mib_text(self.result.thread_memory_kb)}"
        if self.server_died:
            text += "; THE SERVER DIED and was started again"
        # Any other error of the clients (a full disk under spilled sorts, a lost connection)
        # is told too: a load that did not do what it says must show why.
        other = [line for line in self.result.log.splitlines()
                 if re.search(r"error|lost connection|no space", line, re.I) and line not in self.result.out_of_memory]
        return (text + "".join("\n    client: " + line for line in self.result.out_of_memory[:3])
                + "".join("\n    client, not memory: " + line for line in other[:3])
                + "".join("\n    server: " + line for line in self.server_lines[-6:]))


@dataclass
class BusyHour:
    engine: str
    plan: str                # the plan overcommit_info would apply, and its CommitLimit
    before: dict             # overcommit_info's line for the database before any load
    fix: dict                # the fix of before["fixes"] that was applied
    failing: Load            # the load with the settings as configured
    after: dict              # the line once the fix is in
    passing: Load            # the same load after the fix
    server_pid_before: str   # once the fix is in, before the load after it
    server_pid_after: str

    def story(self) -> str:
        return "\n".join([
            f"overcommit_info: plan {self.plan}; room for {self.engine} {mib_text(self.before['room_kb'])}",
            f"before any load: {self.before['reason']}",
            f"the busy hour, as configured: {self.failing.describe()}",
            f"the fix, as overcommit_info words it: {self.fix['how']}",
            f"after the fix: {self.after['reason']}",
            f"the same busy hour: {self.passing.describe()}",
            f"server PID {self.server_pid_before} once the fix was in, {self.server_pid_after} after the load",
        ])

    def problems(self) -> list[str]:
        """What did not go as the verdict predicted, or []: the one definition of "the story holds"
        for the proofs and the demo."""
        failing, passing = self.failing, self.passing
        checks = [
            (self.before["fits"] is False, f"before any load the verdict was not 'does not fit': {self.before}"),
            (failing.failed_for_memory(), "the configured peak did not fit, yet the load met no ENOMEM:\n"
                                          + failing.result.log),
            (not failing.oom_kills and not failing.lockout, f"as configured: {failing.describe()}"),
            (self.after["fits"] is True, f"after the fix the verdict was not 'fits': {self.after}"),
            (not passing.failed_for_memory(), "after the fix the load met ENOMEM:\n" + passing.describe()
                                              + "\n" + passing.result.log),
            (passing.result.held == passing.result.clients, f"after the fix not every connection reached its peak:"
                                                            f" {passing.describe()}\n{passing.result.log}"),
            (not passing.oom_kills and not passing.lockout, f"after the fix: {passing.describe()}"),
            (not passing.server_died and self.server_pid_after == self.server_pid_before,
             "the fix or the load after it restarted the server"),
        ]
        return [why for held, why in checks if not held]


class PostgresHour:
    """``clients`` pgbench sessions, each one sort of ``rows`` rows of `wide` held at the barrier;
    the fix is work_mem, by ALTER SYSTEM and a reload."""
    engine = "postgresql"
    unit = PG_UNIT
    setting = "work_mem"

    def __init__(self, clients: int, rows: int) -> None:
        self.clients, self.rows = clients, rows

    def settle_in_mode_2(self, lab: Lab, guest: str) -> None:
        """Nothing: a backend's memory is charged when it is allocated, whatever the mode was at start."""

    def load(self, lab: Lab, guest: str) -> dz.LoadResult:
        return dz.pg_busy(lab, guest, self.clients, "sort", self.rows)

    def server_pid(self, lab: Lab, guest: str) -> str:
        return lab.run(guest, f"head -1 {PG_PID_FILE}", check=False).stdout.strip()

    def wait_ready(self, lab: Lab, guest: str) -> None:
        dz.wait_pg(lab, guest)

    def apply_fix(self, lab: Lab, guest: str, fix: dict) -> None:
        # "ALTER SYSTEM SET ...; SELECT pg_reload_conf();  -- ...": ALTER SYSTEM cannot run in a
        # transaction block, so one statement per psql call.
        for statement in fix["how"].split("--")[0].split(";"):
            if statement.strip():
                psql(lab, guest, statement.strip())
        time.sleep(1)


class MariadbHour:
    """``sorts`` + ``joins`` mariadb-slap threads, each at its full sort or join buffer at the
    barrier; the fix is sort_buffer_size and join_buffer_size, by SET GLOBAL."""
    engine = "mariadb"
    unit = MARIADB_UNIT
    setting = "sort_buffer_size+join_buffer_size"

    def __init__(self, sorts: int, joins: int) -> None:
        self.sorts, self.joins = sorts, joins

    def settle_in_mode_2(self, lab: Lab, guest: str) -> None:
        # The server as it runs under the plan from the next boot on: started in mode 2. One
        # started in mode 0 keeps glibc's arenas of that time uncharged (VM_NORESERVE is fixed
        # when a mapping is made), so its buffers there escape the limit until it restarts.
        lab.run(guest, f"systemctl restart {MARIADB_UNIT}", timeout=180)
        dz.wait_my(lab, guest)

    def load(self, lab: Lab, guest: str) -> dz.LoadResult:
        return dz.my_busy(lab, guest, self.sorts, self.joins, dz.NARROW_ROWS)

    def server_pid(self, lab: Lab, guest: str) -> str:
        return lab.run(guest, "pgrep -x mariadbd", check=False).stdout.strip()

    def wait_ready(self, lab: Lab, guest: str) -> None:
        dz.wait_my(lab, guest)

    def apply_fix(self, lab: Lab, guest: str, fix: dict) -> None:
        set_global = re.search(r"SET GLOBAL [^;]+;", fix["how"])
        if not set_global:
            raise LabError(f"the fix has no SET GLOBAL statement: {fix['how']}")
        mariadb(lab, guest, set_global.group(0))


def _server_lines(lab: Lab, guest: str, unit: str, since: str) -> list[str]:
    """The server's journal since ``since`` (the guest's epoch seconds), its lines about memory, a
    signal, a crash or a start: where a server that meets ENOMEM itself says so."""
    out = lab.run(guest, f"journalctl -u {unit} --no-pager -o cat --since=@{since} | grep -iE"
                         " 'memory|signal|abort|crash|restart|start|ready'", check=False).stdout
    return out.splitlines()


def _observed_load(lab: Lab, guest: str, hour: PostgresHour | MariadbHour) -> Load:
    """The load, then what the kernel and the server said. A server that died under it (it may
    abort on a failed allocation) is waited for, or started again as an operator would, so the
    story can go on; the death is in the result."""
    lab.run(guest, "dmesg -C")
    since = lab.run(guest, "date +%s").stdout.strip()
    pid = hour.server_pid(lab, guest)
    result = hour.load(lab, guest)
    kills = oom_kills(lab.run(guest, "dmesg").stdout)
    lockout = lockout_problems(lab, guest)
    died = hour.server_pid(lab, guest) != pid
    if died:
        try:
            hour.wait_ready(lab, guest)   # systemd's Restart=, when the unit has one
        except LabError:
            lab.run(guest, f"systemctl start {hour.unit}", check=False, timeout=180)
            hour.wait_ready(lab, guest)
    return Load(result, kills, lockout, _server_lines(lab, guest, hour.unit, since), died)


def busy_hour(lab: Lab, guest: str, hour: PostgresHour | MariadbHour, profile: str) -> BusyHour:
    """The story on ``guest`` as it is configured now. The host is left under the plan (mode 2 with
    the planner's limit): a caller that wants mode 0 back restores it (dbsizing.back_to_mode0)."""
    info = info_for(lab, guest, profile)
    if not info["safe"]:
        raise LabError(f"overcommit_info finds the plan unsafe: {info['reasons']}")
    before = database_line(info, hour.engine)
    fixes = [f for f in before["fixes"] if f["setting"] == hour.setting and not f["restart"]]
    if not fixes:
        raise LabError(f"no {hour.setting} fix without a restart among {before['fixes']}; overcommit_info's"
                       " databases:\n" + "\n".join(d["reason"] for d in info["databases"]))
    # The live writes applying would make, in the module's order (entering mode 2: reserve, limit,
    # mode); none when the role has already applied the plan.
    dz.make_live_changes(lab, guest, info["live_changes"])
    commit_limit_kb = lab.meminfo(guest)["CommitLimit"]
    if commit_limit_kb != info["commit_limit_kb"]:
        raise LabError(f"CommitLimit is {commit_limit_kb} kB under the plan, overcommit_info said"
                       f" {info['commit_limit_kb']} kB")
    hour.settle_in_mode_2(lab, guest)
    failing = _observed_load(lab, guest, hour)
    hour.apply_fix(lab, guest, fixes[0])
    after = database_line(info_for(lab, guest, profile), hour.engine)
    pid_before = hour.server_pid(lab, guest)
    passing = _observed_load(lab, guest, hour)
    return BusyHour(hour.engine, f"{info['sysctl']}, CommitLimit {mib_text(info['commit_limit_kb'])}", before,
                    fixes[0], failing, after, passing, pid_before, hour.server_pid(lab, guest))
