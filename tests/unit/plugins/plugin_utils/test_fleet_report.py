"""The fleet audit report: risk per host, order, and the four renderings.

Plan results are made by the real planner (as the overcommit_info module returns them), so
these tests also pin that the report reads the module's result keys correctly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options as cmarkgfm_options

from ansible_collections.dbfleet.memory.plugins.filter.audit_row import audit_row
from ansible_collections.dbfleet.memory.plugins.filter.fleet_report import fleet_report
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.plugin_utils.facts_plan import plan_from_facts
from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import (
    CACHED_LABEL,
    CSV_COLUMNS,
    assess,
    csv_cell,
    html_text,
    markdown_text,
    order_by_risk,
    plain_text,
    render,
    row_from_results,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_fields
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    DEFAULT_USER_RESERVE_KB,
    PlanOptions,
    check_commit_state,
    copied_advice_verdict,
    plan_overcommit,
)

GIB_KB = 1024 * 1024
BOOT_ADMIN_RESERVE_KB = 8192


def module_result(memtotal_kb, swaptotal_kb, committed_as_kb, live_mode=0, live_ratio_pct=50, hugetlb_kb=0,
                  admin_reserve_kb=BOOT_ADMIN_RESERVE_KB, user_reserve_kb=DEFAULT_USER_RESERVE_KB):
    """What overcommit_info returns for a host in this state: the plan, and the planner's verdicts on the
    live values and on the copied advice (api.Examination.result)."""
    live_limit_kb = commit_limit_kb(memtotal_kb, hugetlb_kb, swaptotal_kb, live_ratio_pct)
    memory = memory_from_fields({"MemTotal": memtotal_kb, "SwapTotal": swaptotal_kb, "Hugetlb": hugetlb_kb,
                                 "Committed_AS": committed_as_kb, "CommitLimit": live_limit_kb})
    options = PlanOptions(profiles=("postgresql",), user_reserve_kb=user_reserve_kb)
    result = plan_overcommit(memory, options).as_dict()
    live = {"vm.overcommit_memory": str(live_mode), "vm.overcommit_ratio": str(live_ratio_pct),
            "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": str(admin_reserve_kb)}
    result["live_values"] = live
    result["live_commit_state"] = check_commit_state(memory, live, options).as_dict()
    result["ratio100_commit_state"] = copied_advice_verdict(memory, admin_reserve_kb, options).as_dict()
    result.update(changed=False, boot_now_unsafe=[], next_boot={"writers": [], "unmodelled": [], "memory": None})
    return result


# name: (module result, expected level, locked out by ratio=100)
CASES = {
    # 4 GiB, mode 2 at the default ratio 50: CommitLimit 2 GiB below 2.5 GiB committed.
    "mode2-locked-out-now": (module_result(4 * GIB_KB, 0, int(2.5 * GIB_KB), live_mode=2), "critical", False),
    # 4 GiB, mode 0, 5 GiB promised: RAM can back 3.6 GiB.
    "mode0-overcommitted": (module_result(4 * GIB_KB, 0, 5 * GIB_KB), "critical", True),
    # 3.4 GiB of 3.6 GiB backable: 5.6 % left.
    "mode0-tight": (module_result(4 * GIB_KB, 0, int(3.4 * GIB_KB)), "high", False),
    # 2.9 GiB of 3.6 GiB: 19 % left.
    "mode0-watch": (module_result(4 * GIB_KB, 0, int(2.9 * GIB_KB)), "watch", False),
    # mode 2 at ratio 200 has room, but ratio=100 (4 GiB) is below 5 GiB committed.
    "mode2-ratio200-ratio100-would-lock-out": (
        module_result(4 * GIB_KB, 0, 5 * GIB_KB, live_mode=2, live_ratio_pct=200), "watch", True),
    "mode2-healthy": (module_result(16 * GIB_KB, 0, 4 * GIB_KB, live_mode=2, live_ratio_pct=80), "ok", False),
    "mode0-healthy-big-swap": (module_result(64 * GIB_KB, 16 * GIB_KB, 20 * GIB_KB), "ok", False),
    "unreachable": ({"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused"},
                    "unknown", None),
}


@pytest.mark.parametrize("host", sorted(CASES))
def test_risk_level_and_ratio100_lockout_per_host_state(host):
    result, level, locked = CASES[host]
    risk = assess(row_from_results(host, result))
    assert (risk.level, risk.locked_out_by_ratio100) == (level, locked)


# ratio=100 on a 4 GiB host without swap or huge pages: CommitLimit 4194304 kB. A process without
# CAP_SYS_ADMIN may commit only CommitLimit - admin reserve - user reserve - one page (mm/util.c).
RATIO100_KB = 4 * GIB_KB
MIB_KB = 1024


@pytest.mark.parametrize("admin_kb, user_kb, committed_as_kb, locked", [
    (128 * MIB_KB, 128 * MIB_KB, RATIO100_KB + 1, True),  # over CommitLimit itself
    # Under CommitLimit, over what is left after the reserves: new processes fail all the same.
    (128 * MIB_KB, 128 * MIB_KB, RATIO100_KB - 1, True),
    (128 * MIB_KB, 128 * MIB_KB, RATIO100_KB - 256 * MIB_KB - 4 + 1, True),
    (128 * MIB_KB, 128 * MIB_KB, RATIO100_KB - 256 * MIB_KB - 4, False),  # exactly what is left
    # Each reserve counts on its own.
    (128 * MIB_KB, 0, RATIO100_KB - 128 * MIB_KB, True),
    (128 * MIB_KB, 0, RATIO100_KB - 128 * MIB_KB - 4, False),
    (0, 128 * MIB_KB, RATIO100_KB - 128 * MIB_KB, True),
    (0, 128 * MIB_KB, RATIO100_KB - 128 * MIB_KB - 4, False),
])
def test_ratio100_locks_a_host_out_when_committed_as_exceeds_commit_limit_less_the_reserves(
        admin_kb, user_kb, committed_as_kb, locked):
    risk = assess(row_from_results("db1", module_result(4 * GIB_KB, 0, committed_as_kb, admin_reserve_kb=admin_kb,
                                                        user_reserve_kb=user_kb)))
    assert (risk.ratio100_commit_limit_kb, risk.locked_out_by_ratio100) == (RATIO100_KB, locked)
    said = [f for f in risk.findings if f.startswith("overcommit_ratio=100 in mode 2 would lock it out")]
    assert len(said) == int(locked)


def test_hosts_are_ordered_worst_first_then_by_smallest_headroom():
    rows = [row_from_results(host, result) for host, (result, _level, _locked) in sorted(CASES.items())]
    assert [row.host for row, _risk in order_by_risk(rows)] == [
        "mode0-overcommitted",  # -1.4 GiB of 3.6: -38.9 %
        "mode2-locked-out-now",  # -0.5 GiB of 2 GiB: -25.4 %
        "mode0-tight",
        "mode0-watch",
        "mode2-ratio200-ratio100-would-lock-out",
        "mode2-healthy",  # 68.7 % left of CommitLimit
        "mode0-healthy-big-swap",  # 72.8 % left of what RAM + swap can back
        "unreachable",
    ]


def test_mode2_headroom_leaves_out_what_the_kernel_holds_back_from_non_root():
    """Admin reserve (root only), the user reserve (128 MiB by default) and one page for the
    kernel's strict comparison: the planner's rule, not a second copy of it."""
    risk = assess(row_from_results("db", module_result(16 * GIB_KB, 0, 4 * GIB_KB, live_mode=2, live_ratio_pct=80,
                                                       admin_reserve_kb=131072)))
    limit_kb = commit_limit_kb(16 * GIB_KB, 0, 0, 80)
    assert risk.headroom_kb == limit_kb - 131072 - 131072 - 4 - 4 * GIB_KB


def test_ratio100_limit_is_the_kernel_formula_with_huge_pages_left_out():
    result = module_result(64 * GIB_KB, 2 * GIB_KB, 30 * GIB_KB, hugetlb_kb=40 * GIB_KB)
    risk = assess(row_from_results("oracle", result))
    assert risk.ratio100_commit_limit_kb == commit_limit_kb(64 * GIB_KB, 40 * GIB_KB, 2 * GIB_KB, 100)
    assert risk.locked_out_by_ratio100 is True  # 24 + 2 GiB < 30 GiB + reserve


def test_shadowed_drop_in_is_a_finding_and_raises_ok_to_watch():
    info = dict(CASES["mode2-healthy"][0], shadowing={
        "vm.overcommit_memory": {"status": "shadowed", "message": "vm.overcommit_memory is shadowed by 99-x.conf"},
        "vm.overcommit_ratio": {"status": "ours", "message": ""}})
    row = row_from_results("db", info)
    risk = assess(row)
    assert row.shadowed == ("vm.overcommit_memory is shadowed by 99-x.conf",)
    assert risk.level == "watch"
    assert "vm.overcommit_memory is shadowed by 99-x.conf" in risk.findings


def test_a_host_whose_next_boot_locks_it_out_is_high_risk():
    info = dict(CASES["mode2-healthy"][0], boot_now_unsafe=[
        "vm.overcommit_memory = 2 is set by /etc/sysctl.conf:3: CommitLimit below Committed_AS (procps-4.0.2 boot)"])
    risk = assess(row_from_results("db", info))
    assert risk.level == "high"
    assert risk.findings[-1].startswith("the next boot locks it out: vm.overcommit_memory = 2 is set by /etc/sysctl.conf:3")


def test_the_next_boots_swap_huge_pages_and_unmodelled_writers_are_findings_in_every_format():
    """The audit names what decides the next boot besides the sysctl files (overcommit_info's next_boot)."""
    info = dict(module_result(16 * GIB_KB, 4 * GIB_KB, 4 * GIB_KB, live_mode=2, live_ratio_pct=80), next_boot={
        "writers": ["systemd-sysctl at boot (systemd is PID 1)", "huge pages: /proc/cmdline: hugepages=512"],
        "unmodelled": ["/etc/rc.local:2: swapon /extra"],
        "memory": {"swap": {"swaptotal_kb": 0}, "huge_pages": {"hugetlb_kb": 1048576}}})
    row = row_from_results("db", info)
    risk = assess(row)
    assert row.boot_writers[1] == "huge pages: /proc/cmdline: hugepages=512" and row.boot_swaptotal_kb == 0
    assert any(f.startswith("the next boot has less swap than now: ") for f in risk.findings)
    assert any(f.startswith("the next boot reserves 1.0 GiB of huge pages") for f in risk.findings)
    assert "a boot-time writer that is not modelled: /etc/rc.local:2: swapon /extra" in risk.findings
    assert risk.level == "watch"  # healthy now, but a writer we cannot follow is no "ok"
    csv_row = next(csv.DictReader(io.StringIO(render([row], "csv"))))
    assert csv_row["boot_swaptotal_kb"] == "0" and csv_row["boot_hugetlb_kb"] == "1048576"
    assert csv_row["boot_unmodelled"] == "/etc/rc.local:2: swapon /extra"
    assert "swapon /extra" in render([row], "markdown") and "swapon /extra" in render([row], "html")


def _all_rows():
    rows = [audit_row(result, host=host) for host, (result, _l, _k) in sorted(CASES.items())]
    facts = {"ansible_memtotal_mb": 8192, "ansible_swaptotal_mb": 1024}
    rows.append(audit_row(None, host="cached-only", cached_plan=plan_from_facts(facts), cache_only=True))
    rows.append(audit_row({"unreachable": True, "msg": "timed out"}, host="down-but-cached",
                          cached_plan=plan_from_facts(facts)))
    return rows


@pytest.mark.parametrize("fmt", ["markdown", "html", "json", "csv"])
def test_every_format_lists_unreachable_and_cached_hosts(fmt):
    text = fleet_report(_all_rows(), format=fmt)
    for host in ("unreachable", "cached-only", "down-but-cached"):
        assert host in text
    if fmt == "json":
        hosts = {h["host"]: h for h in json.loads(text)["hosts"]}
        assert hosts["unreachable"]["status"] == "unreachable"
        assert hosts["down-but-cached"]["source"] == "cached_facts"
        assert hosts["cached-only"]["risk"]["level"] == "unknown"
    elif fmt == "csv":
        by_host = {r["host"]: r for r in csv.DictReader(io.StringIO(text))}
        assert by_host["down-but-cached"]["status"] == "unreachable"
        assert by_host["cached-only"]["source"] == "cached_facts"
    else:
        assert text.count(CACHED_LABEL) >= 2


def test_cached_rows_carry_memory_but_no_committed_as_and_say_so():
    rows = {row["host"]: row for row in _all_rows()}
    cached = rows["down-but-cached"]
    assert (cached["memtotal_kb"], cached["committed_as_kb"]) == (8192 * 1024, None)
    assert CACHED_LABEL in cached["message"]


def test_html_is_self_contained_with_one_chart_group_per_host():
    rows = _all_rows()
    page = fleet_report(rows, format="html", generated_at="2026-01-01T00:00:00Z")
    assert page.count("<svg") == 1
    groups = re.findall(r'<g class="host" data-host="([^"]+)"', page)
    assert sorted(groups) == sorted(row["host"] for row in rows)
    assert groups[0] == "mode0-overcommitted"  # the chart is in risk order too
    assert not re.search(r"<script|<link|src=|https?://(?!www\.w3\.org/2000/svg)", page)


def test_csv_has_a_fixed_header_and_one_line_per_host():
    text = fleet_report(_all_rows(), format="csv")
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 1 + len(_all_rows())


def test_unknown_format_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="markdown, html, json, csv"):
        render([], "pdf")


