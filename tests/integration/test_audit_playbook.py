"""dbfleet.memory.audit as a user runs it: this machine plus a host that cannot be reached.

Read-only on every host (one overcommit_info run per host), so it is
safe against the CI machine itself. Also run from a fact cache with no host contacted, and
for a host that answered once and then went down (its row comes from the cached facts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


LOCAL = "ansible_connection=local ansible_python_interpreter=%s" % sys.executable
# Nothing listens on port 1: a host reached this way ends up in the report as unreachable.
DOWN = "ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=3'"


def audit(tmp_path: Path, *extra: str, inventory_text: str = "") -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory"
    inventory.write_text(inventory_text or "this-machine %s\ngone %s\n" % (LOCAL, DOWN))
    env = dict(os.environ, ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"), ANSIBLE_HOST_KEY_CHECKING="False")
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "dbfleet.memory.audit",
                           "-e", "overcommit_audit_dir=%s" % (tmp_path / "report"), *extra],
                          capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False)


def fill_fact_cache(tmp_path: Path, inventory_text: str) -> None:
    """Fill the jsonfile fact cache with setup's memory facts, the way a fleet's earlier runs would."""
    (tmp_path / "inventory").write_text(inventory_text)
    env = dict(os.environ, ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"))
    subprocess.run(["ansible", "-i", str(tmp_path / "inventory"), "all", "-m", "ansible.builtin.setup",
                    "-a", "gather_subset=!all,hardware"], check=True, capture_output=True, env=env,
                   stdin=subprocess.DEVNULL)


def host_state():
    """What an audit must not change: the sysctl.d files and the live overcommit values."""
    files = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in Path("/etc/sysctl.d").glob("*")}
    live = {name: Path("/proc/sys/vm", name).read_text() for name in
            ("overcommit_memory", "overcommit_ratio", "overcommit_kbytes", "admin_reserve_kbytes")}
    return files, live


@pytest.fixture(scope="module")
def live_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("audit")
    before = host_state()
    proc = audit(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return tmp_path, proc, before, host_state()


def test_live_audit_writes_four_reports_and_lists_the_unreachable_host(live_report):
    tmp_path, proc, _before, _after = live_report
    report = tmp_path / "report"
    assert sorted(p.name for p in report.iterdir()) == ["report.csv", "report.html", "report.json", "report.md"]
    hosts = {h["host"]: h for h in json.loads((report / "report.json").read_text())["hosts"]}
    assert hosts["gone"]["status"] == "unreachable"
    this = hosts["this-machine"]
    memtotal_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal:")))
    assert (this["status"], this["source"], this["memtotal_kb"]) == ("ok", "live", memtotal_kb)
    assert this["live_mode"] in (0, 1, 2) and this["risk"]["level"] != "unknown"
    page = (report / "report.html").read_text()
    assert sorted(re.findall(r'<g class="host" data-host="([^"]+)"', page)) == ["gone", "this-machine"]
    assert "| gone | unknown | unreachable |" in proc.stdout.replace('\\"', '"')


def test_the_audit_changes_nothing_on_the_host(live_report):
    _tmp_path, _proc, before, after = live_report
    assert after == before


def test_cache_only_audit_marks_rows_from_cached_facts(tmp_path):
    fill_fact_cache(tmp_path, "this-machine ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    proc = audit(tmp_path, "-e", "overcommit_audit_from_cache=true")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    hosts = {h["host"]: h for h in json.loads((tmp_path / "report" / "report.json").read_text())["hosts"]}
    assert hosts["this-machine"]["source"] == "cached_facts"
    assert hosts["this-machine"]["memtotal_kb"] > 0 and hosts["this-machine"]["committed_as_kb"] is None
    assert hosts["gone"]["status"] == "failed"  # no cached facts for it
    assert "from cached facts" in (tmp_path / "report" / "report.md").read_text()


def test_the_audit_in_check_mode_writes_no_report_and_says_so(tmp_path):
    proc = audit(tmp_path, "--check", inventory_text="this-machine %s\n" % LOCAL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not (tmp_path / "report").exists()
    assert "Check mode: nothing written; the report would go to %s" % (tmp_path / "report") in proc.stdout
    assert "Report written to" not in proc.stdout


def test_cached_rows_plan_with_each_hosts_own_settings(tmp_path):
    """The report task builds the rows of every host at once; each host's cached plan still uses
    that host's own overcommit_* variables from the inventory, as the role would."""
    hosts = "db-small %s overcommit_admin_reserve_mb=64\ndb-default %s\n" % (LOCAL, LOCAL)
    fill_fact_cache(tmp_path, hosts)
    proc = audit(tmp_path, "-e", "overcommit_audit_from_cache=true", inventory_text=hosts)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = {h["host"]: h for h in json.loads((tmp_path / "report" / "report.json").read_text())["hosts"]}
    assert rows["db-small"]["planned_admin_reserve_kb"] == 64 * 1024
    assert rows["db-default"]["planned_admin_reserve_kb"] == 128 * 1024


