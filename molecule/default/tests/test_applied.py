"""The role on hosts where the plan is feasible: the file, its header, the container guard."""

from __future__ import annotations

import json

from expectations import (APPLIED, DEFAULT_DROPIN, DROPIN, MANAGED, PAGE_KB, container_hosts, header_numbers,
                          meminfo, settings)
import pytest

testinfra_hosts = container_hosts(APPLIED)


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


@pytest.fixture
def dropin(host, name):
    return host.file(DROPIN.get(name, DEFAULT_DROPIN))


def test_dropin_is_a_root_owned_0644_file(dropin):
    assert dropin.is_file and not dropin.is_symlink
    assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)


def test_dropin_says_who_manages_it(dropin):
    assert "Managed by Ansible: role dbfleet.memory.overcommit. Do not edit" in dropin.content_string


def test_managed_keys_are_set_once_in_the_safe_order(dropin):
    keys = [k for k, _value in settings(dropin.content_string)]
    assert keys and len(keys) == len(set(keys))
    assert set(keys) <= set(MANAGED)
    assert not {"vm.overcommit_ratio", "vm.overcommit_kbytes"} <= set(keys)
    assert keys == [k for k in MANAGED if k in keys]  # reserve, limit, mode


def test_header_numbers_agree_with_the_host_and_the_kernel_formula(host, dropin):
    text = dropin.content_string
    head = header_numbers(text)
    mem = meminfo(host)
    assert head["memtotal_kb"] == mem["MemTotal"] and head["swaptotal_kb"] == mem["SwapTotal"]
    assert head["hugetlb_kb"] == mem.get("Hugetlb", 0)
    values = dict(settings(text))
    if values["vm.overcommit_memory"] != "2":
        assert "allocations are never refused" in text and head["commit_limit_kb"] is None
        return

    def pages(kb):
        return kb // PAGE_KB

    if "vm.overcommit_kbytes" in values:
        limit_pages = pages(int(values["vm.overcommit_kbytes"]))
    else:
        non_huge_pages = pages(head["memtotal_kb"]) - pages(head["hugetlb_kb"])
        limit_pages = non_huge_pages * int(values["vm.overcommit_ratio"]) // 100
    assert head["commit_limit_kb"] == (limit_pages + pages(head["swaptotal_kb"])) * PAGE_KB
    # The planner picks the largest expressible limit at or below the upper bound.
    assert head["commit_limit_kb"] <= head["upper_kb"]


def test_no_volatile_numbers_in_the_file(host, dropin):
    # Committed_AS changes every second; in the file it would break idempotence.
    text = dropin.content_string
    assert "Committed_AS" not in text and "lower" not in text
    assert str(meminfo(host)["Committed_AS"]) not in text


def test_live_application_was_skipped_in_the_container(host):
    result = json.loads(host.file("/var/tmp/dbfleet-apply-result.json").content_string)
    assert result["container"] == "podman"
    assert result["live_applied"] is False and result["live_changes"] == []
    assert "not namespaced" in result["live_skipped_reason"]
    assert {v["status"] for v in result["shadowing"].values()} == {"ours"}


def test_this_machines_kernel_was_not_touched(host):
    # vm.* is shared with the container host: had the role written live, this
    # machine's admin reserve would now be the planned 131072 kB.
    assert open("/proc/sys/vm/admin_reserve_kbytes").read().strip() != "131072"
    assert host.file("/proc/sys/vm/admin_reserve_kbytes").content_string.strip() != "131072"
    # The containers are unprivileged: /proc/sys is read-only, a second line of defence.
    assert not host.run("sh -c 'echo 1 > /proc/sys/vm/overcommit_ratio'").succeeded
