# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What oom_priority does on a host, decided from what the host holds: pure. No Ansible, no I/O.

    the module's options      -> refused before the host is read, or a Request (validate_request)
    Request + rules.HostUnits -> per unit: the drop-in to write, the live write, or why not (decide)

The rules, the units' model and the read-only report of overcommit_info (describe_units) are
in rules.py; this is the part only oom_priority runs, kept apart so that an audit, which runs
overcommit_info on every host, does not compile it (AnsiballZ ships no bytecode).

Three things this file guarantees, whatever the options say:
* a live write only ever targets a unit's main PID (never its children, never its cgroup);
* a PostgreSQL postmaster is lowered live only when its environment already carries
  PG_OOM_ADJUST_FILE, otherwise every new backend would inherit the negative score;
* no negative value is written inside a container, where it has no effect (and where older
  systemd versions fail the unit with 206/OOM_ADJUST).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence

from ansible_collections.dbfleet.memory.plugins.module_utils._common.profiles import DROPIN_PRIORITY_RANGE as PRIORITY_RANGE
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import FileChange
from ansible_collections.dbfleet.memory.plugins.module_utils._oom.rules import (
    LIVE_CHOICES,
    OOM_POLICIES,
    OOM_SCORE_ADJ_MAX,
    OOM_SCORE_ADJ_MIN,
    OUR_NAME,
    OUR_SUFFIX,
    PG_ENV_FILE,
    PROFILES,
    RULES,
    SYSTEMD_ETC,
    DatabaseRule,
    HostUnits,
    LiveWrite,
    OomInputError,
    Request,
    UnitDecision,
    UnitFile,
    UnitState,
    _int_or_none,
    candidate_names,
    dropin_owner,
    find_targets,
    matching_unit_files,
    rule_for_unit,
)


def service_settings(text: str) -> Dict[str, str]:
    """The last assignment of each key in a unit file's [Service] section (an empty one resets)."""
    out: Dict[str, str] = {}
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service":
            continue
        key, eq, value = line.partition("=")
        if not eq:
            continue
        key, value = key.strip(), value.strip()
        if key == "Environment":
            out[key] = (out.get(key, "") + " " + value).strip() if value else ""
        else:
            out[key] = value
    return out


_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+\.service")


def _valid_unit_name(name: str) -> bool:
    # fullmatch: a "$" would let "mariadb.service\n" through.
    return _UNIT_NAME.fullmatch(name) is not None


def validate_request(profiles: Sequence[str], units: Sequence[str], oom_score_adj: Optional[int],
                     oom_policy: Optional[str], priority: int, live: str, allow_unkillable: Sequence[str],
                     state: str = "present") -> None:
    """Every option checked before the host is read, so bad input changes nothing."""
    unknown = [p for p in profiles if p not in RULES]
    if unknown:
        raise OomInputError("profile", "unknown %s (choices: %s)" % (", ".join(unknown), ", ".join(PROFILES)))
    if not profiles and not units:
        raise OomInputError("profile", "give at least one profile (choices: %s) or units" % ", ".join(PROFILES))
    for option, names in (("units", units), ("allow_unkillable", allow_unkillable)):
        bad = [n for n in names if not _valid_unit_name(n)]
        if bad:
            raise OomInputError(option, "not a service unit name: %s (expected NAME.service, "
                                        "a template instance NAME@INSTANCE.service or a template NAME@.service)"
                                % ", ".join(repr(b) for b in bad))
    if state == "present":
        # absent may name one, to remove what an earlier run wrote there.
        for unit in units:
            database = foreign_database(unit, profiles)
            if database:
                raise OomInputError("units", foreign_unit_message(unit, database, profiles))
    if oom_score_adj is not None and not OOM_SCORE_ADJ_MIN <= oom_score_adj <= OOM_SCORE_ADJ_MAX:
        raise OomInputError("oom_score_adj", "must be between %d and %d, got %d"
                            % (OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX, oom_score_adj))
    if oom_policy is not None and oom_policy not in OOM_POLICIES:
        raise OomInputError("oom_policy", "must be one of %s, got %r" % (", ".join(OOM_POLICIES), oom_policy))
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise OomInputError("dropin_priority", "must be between %d and %d (a two-digit file name prefix), got %d"
                            % (low, high, priority))
    if live not in LIVE_CHOICES:
        raise OomInputError("live", "must be one of %s, got %r" % (", ".join(LIVE_CHOICES), live))
    if live == "cgroup":
        # Accepted as a word only to say no: a write to every process of the unit would give
        # each existing child (a PostgreSQL backend, a Redis save child) the protected score.
        raise OomInputError("live", "refused: writing every process of a unit's cgroup would protect its "
                                    "children too (a runaway backend could no longer be killed). Only the main "
                                    "PID is ever written; use live=auto (main PID) or live=never (next restart).")