@pytest.mark.parametrize("result, status, message", [
    ({"failed": True, "msg": "\n"}, "failed", "no message"),
    ({"failed": True, "msg": "   "}, "failed", "no message"),
    ({"failed": True, "msg": "\r\n\t"}, "failed", "no message"),
    ({"unreachable": True, "msg": "\n"}, "unreachable", "no message"),
    # A blank msg does not hide what the module printed.
    ({"failed": True, "msg": " \n", "module_stderr": "\nTraceback (most recent call last):\n"}, "failed",
     "Traceback (most recent call last):"),
    ({"failed": True, "msg": "\n\nMODULE FAILURE\nSee stdout/stderr"}, "failed", "MODULE FAILURE"),
    ({"failed": True, "msg": ["a", "list"]}, "failed", "['a', 'list']"),
])
def test_a_failed_host_with_a_blank_message_keeps_its_row_with_the_first_line_said(result, status, message):
    row = row_from_results("db1", result)
    assert (row.status, row.message) == (status, message)
    for fmt in ("markdown", "html", "json", "csv"):
        assert "db1" in render([row], fmt)


def test_a_targeted_host_without_a_row_is_reported_as_failed_not_dropped():
    rows = [audit_row(CASES["mode2-healthy"][0], host="db1")]
    report = json.loads(fleet_report(rows, format="json", hosts=["db1", "db2"]))
    assert [(h["host"], h["status"]) for h in report["hosts"]] == [("db1", "ok"), ("db2", "failed")]


