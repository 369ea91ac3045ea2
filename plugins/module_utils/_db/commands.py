# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the servers' own clients: bounded in time, in the C locale, and never raising.

The module passes AnsibleModule.run_command as the ``Runner`` (give it
``handle_exceptions=False``: with the default, a missing executable ends the module with
fail_json instead of returning). Every command is wrapped as

    env LC_ALL=C LANG=C timeout --kill-after=KILL TIMEOUT CLIENT ...

``timeout`` (coreutils) bounds a client that hangs on a dead socket, and turns a client that is
not installed into exit status 127 with a message rather than an OSError; the C locale keeps
the clients' messages in the English the classifier below reads. Whatever happens comes back as
a CommandOutcome, and ``failure`` turns one into a ReadFailure whose ``kind`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]

DEFAULT_TIMEOUT_S = 20
KILL_AFTER_S = 5
TIMEOUT_RC = 124  # timeout(1): the command ran out of time
KILLED_RC = 137  # timeout(1) --kill-after had to SIGKILL it
NOT_FOUND_RC = 127  # timeout(1) / env(1): the command does not exist
CANNOT_RUN_RC = 126

# Why a reading failed.
NO_CLIENT = "no-client"  # the client (psql, mariadb, redis-cli, pg_lsclusters, ...) is not installed
NO_AUTH = "no-auth"  # the server refused us (peer/unix_socket authentication, a password it wants)
DOWN = "down"  # nothing answers on the socket, and no configuration could be read instead
TIMEOUT = "timeout"  # the client did not finish in time
GARBAGE = "garbage"  # the client answered, but not what was asked
FAILED = "failed"  # anything else the client reported (its message is in detail)
FAILURE_KINDS = (NO_CLIENT, NO_AUTH, DOWN, TIMEOUT, GARBAGE, FAILED)


@dataclass(frozen=True)
class CommandOutcome:
    argv: Tuple[str, ...]  # as given, without the env/timeout wrapper
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def message(self) -> str:
        """The client's own words, one line, for a reason text."""
        text = (self.err or self.out).strip()
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())[:500]


@dataclass(frozen=True)
class ReadFailure:
    """A database that could not be read, and why, in words a DBA can act on."""

    kind: str
    reason: str
    command: Tuple[str, ...] = ()

    def as_dict(self) -> Dict[str, object]:
        return {"kind": self.kind, "reason": self.reason, "command": list(self.command)}


def wrapped(argv: Sequence[str], timeout_s: int) -> List[str]:
    return ["env", "LC_ALL=C", "LANG=C", "timeout", "--kill-after=%d" % KILL_AFTER_S, "%d" % timeout_s] + list(argv)


def run_bounded(run: Runner, argv: Sequence[str], timeout_s: int = DEFAULT_TIMEOUT_S) -> CommandOutcome:
    """Run one client command; an exception from the runner becomes an outcome too."""
    try:
        rc, out, err = run(wrapped(argv, timeout_s))
    except OSError as exc:  # the runner could not start even env: report, never raise
        return CommandOutcome(tuple(argv), NOT_FOUND_RC, "", "cannot run %s: %s" % (argv[0], exc.strerror or exc))
    return CommandOutcome(tuple(argv), rc, out or "", err or "")


# Phrases of the clients and of the tools they run under, in the C locale; ``failure`` tries
# them in this order: time, a missing client, authentication, a server that does not answer.
_NOT_FOUND = ("No such file or directory", "command not found", "not found")
_AUTH = (
    # PostgreSQL (libpq, server messages)
    "authentication failed", "no password supplied", "password authentication", "Peer authentication",
    "role \"", "pg_hba.conf",
    # MariaDB / MySQL
    "Access denied", "ERROR 1045", "ERROR 1698",
    # Redis / Valkey
    "NOAUTH", "WRONGPASS", "Authentication required",
    # runuser(1), when the server's user is not there or we are not root
    "may not be used by non-root", "runuser: user ",
)
_DOWN = (
    "could not connect to server", "Connection refused", "Is the server running", "Can't connect to local",
    "Can't connect to MySQL server", "ERROR 2002", "Could not connect to Redis", "connection to server on socket",
)


def failure(outcome: CommandOutcome, what: str, down_means: str = DOWN) -> ReadFailure:
    """Why ``outcome`` (a non-zero exit) failed; ``what`` names the step for the reason text."""
    text = outcome.err + "\n" + outcome.out
    client = outcome.argv[0] if outcome.argv else "?"
    if outcome.rc in (TIMEOUT_RC, KILLED_RC):
        return ReadFailure(TIMEOUT, "%s: %s did not answer within its time limit" % (what, client), outcome.argv)
    if outcome.rc in (NOT_FOUND_RC, CANNOT_RUN_RC) or (
            "failed to execute" in text and any(p in text for p in _NOT_FOUND)):
        return ReadFailure(NO_CLIENT, "%s: %s is not installed or cannot run (%s)" % (what, client, outcome.message),
                           outcome.argv)
    # Authentication before "down": libpq prefixes a refusal with "connection to server on socket".
    if any(p in text for p in _AUTH):
        return ReadFailure(NO_AUTH, "%s: the server refused the connection (%s)" % (what, outcome.message),
                           outcome.argv)
    if any(p in text for p in _DOWN):
        return ReadFailure(down_means, "%s: the server does not answer (%s)" % (what, outcome.message), outcome.argv)
    return ReadFailure(FAILED, "%s: %s exited %d (%s)" % (what, client, outcome.rc, outcome.message or "no output"),
                       outcome.argv)


def garbage(outcome: CommandOutcome, what: str, problem: str) -> ReadFailure:
    sample = (outcome.out.strip().splitlines() or [""])[0][:120]
    return ReadFailure(GARBAGE, "%s: %s answered, but %s (first line: %r)" % (what, outcome.argv[0], problem, sample),
                       outcome.argv)


def as_user(user: Optional[str], argv: Sequence[str]) -> List[str]:
    """argv run as ``user`` through runuser(1) (util-linux; needs root, as the module is)."""
    if not user or user == "root":
        return list(argv)
    return ["runuser", "-u", user, "--"] + list(argv)
