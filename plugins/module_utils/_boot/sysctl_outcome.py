# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What replays (sysctl_replay) come to, for the callers that need more than one replay's end state.

    boot_end(sources, boot_tool)        the managed keys after a boot under every rule set, or what
                                        they agree on, never a guess (state=absent restores this)
    diff_end_state, report              one replay against the values expected (the lab, tests)
    replay_all                          one replay per rule set
    sources_from_texts, with_file       sources from texts, and "what if this file said that"

Kept apart from the replay itself so that a state=present run, which replays but asks none of
this, does not compile it (AnsiballZ ships no bytecode). Pure Python, no Ansible import.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot.sysctl_replay import (
    RULE_SETS,
    Replay,
    ToolRules,
    decided_by,
    replay,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk


def diff_end_state(result: Replay, expected: Mapping[str, object]) -> List[str]:
    """One message per expected key whose end value differs, naming the file, line and value.

    ``expected`` values follow _kernel.sysctl.plain_decimal (ValueError otherwise)."""
    messages = []
    for key in sorted(expected):
        want = sk.plain_decimal(key, expected[key])
        got = result.end.get(key)
        if got == want:
            continue
        decision = decided_by(result, key)
        messages.append("%s: %s ends at %s, not %s: %s" % (result.rules.name, key, got, want, decision.message))
    return messages


def replay_all(
    sources: Mapping[str, sf.SysctlSource],
    start: Mapping[str, Optional[str]],
    rule_sets: Sequence[ToolRules] = RULE_SETS,
    existing_keys: Sequence[str] = (),
) -> Dict[str, Replay]:
    """``replay`` under every rule set, keyed by rule name."""
    return {rules.name: replay(sources, rules, start, existing_keys) for rules in rule_sets}


@dataclass(frozen=True)
class BootEnd:
    """What the boot leaves in the managed keys, as far as it can be told without a guess."""

    end: Dict[str, str]  # every managed key the deciding tools agree on (all four when they all agree)
    rules: Tuple[str, ...]  # the rule sets that decided: all of them, or those of the host's own boot tool
    disputed: Dict[str, Dict[str, str]]  # key -> {rule set -> end value} for the keys they do not agree on
    note: Optional[str]  # when the tools disagree: who ends where, and the file and line that decide


def boot_end(
    sources: Mapping[str, sf.SysctlSource],
    boot_tool: Optional[str],
    rule_sets: Sequence[ToolRules] = RULE_SETS,
    start: Optional[Mapping[str, Optional[str]]] = None,
    after: Optional[Callable[[Replay], List[Replay]]] = None,
) -> BootEnd:
    """The end values a boot from ``start`` gives the managed keys, under every rule set, each
    continued by ``after`` (the writers after the boot tool, such as tuned: one replay per version).

    When every rule set ends alike, that is the answer. When they do not, the host's own boot
    tool (``boot_tool``, TOOL_SYSTEMD or TOOL_PROCPS, None when it cannot be told) decides if
    its versions agree among themselves. Otherwise only the keys the deciding rule sets agree
    on are given, and the rest is ``disputed``: never a guess. overcommit_ratio and
    overcommit_kbytes are one setting (a write to one zeroes the other), so they are given or
    disputed together.
    """
    start = sk.KERNEL_BOOT_DEFAULTS if start is None else start  # a boot, unless asked otherwise
    replays = [(rules, continued) for rules in rule_sets
               for continued in (after or _alone)(replay(sources, rules, start))]
    note = None
    if len({_frozen(r.end) for _rules, r in replays}) > 1:
        note = "the modelled tools disagree about the remaining files: " + _disagreement(replays)
        own = [(rules, r) for rules, r in replays if rules.tool == boot_tool]
        replays = own or replays
    agreed = {key: replays[0][1].end[key] for key in sk.MANAGED_KEYS
              if len({r.end[key] for _rules, r in replays}) == 1}
    if sk.RATIO not in agreed or sk.KBYTES not in agreed:
        agreed.pop(sk.RATIO, None)
        agreed.pop(sk.KBYTES, None)
    disputed = {key: {r.label: r.end[key] for _rules, r in replays} for key in sk.MANAGED_KEYS if key not in agreed}
    return BootEnd(agreed, tuple(r.label for _rules, r in replays), disputed, note)


def _alone(result: Replay) -> List[Replay]:
    return [result]


def _frozen(state: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """The managed part of an end state: what state=absent restores, and all tools must agree on."""
    return tuple(sorted((k, v) for k, v in state.items() if k in sk.MANAGED_KEYS))


def _disagreement(replays: Sequence[Tuple[ToolRules, Replay]]) -> str:
    """One part per group of rule sets that end alike: the names, then why each differing key ends there."""
    differing = [key for key in sk.MANAGED_KEYS if len({r.end[key] for _rules, r in replays}) > 1]
    groups = OrderedDict()  # type: OrderedDict[Tuple[Tuple[str, str], ...], List[Tuple[ToolRules, Replay]]]
    for rules, r in replays:
        groups.setdefault(_frozen(r.end), []).append((rules, r))
    return " | ".join("%s: %s" % (", ".join(r.label for _rules, r in members),
                                  "; ".join(decided_by(members[0][1], key).message for key in differing))
                      for members in groups.values())


def sources_from_texts(files: Mapping[str, Optional[object]]) -> Dict[str, sf.SysctlSource]:
    """Sources from {path: text or bytes, or None for a /dev/null mask}: for tests and callers with content."""
    out = {}
    for path, data in files.items():
        if data is None:
            out[path] = sf.SysctlSource(path, None, sf.STATUS_MASKED, "symlink to /dev/null", sf.KIND_DEV_NULL)
        else:
            raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogateescape")
            out[path] = sf.SysctlSource(path, raw, sf.STATUS_FILE, None if raw else "empty file")
    return out


def with_file(sources: Mapping[str, sf.SysctlSource], path: str, data: Optional[bytes]) -> Dict[str, sf.SysctlSource]:
    """``sources`` with ``path`` replaced by a regular file holding ``data`` (None: the file removed).

    For "what would the boot do if our drop-in had this content / were gone".
    """
    out = dict(sources)
    if data is None:
        out.pop(path, None)
    else:
        out[path] = sf.SysctlSource(path, data, sf.STATUS_FILE, None if data else "empty file")
    return out


def report(result: Replay, expected: Mapping[str, object]) -> Dict[str, object]:
    """A JSON-friendly summary of one replay for a module result or the audit."""
    differences = diff_end_state(result, expected)
    return {
        "rules": result.rules.name,
        "tool": result.rules.tool,
        "version": result.rules.version,
        "ok": not differences,
        "end": dict(result.end),
        "differences": differences,
        "decided_by": {key: decided_by(result, key).message for key in sorted(result.end)},
        "problems": [str(p) for p in result.problems],
        "hung_on": result.hung_on,
        "files": list(result.files),
    }
