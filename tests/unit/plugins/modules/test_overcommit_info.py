"""dbfleet.memory.overcommit_info: read-only reports on a fake host (see fake_kernel.py)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.modules import overcommit_info
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import no_systemd, snapshot


@pytest.fixture
def meminfo_file(kernel, meminfo_text):
    """Writes a real-format meminfo fixture into the fake host and returns its host path."""

    def write(name):
        path = kernel.root / "var" / "tmp" / "meminfo"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(meminfo_text(name))
        return "/var/tmp/meminfo"

    return write


def test_plans_from_a_meminfo_file_and_reports_the_numbers(kernel, run_module, meminfo_file):
    failed, result = run_module(overcommit_info.main, {"profile": ["postgresql"],
                                                       "meminfo_path": meminfo_file("small-vm-2g-noswap")})
    assert not failed
    assert result["changed"] is False
    assert result["sysctl"] == {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90", "vm.overcommit_memory": "2"}
    assert result["commit_limit_kb"] == 1812708
    assert result["committed_as_kb"] == 612340
    assert result["safe"] is True and result["verdict"] == "safe"
    assert result["bounds"]["upper_kb"] == 1812712
    assert result["memory"]["memtotal_kb"] == 2014124
    assert result["formula"].endswith("= 1812708 kB (in 4 kB pages, rounded down)")
    assert result["source"] == "/var/tmp/meminfo"


def test_reports_what_applying_would_do_and_changes_nothing(kernel, run_module):
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit_info.main, {"profile": ["postgresql"]})
    assert not failed and result["changed"] is False
    assert result["would_change"] is True and result["would_refuse"] is None
    assert result["files"] == [{"path": "/etc/sysctl.d/90-dbfleet-overcommit.conf", "action": "create",
                                "why": "the planned drop-in"}]
    keys = [change["key"] for change in result["live_changes"]]
    assert keys == ["vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_memory"]
    assert result["live_values"]["vm.overcommit_memory"] == "0"
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_a_shadowing_file_is_reported_as_a_refusal_not_a_failure(kernel, run_module):
    (kernel.root / "etc/sysctl.d/99-zz-tuning.conf").write_text("vm.overcommit_ratio = 40\n")
    failed, result = run_module(overcommit_info.main, {})
    assert not failed
    assert "99-zz-tuning.conf" in result["would_refuse"]
    assert result["shadowing"]["vm.overcommit_ratio"]["status"] == "shadowed"


def test_a_next_boot_into_an_unsafe_mode_2_is_reported(kernel, run_module):
    """The seed's advice in /etc/sysctl.conf on a host that commits more than ratio 100 allows."""
    kernel.set_committed(4900000)
    (kernel.root / "etc/sysctl.conf").write_text("vm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n")
    failed, result = run_module(overcommit_info.main, {})
    assert not failed
    assert result["live_commit_state"]["safe"] is True  # mode 0 now
    # Debian links /etc/sysctl.d/99-sysctl.conf to /etc/sysctl.conf: the tools name it either way.
    assert result["boot_now_unsafe"] and "sysctl.conf:1 (vm.overcommit_memory = 2)" in result["boot_now_unsafe"][0]
    assert "vm.overcommit_memory=2 with vm.overcommit_ratio=100" in result["boot_now_unsafe"][0]


def test_database_units_are_reported_with_their_oom_scores(kernel, systemd, run_module):
    """Issue 9, item 2: each database unit with its live and configured oom_score_adj and OOMPolicy,
    and a flag for PostgreSQL backends that inherit a negative score."""
    from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_systemd import PLAIN_ENV
    systemd.unit_file("postgresql@.service", "[Service]\nType=forking\nOOMScoreAdjust=-900\n")
    systemd.process(4242, -900, environ=PLAIN_ENV)
    systemd.load("postgresql@15-main.service", main_pid=4242)
    failed, result = run_module(overcommit_info.main, {})
    assert not failed, result.get("msg")
    units = {u["unit"]: u for u in result["database_units"]["units"]}
    pg = units["postgresql@15-main.service"]
    assert (pg["live_oom_score_adj"], pg["configured_oom_score_adj"]) == (-900, -900)
    assert pg["backends_inherit_negative"] is True
    assert set(systemd.verbs()) == {"show"}