# --- Host-controlled text in the reports (issue 8, item 11) ------------------------------------------
# Host names come from the inventory, messages and reasons from files read on the target: a report
# must show them as text, never run them (HTML), split on them (Markdown, CSV rows) or evaluate them
# (spreadsheets). Every test below failed before the escape helpers existed.

SCRIPT_HOST = "<script>alert(1)</script>"
CR_HOST = "web1\rdb2"
FORMULA_HOST = "=cmd|' /C calc'!A0"
HOSTILE_SHADOW = "vm.overcommit_memory is shadowed by 99-x.conf: <img src=x onerror=alert(1)> | a\\|b"
MARKDOWN_COLUMNS = 12


def _hostile_rows():
    info = dict(CASES["mode2-healthy"][0], shadowing={
        "vm.overcommit_memory": {"status": "shadowed", "message": HOSTILE_SHADOW}})
    return [
        audit_row(info, host=SCRIPT_HOST),
        audit_row(CASES["mode0-overcommitted"][0], host=CR_HOST),  # critical: negative headroom
        audit_row(CASES["mode0-watch"][0], host=FORMULA_HOST),
        audit_row({"unreachable": True, "msg": "@SUM(1+1) <b>ssh</b> refused"}, host="down"),
    ]


def _markdown_cells(line):
    """Split a Markdown table row the way GFM does: on pipes not escaped by a backslash."""
    cells, cell, chars = [], "", iter(line.strip()[1:-1])
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return cells + [cell.strip()]


