# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis and Valkey: ``maxmemory`` and ``used_memory`` when the server is reachable.

Their profile stays mode 1 (a background save forks; in mode 2 the child is charged a copy of
the parent's private memory and the fork fails without that much room: "Can't save in
background: fork: Cannot allocate memory", Redis's administration notes). So the estimate here
only says what the data may grow to (maxmemory, else the peak seen) and what one fork adds in
mode 2; it is not calibrated. ``redis-cli INFO memory`` carries both numbers (``maxmemory``
since Redis 3.2) without needing CONFIG, which deployments often rename or disable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple, Union

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Estimate, Server, Term
from ansible_collections.dbfleet.memory.plugins.module_utils._db.units import kb_from_bytes, mib_text

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379
CLIENT_TIMEOUT_S = 10


class RedisParseError(ValueError):
    pass


@dataclass(frozen=True)
class RedisSettings:
    version: str
    used_memory_kb: int
    used_memory_peak_kb: int
    maxmemory_kb: int  # 0: no limit

    @property
    def major(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def listen_address(argv: Sequence[str]) -> Tuple[str, int]:
    """(host, port) from a server's process title "redis-server 127.0.0.1:6379" (Redis rewrites its
    argv into one string) or its arguments; the defaults when it says neither."""
    words = " ".join(argv).split()
    for word in reversed(words):
        host, sep, port = word.rpartition(":")
        if sep and port.isdigit():
            return (DEFAULT_HOST if host in ("*", "0.0.0.0", "::", "") else host.strip("[]"), int(port))
    return DEFAULT_HOST, DEFAULT_PORT


def info_command(server: Server, client: str = "redis-cli") -> List[str]:
    return [client, "-h", server.socket or DEFAULT_HOST, "-p", str(server.port or DEFAULT_PORT), "--no-auth-warning",
            "INFO", "memory"]


def parse_info(text: str) -> RedisSettings:
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise RedisParseError("not a key:value line: %r" % line[:120])
        fields[key] = value
    try:
        used = int(fields["used_memory"])
        peak = int(fields.get("used_memory_peak", used))
        maxmemory = int(fields.get("maxmemory", "0"))
    except (KeyError, ValueError) as exc:
        raise RedisParseError("no numeric used_memory/maxmemory: %s" % exc) from exc
    return RedisSettings(fields.get("redis_version", fields.get("valkey_version", "?")), kb_from_bytes(used),
                         kb_from_bytes(peak), kb_from_bytes(maxmemory))


def read_running(server: Server, run: cmd.Runner) -> Union[RedisSettings, cmd.ReadFailure]:
    what = "%s %s (redis-cli INFO memory)" % (server.engine, server.name)
    outcome = cmd.run_bounded(run, info_command(server, "valkey-cli" if server.engine == "valkey" else "redis-cli"),
                              CLIENT_TIMEOUT_S)
    if server.engine == "valkey" and outcome.rc in (cmd.NOT_FOUND_RC, cmd.CANNOT_RUN_RC):
        outcome = cmd.run_bounded(run, info_command(server), CLIENT_TIMEOUT_S)  # Valkey answers redis-cli too
    # redis-cli prints a server's refusal ("NOAUTH Authentication required.") and exits 0.
    first = outcome.out.strip().split("\n", 1)[0]
    if not outcome.ok or first.startswith(("NOAUTH", "WRONGPASS", "ERR", "Could not connect")):
        return cmd.failure(cmd.CommandOutcome(outcome.argv, outcome.rc or 1, outcome.out, outcome.err), what)
    try:
        return parse_info(outcome.out)
    except RedisParseError as exc:
        return cmd.garbage(outcome, what, str(exc))


def estimate(server_name: str, engine: str, settings: RedisSettings) -> Estimate:
    data_kb = settings.maxmemory_kb or max(settings.used_memory_kb, settings.used_memory_peak_kb)
    data_text = ("maxmemory %s" % mib_text(settings.maxmemory_kb) if settings.maxmemory_kb
                 else "no maxmemory: the peak used so far, %s" % mib_text(data_kb))
    terms = (Term("data", data_kb, data_text, "redis INFO memory"),
             Term("fork for a save (mode 2 only)", data_kb, "a background save's child is charged a copy: %s"
                  % mib_text(data_kb), "Redis administration: overcommit_memory"))
    return Estimate(engine, server_name, settings.major, "maxmemory reached, one background save",
                    terms, calibrated=False,
                    notes=("Redis and Valkey want vm.overcommit_memory=1; this estimate is for a host that "
                           "would also run a mode-2 database (a conflict to resolve, not to size).",))
