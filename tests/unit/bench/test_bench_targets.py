"""The bench's verdicts (bench/fleet_bench.py): ratios to the ping of the same rounds, and the
per-host cost above that floor flat or falling from N=4 to N=32."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "fleet_bench.py"
_spec = importlib.util.spec_from_file_location("fleet_bench", BENCH)
fleet_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_bench)


def size(n, ping_s, ours_noop_s, ours_first_s, audit_s):
    medians = {"ours_noop": ours_noop_s, "ours_first": ours_first_s, "audit": audit_s}
    return {"vs_ping": {k: v / ping_s for k, v in medians.items()},
            "over_ping_ms_per_host": {k: 1000 * (v - ping_s) / n for k, v in medians.items()}}


def verdicts(results):
    return [line.rsplit(" ", 1)[1] for line in fleet_bench.target_lines(results)[1:]]


def test_every_target_met_when_each_ratio_is_within_its_limit_and_the_cost_per_host_falls():
    results = {4: size(4, 2.0, 2.2, 2.4, 2.2), 32: size(32, 8.0, 8.8, 9.6, 8.8)}   # 50 ms/host, then 25
    assert verdicts(results) == ["met", "met", "met", "met"]


def test_a_ratio_over_its_limit_at_any_size_is_missed():
    results = {4: size(4, 2.0, 2.2, 2.4, 2.2), 32: size(32, 8.0, 9.6, 9.6, 8.8)}   # no-op 1.2x at N=32
    assert verdicts(results)[0] == "MISSED"


def test_a_per_host_cost_that_grows_beyond_the_slack_is_missed():
    results = {4: size(4, 2.0, 2.1, 2.1, 2.1), 32: size(32, 2.0, 3.4, 2.1, 2.1)}   # 25 -> 44 ms/host
    assert verdicts(results)[3] == "MISSED"
    results = {4: size(4, 2.0, 2.1, 2.1, 2.1), 32: size(32, 2.0, 2.9, 2.1, 2.1)}   # 25 -> 28: within slack
    assert verdicts(results)[3] == "met"