def test_markdown_shows_host_names_and_messages_as_text_not_html():
    """Failed before the fix: the Markdown report carried <script> and <img onerror> through."""
    text = fleet_report(_hostile_rows(), format="markdown")
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_markdown_rows_keep_their_columns_whatever_the_host_sends():
    """Failed before the fix: a CR in a host name split its row; a backslash before a pipe
    in a message (`a\\|b`) escaped our escape and added a column."""
    text = fleet_report(_hostile_rows(), format="markdown")
    assert "\r" not in text
    table = [line for line in text.split("\n") if line.startswith("| ")]
    assert len(table) == 2 + len(_hostile_rows())  # header, alignment row, one line per host
    assert {len(_markdown_cells(line)) for line in table} == {MARKDOWN_COLUMNS}
    by_host = {_markdown_cells(line)[0]: _markdown_cells(line) for line in table[2:]}
    assert "web1 db2" in by_host  # the CR became a space
    assert "a\\\\\\|b" in by_host["&lt;script&gt;alert(1)&lt;/script&gt;"][-1]


# What a host's data can carry into a finding or a message: a sysctl file's comment quoted, a URL
# in an error. GitHub-flavoured Markdown links URLs and e-mail addresses with no markup at all
# (its autolink extension), so escaping HTML and brackets is not enough.
LINK_TEXTS = [
    "# see https://example.com/x",
    "http://10.0.0.1:8080/metrics",
    "ftp://mirror.example.org/pub",
    "docs at www.example.org/page and WWW.EXAMPLE.COM",
    "(www.example.org)",
    "mail dba@example.com or ops.team+oom@db.example.co.uk",
    "mailto:dba@example.com",
    "xmpp:dba@example.com/home",
    "<https://example.com/angle>",
    "[a link](https://example.com/l)",
    "![an image](https://example.com/i.png)",
    "<img src=https://example.com/i.png>",
    "`https://example.com/code` and a | pipe",
    "a\\|b https:/\\/example.com",
]


