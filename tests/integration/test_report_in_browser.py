"""report.html as a user sees it: the audit's page opened in a real browser, headless and offline.

The browser is Debian's chromium package (scripts/system-deps.sh installs it); the test fails, never
skips, when it is missing. One audit of a small fleet writes the page: this machine seen through
made-up memory shapes (one per risk level) plus a host that cannot be reached. Chromium loads it once
from file:// and gives back the DOM it built (--dump-dom), a screenshot (--screenshot, kept under
reports/browser/, which git ignores) and its network log (--log-net-log). The checks: the chart has a
group with bars for every host, worst first, in the order of the table and of report.json; the
screenshot shows those bars drawn, to scale; the page asked for nothing from a network; and, measured in
the page at a narrow (1024 px) and a wide (1920 px) window, no header, badge, host name or number is drawn
on more than one line, with a screenshot of each width kept beside the first (report-1024.png,
report-1920.png).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import LEVEL_COLOURS, LEVELS

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "reports" / "browser"
CHROMIUM_TIMEOUT_S = 120
WINDOW = (1280, 1000)  # tall enough for the chart and the table of the fleet below, so one screenshot shows both
# A narrow and a wide window: the report must read well on both, and a screenshot of each is kept.
READABLE_WIDTHS = (1024, 1920)
SCREENSHOT_HEIGHT = 1400
# Offline by construction: no background services, no updates, no sync, and every name resolves to
# nothing, so even a request that slipped through could not leave the machine (the net log still shows it).
OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND")

GIB_KB = 1024 * 1024
# name -> (MemTotal, SwapTotal, Committed_AS, Hugetlb) in kB; this machine's live mode is 0 (or 1), so the
# headroom is what RAM - hugetlb - 10 % + swap can back, less Committed_AS (the planner's upper bound).
FLEET: Dict[str, Tuple[int, int, int, int]] = {
    "db-watch": (16 * GIB_KB, 0, 12 * GIB_KB, 0),  # 15099494 - 12582912: 16.7 % headroom
    "db-ok-hugepages": (64 * GIB_KB, 8 * GIB_KB, 6 * GIB_KB, 16 * GIB_KB),
    "db-critical": (4 * GIB_KB, 0, 5 * GIB_KB, 0),  # promised more than RAM can back
    "db-high": (8 * GIB_KB, 0, 7 * GIB_KB, 0),  # 7549747 - 7340032: 2.8 % headroom
    "db-ok": (64 * GIB_KB, 8 * GIB_KB, 10 * GIB_KB, 0),
    # A long name, as fleets have them: it must stay whole on its line.
    "pg-replica-07.eu-west-1.db.example.internal": (32 * GIB_KB, 4 * GIB_KB, 8 * GIB_KB, 0),
}


def meminfo_text(memtotal_kb: int, swaptotal_kb: int, committed_as_kb: int, hugetlb_kb: int) -> str:
    return ("MemTotal: %d kB\nSwapTotal: %d kB\nCommitLimit: %d kB\nCommitted_AS: %d kB\nHugetlb: %d kB\n"
            % (memtotal_kb, swaptotal_kb, (memtotal_kb - hugetlb_kb) // 2 + swaptotal_kb, committed_as_kb, hugetlb_kb))


def chromium_binary() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: the browser test needs Debian's chromium package "
                    "(run scripts/system-deps.sh, or apt-get install chromium)")
    return found


def open_in_chromium(page: Path, workdir: Path, screenshot: Path) -> Tuple[str, Path]:
    """Load ``page`` once; return the DOM Chromium built and the path of its network log."""
    netlog = workdir / "netlog.json"
    profile = workdir / "profile"  # fresh: no cache, no state from an earlier run
    proc = subprocess.run(
        [chromium_binary(), *OFFLINE_FLAGS, "--user-data-dir=%s" % profile, "--log-net-log=%s" % netlog,
         "--window-size=%d,%d" % WINDOW, "--screenshot=%s" % screenshot, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    # Chromium exits 0 even when the page does not load; its log says so.
    assert proc.returncode == 0 and "Page load failed" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.lstrip().startswith("<!DOCTYPE html>") or proc.stdout.lstrip().startswith("<html"), proc.stdout[:500]
    return proc.stdout, netlog


def page_requests(netlog: Path) -> List[str]:
    """URLs the page asked for, from Chromium's net log.

    The browser's own traffic (component updater, network time, account checks) carries no
    initiator ("not an origin"); a request made by the page carries the page's origin, which for
    a file:// page is "null". The page itself, read from disk, is no network request at all.
    """
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "url" in params and params.get("initiator") != "not an origin":
            urls.append(params["url"])
    return urls


class _Dom(HTMLParser):
    """The chart groups (with their bars) and the table rows of the dumped DOM, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: List[Dict[str, object]] = []
        self.rows: List[List[str]] = []
        self.findings_rows: List[List[str]] = []  # each host's findings, in a row of their own under its row
        self.tags: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self._group: Optional[Dict[str, object]] = None
        self._cell: Optional[List[str]] = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "g" and attributes.get("class") == "host":
            self._group = {"host": attributes["data-host"], "risk": attributes["data-risk"], "bars": {}}
            self.groups.append(self._group)
        elif tag == "rect" and self._group is not None and attributes.get("class"):
            self._group["bars"][attributes["class"]] = int(attributes["width"])
        elif tag == "tr" and attributes.get("class") == "findings":
            self.rows.append([])
            self.findings_rows.append(self.rows[-1])
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "g":
            self._group = None
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read_png(path: Path) -> Tuple[int, int, int, List[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB or RGBA PNG, as Chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
    width, height, depth, colour, _compression, _filter, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: List[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                up, up_left = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + up) >> 1
                else:  # Paeth
                    p = left + up - up_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def _rgb(hex_colour: str) -> Tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    lines = []
    for name, shape in FLEET.items():
        (tmp / ("%s.meminfo" % name)).write_text(meminfo_text(*shape))
        lines.append("%s ansible_connection=local ansible_python_interpreter=%s overcommit_audit_meminfo_path=%s"
                     % (name, sys.executable, tmp / ("%s.meminfo" % name)))
    # Nothing listens on port 1.
    lines.append("gone ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=3'")
    (tmp / "inventory").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp / "inventory"), "dbfleet.memory.audit",
                           "-e", "overcommit_audit_dir=%s" % (tmp / "report")],
                          capture_output=True, text=True, cwd=tmp, stdin=subprocess.DEVNULL, check=False,
                          env=dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    page = tmp / "report" / "report.html"
    dom_text, netlog = open_in_chromium(page, tmp, screenshot)
    shutil.copy(page, ARTIFACTS / "report.html")
    dom = _Dom()
    dom.feed(dom_text)
    report = json.loads((tmp / "report" / "report.json").read_text())
    return {"page": page, "dom": dom, "netlog": netlog, "screenshot": screenshot, "report": report}


