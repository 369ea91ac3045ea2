"""Redis and Valkey: maxmemory and used_memory from INFO memory (Redis 7.0.15, Debian 12's package)."""

from __future__ import annotations

import pytest
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    DB_FIXTURES,
    FakeRunner,
    db_text,
    failure,
    ok,
)

from ansible_collections.dbfleet.memory.plugins.module_utils._db import commands as cmd
from ansible_collections.dbfleet.memory.plugins.module_utils._db import redis
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import Server

SERVER = Server("redis", "redis-server 127.0.0.1:16399", True, 8531, (8531,), "root", 0, port=16399,
                socket="127.0.0.1")
INFO = "redis70-info-memory-maxmemory64mb.txt"


def test_info_memory_gives_used_memory_its_peak_and_maxmemory_in_kb():
    got = redis.parse_info(db_text(INFO))
    assert (got.used_memory_kb, got.used_memory_peak_kb, got.maxmemory_kb) == (894, 894, 64 * 1024)


def test_info_as_redis_cli_prints_it_with_crlf_line_ends_reads_the_same():
    """The fixture is stored with LF (sanity's line-endings rule); redis-cli passes on the protocol's CRLF."""
    text = db_text(INFO)
    assert "\r" not in text
    assert redis.parse_info(text.replace("\n", "\r\n")) == redis.parse_info(text)


def test_the_estimate_is_maxmemory_and_a_save_childs_copy_and_says_it_is_not_calibrated():
    estimate = redis.estimate("r", "redis", redis.parse_info(db_text(INFO)))
    assert estimate.peak_kb == 2 * 64 * 1024 and not estimate.calibrated
    assert "overcommit_memory=1" in estimate.notes[0]


def test_without_maxmemory_the_peak_seen_so_far_is_the_data():
    text = db_text(INFO).replace("maxmemory:67108864", "maxmemory:0")
    estimate = redis.estimate("r", "redis", redis.parse_info(text))
    assert estimate.term_kb("data") == 894 and "no maxmemory" in estimate.terms[0].formula


@pytest.mark.parametrize("argv, address", [
    (["root/usr/bin/redis-server 127.0.0.1:16399"], ("127.0.0.1", 16399)),
    (["/usr/bin/redis-server *:6380"], ("127.0.0.1", 6380)),
    (["/usr/bin/valkey-server [::1]:7000"], ("::1", 7000)),
    (["redis-server", "/etc/redis/redis.conf"], ("127.0.0.1", 6379)),
])
def test_the_listen_address_comes_from_the_process_title(argv, address):
    assert redis.listen_address(argv) == address


def test_the_captured_process_title_of_redis_is_one_string_with_the_address():
    argv = [a for a in (DB_FIXTURES / "proc" / "redis" / "cmdline").read_bytes().decode().split("\0") if a]
    assert redis.listen_address(argv) == ("127.0.0.1", 16399)


def test_a_reachable_server_is_read_with_redis_cli():
    runner = FakeRunner([(["redis-cli", "INFO", "memory"], ok(db_text(INFO)))])
    assert redis.read_running(SERVER, runner) == redis.parse_info(db_text(INFO))
    assert runner.calls == [["redis-cli", "-h", "127.0.0.1", "-p", "16399", "--no-auth-warning", "INFO", "memory"]]


@pytest.mark.parametrize("answer, kind", [
    (failure("fail-redis-noauth"), cmd.NO_AUTH),  # redis-cli exits 0 here
    (failure("fail-redis-down"), cmd.DOWN),
    (failure("fail-redis-cli-missing"), cmd.NO_CLIENT),
    (ok("# Memory\nused_memory_human:1M\n"), cmd.GARBAGE),
    (ok("garbage\n"), cmd.GARBAGE),
])
def test_every_way_redis_cli_can_fail_is_a_typed_result(answer, kind):
    got = redis.read_running(SERVER, FakeRunner([(["INFO"], answer)]))
    assert isinstance(got, cmd.ReadFailure) and got.kind == kind


def test_valkey_is_read_with_valkey_cli_or_else_redis_cli():
    valkey = Server("valkey", "valkey-server 127.0.0.1:6379", True, 1, (1,), port=6379, socket="127.0.0.1")
    runner = FakeRunner([(["redis-cli"], ok(db_text(INFO)))])
    assert isinstance(redis.read_running(valkey, runner), redis.RedisSettings)
    assert [c[0] for c in runner.calls] == ["valkey-cli", "redis-cli"]