class _Rendered(HTMLParser):
    """The tags of GitHub's HTML for our Markdown, and the text of each table cell."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.rows, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def github_html(markdown):
    """Markdown as GitHub renders it: cmark-gfm with its extensions, raw HTML let through (GitHub
    filters it afterwards; here any that gets through must show)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=cmarkgfm_options.CMARK_OPT_UNSAFE)


@pytest.mark.parametrize("text", LINK_TEXTS)
def test_markdown_host_text_is_no_link_image_html_or_column_when_github_renders_it(text):
    info = dict(CASES["mode2-healthy"][0], shadowing={"vm.overcommit_ratio": {"status": "shadowed", "message": text}})
    rows = [audit_row(info, host=text), audit_row({"unreachable": True, "msg": text}, host="down")]
    parsed = _Rendered()
    parsed.feed(github_html(fleet_report(rows, format="markdown", generated_at=text)))
    assert set(parsed.tags) <= {"h1", "p", "table", "thead", "tbody", "tr", "th", "td", "strong"}
    assert {len(cells) for cells in parsed.rows} == {MARKDOWN_COLUMNS}
    # Shown as written: only an invisible WORD JOINER before "@" is added (see markdown_text).
    cells = {cells[0].replace("\u2060", ""): cells for cells in parsed.rows[1:]}
    assert set(cells) == {text, "down"}
    assert text in cells[text][-1].replace("\u2060", "")  # the finding that quotes it
    assert ("host unreachable: " + text) in cells["down"][-1].replace("\u2060", "")