def test_the_chart_has_a_group_with_bars_for_every_host_worst_first(rendered):
    groups = rendered["dom"].groups
    report_hosts = rendered["report"]["hosts"]
    assert [g["host"] for g in groups] == [h["host"] for h in report_hosts]
    assert sorted(g["host"] for g in groups) == sorted(list(FLEET) + ["gone"])
    levels = [g["risk"] for g in groups]
    assert levels == sorted(levels, key=LEVELS.index), levels
    assert [g["host"] for g in groups][:3] == ["db-critical", "db-high", "db-watch"]
    assert groups[-1]["host"] == "gone" and groups[-1]["risk"] == "unknown" and groups[-1]["bars"] == {}
    for group, host in zip(groups[:-1], report_hosts[:-1]):
        bars = group["bars"]
        assert set(bars) == {"committed_as_kb", "commit_limit_kb", "backable_kb"}, group
        # Each host is drawn to its own scale: the longest bar is the full width, the others in proportion.
        longest = max(host["committed_as_kb"], host["commit_limit_kb"], host["backable_kb"],
                      host["planned_commit_limit_kb"] or 0)
        for name, width in bars.items():
            assert abs(width - 560 * host[name] // longest) <= 1, (group["host"], name, width)


def test_the_table_lists_every_host_in_the_order_of_the_chart_with_its_risk(rendered):
    # The header row has th cells only; each host's row is followed by the row of its findings.
    rows = [row for row in rendered["dom"].rows if row and not any(row is f for f in rendered["dom"].findings_rows)]
    assert len(rendered["dom"].findings_rows) == len(rows)
    first = rendered["dom"].findings_rows[0][0]
    assert first.startswith("Plan unsafe: admin_reserve_kbytes=") and "one spike away from an OOM kill" in first, first
    assert [row[0] for row in rows] == [g["host"] for g in rendered["dom"].groups]
    assert [row[1] for row in rows] == [g["risk"] for g in rendered["dom"].groups]
    gone = rows[-1]
    assert gone[2] == "unreachable" and gone[5] == "-"  # no Committed_AS known


def test_the_screenshot_shows_the_bars_drawn_worst_first_and_to_scale(rendered):
    width, height, bpp, rows = read_png(rendered["screenshot"])
    assert (width, height) == WINDOW
    colour_of = {_rgb(code): level for level, code in LEVEL_COLOURS.items()}

    def pixel(x, y):
        return tuple(rows[y][x * bpp:x * bpp + 3])

    # Each host's group starts with a stripe in its risk colour, 50 px tall; find them top to bottom.
    stripes = []
    for x in range(0, 80):
        y, found = 0, []
        while y < height:
            level = colour_of.get(pixel(x, y))
            run = 0
            while level and y + run < height and pixel(x, y + run) == pixel(x, y):
                run += 1
            if run >= 40:
                found.append((y, y + run, level))
            y += max(run, 1)
        if found:
            stripes = found
            break
    assert [level for _y0, _y1, level in stripes] == [g["risk"] for g in rendered["dom"].groups]

    def drawn_width(y, colour):
        """The longest run of ``colour`` on pixel row y, across gaps of up to 5 px (the planned-limit tick, 3 px and its antialiased edges)."""
        best = run = gap = 0
        for x in range(width):
            if pixel(x, y) == colour:
                run, gap = run + gap + 1, 0
                best = max(best, run)
            elif run and gap < 5:
                gap += 1
            else:
                run = gap = 0
        return best

    # The chart's geometry: a host's bars are 12 px tall, 3 px apart, the first 4 px below the top of its
    # stripe; Committed_AS first, what RAM + swap can back third. Each is measured on its middle pixel row.
    red, grey = _rgb("#b3261e"), _rgb("#9e9e9e")
    for (y0, _y1, _level), group in zip(stripes, rendered["dom"].groups):
        committed, backable = drawn_width(y0 + 4 + 6, red), drawn_width(y0 + 4 + 2 * 15 + 6, grey)
        if group["bars"]:
            # The planned CommitLimit tick (3 px, antialiased edges) may cover up to 4 of a bar's last pixels.
            assert 0 <= group["bars"]["committed_as_kb"] - committed <= 4, (group, committed)
            assert 0 <= group["bars"]["backable_kb"] - backable <= 4, (group, backable)
        else:
            assert committed == backable == 0


def test_the_page_loads_nothing_from_a_network(rendered):
    page = rendered["page"].read_text()
    # The page's only URL is the SVG namespace, a name that is never fetched.
    assert re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>)]*", page) == ["http://www.w3.org/2000/svg"]
    assert not re.search(r"<(script|link|img|iframe|object|embed|base)\b|\b(src|href|srcset)=|url\(|@import", page, re.I)
    assert not any(tag in ("script", "link", "img", "iframe") for tag, _attrs in rendered["dom"].tags)
    assert page_requests(rendered["netlog"]) == []


