"""Running the servers' clients: every failure is a typed result that says why, never an exception.

The failures are what the real clients printed in the lab guest (or, for Redis, Debian's Redis 7.0
on this machine), through the same env/timeout wrapper the product uses.
"""

from __future__ import annotations

import pytest
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    FakeRunner,
    failure,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd


@pytest.mark.parametrize("captured, argv, kind, says", [
    ("fail-no-client", ["runuser", "-u", "postgres", "--", "psqlx"], cmd.NO_CLIENT, "failed to execute psqlx"),
    ("fail-redis-cli-missing", ["redis-cli"], cmd.NO_CLIENT, "redis-cli is not installed"),
    ("fail-psql-as-root", ["psql"], cmd.NO_AUTH, 'role "root" does not exist'),
    ("fail-runuser-no-user", ["runuser", "-u", "nosuchuser"], cmd.NO_AUTH, "user nosuchuser does not exist"),
    ("fail-mariadb-no-auth", ["mariadb"], cmd.NO_AUTH, "Access denied for user 'nobody'"),
    ("fail-redis-noauth", ["redis-cli"], cmd.NO_AUTH, "NOAUTH"),
    ("fail-psql-down", ["psql"], cmd.DOWN, "Is the server running"),
    ("fail-mariadb-down", ["mariadb"], cmd.DOWN, "Can't connect to local server"),
    ("fail-redis-down", ["redis-cli"], cmd.DOWN, "Connection refused"),
    ("fail-timeout", ["runuser", "-u", "postgres", "--", "sleep"], cmd.TIMEOUT, "did not answer within"),
    ("fail-postgres-C-unknown", ["postgres", "-C"], cmd.FAILED, "unrecognized configuration parameter"),
])
def test_each_captured_failure_is_classified_with_the_clients_own_words(captured, argv, kind, says):
    rc, out, err = failure(captured)
    if captured == "fail-redis-noauth":
        rc = 1  # redis-cli exits 0 after a refusal: the reader turns that into a failure first
    got = cmd.failure(cmd.CommandOutcome(tuple(argv), rc, out, err), "reading")
    assert got.kind == kind
    assert says in got.reason and got.reason.startswith("reading: ")
    assert got.command == tuple(argv)


def test_commands_run_in_the_c_locale_under_a_time_limit():
    runner = FakeRunner([(["psql"], (0, "1\n", ""))])
    outcome = cmd.run_bounded(runner, ["psql", "-c", "SELECT 1"], 7)
    assert outcome.ok and outcome.out == "1\n" and outcome.argv == ("psql", "-c", "SELECT 1")
    assert runner.calls == [["psql", "-c", "SELECT 1"]]


def test_a_runner_that_raises_becomes_an_outcome_saying_the_command_cannot_run():
    def broken(_argv):
        raise FileNotFoundError(2, "No such file or directory")

    outcome = cmd.run_bounded(broken, ["psql"])
    assert outcome.rc == cmd.NOT_FOUND_RC and "cannot run psql" in outcome.err
    assert cmd.failure(outcome, "x").kind == cmd.NO_CLIENT


def test_the_wrapper_is_env_then_timeout_with_a_kill_after():
    assert cmd.wrapped(["psql"], 20) == ["env", "LC_ALL=C", "LANG=C", "timeout", "--kill-after=5", "20", "psql"]


@pytest.mark.parametrize("user, expected", [
    ("postgres", ["runuser", "-u", "postgres", "--", "psql"]),
    ("root", ["psql"]),
    (None, ["psql"]),
])
def test_a_client_runs_as_the_servers_user_through_runuser(user, expected):
    assert cmd.as_user(user, ["psql"]) == expected


def test_an_unknown_failure_keeps_the_exit_status_and_message():
    got = cmd.failure(cmd.CommandOutcome(("psql",), 3, "", "something odd\nsecond line\n"), "reading")
    assert got.kind == cmd.FAILED and "psql exited 3 (something odd | second line)" in got.reason


def test_garbage_names_what_was_wrong_and_quotes_the_first_line():
    got = cmd.garbage(cmd.CommandOutcome(("psql",), 0, "<html>\n", ""), "reading", "no rows")
    assert got.kind == cmd.GARBAGE and "no rows" in got.reason and "'<html>'" in got.reason
