"""Each memory shape gets the values worked out by hand in expectations.py."""

from __future__ import annotations

from expectations import DEFAULT_DROPIN, DROPIN, EXPECT, container_hosts, header_numbers, settings

testinfra_hosts = container_hosts(sorted(EXPECT))


def test_values_match_the_hand_computed_plan(host):
    name = host.backend.get_hostname()
    text = host.file(DROPIN.get(name, DEFAULT_DROPIN)).content_string
    assert dict(settings(text)) == EXPECT[name]["values"]
    assert header_numbers(text)["commit_limit_kb"] == EXPECT[name]["commit_limit_kb"]