def test_csv_rows_stay_one_line_per_host_and_formulas_stay_text():
    """Failed before the fix: the CR host spanned two lines and `=cmd|...` was a live formula."""
    text = fleet_report(_hostile_rows(), format="csv")
    assert "\r" not in text and len(text.splitlines()) == 1 + len(_hostile_rows())
    by_host = {r["host"]: r for r in csv.DictReader(io.StringIO(text))}
    assert set(by_host) == {"'" + FORMULA_HOST, "web1 db2", SCRIPT_HOST, "down"}
    assert by_host["down"]["message"].startswith("'@SUM(1+1)")
    assert by_host["down"]["findings"].startswith("host unreachable: @SUM")  # only a leading trigger counts


def test_csv_keeps_negative_numbers_as_numbers():
    """Numeric columns are written by us from integers: a critical host's negative headroom is
    a number, not a formula, and must not gain a quote."""
    by_host = {r["host"]: r for r in csv.DictReader(io.StringIO(fleet_report(_hostile_rows(), format="csv")))}
    critical = by_host["web1 db2"]
    assert critical["risk"] == "critical"
    assert int(critical["headroom_kb"]) < 0 and float(critical["headroom_pct"]) < 0


def test_html_and_svg_show_host_text_escaped_in_text_and_attributes():
    """Failed before the fix: a CR (and any control character) reached the SVG, where XML forbids it."""
    page = fleet_report(_hostile_rows(), format="html")
    assert "<script" not in page and "<img" not in page and "<b>ssh" not in page and "\r" not in page
    hosts = re.findall(r'<g class="host" data-host="([^"]*)"', page)
    assert sorted(hosts) == sorted(["&lt;script&gt;alert(1)&lt;/script&gt;", "web1 db2",
                                    "=cmd|&#x27; /C calc&#x27;!A0", "down"])


def test_json_keeps_the_exact_data():
    report = json.loads(fleet_report(_hostile_rows(), format="json"))
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {SCRIPT_HOST, CR_HOST, FORMULA_HOST, "down"}
    assert hosts[SCRIPT_HOST]["shadowed"] == [HOSTILE_SHADOW]


@pytest.mark.parametrize(
    "value, plain, markdown, csv_field",
    [
        ("db-01.example.org", "db-01.example.org", "db-01.example.org", "db-01.example.org"),
        ("web1\r\ndb2\tx", "web1  db2 x", "web1  db2 x", "web1  db2 x"),
        ("a\x1b[31mred", "a\ufffd[31mred", "a\ufffd\\[31mred", "a\ufffd[31mred"),
        ("admin\u202egnp.exe", "admin\ufffdgnp.exe", "admin\ufffdgnp.exe", "admin\ufffdgnp.exe"),  # bidi override
        ("line\u2028sep", "line sep", "line sep", "line sep"),
        ("<b>&amp;</b>", "<b>&amp;</b>", "&lt;b&gt;&amp;amp;&lt;/b&gt;", "<b>&amp;</b>"),
        ("![x](https://t.example/p.png)", "![x](https://t.example/p.png)", "!\\[x\\](https\\://t.example/p.png)",
         "![x](https://t.example/p.png)"),
        # GFM autolinks: the "." after www and the ":" before // escaped, a word joiner before "@".
        ("www.x.org ftp://y a@b.c", "www.x.org ftp://y a@b.c", "www\\.x.org ftp\\://y a\u2060@b.c",
         "www.x.org ftp://y a@b.c"),
        ("`code`", "`code`", "\\`code\\`", "`code`"),
        ("a\\|b", "a\\|b", "a\\\\\\|b", "a\\|b"),
        ("=1+1", "=1+1", "=1+1", "'=1+1"),
        ("+1", "+1", "+1", "'+1"),
        ("-2+3", "-2+3", "-2+3", "'-2+3"),
        ("@SUM(A1)", "@SUM(A1)", "\u2060@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", " =1", " =1", "' =1"),
        ("\r=1", " =1", " =1", "' =1"),
        ("  =1", "  =1", "  =1", "'  =1"),
        ("-12", "-12", "-12", "-12"),
        ("-38.89", "-38.89", "-38.89", "-38.89"),
        (-1468006, "-1468006", "-1468006", "-1468006"),
        (None, "", "", ""),
        (True, "True", "True", "True"),
    ],
)
def test_escape_helpers(value, plain, markdown, csv_field):
    assert plain_text(value) == plain
    assert markdown_text(value) == markdown
    assert csv_cell(value) == csv_field


