# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet audit: turn per-host plan results into a risk-ordered report.

Controller side only (plugin_utils, not module_utils): nothing here runs on a target, so it
never travels in a module's payload. Pure Python, no Ansible import: the audit playbook reaches
it through the filter plugins ``audit_row`` and ``fleet_report``; the unit tests import it directly.

Risk, per host (all in kB; the numbers come from the host, the formulas from
commit_limit.py and the planner, never copied here):

* mode 2 (never overcommit): what a process without CAP_SYS_ADMIN may commit in total is the
  ``room_kb`` of the live state's verdict (``live_commit_state``: the planner's one lower-bound
  rule, check_commit_state, applied on the host or, for cached facts, by facts_plan). Headroom is
  that minus ``Committed_AS``, as a share of CommitLimit. Headroom <= 0 means new shells and SSH
  logins already fail.
* mode 0/1 (overcommit): CommitLimit is not enforced. Headroom is what RAM and swap can
  back (the planner's upper bound: RAM - hugetlb - kernel reserve + swap) minus
  ``Committed_AS``, as a share of that. Below 0, touching the memory already promised
  wakes the OOM killer: the host is one spike away from an OOM kill.
* "locked out by ratio=100": switching this host to mode 2 with ``overcommit_ratio=100``
  (the usual copy-paste) fails the same rule (``ratio100_commit_state``, the planner's
  copied_advice_verdict): every new allocation of non-root would fail.

No rule is re-derived here: every verdict comes from the planner.

Levels, worst first: critical (headroom <= 0), high (< 10 %, or the next boot with today's
sysctl files would leave an unsafe mode 2), watch (< 25 %, or locked out by ratio=100, or no
safe plan, or a shadowed drop-in, or a database whose configured peak does not fit the plan), ok,
unknown (no live data).

The database columns (databases, their summed configured peak, whether all fit) come from
overcommit_info's ``databases``, judged on the host by the planner's rule; cached facts carry
none, and those rows leave the columns empty.

Host names, messages and reasons are text the hosts control (a value in a sysctl file is
enough). Every renderer passes each field through one of the escape helpers below
(``plain_text``, ``markdown_text``, ``html_text``, ``csv_cell``); only the JSON report
carries the exact data, because JSON escaping is lossless.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.plugin_utils.facts_plan import SOURCE_OVERCOMMIT_FACTS

KIB_PER_MIB = 1024
KIB_PER_GIB = 1024 * 1024
HIGH_RISK_HEADROOM_PCT = 10.0
WATCH_HEADROOM_PCT = 25.0

LEVELS: Tuple[str, ...] = ("critical", "high", "watch", "ok", "unknown")
LEVEL_COLOURS = {
    "critical": "#b3261e",
    "high": "#e8710a",
    "watch": "#c9a100",
    "ok": "#2e7d32",
    "unknown": "#757575",
}

STATUS_OK = "ok"
STATUS_UNREACHABLE = "unreachable"
STATUS_FAILED = "failed"
SOURCE_LIVE = "live"
SOURCE_CACHED = "cached_facts"
CACHED_LABEL = "from cached facts"

CSV_COLUMNS: Tuple[str, ...] = (
    "host", "status", "source", "risk", "headroom_kb", "headroom_pct", "headroom_reference",
    "live_mode", "live_ratio_pct", "live_kbytes", "live_admin_reserve_kb",
    "commit_limit_kb", "committed_as_kb", "backable_kb", "memtotal_kb", "swaptotal_kb", "hugetlb_kb",
    "boot_swaptotal_kb", "boot_hugetlb_kb", "boot_writers", "boot_unmodelled",
    "ratio100_commit_limit_kb", "locked_out_by_ratio100",
    "plan_verdict", "planned_commit_limit_kb", "planned_sysctl", "shadowed_keys",
    "databases", "database_configured_peak_kb", "databases_fit", "findings", "message",
)


@dataclass(frozen=True)
class AuditRow:
    """What the audit learned about one host; None where the source cannot know it."""

    host: str
    status: str = STATUS_OK
    source: str = SOURCE_LIVE
    message: str = ""
    memtotal_kb: Optional[int] = None
    swaptotal_kb: Optional[int] = None
    hugetlb_kb: Optional[int] = None
    committed_as_kb: Optional[int] = None
    commit_limit_kb: Optional[int] = None  # CommitLimit in force, from /proc/meminfo
    page_size_kb: int = 4
    live_mode: Optional[int] = None
    live_ratio_pct: Optional[int] = None
    live_kbytes: Optional[int] = None
    live_admin_reserve_kb: Optional[int] = None
    backable_kb: Optional[int] = None  # the planner's upper bound: what RAM + swap can back
    live_room_kb: Optional[int] = None  # mode 2: what non-root may commit under the live values (the planner's rule)
    ratio100_commit_limit_kb: Optional[int] = None  # CommitLimit of the copied advice (mode 2, ratio 100)
    ratio100_safe: Optional[bool] = None  # the planner's verdict on that advice
    planned_admin_reserve_kb: Optional[int] = None
    user_reserve_kb: Optional[int] = None  # the host's vm.user_reserve_kbytes, as the plan used it
    plan_verdict: Optional[str] = None
    planned_commit_limit_kb: Optional[int] = None
    planned_sysctl: Dict[str, str] = field(default_factory=dict)
    plan_reasons: Tuple[str, ...] = ()
    shadowed: Tuple[str, ...] = ()  # one message per managed key another sysctl file overrides
    boot_unsafe: Tuple[str, ...] = ()  # the next boot with today's files would leave an unsafe mode 2
    # What decides the next boot besides the sysctl files (overcommit_info's next_boot): every writer
    # seen, those that cannot be modelled, and the swap and huge pages that boot will have.
    boot_writers: Tuple[str, ...] = ()
    boot_unmodelled: Tuple[str, ...] = ()
    boot_swaptotal_kb: Optional[int] = None
    boot_hugetlb_kb: Optional[int] = None
    # One line per database unit: live and configured oom_score_adj, OOMPolicy (overcommit_info's database_units).
    database_units: Tuple[str, ...] = ()
    # PostgreSQL units whose backends inherit the postmaster's negative score.
    negative_backends: Tuple[str, ...] = ()
    # The host's database servers as overcommit_info read them ("postgresql 15/main"); None when the
    # result says nothing about them (cached facts, an older collection on the host).
    databases: Optional[Tuple[str, ...]] = None
    database_configured_peak_kb: Optional[int] = None  # the sum of the known configured peaks
    # "yes" when every known peak fits the plan, "no" when one does not, "unknown" when none is judged.
    databases_fit: Optional[str] = None
    database_findings: Tuple[str, ...] = ()  # the line of each database that does not fit or could not be read


# The fields of AuditRow that hold a tuple of texts (their default is the empty tuple).
_TUPLE_FIELDS = tuple(f.name for f in fields(AuditRow) if f.default == ())


@dataclass(frozen=True)
class Assessment:
    level: str
    headroom_kb: Optional[int]
    headroom_pct: Optional[float]
    headroom_reference: str  # what the headroom is measured against
    ratio100_commit_limit_kb: Optional[int]
    locked_out_by_ratio100: Optional[bool]
    findings: Tuple[str, ...]


# --- Escaping: the one place that decides how host text enters a report -----------------------------

_UNPRINTABLE = "\ufffd"
_MARKDOWN_ESCAPES = str.maketrans({
    # Markdown's own escape character first, so a host's "\|" cannot undo our "\|".
    "\\": "\\\\",
    "|": "\\|",  # a table cell ends here
    "[": "\\[",  # links and images: an image makes the viewer fetch a URL of the host's choice
    "]": "\\]",
    # Raw HTML passes through Markdown: no tag, entity or autolink may start in host text.
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    # A code span would show our escapes as written ("\\:" for ":") instead of the host's text.
    "`": "\\`",
})
# GitHub-flavoured Markdown also links text with no markup at all (cmark-gfm's autolink extension):
# "www." and "http://", "https://", "ftp://" are matched in the source, where an escaped "." or ":"
# stops them. An e-mail address (also after "mailto:" or "xmpp:") is matched only after adjacent
# text is joined, where no escape or entity survives; it needs a letter, digit or one of .+-_ right
# before the "@", so a WORD JOINER (U+2060: invisible, no line break) goes there.
_WWW = re.compile(r"(?i)(www)\.")
_SCHEME_SLASHES = "://"
_WORD_JOINER = "\u2060"
# A spreadsheet evaluates a cell that starts with one of these (OWASP, "CSV Injection"). OWASP also
# lists tab and CR: plain_text has made them spaces, and leading spaces are looked through.
_FORMULA_TRIGGERS = ("=", "+", "-", "@")
# What we write for numbers: a plain decimal is a number to a spreadsheet, never a formula.
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")


def plain_text(value: Any) -> str:
    """One line of printable text: whitespace controls (CR, LF, tab, U+2028...) become a space,
    every other unprintable character (control, bidi override, zero-width) becomes U+FFFD."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " if ch.isspace() else _UNPRINTABLE for ch in text)


def markdown_text(value: Any) -> str:
    """Text for a Markdown line or table cell: shown as written (an invisible word joiner before
    each "@" aside), never as HTML, image, link, autolink or column."""
    text = _WWW.sub(r"\1\\.", plain_text(value).translate(_MARKDOWN_ESCAPES))
    return text.replace(_SCHEME_SLASHES, "\\" + _SCHEME_SLASHES).replace("@", _WORD_JOINER + "@")


def html_text(value: Any) -> str:
    """Text for HTML or SVG content and for quoted attribute values."""
    return html.escape(plain_text(value), quote=True)


def csv_cell(value: Any) -> str:
    """One CSV field. Numbers are written as they are (a negative headroom stays a number); any
    other text that a spreadsheet would read as a formula gets the OWASP single-quote prefix.
    Whitespace before the trigger does not help: some spreadsheets trim it."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return str(value)
    text = plain_text(value)
    if _DECIMAL.match(text):
        return text
    if text.lstrip(" ").startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


def _int_or_none(value: Any) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _shadow_messages(info_result: Optional[Mapping[str, Any]]) -> Tuple[str, ...]:
    if not info_result:
        return ()
    shadowing = info_result.get("shadowing") or {}
    return tuple(
        str(entry.get("message") or "%s is shadowed" % key)
        for key, entry in sorted(shadowing.items())
        if isinstance(entry, Mapping) and entry.get("status") == "shadowed"
    )


def _failure_text(result: Mapping[str, Any]) -> str:
    """The first non-blank line of msg, else of module_stderr: a msg of only a newline is no message."""
    for key in ("msg", "module_stderr"):
        for line in str(result.get(key) or "").splitlines():
            if line.strip():
                return line.strip()[:300]
    return "no message"


def row_from_results(
    host: str,
    info_result: Optional[Mapping[str, Any]],
    cached_plan: Optional[Mapping[str, Any]] = None,
) -> AuditRow:
    """One row from the registered result of the overcommit_info module.

    An unreachable or failed host keeps its row; when a plan from cached facts is given
    (the overcommit_plan filter's result), its numbers fill the row, marked as cached.
    """
    info_result = info_result or {}
    status = STATUS_OK
    message = ""
    if info_result.get("unreachable"):
        status, message = STATUS_UNREACHABLE, _failure_text(info_result)
    elif info_result.get("failed") or "memory" not in info_result:
        status = STATUS_FAILED
        message = _failure_text(info_result) if info_result else "no result (the host was not audited)"
    if status != STATUS_OK:
        if cached_plan:
            return _row_from_plan(host, cached_plan, status=status, source=SOURCE_CACHED,
                                  message="%s; numbers %s" % (message, _cached_text(cached_plan)))
        return AuditRow(host=host, status=status, source=SOURCE_LIVE, message=message)
    missing = _missing_fields(info_result)
    if missing:
        # A result of another shape (another collection version on the controller than on the host?):
        # a row that says so, never a risk computed from holes.
        return AuditRow(host=host, status=STATUS_FAILED, source=SOURCE_LIVE,
                        message="overcommit_info's result lacks %s: the controller's and the host's collection "
                                "versions differ?" % ", ".join(missing))
    return _row_from_plan(host, info_result, status=STATUS_OK, source=SOURCE_LIVE, message=message,
                          shadowed=_shadow_messages(info_result))


# What every row of a host that answered is made of: (field, its fields). A renamed or missing one
# fails that host's row by name instead of turning into an "unknown" risk.
_REQUIRED_FIELDS = (
    ("memory", ("memtotal_kb", "swaptotal_kb", "hugetlb_kb", "committed_as_kb", "commit_limit_kb", "page_size_kb")),
    ("bounds", ("upper_kb", "admin_reserve_kb")),
    ("live_values", ("vm.overcommit_memory", "vm.overcommit_ratio", "vm.overcommit_kbytes", "vm.admin_reserve_kbytes")),
    ("live_commit_state", ("safe", "room_kb", "commit_limit_kb")),
    ("ratio100_commit_state", ("safe", "commit_limit_kb")),
    ("verdict", ()), ("commit_limit_kb", ()), ("boot_now_unsafe", ()), ("next_boot", ()),
)


def _missing_fields(result: Mapping[str, Any]) -> List[str]:
    missing = []
    for name, parts in _REQUIRED_FIELDS:
        if name not in result:
            missing.append(name)
        elif parts and not isinstance(result[name], Mapping):
            missing.append(name + " (not a dict)")
        else:
            missing.extend("%s.%s" % (name, part) for part in parts if part not in result[name])
    return missing


def row_from_cached_plan(host: str, cached_plan: Optional[Mapping[str, Any]]) -> AuditRow:
    """A row for audits run from the fact cache only (no remote call)."""
    if not cached_plan:
        return AuditRow(host=host, status=STATUS_FAILED, source=SOURCE_CACHED,
                        message="no cached facts for this host (memtotal_mb/swaptotal_mb missing)")
    return _row_from_plan(host, cached_plan, status=STATUS_OK, source=SOURCE_CACHED, message=_cached_text(cached_plan))


def _cached_text(cached_plan: Mapping[str, Any]) -> str:
    """Which cached facts a row's numbers come from, and so how far to trust them."""
    if cached_plan.get("source") == SOURCE_OVERCOMMIT_FACTS:
        return "%s (overcommit_info, read %s: real Committed_AS and live values)" % (
            CACHED_LABEL, cached_plan.get("gathered_at") or "at an unknown time")
    return "%s (setup: no Committed_AS, no live values)" % CACHED_LABEL


def _row_from_plan(host: str, plan: Mapping[str, Any], status: str, source: str, message: str,
                   shadowed: Tuple[str, ...] = ()) -> AuditRow:
    memory = plan.get("memory") or {}
    bounds = plan.get("bounds") or {}
    live = plan.get("live_values") or {}
    sysctl = {str(k): str(v) for k, v in (plan.get("sysctl") or {}).items()}
    next_boot = plan.get("next_boot") or {}
    boot_memory = next_boot.get("memory") or {}
    live_state = plan.get("live_commit_state") or {}
    ratio100 = plan.get("ratio100_commit_state") or {}
    return AuditRow(
        host=host, status=status, source=source, message=message,
        memtotal_kb=_int_or_none(memory.get("memtotal_kb")),
        swaptotal_kb=_int_or_none(memory.get("swaptotal_kb")),
        hugetlb_kb=_int_or_none(memory.get("hugetlb_kb")),
        committed_as_kb=_int_or_none(memory.get("committed_as_kb")),
        commit_limit_kb=_int_or_none(memory.get("commit_limit_kb")),
        page_size_kb=_int_or_none(memory.get("page_size_kb")) or 4,
        live_mode=_int_or_none(live.get("vm.overcommit_memory")),
        live_ratio_pct=_int_or_none(live.get("vm.overcommit_ratio")),
        live_kbytes=_int_or_none(live.get("vm.overcommit_kbytes")),
        live_admin_reserve_kb=_int_or_none(live.get("vm.admin_reserve_kbytes")),
        backable_kb=_int_or_none(bounds.get("upper_kb")),
        live_room_kb=_int_or_none(live_state.get("room_kb")),
        ratio100_commit_limit_kb=_int_or_none(ratio100.get("commit_limit_kb")),
        ratio100_safe=ratio100.get("safe") if isinstance(ratio100.get("safe"), bool) else None,
        planned_admin_reserve_kb=_int_or_none(bounds.get("admin_reserve_kb")),
        user_reserve_kb=_int_or_none((plan.get("options") or {}).get("user_reserve_kb")),
        plan_verdict=plan.get("verdict"),
        planned_commit_limit_kb=_int_or_none(plan.get("commit_limit_kb")),
        planned_sysctl=sysctl,
        plan_reasons=tuple(str(r) for r in plan.get("reasons") or ()),
        shadowed=shadowed,
        boot_unsafe=tuple(str(m) for m in plan.get("boot_now_unsafe") or ()),
        boot_writers=tuple(str(w) for w in next_boot.get("writers") or ()),
        boot_unmodelled=tuple(str(w) for w in next_boot.get("unmodelled") or ()),
        boot_swaptotal_kb=_int_or_none((boot_memory.get("swap") or {}).get("swaptotal_kb")),
        boot_hugetlb_kb=_int_or_none((boot_memory.get("huge_pages") or {}).get("hugetlb_kb")),
        database_units=tuple(_unit_line(u) for u in _units(plan)),
        negative_backends=tuple(str(u.get("unit")) for u in _units(plan) if u.get("backends_inherit_negative")),
        **_database_fields(plan),
    )


def _database_fields(plan: Mapping[str, Any]) -> Dict[str, Any]:
    """The database columns from overcommit_info's ``databases`` (each judged on the host by the
    planner's rule); nothing when the result has none to say (cached facts)."""
    items = plan.get("databases")
    if not isinstance(items, list):
        return {}
    items = [d for d in items if isinstance(d, Mapping)]
    peaks = [d.get("configured_peak_kb") for d in items if _int_or_none(d.get("configured_peak_kb")) is not None]
    verdicts = [d.get("fits") for d in items if isinstance(d.get("fits"), bool)]
    fit = "no" if False in verdicts else "yes" if verdicts else "unknown"
    return dict(
        databases=tuple("%s %s" % (d.get("engine"), d.get("server")) for d in items),
        database_configured_peak_kb=sum(peaks) if peaks else None,
        databases_fit=fit if items else None,
        database_findings=tuple("database " + str(d.get("reason")) for d in items
                                if d.get("fits") is False or d.get("readable") is False),
    )


def _units(info: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    units = (info.get("database_units") or {}).get("units") or []
    return [u for u in units if isinstance(u, Mapping) and u.get("status") != "missing"]


def _unit_line(unit: Mapping[str, Any]) -> str:
    return "%s: oom_score_adj live %s, configured %s, OOMPolicy=%s" % (
        unit.get("unit"), unit.get("live_oom_score_adj"), unit.get("configured_oom_score_adj"), unit.get("oom_policy"))


def assess(row: AuditRow) -> Assessment:
    """The risk of one host; see the module docstring for the definitions."""
    findings: List[str] = []
    locked_out = None if row.ratio100_safe is None else not row.ratio100_safe

    headroom_kb: Optional[int] = None
    headroom_pct: Optional[float] = None
    reference = ""
    known = row.committed_as_kb is not None and row.live_mode is not None
    if known and row.live_mode == 2 and row.commit_limit_kb and row.live_room_kb is not None:
        reference = "CommitLimit - admin and user reserves (mode 2)"
        headroom_kb = row.live_room_kb - (row.committed_as_kb or 0)
        headroom_pct = 100.0 * headroom_kb / row.commit_limit_kb
    elif known and row.live_mode != 2 and row.backable_kb:
        reference = "RAM + swap can back (mode %d)" % (row.live_mode or 0)
        headroom_kb = row.backable_kb - (row.committed_as_kb or 0)
        headroom_pct = 100.0 * headroom_kb / row.backable_kb

    if headroom_kb is None:
        level = "unknown"
        if row.status != STATUS_OK:
            findings.append("host %s: %s" % (row.status, row.message))
        elif row.source == SOURCE_CACHED:
            findings.append("Committed_AS and live sysctl values are not in cached facts: risk not assessed")
        else:
            findings.append("live values incomplete: risk not assessed")
    elif headroom_kb <= 0:
        level = "critical"
        if row.live_mode == 2:
            findings.append("locked out now: Committed_AS + admin and user reserves exceed CommitLimit by %s; "
                            "new processes and SSH logins fail" % human_kb(-headroom_kb))
        else:
            findings.append("one spike away from an OOM kill: Committed_AS exceeds what RAM + swap can back "
                            "by %s" % human_kb(-headroom_kb))
    elif headroom_pct is not None and headroom_pct < HIGH_RISK_HEADROOM_PCT:
        level = "high"
        findings.append("only %s (%.1f %%) headroom against %s" % (human_kb(headroom_kb), headroom_pct, reference))
    else:
        level = "ok"
        if headroom_pct is not None and headroom_pct < WATCH_HEADROOM_PCT:
            level = "watch"
            findings.append("%.1f %% headroom against %s" % (headroom_pct, reference))

    if locked_out:
        findings.append("overcommit_ratio=100 in mode 2 would lock it out: with CommitLimit %s, Committed_AS and "
                        "the admin and user reserves do not fit" % human_kb(row.ratio100_commit_limit_kb or 0))
    if row.plan_verdict == "unsafe":
        findings.append("no safe mode-2 plan: " + (row.plan_reasons[-1].split(". ")[0] if row.plan_reasons else "see reasons"))
    findings.extend(row.shadowed)
    findings.extend("the next boot locks it out: " + message for message in row.boot_unsafe)
    if row.boot_swaptotal_kb is not None and row.swaptotal_kb is not None and row.boot_swaptotal_kb < row.swaptotal_kb:
        findings.append("the next boot has less swap than now: %s counted of %s (swap switched on by hand, or a "
                        "nofail line, does not come back for sure)"
                        % (human_kb(row.boot_swaptotal_kb), human_kb(row.swaptotal_kb)))
    if row.boot_hugetlb_kb and row.boot_hugetlb_kb > (row.hugetlb_kb or 0):
        findings.append("the next boot reserves %s of huge pages (now %s): CommitLimit shrinks by the difference"
                        % (human_kb(row.boot_hugetlb_kb), human_kb(row.hugetlb_kb or 0)))
    findings.extend("a boot-time writer that is not modelled: " + writer for writer in row.boot_unmodelled)
    findings.extend("%s: PostgreSQL backends inherit the postmaster's negative oom_score_adj (no PG_OOM_ADJUST_FILE), "
                    "so a runaway backend is not the OOM killer's first choice" % unit for unit in row.negative_backends)
    findings.extend(row.database_units)
    findings.extend(row.database_findings)
    # A configured peak that does not fit is the busy hour's ENOMEM (or OOM kill) waiting: at least watch.
    if level == "ok" and (locked_out or row.plan_verdict == "unsafe" or row.shadowed or row.boot_unmodelled
                          or row.databases_fit == "no"):
        level = "watch"
    if row.boot_unsafe and level in ("ok", "watch", "unknown"):
        level = "high"
    return Assessment(level=level, headroom_kb=headroom_kb, headroom_pct=headroom_pct, headroom_reference=reference,
                      ratio100_commit_limit_kb=row.ratio100_commit_limit_kb, locked_out_by_ratio100=locked_out,
                      findings=tuple(findings))


def order_by_risk(rows: Sequence[AuditRow]) -> List[Tuple[AuditRow, Assessment]]:
    """Worst first: by level, then by smallest headroom share, then by name for a stable order."""
    assessed = [(row, assess(row)) for row in rows]

    def key(pair: Tuple[AuditRow, Assessment]) -> Tuple[int, float, str]:
        row, risk = pair
        pct = risk.headroom_pct if risk.headroom_pct is not None else float("inf")
        return LEVELS.index(risk.level), pct, row.host

    return sorted(assessed, key=key)


def human_kb(value_kb: Optional[int]) -> str:
    """kB to a short human size: GiB with one decimal from 1 GiB up, else MiB."""
    if value_kb is None:
        return "-"
    if abs(value_kb) >= KIB_PER_GIB:
        return "%.1f GiB" % (value_kb / KIB_PER_GIB)
    return "%d MiB" % (value_kb // KIB_PER_MIB)


def _live_limit_text(row: AuditRow) -> str:
    if row.live_mode is None:
        return "-"
    if row.live_kbytes:
        return "%d, kbytes=%d" % (row.live_mode, row.live_kbytes)
    return "%d, ratio=%s" % (row.live_mode, "-" if row.live_ratio_pct is None else row.live_ratio_pct)


def _planned_text(row: AuditRow) -> str:
    if not row.planned_sysctl:
        return "-"
    short = ", ".join("%s=%s" % (k.replace("vm.", ""), v) for k, v in sorted(row.planned_sysctl.items()))
    return "%s: %s" % (row.plan_verdict or "?", short)


def _databases_text(row: AuditRow) -> str:
    if row.databases is None:
        return "-"
    if not row.databases:
        return "none"
    return "%s (%s, fits: %s)" % (
        ", ".join(row.databases), human_kb(row.database_configured_peak_kb), row.databases_fit)


def _source_text(row: AuditRow) -> str:
    if row.source == SOURCE_CACHED:
        return CACHED_LABEL
    return row.status if row.status != STATUS_OK else "live"


def summary_counts(ordered: Sequence[Tuple[AuditRow, Assessment]]) -> Dict[str, int]:
    counts = {level: 0 for level in LEVELS}
    for _row, risk in ordered:
        counts[risk.level] += 1
    counts["unreachable"] = sum(1 for row, _risk in ordered if row.status == STATUS_UNREACHABLE)
    counts["failed"] = sum(1 for row, _risk in ordered if row.status == STATUS_FAILED)
    counts["cached_facts"] = sum(1 for row, _risk in ordered if row.source == SOURCE_CACHED)
    counts["locked_out_by_ratio100"] = sum(1 for _row, risk in ordered if risk.locked_out_by_ratio100)
    counts["hosts"] = len(ordered)
    return counts


def _markdown_strong(text: str, strong: bool) -> str:
    return "**%s**" % markdown_text(text) if strong else markdown_text(text)


def render_markdown(rows: Sequence[AuditRow], generated_at: str = "") -> str:
    ordered = order_by_risk(rows)
    counts = summary_counts(ordered)
    lines = [
        "# Overcommit audit" + (" (%s)" % markdown_text(generated_at) if generated_at else ""),
        "",
        "%d hosts: %s. Unreachable: %d, failed: %d, %s: %d. Locked out by ratio=100: %d." % (
            counts["hosts"], ", ".join("%s %d" % (level, counts[level]) for level in LEVELS),
            counts["unreachable"], counts["failed"], CACHED_LABEL, counts["cached_facts"],
            counts["locked_out_by_ratio100"]),
        "",
        "Headroom: mode 2 = CommitLimit - admin and user reserves - one page - Committed_AS; mode 0/1 = what RAM + swap can back "
        "(RAM - hugetlb - kernel reserve + swap) - Committed_AS. Sorted worst first.",
        "",
        "| Host | Risk | Source | Mode (live) | CommitLimit | Committed_AS | RAM+swap can back | Headroom "
        "| ratio=100 locks out | Plan | Databases (configured peak, fits) | Findings |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for row, risk in ordered:
        headroom = "-" if risk.headroom_kb is None else "%s (%.1f %%)" % (human_kb(risk.headroom_kb), risk.headroom_pct or 0.0)
        locked = risk.locked_out_by_ratio100
        cells = [
            markdown_text(row.host),
            _markdown_strong(risk.level, risk.level in ("critical", "high")),
            markdown_text(_source_text(row)),
            markdown_text(_live_limit_text(row)),
            markdown_text(human_kb(row.commit_limit_kb)),
            markdown_text(human_kb(row.committed_as_kb)),
            markdown_text(human_kb(row.backable_kb)),
            markdown_text(headroom),
            _markdown_strong({None: "-", True: "yes", False: "no"}[locked], bool(locked)),
            markdown_text(_planned_text(row)),
            markdown_text(_databases_text(row)),
            markdown_text("; ".join(risk.findings) or "-"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_dicts(rows: Sequence[AuditRow], generated_at: str = "") -> Dict[str, Any]:
    """The JSON report: every row's inputs plus its assessment, in risk order."""
    ordered = order_by_risk(rows)
    hosts = []
    for row, risk in ordered:
        item = asdict(row)
        item["plan_reasons"] = list(row.plan_reasons)
        item["shadowed"] = list(row.shadowed)
        item["risk"] = asdict(risk)
        item["risk"]["findings"] = list(risk.findings)
        hosts.append(item)
    return {"generated_at": generated_at, "summary": summary_counts(ordered), "hosts": hosts}


def render_json(rows: Sequence[AuditRow], generated_at: str = "") -> str:
    return json.dumps(report_dicts(rows, generated_at), indent=2, sort_keys=True) + "\n"


def render_csv(rows: Sequence[AuditRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row, risk in order_by_risk(rows):
        values = {
            "host": row.host, "status": row.status, "source": row.source, "risk": risk.level,
            "headroom_kb": risk.headroom_kb,
            "headroom_pct": None if risk.headroom_pct is None else "%.2f" % risk.headroom_pct,
            "headroom_reference": risk.headroom_reference,
            "live_mode": row.live_mode, "live_ratio_pct": row.live_ratio_pct, "live_kbytes": row.live_kbytes,
            "live_admin_reserve_kb": row.live_admin_reserve_kb, "commit_limit_kb": row.commit_limit_kb,
            "committed_as_kb": row.committed_as_kb, "backable_kb": row.backable_kb,
            "memtotal_kb": row.memtotal_kb, "swaptotal_kb": row.swaptotal_kb, "hugetlb_kb": row.hugetlb_kb,
            "boot_swaptotal_kb": row.boot_swaptotal_kb, "boot_hugetlb_kb": row.boot_hugetlb_kb,
            "boot_writers": "; ".join(row.boot_writers), "boot_unmodelled": "; ".join(row.boot_unmodelled),
            "ratio100_commit_limit_kb": risk.ratio100_commit_limit_kb,
            "locked_out_by_ratio100": risk.locked_out_by_ratio100,
            "plan_verdict": row.plan_verdict, "planned_commit_limit_kb": row.planned_commit_limit_kb,
            "planned_sysctl": " ".join("%s=%s" % kv for kv in sorted(row.planned_sysctl.items())),
            "shadowed_keys": len(row.shadowed),
            "databases": None if row.databases is None else "; ".join(row.databases),
            "database_configured_peak_kb": row.database_configured_peak_kb, "databases_fit": row.databases_fit,
            "findings": "; ".join(risk.findings), "message": row.message,
        }
        writer.writerow([csv_cell(values[c]) for c in CSV_COLUMNS])
    return out.getvalue()


# Chart geometry (px). Each host is scaled to its own largest value: fleets mix 4 GiB VMs
# and 1 TiB hosts, and what matters is each host's bars relative to each other.
_LABEL_W = 250
_LABEL_CHARS = 30  # bold 12 px sans-serif in the label column
_BAR_W = 560
_VALUE_W = 170
_ROW_H = 58
_BAR_H = 12
_TOP = 44
_BARS = (
    ("committed_as_kb", "Committed_AS", "#b3261e"),
    ("commit_limit_kb", "CommitLimit in force", "#1a73e8"),
    ("backable_kb", "RAM + swap can back", "#9e9e9e"),
)
_PLANNED_COLOUR = "#2e7d32"


def render_svg(ordered: Sequence[Tuple[AuditRow, Assessment]]) -> str:
    width = _LABEL_W + _BAR_W + _VALUE_W
    height = _TOP + _ROW_H * max(1, len(ordered)) + 10
    esc = html_text
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="sans-serif" font-size="12">' % (width, height, width, height),
        "<title>Committed_AS vs CommitLimit vs what RAM + swap can back, per host, worst first</title>",
    ]
    x = _LABEL_W
    for _attr, label, colour in _BARS:
        parts.append('<rect x="%d" y="8" width="12" height="12" fill="%s"/><text x="%d" y="18">%s</text>'
                     % (x, colour, x + 16, esc(label)))
        x += 20 + 8 * len(label)
    parts.append('<line x1="%d" y1="8" x2="%d" y2="22" stroke="%s" stroke-width="3"/><text x="%d" y="18">'
                 'planned CommitLimit</text>' % (x + 4, x + 4, _PLANNED_COLOUR, x + 12))
    for index, (row, risk) in enumerate(ordered):
        y = _TOP + index * _ROW_H
        parts.append('<g class="host" data-host="%s" data-risk="%s" transform="translate(0,%d)">'
                     % (esc(row.host), risk.level, y))
        parts.append('<rect x="0" y="0" width="6" height="%d" fill="%s"/>' % (_ROW_H - 8, LEVEL_COLOURS[risk.level]))
        # A name too long for the label column is cut visibly (the table below has it whole), never mid-line.
        label = row.host if len(row.host) <= _LABEL_CHARS else row.host[:_LABEL_CHARS - 1] + "\u2026"
        parts.append('<text x="12" y="16" font-weight="bold">%s<title>%s</title></text>' % (esc(label), esc(row.host)))
        sub = risk.level
        if row.source == SOURCE_CACHED:
            sub += " - " + CACHED_LABEL
        elif row.status != STATUS_OK:
            sub += " - " + row.status
        elif row.live_mode is not None:
            sub += " - mode %d" % row.live_mode
        parts.append('<text x="12" y="32" fill="%s">%s</text>' % (LEVEL_COLOURS[risk.level], esc(sub)))
        if risk.headroom_pct is not None:
            parts.append('<text x="12" y="46" fill="#555">headroom %s (%.1f %%)</text>'
                         % (esc(human_kb(risk.headroom_kb)), risk.headroom_pct))
        values = [getattr(row, attr) for attr, _label, _colour in _BARS]
        scale_kb = max([v for v in values + [row.planned_commit_limit_kb] if v] or [0])
        if not scale_kb:
            parts.append('<text x="%d" y="28" fill="#757575">no memory data (%s)</text>'
                         % (_LABEL_W, esc(row.status if row.status != STATUS_OK else row.source)))
            parts.append("</g>")
            continue
        for bar_index, ((attr, label, colour), value) in enumerate(zip(_BARS, values)):
            by = 4 + bar_index * (_BAR_H + 3)
            if value is None:
                parts.append('<text x="%d" y="%d" fill="#757575">%s unknown</text>' % (_LABEL_W, by + 10, esc(label)))
                continue
            bw = max(1, int(_BAR_W * value / scale_kb))
            # CommitLimit is only enforced in mode 2: drawn pale otherwise.
            opacity = "0.35" if attr == "commit_limit_kb" and row.live_mode != 2 else "1"
            parts.append('<rect class="%s" x="%d" y="%d" width="%d" height="%d" fill="%s" fill-opacity="%s">'
                         '<title>%s: %d kB</title></rect>'
                         % (attr, _LABEL_W, by, bw, _BAR_H, colour, opacity, esc(label), value))
            parts.append('<text x="%d" y="%d" fill="#333">%s</text>'
                         % (_LABEL_W + bw + 4, by + 10, esc(human_kb(value))))
        if row.planned_commit_limit_kb:
            px = _LABEL_W + int(_BAR_W * row.planned_commit_limit_kb / scale_kb)
            parts.append('<line class="planned" x1="%d" y1="1" x2="%d" y2="%d" stroke="%s" stroke-width="3">'
                         '<title>planned CommitLimit: %d kB</title></line>'
                         % (px, px, 3 * (_BAR_H + 3) + 5, _PLANNED_COLOUR, row.planned_commit_limit_kb))
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


# Lines break between words only: a header, badge, host name, number or live mode is never broken inside a word
# (each column is at least as wide as its longest word), and a size keeps its unit on its line (&nbsp;). The
# plan and the free-text findings have a row of their own under their host's, as wide as the table, so they
# neither widen it nor squeeze its columns; only there may a long path break to fit. Where the window is narrower
# than the table, it scrolls sideways in its own box, never the page.
_CSS = """
body{font-family:sans-serif;margin:24px;color:#222}
.table-box{overflow-x:auto;margin-top:16px}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border:1px solid #ddd;padding:4px 5px;vertical-align:top;overflow-wrap:normal;hyphens:manual}
th{background:#f3f3f3;text-align:left}
td.host{white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
td.num.headroom{white-space:normal}
tr.findings td{border-top:none;color:#333;padding-left:16px;overflow-wrap:anywhere}
tr.findings ul{margin:2px 0 0;padding-left:16px}
.badge{color:#fff;border-radius:3px;padding:1px 5px;font-size:12px;white-space:nowrap}
.note{color:#555;font-size:13px;max-width:1000px}
"""


# The table's columns; each host's plan and findings follow in a row of their own.
_HTML_COLUMNS = ("Host", "Risk", "Source", "Mode (live)", "CommitLimit", "Committed_AS", "RAM+swap can back", "Headroom",
                 "ratio=100 locks out")


def _unbroken(text: str) -> str:
    """HTML for a number and its unit that the browser keeps on one line."""
    return html_text(text).replace(" ", "&nbsp;")


def render_html(rows: Sequence[AuditRow], generated_at: str = "") -> str:
    """A self-contained page: inline CSS and SVG, no script, no external resource."""
    ordered = order_by_risk(rows)
    counts = summary_counts(ordered)
    esc = html_text
    summary = ", ".join(
        '<span class="badge" style="background:%s">%s %d</span>' % (LEVEL_COLOURS[level], level, counts[level])
        for level in LEVELS
    )
    body_rows = []
    for row, risk in ordered:
        # The size and the share may sit on two lines, each whole.
        headroom = "-" if risk.headroom_kb is None else "%s (%s)" % (
            _unbroken(human_kb(risk.headroom_kb)), _unbroken("%.1f %%" % (risk.headroom_pct or 0.0)))
        locked = {None: "-", True: "<b>yes</b>", False: "no"}[risk.locked_out_by_ratio100]
        body_rows.append(
            "<tr class=\"host\"><td class=\"host\">%s</td><td><span class=\"badge\" style=\"background:%s\">%s</span>"
            "</td><td>%s</td><td class=\"mode\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
            "<td class=\"num\">%s</td><td class=\"num headroom\">%s</td><td>%s</td></tr>" % (
                esc(row.host), LEVEL_COLOURS[risk.level], risk.level, esc(_source_text(row)),
                esc(_live_limit_text(row)), human_kb(row.commit_limit_kb), human_kb(row.committed_as_kb),
                human_kb(row.backable_kb), headroom, locked))
        databases = "" if row.databases is None else " <b>Databases</b> %s" % esc(_databases_text(row))
        body_rows.append('<tr class="findings"><td colspan="%d"><b>Plan</b> %s%s%s</td></tr>' % (
            len(_HTML_COLUMNS), esc(_planned_text(row)), databases,
            "<ul>%s</ul>" % "".join("<li>%s</li>" % esc(f) for f in risk.findings) if risk.findings else ""))
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Overcommit audit</title><style>%s</style></head>
<body>
<h1>Overcommit audit</h1>
<p>%s%d hosts: %s &middot; unreachable %d &middot; failed %d &middot; %s %d &middot; locked out by ratio=100: %d</p>
<p class="note">Per host, worst first: <b>Committed_AS</b> (memory promised to processes), the <b>CommitLimit</b> in
force (enforced only in mode 2, pale otherwise) and what <b>RAM + swap can back</b> (RAM - hugetlb - kernel reserve +
swap, the planner's upper bound); the green tick is the planned CommitLimit. Each host is drawn to its own scale.
Headroom: mode 2 = CommitLimit - admin and user reserves - one page - Committed_AS; mode 0/1 = RAM + swap can back - Committed_AS.</p>
%s
<div class="table-box"><table>
<tr>%s</tr>
%s
</table></div>
</body></html>
""" % (_CSS, esc(generated_at) + " &middot; " if generated_at else "", counts["hosts"], summary,
       counts["unreachable"], counts["failed"], CACHED_LABEL, counts["cached_facts"],
       counts["locked_out_by_ratio100"], render_svg(ordered), "".join("<th>%s</th>" % esc(c) for c in _HTML_COLUMNS),
       "\n".join(body_rows))


RENDERERS = ("markdown", "html", "json", "csv")


def rows_from_dicts(items: Sequence[Mapping[str, Any]], expected_hosts: Sequence[str] = ()) -> List[AuditRow]:
    """Rows back from the plain dicts that travel through Ansible variables.

    A host of expected_hosts without a row (the play failed for it before its row was
    built) gets a failed row: the report never silently drops a host.
    """
    names = set(AuditRow.__dataclass_fields__)
    rows = []
    for item in items:
        data = {k: v for k, v in item.items() if k in names}
        for name in _TUPLE_FIELDS:  # lists, after a trip through Ansible's variables
            data[name] = tuple(str(m) for m in data.get(name) or ())
        data["planned_sysctl"] = dict(data.get("planned_sysctl") or {})
        if data.get("databases") is not None:
            data["databases"] = tuple(str(name) for name in data["databases"])
        rows.append(AuditRow(**data))
    seen = {row.host for row in rows}
    rows.extend(AuditRow(host=str(host), status=STATUS_FAILED, message="no audit row: the play failed for this host")
                for host in expected_hosts if str(host) not in seen)
    return rows


def render(rows: Sequence[AuditRow], fmt: str, generated_at: str = "") -> str:
    if fmt == "markdown":
        return render_markdown(rows, generated_at)
    if fmt == "html":
        return render_html(rows, generated_at)
    if fmt == "json":
        return render_json(rows, generated_at)
    if fmt == "csv":
        return render_csv(rows)
    raise ValueError("format must be one of %s, got %r" % (", ".join(RENDERERS), fmt))