def test_a_host_without_systemd_still_reports(kernel, run_module):
    no_systemd(kernel.root)
    failed, result = run_module(overcommit_info.main, {})
    assert not failed and result["database_units"]["units"] == []
    assert result["database_units"]["error"].startswith("systemd is not running here")


def test_meminfo_option_overrides_the_file_for_what_if_plans(kernel, run_module):
    failed, result = run_module(
        overcommit_info.main,
        {"meminfo": {"MemTotal": "2014124", "SwapTotal": 0, "Committed_AS": "612340 kB"}},
    )
    assert not failed
    assert result["source"] == "meminfo option"
    assert result["commit_limit_kb"] == 1812708


def test_unsafe_plan_is_reported_not_failed(kernel, run_module, meminfo_file):
    failed, result = run_module(overcommit_info.main, {"meminfo_path": meminfo_file("vm-4g-overcommitted")})
    assert not failed
    assert result["safe"] is False and result["verdict"] == "unsafe"
    assert result["would_refuse"].startswith("Unsafe overcommit plan")
    assert "add at least 2860 MiB of swap" in result["would_refuse"]


def test_redis_plans_mode_1(kernel, run_module, meminfo_file):
    failed, result = run_module(overcommit_info.main, {"profile": ["redis"], "meminfo_path": meminfo_file("db-host-256g-swap")})
    assert not failed
    assert result["sysctl"] == {"vm.overcommit_memory": "1"}
    assert result["mode"] == 1


def test_meminfo_that_is_not_text_fails_clearly(kernel, run_module):
    """Finding 10: non-UTF-8 bytes in /proc/meminfo gave a traceback."""
    (kernel.root / "proc" / "meminfo").write_bytes(b"MemTotal: 4000000 kB\nSwap\xff\xfeTotal: 0 kB\n")
    failed, result = run_module(overcommit_info.main, {})
    assert failed
    assert "/proc/meminfo is not plain ASCII text (byte 25 is 0xff)" in result["msg"]
    assert "Traceback" not in result.get("module_stderr", "")


@pytest.mark.parametrize(
    "args, message",
    [
        ({"profile": ["postgres"]}, "value of profile must be one or more of: generic, postgresql, mysql, mariadb, oracle, redis, valkey"),
        ({"profile": ["postgresql", "redis"]}, "profile: conflicting profiles on one host"),
        ({"prefer": "pages"}, "value of prefer must be one of: auto, ratio, kbytes"),
        ({"headroom_pct": 150}, "headroom_pct: must be between 0 and 100, got 150"),
        ({"headroom_pct": "lots"}, "headroom_pct"),
        ({"kernel_reserve_pct": 60}, "kernel_reserve_pct: must be between 0 and 50, got 60"),
        ({"workload_commit_mb": -1}, "workload_commit_mb: must be 0 or more"),
        ({"admin_reserve_mb": 1}, "admin_reserve_mb: must be at least 8"),
        ({"dropin_priority": 99}, "dropin_priority: must be between 10 and 98"),
        ({"meminfo": {"MemTotal": "a lot", "SwapTotal": 0, "Committed_AS": 0}}, "meminfo.MemTotal must be a non-negative integer in kB"),
        # "²".isdigit() is true and int("²") raises; int("١٢٣") is 123: only ASCII digits are a number of kB.
        ({"meminfo": {"MemTotal": "4000000", "SwapTotal": "²", "Committed_AS": 0}},
         "meminfo.SwapTotal must be a non-negative integer in kB"),
        ({"meminfo": {"MemTotal": "\u0664\u0660\u0660\u0660", "SwapTotal": 0, "Committed_AS": 0}},
         "meminfo.MemTotal must be a non-negative integer in kB"),
        ({"meminfo": {"MemTotal": "9" * 5000, "SwapTotal": 0, "Committed_AS": 0}},
         "meminfo.MemTotal must be a non-negative integer in kB"),
        ({"meminfo": {"MemTotal": 1024}}, "meminfo: meminfo lacks required field(s) SwapTotal, Committed_AS"),
        ({"meminfo_path": "/nonexistent/meminfo"}, "meminfo: cannot read /nonexistent/meminfo"),
        ({"meminfo_path": "/etc/sysctl.conf"}, "meminfo: meminfo line 1 is malformed"),
        ({"no_such_option": 1}, "Unsupported parameters"),
    ],
)
def test_every_bad_input_fails_with_a_message_naming_the_option(kernel, run_module, args, message):
    failed, result = run_module(overcommit_info.main, args)
    assert failed
    assert message in result["msg"]
    assert "sysctl" not in result