# A page of the test's own that frames the report at common screen widths and writes what the browser
# computed into its DOM. The script lives here, never in the report; --allow-file-access-from-files lets
# a file:// page read another file:// page's layout.
_PROBE = """<!DOCTYPE html><html><body>%s<pre id="layout"></pre><script>
var frames = document.querySelectorAll("iframe"), out = {}, left = frames.length;
frames.forEach(function (frame) {
  frame.addEventListener("load", function () {
    var root = frame.contentDocument.documentElement;
    out[frame.width] = {scroll_width: root.scrollWidth, client_width: root.clientWidth};
    if (--left === 0) { document.getElementById("layout").textContent = JSON.stringify(out); }
  });
});
</script></body></html>"""


def test_the_page_fits_common_screen_widths_without_scrolling_sideways(rendered, tmp_path):
    widths = (1280, 1024)
    probe = rendered["page"].parent / "probe.html"
    probe.write_text(_PROBE % "".join('<iframe src="report.html" width="%d" height="800"></iframe>' % w for w in widths))
    proc = subprocess.run([chromium_binary(), *OFFLINE_FLAGS, "--user-data-dir=%s" % (tmp_path / "profile"),
                           "--allow-file-access-from-files", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    found = re.search(r'<pre id="layout">(.*?)</pre>', proc.stdout)
    assert proc.returncode == 0 and found and found.group(1), proc.stderr[-3000:]
    layout = json.loads(found.group(1))
    # Long plans and findings wrap inside their cells instead of widening the table past the window.
    assert {int(w): v["scroll_width"] <= v["client_width"] for w, v in layout.items()} == {w: True for w in widths}, layout


# Where a word must never be broken across lines: the title, the summary line with its badges, every header,
# badge, host name and number: every cell of the hosts' rows (their plan and free-text findings, in rows of their
# own, may break a long path to fit).
# For each word (a run of non-blank characters) of those elements, the probe asks the browser for the boxes it
# drew the word in (Range.getClientRects) and reports the words whose boxes lie on more than one line.
_WORDS_PROBE = """<!DOCTYPE html><html><body>%s<pre id="layout"></pre><script>
var SELECTOR = "h1, body > p:first-of-type, th, .badge, tr.host td";
var frames = document.querySelectorAll("iframe"), out = {}, left = frames.length;
function brokenWords(doc) {
  var broken = [], checked = 0, hosts = [];
  doc.querySelectorAll("td.host").forEach(function (cell) { hosts.push(cell.textContent); });
  doc.querySelectorAll(SELECTOR).forEach(function (element) {
    var walker = doc.createTreeWalker(element, NodeFilter.SHOW_TEXT), node;
    while ((node = walker.nextNode())) {
      var word = /\\S+/g, match;
      while ((match = word.exec(node.data))) {
        var range = doc.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        var lines = {};
        Array.prototype.forEach.call(range.getClientRects(), function (rect) {
          if (rect.width > 0) { lines[Math.round(rect.bottom)] = true; }
        });
        checked += 1;
        if (Object.keys(lines).length > 1) {
          broken.push({word: match[0], element: element.tagName.toLowerCase() + (element.className ? "." + element.className : ""),
                       lines: Object.keys(lines).length});
        }
      }
    }
  });
  return {broken: broken, checked: checked, hosts: hosts};
}
frames.forEach(function (frame) {
  frame.addEventListener("load", function () {
    var root = frame.contentDocument.documentElement;
    out[frame.width] = brokenWords(frame.contentDocument);
    var box = frame.contentDocument.querySelector(".table-box") || root;
    out[frame.width].scroll_width = root.scrollWidth;
    out[frame.width].client_width = root.clientWidth;
    out[frame.width].table_scroll_width = box.scrollWidth;
    out[frame.width].table_client_width = box.clientWidth;
    if (--left === 0) { document.getElementById("layout").textContent = JSON.stringify(out); }
  });
});
</script></body></html>"""


def probe(page: Path, probe_html: str, workdir: Path) -> Dict[str, Dict[str, object]]:
    """Load a probe page of the test's own beside ``page`` and return what its script wrote into #layout."""
    probe_path = page.parent / ("probe-%s.html" % workdir.name)
    probe_path.write_text(probe_html)
    proc = subprocess.run([chromium_binary(), *OFFLINE_FLAGS, "--user-data-dir=%s" % (workdir / "profile"),
                           "--allow-file-access-from-files", "--dump-dom", probe_path.as_uri()],
                          capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    found = re.search(r'<pre id="layout">(.*?)</pre>', proc.stdout)
    assert proc.returncode == 0 and found and found.group(1), proc.stderr[-3000:]
    return json.loads(html.unescape(found.group(1)))


def frames(page: Path, widths) -> str:
    return "".join('<iframe src="%s" width="%d" height="900"></iframe>' % (page.name, w) for w in widths)


def test_no_header_badge_host_name_or_number_is_broken_inside_a_word_narrow_or_wide(rendered, tmp_path):
    layout = probe(rendered["page"], _WORDS_PROBE % frames(rendered["page"], READABLE_WIDTHS), tmp_path)
    assert sorted(int(w) for w in layout) == sorted(READABLE_WIDTHS)
    hosts = sorted(h["host"] for h in rendered["report"]["hosts"])
    for width, found in layout.items():
        # The probe looked at every host's name (and the headers, badges and numbers around them)...
        assert sorted(found["hosts"]) == hosts and found["checked"] > 10 * len(hosts), (width, found)
        # ...and found no word drawn on more than one line.
        assert found["broken"] == [], (width, found["broken"])
        # Neither the page nor the table scrolls sideways.
        assert found["scroll_width"] <= found["client_width"], (width, found)
        assert found["table_scroll_width"] <= found["table_client_width"], (width, found)
    # A screenshot at each width, kept with the run's artifacts for a person to look at.
    for width in READABLE_WIDTHS:
        shot = ARTIFACTS / ("report-%d.png" % width)
        shot.unlink(missing_ok=True)
        proc = subprocess.run([chromium_binary(), *OFFLINE_FLAGS, "--user-data-dir=%s" % (tmp_path / ("shot-%d" % width)),
                               "--window-size=%d,%d" % (width, SCREENSHOT_HEIGHT), "--screenshot=%s" % shot,
                               rendered["page"].as_uri()],
                              capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
        assert proc.returncode == 0 and shot.is_file(), proc.stderr[-3000:]
        assert read_png(shot)[:2] == (width, SCREENSHOT_HEIGHT)


def test_the_probe_sees_a_word_the_browser_breaks(tmp_path):
    """The control: the same measurement catches a header that a too-narrow column breaks inside a word, and a host
    name broken at its hyphen."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><table style="width:60px"><tr class="host"><th style="overflow-wrap:anywhere">'
                    'CommitLimit</th><td>db-1</td></tr></table></body></html>')
    layout = probe(page, _WORDS_PROBE % frames(page, (400,)), tmp_path)
    assert [b["word"] for b in layout["400"]["broken"]] == ["CommitLimit", "db-1"], layout


def test_the_network_check_sees_a_page_that_does_fetch(tmp_path):
    """The control: the same net-log reading catches a page with a remote image and stylesheet."""
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.com/a.css">'
                    '</head><body><img src="http://192.0.2.1/pixel.png"></body></html>')
    _dom, netlog = open_in_chromium(page, tmp_path, tmp_path / "fetching.png")
    assert sorted(page_requests(netlog)) == ["http://192.0.2.1/pixel.png", "https://fonts.example.com/a.css"]