def test_html_text_escapes_for_content_and_quoted_attributes():
    assert html_text('"><svg onload=x>\r\'') == "&quot;&gt;&lt;svg onload=x&gt; &#x27;"


class TemplatedList(list):
    """Like Ansible's lazy template lists: may not be rebuilt with type(x)(items)."""

    def __init__(self, *args):
        if args and not isinstance(args[0], list):
            raise TypeError("Direct construction of lazy containers is not supported.")
        super().__init__(*args)


def test_rows_that_travel_through_ansible_variables_render_in_every_format():
    """A list field left as Ansible handed it (boot_unsafe) broke the JSON report in the audit playbook."""
    row = audit_row(dict(CASES["mode2-healthy"][0], boot_now_unsafe=["x is set by /etc/sysctl.conf:1"]), host="db")
    # Through Ansible variables every sequence comes back as a (lazy) list.
    travelled = {k: TemplatedList(list(v)) if isinstance(v, (list, tuple)) else v for k, v in row.items()}
    for fmt in ("json", "markdown", "csv", "html"):
        assert "db" in fleet_report([travelled], format=fmt)


def test_database_units_and_negative_backends_are_findings():
    """Issue 9, item 2: the audit shows each database unit and flags backends that inherit -900."""
    info = dict(CASES["mode2-healthy"][0], database_units={"units": [
        {"unit": "postgresql@15-main.service", "status": "found", "live_oom_score_adj": -900,
         "configured_oom_score_adj": -900, "oom_policy": "stop", "backends_inherit_negative": True},
        {"unit": "mysql.service", "status": "missing"}]})
    risk = assess(row_from_results("db", info))
    assert "postgresql@15-main.service: oom_score_adj live -900, configured -900, OOMPolicy=stop" in risk.findings
    assert any(f.startswith("postgresql@15-main.service: PostgreSQL backends inherit") for f in risk.findings)
    assert not any("mysql.service" in f for f in risk.findings)


def test_a_host_down_with_overcommit_info_facts_in_the_cache_is_assessed_with_its_real_committed_as():
    cached = {"dbfleet_overcommit": {
        "schema": 1, "gathered_at": "2026-11-30T05:00:00Z", "source": "/proc/meminfo",
        # 4 GiB, no swap, 3.9 GiB committed in mode 0: one spike away from an OOM kill
        "memory": {"memtotal_kb": 4194304, "swaptotal_kb": 0, "hugetlb_kb": 0, "committed_as_kb": 4089446,
                   "commit_limit_kb": 2097152, "page_size_kb": 4},
        "live_values": {"vm.overcommit_memory": "0", "vm.overcommit_ratio": "50", "vm.overcommit_kbytes": "0",
                        "vm.admin_reserve_kbytes": "8192", "vm.user_reserve_kbytes": "131072"},
        "live_commit_state": {"safe": True}, "boot_now_unsafe": [], "container": None}}
    row = audit_row({"unreachable": True, "msg": "ssh: connect to host db9 port 22: Connection refused"},
                    host="db9", cached_plan=plan_from_facts(cached))
    assert (row["status"], row["source"], row["committed_as_kb"]) == ("unreachable", "cached_facts", 4089446)
    assert "from cached facts (overcommit_info, read 2026-11-30T05:00:00Z" in row["message"]
    report = json.loads(fleet_report([row], format="json"))["hosts"][0]
    assert report["risk"]["level"] == "critical"
    assert "one spike away from an OOM kill" in report["risk"]["findings"][0]