# --- facts: what a fact cache needs to plan and audit without the host -----------------------------

def test_facts_are_returned_only_when_asked(kernel, run_module):
    _failed, result = run_module(overcommit_info.main, {})
    assert "ansible_facts" not in result


def test_facts_hold_the_memory_shape_in_kb_the_live_values_with_the_user_reserve_and_the_verdicts(
        kernel, run_module, meminfo_file):
    kernel.set("user_reserve_kbytes", "65536")
    failed, result = run_module(overcommit_info.main, {"facts": True,
                                                       "meminfo_path": meminfo_file("oracle-hugepages-300g")})
    assert not failed
    facts = result["ansible_facts"]["dbfleet_overcommit"]
    assert facts["schema"] == 1 and facts["source"] == "/var/tmp/meminfo"
    assert facts["memory"] == result["memory"]
    assert facts["memory"]["hugetlb_kb"] > 0 and facts["memory"]["committed_as_kb"] == result["committed_as_kb"]
    assert facts["memory"]["page_size_kb"] == 4
    # nr_hugepages too (None: this fake kernel has no hugetlb, like User-mode Linux).
    assert facts["live_values"] == dict(result["live_values"],
                                        **{"vm.user_reserve_kbytes": "65536", "vm.nr_hugepages": None})
    assert facts["live_commit_state"] == result["live_commit_state"]
    assert facts["boot_now_unsafe"] == result["boot_now_unsafe"] and facts["container"] is None
    assert facts["gathered_at"].endswith("Z")


def test_a_live_mode_2_the_lower_bound_check_cannot_judge_fails_clearly(kernel, run_module):
    """A negative live overcommit_ratio is read as the kernel holds it (-5); the lower-bound check
    takes non-negative values only, so the audit says so instead of a traceback."""
    kernel.set("overcommit_memory", "2")
    kernel.set("overcommit_ratio", "-5")
    failed, result = run_module(overcommit_info.main, {})
    assert failed and result["msg"] == (
        "cannot judge this host's commit state: vm.overcommit_ratio: must be a canonical decimal string, got '-5'")


def test_a_fifo_as_meminfo_path_fails_clearly_instead_of_hanging(kernel, run_module, deadline):
    """meminfo_path is the user's: a FIFO there made open() wait forever for a writer."""
    fifo = "/var/tmp/meminfo.fifo"
    (kernel.root / "var/tmp").mkdir(parents=True, exist_ok=True)
    os.mkfifo(kernel.root / fifo.lstrip("/"))
    with deadline(20):
        failed, result = run_module(overcommit_info.main, {"meminfo_path": fifo})
    assert failed and result["msg"].endswith("meminfo: cannot read %s: not a regular file (fifo); not opened" % fifo)


def test_meminfo_path_may_be_a_symlink_to_a_meminfo_file(kernel, run_module, meminfo_file):
    meminfo_file("vm-4g-overcommitted")
    (kernel.root / "var/tmp/current").symlink_to("meminfo")  # what-if shapes kept as files, one linked
    failed, result = run_module(overcommit_info.main, {"meminfo_path": "/var/tmp/current"})
    assert not failed and result["safe"] is False and result["source"] == "/var/tmp/current"