def test_live_rows_plan_with_each_hosts_own_settings(tmp_path):
    """overcommit_info gets each host's own overcommit_* planner variables, as the role's task passes
    them; a variable the inventory does not set is omitted, so the planner's default applies."""
    hosts = ("db-small %s overcommit_admin_reserve_mb=64 overcommit_prefer=kbytes\n"
             "db-default %s\n" % (LOCAL, LOCAL))
    proc = audit(tmp_path, inventory_text=hosts)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = {h["host"]: h for h in json.loads((tmp_path / "report" / "report.json").read_text())["hosts"]}
    assert rows["db-small"]["source"] == rows["db-default"]["source"] == "live"
    assert rows["db-small"]["planned_admin_reserve_kb"] == 64 * 1024
    assert rows["db-default"]["planned_admin_reserve_kb"] == 128 * 1024
    small = rows["db-small"]["planned_sysctl"]
    assert "vm.overcommit_kbytes" in small and "vm.overcommit_ratio" not in small, small


def test_audit_report_takes_rows_or_results_var_not_both(tmp_path):
    both = report_task(tmp_path, "{dest: %s, rows: %s, results_var: info, hosts: [db1]}" % (tmp_path / "out", ROWS))
    assert both.returncode != 0 and re.search(r"mutually exclusive: rows[,|] ?results_var", both.stdout), \
        both.stdout[-2000:]
    neither = report_task(tmp_path, "{dest: %s}" % (tmp_path / "out"))
    assert neither.returncode != 0 and "one of the following is required: rows, results_var" in neither.stdout, \
        neither.stdout[-2000:]
    no_hosts = report_task(tmp_path, "{dest: %s, results_var: info}" % (tmp_path / "out"))
    assert no_hosts.returncode != 0 and "hosts: the hosts to report on are required" in no_hosts.stdout
    assert not (tmp_path / "out").exists()


def test_a_host_that_went_down_is_audited_from_its_cached_overcommit_info_facts(tmp_path):
    # First audit: the host answers, and overcommit_info's facts land in the jsonfile cache.
    first = audit(tmp_path, inventory_text="db-cached %s\n" % LOCAL)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    live = json.loads((tmp_path / "report" / "report.json").read_text())["hosts"][0]
    assert (live["status"], live["source"]) == ("ok", "live")
    # Second audit: the same inventory name, now unreachable; only the fact cache knows its numbers.
    second = audit(tmp_path, inventory_text="db-cached %s\n" % DOWN)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    row = json.loads((tmp_path / "report" / "report.json").read_text())["hosts"][0]
    assert (row["status"], row["source"]) == ("unreachable", "cached_facts")
    # The numbers the host had when it answered, so the risk is judged, not "unknown".
    assert row["committed_as_kb"] == live["committed_as_kb"] and row["live_mode"] == live["live_mode"]
    assert row["risk"]["level"] == live["risk"]["level"] != "unknown"
    assert row["risk"]["headroom_kb"] == live["risk"]["headroom_kb"]
    assert re.search(r"numbers from cached facts \(overcommit_info, read 20\d\d-\d\d-\d\dT[0-9:]+Z: real Committed_AS",
                     row["message"]), row["message"]
    assert "from cached facts" in (tmp_path / "report" / "report.md").read_text()
    # Third audit: from the cache only, no host contacted; the same precise row, status ok.
    third = audit(tmp_path, "-e", "overcommit_audit_from_cache=true", inventory_text="db-cached %s\n" % DOWN)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-2000:]
    row = json.loads((tmp_path / "report" / "report.json").read_text())["hosts"][0]
    assert (row["status"], row["source"], row["committed_as_kb"]) == ("ok", "cached_facts", live["committed_as_kb"])
    assert row["risk"]["level"] == live["risk"]["level"]


def report_task(tmp_path: Path, args: str, *extra: str) -> subprocess.CompletedProcess:
    """One dbfleet.memory.audit_report task on the controller, as the audit's last task runs it."""
    playbook = tmp_path / "report.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - dbfleet.memory.audit_report: %s\n      register: written\n"
        "    - ansible.builtin.debug: {var: written}\n" % args)
    return subprocess.run(["ansible-playbook", "-i", "localhost,", str(playbook), *extra], capture_output=True,
                          text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False)


ROWS = "[{host: db1, status: ok}]"


def test_audit_report_check_mode_writes_nothing_and_a_second_run_is_unchanged(tmp_path):
    args = "{dest: %s, rows: %s, hosts: [db1, db2]}" % (tmp_path / "out", ROWS)
    checked = report_task(tmp_path, args, "--check")
    assert checked.returncode == 0 and "changed=1" in checked.stdout, checked.stdout[-2000:]
    assert not (tmp_path / "out").exists()
    first = report_task(tmp_path, args)
    assert first.returncode == 0 and "changed=1" in first.stdout, first.stdout[-2000:]
    rows = {h["host"]: h["status"] for h in json.loads((tmp_path / "out" / "report.json").read_text())["hosts"]}
    assert rows == {"db1": "ok", "db2": "failed"}  # a targeted host without a row is not dropped
    again = report_task(tmp_path, args)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]


def test_audit_report_refuses_an_unknown_format_naming_the_option_and_writes_nothing(tmp_path):
    proc = report_task(tmp_path, "{dest: %s, rows: %s, formats: [html, pdf]}" % (tmp_path / "out", ROWS))
    assert proc.returncode != 0
    assert re.search(r"formats.*markdown, html, json, csv.*pdf|formats.*pdf.*markdown, html, json, csv",
                     proc.stdout.replace("\n", " ")), proc.stdout[-2000:]
    assert not (tmp_path / "out").exists()