@pytest.mark.parametrize("drop", ["live_commit_state", "memory.committed_as_kb", "ratio100_commit_state.safe"])
def test_a_result_with_a_renamed_or_missing_field_fails_its_row_by_name(drop):
    """Failed before: the row read holes as None and came out as an "unknown" risk, which hides a version
    mismatch between controller and host behind a harmless-looking level."""
    result = module_result(16 * GIB_KB, 0, 4 * GIB_KB, live_mode=2, live_ratio_pct=80)
    name, _dot, part = drop.partition(".")
    if part:
        del result[name][part]
    else:
        del result[name]
    row = row_from_results("db", result)
    assert row.status == "failed" and drop in row.message
    assert assess(row).findings[0].startswith("host failed: overcommit_info's result lacks " + drop)


DATABASES = [
    {"engine": "postgresql", "server": "15/main", "readable": True, "configured_peak_kb": 4085064, "fits": False,
     "reason": "postgresql 15/main does not fit: configured peak 3989 MiB > room 3000 MiB by 989 MiB"},
    {"engine": "mariadb", "server": "mariadbd", "readable": True, "configured_peak_kb": 409600, "fits": True,
     "reason": "mariadb mariadbd fits: configured peak 400 MiB <= room 3400 MiB"},
    {"engine": "redis", "server": "redis-server 127.0.0.1:6379", "readable": False, "configured_peak_kb": None,
     "fits": None, "reason": "redis redis-server 127.0.0.1:6379 could not be read (no-auth: NOAUTH)"},
]


def test_the_databases_columns_say_which_servers_their_configured_peak_and_whether_they_fit():
    info = dict(CASES["mode2-healthy"][0], databases=DATABASES)
    row = row_from_results("db", info)
    assert row.databases == ("postgresql 15/main", "mariadb mariadbd", "redis redis-server 127.0.0.1:6379")
    assert (row.database_configured_peak_kb, row.databases_fit) == (4085064 + 409600, "no")
    risk = assess(row)
    # the healthy host is raised to watch: its busy hour would meet ENOMEM
    assert risk.level == "watch"
    assert "database postgresql 15/main does not fit: configured peak 3989 MiB > room 3000 MiB by 989 MiB" \
        in risk.findings
    assert any(f.startswith("database redis redis-server 127.0.0.1:6379 could not be read") for f in risk.findings)
    assert not any("mariadbd fits" in f for f in risk.findings)
    record = next(csv.DictReader(io.StringIO(fleet_report([audit_row(info, host="db")], format="csv"))))
    assert (record["databases"], record["database_configured_peak_kb"], record["databases_fit"]) == (
        "postgresql 15/main; mariadb mariadbd; redis redis-server 127.0.0.1:6379", "4494664", "no")
    markdown = fleet_report([audit_row(info, host="db")], format="markdown")
    assert "postgresql 15/main, mariadb mariadbd, redis redis-server 127.0.0.1:6379 (4.3 GiB, fits: no)" in markdown
    page = fleet_report([audit_row(info, host="db")], format="html")
    assert "<b>Databases</b> postgresql 15/main, mariadb mariadbd, redis redis-server 127.0.0.1:6379 (4.3 GiB, " \
        "fits: no)" in page


@pytest.mark.parametrize("databases, fit, text", [
    ([], None, "none"),  # read, and none found
    ([DATABASES[1]], "yes", "mariadb mariadbd (400 MiB, fits: yes)"),
    ([DATABASES[2]], "unknown", "redis redis-server 127.0.0.1:6379 (-, fits: unknown)"),
])
def test_databases_that_fit_or_are_unknown_leave_a_healthy_host_ok(databases, fit, text):
    info = dict(CASES["mode2-healthy"][0], databases=databases)
    row = row_from_results("db", info)
    assert row.databases_fit == fit
    assert assess(row).level == "ok"
    assert text in fleet_report([audit_row(info, host="db")], format="markdown")


def test_a_result_that_says_nothing_of_databases_has_no_database_columns():
    row = row_from_results("db", CASES["mode2-healthy"][0])
    assert (row.databases, row.database_configured_peak_kb, row.databases_fit) == (None, None, None)
    text = fleet_report([audit_row(CASES["mode2-healthy"][0], host="db")], format="csv")
    record = next(csv.DictReader(io.StringIO(text)))
    assert (record["databases"], record["databases_fit"]) == ("", "")