def foreign_database(unit: str, profiles: Sequence[str]) -> Optional[str]:
    """The database ``unit`` runs when the profiles name databases and not that one, else None.
    Such a unit is refused rather than given a rule the user did not ask for: PostgreSQL's -1000
    and PG_OOM_ADJUST_FILE in MariaDB's drop-in would make a single-process server unkillable."""
    databases = [p for p in profiles if p != "generic"]
    if not databases:
        return None
    rule = rule_for_unit(unit, profiles)
    return rule.name if rule.name != "generic" and rule.name not in databases else None


def foreign_unit_message(unit: str, database: str, profiles: Sequence[str]) -> str:
    return ("%s runs %s, which is not in profile (%s): a unit gets only its own database's settings; add it to "
            "profile, or leave the unit out of units" % (unit, database, ", ".join(profiles)))


def _encoded(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode("utf-8")


@dataclass
class Decision:
    request: Request
    units: List[UnitDecision]
    file_changes: List[FileChange]
    live_writes: List[LiveWrite]
    refusals: List[str]
    warnings: List[str]

    @property
    def changed(self) -> bool:
        return bool(self.file_changes or self.live_writes)

    @property
    def daemon_reload(self) -> bool:
        return bool(self.file_changes)


def dropin_path(unit_or_template: str, priority: int) -> str:
    return "%s/%s.d/%02d%s" % (SYSTEMD_ETC, unit_or_template, priority, OUR_SUFFIX)


def render_dropin(owner: str, rule: DatabaseRule, settings: Mapping[str, str], notes: Sequence[str]) -> str:
    lines = [
        "# Managed by Ansible: dbfleet.memory.oom_priority. Do not edit; the next run overwrites this file.",
        "# Remove it with the role's oom_priority_state: absent (the unit's own settings apply again).",
        "# %s (%s): %s" % (owner, rule.name, rule.why),
        "# Source: %s" % rule.source,
    ]
    lines.extend("# %s" % note for note in notes)
    lines.append("[Service]")
    for key in ("OOMScoreAdjust", "Environment", "OOMPolicy", "ManagedOOMPreference"):
        if key in settings:
            lines.append("%s=%s" % (key, settings[key]))
    return "\n".join(lines) + "\n"


# postgresql-common's pg_ctlcluster (Debian, Ubuntu), run as root by postgresql@.service, writes
# this to its own /proc/self/oom_score_adj after systemd applied OOMScoreAdjust=, sets
# PG_OOM_ADJUST_FILE itself (9.5+) and replaces the whole environment with the cluster's
# 'environment' file (pg_ctlcluster, postgresql-common 248). A unit value or Environment= never
# reaches the postmaster there.
PG_CTLCLUSTER_SCORE = -900


PG_CTLCLUSTER_NOTE = ("pg_ctlcluster starts the postmaster at %d itself, after systemd's OOMScoreAdjust=, with "
                      "PG_OOM_ADJUST_FILE set, and replaces the unit's environment with the cluster's own: only "
                      "OOMPolicy= is written" % PG_CTLCLUSTER_SCORE)


def runs_pg_ctlcluster(fragment_text: Optional[str]) -> bool:
    """Whether a unit file's ExecStart= runs postgresql-common's pg_ctlcluster."""
    return "pg_ctlcluster" in service_settings(fragment_text or "").get("ExecStart", "")


def _owner_fragment(owner: str, units: Sequence[UnitState], host: HostUnits) -> Optional[str]:
    """The unit file text of an owner: a loaded unit's fragment, else the file found on disk."""
    for unit in units:
        if host.file_texts.get(unit.fragment_path):
            return host.file_texts[unit.fragment_path]
    found = host.unit_files.get(owner)
    return host.file_texts.get(found.path) if found else None


@dataclass
class Wanted:
    """What one owner's drop-in should hold, and what else deciding it found."""

    settings: Dict[str, str] = field(default_factory=dict)
    score: Optional[int] = None  # the score the main PID should have; None: leave it
    ineffective: bool = False  # the value cannot take effect here (a negative score in a container)
    refusal: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _wanted_settings(rule: DatabaseRule, request: Request, owner: str, host: HostUnits,
                     pg_ctlcluster: bool = False) -> Wanted:
    """The drop-in's settings for one owner, and the score its main PID should have."""
    wanted = Wanted()
    value = request.oom_score_adj if request.oom_score_adj is not None else rule.oom_score_adj
    asked = request.oom_score_adj is not None
    if pg_ctlcluster:
        wanted.notes.append(PG_CTLCLUSTER_NOTE)
        if asked:
            wanted.warnings.append("%s: oom_score_adj=%d not written: %s" % (owner, value, PG_CTLCLUSTER_NOTE))
        value = None
    wanted.score = value
    if value is not None and value <= OOM_SCORE_ADJ_MIN and rule.single_process \
            and owner not in request.allow_unkillable:
        wanted.refusal = (
            "%s: OOMScoreAdjust=%d refused for %s, a single-process database: if it is itself the runaway, the "
            "kernel has nothing it may kill and a host-wide OOM panics. Use -999 or higher, or name the unit in "
            "allow_unkillable to accept that." % (owner, value, rule.name))
        return replace(wanted, score=None)
    if value is not None and value < 0 and host.container:
        text = ("%s: OOMScoreAdjust=%d is ineffective in a container (%s; %s): lowering a score needs "
                "CAP_SYS_RESOURCE in the host's namespace, and older systemd fails the unit with 206/OOM_ADJUST. "
                "Not written." % (owner, value, host.container, host.container_evidence))
        if asked:
            wanted.refusal = "Nothing changed: " + text + " Set it on the container host, or leave oom_score_adj unset."
            return replace(wanted, score=None)
        wanted.warnings.append(text)
        wanted.notes.append("OOMScoreAdjust=%d: ineffective in a container (%s), not written" % (value, host.container))
        wanted.ineffective = True
        wanted.score = None
    elif value is not None:
        wanted.settings["OOMScoreAdjust"] = str(value)
    if rule.environment and not pg_ctlcluster:
        wanted.settings["Environment"] = " ".join("%s=%s" % kv for kv in rule.environment)
    policy = request.oom_policy or rule.oom_policy
    if policy:
        wanted.settings["OOMPolicy"] = policy
    if host.oomd_active and wanted.settings:
        wanted.settings["ManagedOOMPreference"] = "avoid"
    return wanted


def _later_overrides(owner_dropin: str, unit: UnitState, host: HostUnits, keys: Sequence[str]) -> List[str]:
    """Drop-ins of the unit that sort after ours and set a key we set: systemd applies them last."""
    ours_name = owner_dropin.rsplit("/", 1)[1]
    found = []
    for path in unit.dropin_paths:
        name = path.rsplit("/", 1)[1]
        if path == owner_dropin or OUR_NAME.match(name) or name <= ours_name:
            continue
        text = host.file_texts.get(path)
        if text is None:
            continue
        set_there = service_settings(text)
        for key in keys:
            if key in set_there:
                found.append("%s sets %s=%s" % (path, key, set_there[key]))
    return found


def unit_own_score(unit: UnitState, host: HostUnits) -> Optional[int]:
    """OOMScoreAdjust= from the unit's fragment and its drop-ins other than ours, in systemd's order;
    0 (systemd's own score) when none sets it; None when a file cannot be read."""
    value = "0"
    for path in (unit.fragment_path,) + tuple(p for p in unit.dropin_paths
                                              if not OUR_NAME.match(p.rsplit("/", 1)[1])):
        if not path:
            continue
        text = host.file_texts.get(path)
        if text is None:
            return None
        settings = service_settings(text)
        if "OOMScoreAdjust" in settings:
            value = settings["OOMScoreAdjust"] or "0"
    return _int_or_none(value)


def _live(decision: UnitDecision, unit: UnitState, rule: DatabaseRule, score: Optional[int],
          host: HostUnits, request: Request) -> None:
    """The live decision for one running unit: its main PID only, under the PostgreSQL rule."""
    if score is None:
        decision.live = "left alone: no value to hold"
        return
    if not unit.running:
        decision.live = "not running: the value applies at the next start"
        return
    if request.live == "never":
        decision.live = "live=never: takes effect at the next restart"
        return
    proc = host.processes.get(unit.main_pid)
    if proc is None or proc.oom_score_adj is None:
        decision.live = "main PID %d: oom_score_adj unreadable; takes effect at the next restart" % unit.main_pid
        return
    if proc.oom_score_adj == score:
        decision.live = "main PID %d already at %d" % (unit.main_pid, score)
        return
    if rule.name == "postgresql" and score < 0 and not proc.readable_environ:
        decision.live = ("takes effect at the next restart: the postmaster's environment (PID %d) is unreadable, so "
                         "whether its backends reset their score is unknown" % unit.main_pid)
        return
    if rule.name == "postgresql" and score < 0 and PG_ENV_FILE not in proc.environ_names:
        decision.live = ("takes effect at the next restart: the postmaster (PID %d) was started without %s, so "
                         "every new backend would inherit %d" % (unit.main_pid, PG_ENV_FILE, score))
        return
    decision.live_write = LiveWrite(unit.unit_id, unit.main_pid, proc.oom_score_adj, score)
    decision.live = "main PID %d: %d -> %d (its existing children keep theirs)" % (
        unit.main_pid, proc.oom_score_adj, score)


def _restore_live(decision: UnitDecision, unit: UnitState, rule: DatabaseRule, host: HostUnits,
                  request: Request) -> None:
    """Bring the main PID back to the unit's own value, once our drop-in goes."""
    # Once our drop-in is gone and systemd reloaded, systemd's own answer is the authority;
    # before that (check mode, the first pass) the unit's files tell.
    ours_in_effect = any(OUR_NAME.match(p.rsplit("/", 1)[1]) for p in unit.dropin_paths)
    own = unit.oom_score_adj if not (ours_in_effect or unit.need_daemon_reload) else unit_own_score(unit, host)
    _live(decision, unit, rule, own, host, request)


def in_scope(owner: str, request: Request) -> bool:
    """Whether our drop-in for ``owner`` belongs to this request: its profiles' patterns or its
    units name it (also when the unit itself is gone, so absent cleans up after a removed package)."""
    if owner in request.units or dropin_owner(owner) in request.units \
            or any(dropin_owner(u) == owner for u in request.units):
        return True
    return bool(matching_unit_files(candidate_names(request.profiles, ()), {owner: UnitFile(owner, "", False)}))


def decide(request: Request, host: HostUnits) -> Decision:
    """What a run does on this host. Refusals are collected; the module changes nothing if any."""
    refusals: List[str] = []
    warnings: List[str] = []
    decisions: List[UnitDecision] = []
    changes: List[FileChange] = []
    writes: List[LiveWrite] = []
    owners, skipped = find_targets(request, host)
    wanted_paths = set()
    for owner in sorted(owners):
        units = owners[owner]
        rule = rule_for_unit(owner, request.profiles)
        path = dropin_path(owner, request.priority)
        if request.state == "absent":
            for unit in units:
                d = UnitDecision(unit.unit_id, rule.name, "removed")
                _restore_live(d, unit, rule, host, request)
                decisions.append(d)
                if d.live_write:
                    writes.append(d.live_write)
            continue
        # An alias given in units resolves to a unit of another database: found only now.
        database = foreign_database(owner, request.profiles)
        if database:
            refusals.append("Nothing changed: " + foreign_unit_message(owner, database, request.profiles))
            continue
        pg_ctlcluster = rule.name == "postgresql" and runs_pg_ctlcluster(_owner_fragment(owner, units, host))
        wanted = _wanted_settings(rule, request, owner, host, pg_ctlcluster)
        refusals.extend([wanted.refusal] if wanted.refusal else [])
        warnings.extend(wanted.warnings)
        settings, score, notes = wanted.settings, wanted.score, wanted.notes
        if not settings:
            status = "ineffective" if wanted.ineffective else "report-only"
            if not units:
                decisions.append(UnitDecision(owner, rule.name, status, live="nothing to write: " + rule.why,
                                              notes=notes))
            for unit in units:
                d = UnitDecision(unit.unit_id, rule.name, status, live="nothing to write: " + rule.why, notes=notes)
                if any(OUR_NAME.match(p.rsplit("/", 1)[1]) for p in unit.dropin_paths):
                    # A value of ours from an earlier run goes with its drop-in, as with absent.
                    _restore_live(d, unit, rule, host, request)
                    if d.live_write:
                        writes.append(d.live_write)
                decisions.append(d)
            continue
        wanted_paths.add(path)
        text = render_dropin(owner, rule, settings, notes)
        before = host.ours.get(path)
        if before != text:
            changes.append(FileChange(path, _encoded(before), text.encode("utf-8"),
                                      "the %s drop-in for %s" % (rule.name, owner), prune_dir=True))
        for unit in units:
            later = _later_overrides(path, unit, host, list(settings))
            if later:
                refusals.append("Nothing changed: %s: a drop-in applied after ours would override it: %s. Remove "
                                "that setting or pick a later dropin_priority." % (unit.unit_id, "; ".join(later)))
        status = "ineffective" if wanted.ineffective else "managed"
        if not units:
            decisions.append(UnitDecision(owner, rule.name, status, path, settings,
                                          live="no instance loaded: applies when one starts", notes=notes))
        for unit in units:
            d = UnitDecision(unit.unit_id, rule.name, status, path, settings, notes=list(notes))
            _live(d, unit, rule, score, host, request)
            if pg_ctlcluster:
                d.live = "left to pg_ctlcluster, which sets the postmaster's score at each start"
            decisions.append(d)
            if d.live_write:
                writes.append(d.live_write)
    # Our drop-ins for these owners at another priority (or all of them, for absent) go.
    for path, text in sorted(host.ours.items()):
        owner = path[len(SYSTEMD_ETC) + 1:].rsplit("/", 1)[0][:-len(".d")]
        if path in wanted_paths or not in_scope(owner, request):
            continue
        if request.state == "absent":
            why = "state=absent"
        elif path == dropin_path(owner, request.priority):
            why = "nothing to write for %s any more" % owner
        else:
            why = "our drop-in at another priority"
        changes.append(FileChange(path, _encoded(text), None, why, prune_dir=True))
    decisions.extend(skipped)
    for d in skipped:
        if d.status == "missing":
            warnings.append("%s: not found (%s)" % (d.unit, d.live))
    return Decision(request, decisions, changes, writes, refusals, warnings)
