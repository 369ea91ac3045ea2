# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the boot (systemd-sysctl) or ``sysctl --system`` (procps) leaves in /proc/sys/vm.

Shadowing is not decided key by key: the kernel couples overcommit_ratio and
overcommit_kbytes (a write to one zeroes the other), and the tools differ in files,
order, parsing and globs. So we *replay* a tool: read the files it reads, parse
each line as it does, order the writes as it does, and push every write of a managed
key through _kernel.sysctl. The end state is then compared with the plan.

Each tool version is a ToolRules value (RULE_SETS lists them); everything a rule
set says was read in the tool's sources at the named tag (see each rule's
``source``) and checked against real tools in the lab suite
tests/lab/test_boot_replay_differential.py.

systemd-sysctl 252 (Debian 12) and 257 (Debian 13) behave the same here:

* files: ``*.conf`` from /etc, /run, /usr/local/lib, /usr/lib ``/sysctl.d`` (Debian
  builds these without split-usr, so not /lib/sysctl.d); names starting with ``.``
  are skipped; a name in a higher directory replaces the same name below, whatever
  it is (a /dev/null link, an empty file or a dangling link then contributes
  nothing); files are read in strcmp order of their names. /etc/sysctl.conf only
  counts through a link in a sysctl.d directory.
* lines end at ``\\n``, ``\\r``, ``\\0`` or pairs of them; a line is stripped of
  space, tab, CR, LF; ``#`` or ``;`` first means comment; ``-`` first means ignore
  a failed write; a line without ``=`` is a warning, unless it starts with ``-``:
  then it is a *negative* entry that keeps globs off that key and replaces any earlier
  assignment of it (the key is then not written at all).
* keys: if the first separator is ``.``, dots and slashes swap; then repeated
  slashes and ``.`` components vanish and one leading slash goes. So ``vm..x``,
  ``.vm.x``, ``vm/x`` and ``vm.x.`` all name vm/x.
* a later assignment of a key with a *different* value replaces the earlier one
  and moves it to the end of the apply order; the *same* value keeps the earlier
  place. All files are parsed before anything is written.
* a glob key (``*?[``) is expanded against /proc/sys and applied at its place in
  the order, skipping every key that has an explicit entry anywhere (any file, any
  order, negative entries included).
* a write is skipped when the file already reads the value as written
  (``"0"`` when kbytes is 0): such a "kbytes = 0" does not zero the ratio.
* the value is written as it stands (no quotes removed, ``#`` is not a comment
  after the start) with a newline.

procps ``sysctl --system`` 4.0.2 (Debian 12) and 4.0.4 (Debian 13):

* files: ``*.conf`` from the five directories including /lib/sysctl.d, hidden names
  included, first directory wins a name (a dangling link or directory there then
  contributes nothing), names in strcmp order; then /etc/sysctl.conf last if it is
  a regular file (after following links).
* lines are split at ``\\n`` only; a NUL ends the line's text; blanks are C isspace
  (also \\v \\f); ``#``/``;`` first is a comment; lines of fewer than two characters
  are ignored; ``-key = v`` ignores nothing for bad values (only missing keys), and
  the key after ``-`` is not stripped (``- vm.x = 1`` names " vm/x": unknown key).
* ``-key`` without ``=`` excludes the key from globs only; explicit assignments of
  it are still written.
* keys: if the first separator is ``.`` dots and slashes swap; the path is used as
  is (``vm..x`` works through the kernel's path walk, ``vm.x.`` does not).
* every assignment is written in file order, duplicates included; no write is
  skipped for an unchanged value, so ``vm.overcommit_kbytes = 0`` zeroes the ratio.
* globs are expanded against /proc/sys at their place; matches that any
  assignment or exclusion names by the same path string are skipped.

procps 4.0.5 and later: an exclusion may be a glob (``-vm.overcommit_*``).

Both tools parse every file before the first write: a file that blocks open or
read (a FIFO, a device other than /dev/null) hangs the tool, and then nothing at
all is applied. Neither tool decodes text: bytes reach the kernel as they are.

Not modelled: systemd's credentials (sysctl.extra), --prefix, kernel.sysctl_writes_strict
other than 1, procps expanding a *file name* as a glob, and systemd 258 and later.

What replays come to beyond one end state (boot_end for state=absent, diffs and reports against
expected values, sources from texts) is sysctl_outcome.py. Pure Python, no Ansible import.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk

TOOL_SYSTEMD = "systemd-sysctl"
TOOL_PROCPS = "sysctl --system"

_SYSTEMD_WHITESPACE = b" \t\n\r"
_C_ISSPACE = b" \t\n\v\f\r"
_GLOB_CHARS = "*?["
_SYSTEMD_LONG_LINE_MAX = 1024 * 1024
_HANGING_KINDS = (sf.KIND_FIFO, sf.KIND_CHAR_DEVICE, sf.KIND_BLOCK_DEVICE)
PROC_SYS = "/proc/sys/"

# Where each managed key lives under /proc/sys.
MANAGED_PATHS = {key.replace(".", "/"): key for key in sk.MANAGED_KEYS}
# Every key a replay follows: the managed ones and those that size the next boot's memory.
TRACKED_PATHS = {key.replace(".", "/"): key for key in sk.TRACKED_KEYS}


@dataclass(frozen=True)
class ToolRules:
    """One tool version's rules for reading sysctl files (see the module docstring)."""

    name: str  # e.g. "systemd-252"
    tool: str  # TOOL_SYSTEMD or TOOL_PROCPS
    version: str
    distro: str  # where this version ships, e.g. "Debian 12"
    source: str  # where the rules were read
    dirs: Tuple[str, ...]  # highest priority first
    reads_sysctl_conf_last: bool
    skips_hidden_files: bool
    systemd_syntax: bool  # line ends, stripping, key normalisation, merging, negative entries
    suppresses_unchanged_writes: bool
    exclusion_globs: bool  # "-vm.overcommit_*" excludes matches from other globs


SYSTEMD_252 = ToolRules(
    name="systemd-252", tool=TOOL_SYSTEMD, version="252", distro="Debian 12",
    source="systemd v252: src/sysctl/sysctl.c, src/basic/sysctl-util.c, src/basic/conf-files.c, "
           "src/basic/fileio.c (read_line_full, write_string_stream_ts), src/basic/path-util.c",
    dirs=sf.SYSCTL_D_DIRS[:4], reads_sysctl_conf_last=False, skips_hidden_files=True,
    systemd_syntax=True, suppresses_unchanged_writes=True, exclusion_globs=False,
)
SYSTEMD_257 = ToolRules(
    name="systemd-257", tool=TOOL_SYSTEMD, version="257", distro="Debian 13",
    source="systemd 257.13 (Debian 13 source): src/sysctl/sysctl.c, src/basic/sysctl-util.c, "
           "src/basic/conf-files.c, src/basic/fileio.c (read_stripped_line, write_string_stream_full)",
    dirs=sf.SYSCTL_D_DIRS[:4], reads_sysctl_conf_last=False, skips_hidden_files=True,
    systemd_syntax=True, suppresses_unchanged_writes=True, exclusion_globs=False,
)
PROCPS_4_0_2 = ToolRules(
    name="procps-4.0.2", tool=TOOL_PROCPS, version="4.0.2", distro="Debian 12",
    source="procps-ng v4.0.2: src/sysctl.c (PreloadSystem, Preload, parse_setting_line, "
           "write_setting_list, WriteSetting, slashdot), local/procio.c",
    dirs=sf.SYSCTL_D_DIRS, reads_sysctl_conf_last=True, skips_hidden_files=False,
    systemd_syntax=False, suppresses_unchanged_writes=False, exclusion_globs=False,
)
PROCPS_4_0_4 = ToolRules(
    name="procps-4.0.4", tool=TOOL_PROCPS, version="4.0.4", distro="Debian 13",
    source="procps-ng v4.0.4: src/sysctl.c, local/procio.c (Debian 4.0.4-9 patches do not touch --system)",
    dirs=sf.SYSCTL_D_DIRS, reads_sysctl_conf_last=True, skips_hidden_files=False,
    systemd_syntax=False, suppresses_unchanged_writes=False, exclusion_globs=False,
)
PROCPS_4_0_5 = ToolRules(
    name="procps-4.0.5", tool=TOOL_PROCPS, version="4.0.5", distro="upstream 4.0.5 and later",
    source="procps-ng v4.0.5..v4.0.6: src/sysctl.c (settinglist_findpath matches exclusion globs)",
    dirs=sf.SYSCTL_D_DIRS, reads_sysctl_conf_last=True, skips_hidden_files=False,
    systemd_syntax=False, suppresses_unchanged_writes=False, exclusion_globs=True,
)

RULE_SETS = (SYSTEMD_252, SYSTEMD_257, PROCPS_4_0_2, PROCPS_4_0_4, PROCPS_4_0_5)
RULES_BY_NAME = {rules.name: rules for rules in RULE_SETS}


@dataclass(frozen=True)
class Entry:
    """One parsed line: an assignment, or an exclusion (value None)."""

    path: str
    lineno: int
    key: str  # systemd: the normalised key (slash form); procps: the /proc/sys path it opens
    value: Optional[bytes]
    ignore_failure: bool = False

    @property
    def is_glob(self) -> bool:
        return any(c in self.key for c in _GLOB_CHARS)

    @property
    def where(self) -> str:
        return "%s:%d" % (self.path, self.lineno)


@dataclass(frozen=True)
class Problem:
    """Something the tool would complain about, or that makes the prediction unsure."""

    path: str
    lineno: Optional[int]
    message: str

    def __str__(self) -> str:
        where = self.path if self.lineno is None else "%s:%d" % (self.path, self.lineno)
        return "%s: %s" % (where, self.message)


@dataclass(frozen=True)
class ReplayWrite:
    """One write of a managed key, in the order the tool makes it."""

    key: str
    raw: bytes  # the value as the tool writes it, without the newline it adds
    path: str
    lineno: int
    accepted: bool
    error: Optional[str]
    before: Dict[str, str]
    after: Dict[str, str]
    suppressed: bool = False  # systemd read the same value and did not write
    glob: Optional[str] = None  # the glob line's key when the write came from a glob
    ignored_tail: bytes = b""  # what the kernel left unread after the number
    tool: Optional[str] = None  # who wrote, when not the replay's own tool (tuned, after the boot tool)

    @property
    def where(self) -> str:
        return "%s:%d" % (self.path, self.lineno)

    @property
    def line(self) -> str:
        return "%s = %s" % (self.key, sk.show(self.raw))

    @property
    def took_effect(self) -> bool:
        return self.accepted and not self.suppressed


@dataclass
class Replay:
    """What one tool version does with a set of files, starting from ``start``."""

    rules: ToolRules
    start: Dict[str, str]
    end: Dict[str, str]
    files: List[str] = field(default_factory=list)  # files read, in order
    writes: List[ReplayWrite] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    hung_on: Optional[str] = None  # the tool blocks reading this file: nothing is applied
    # Writers after the boot tool whose writes are appended here (e.g. "tuned-2.20"), in order.
    after: Tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The rule set, and what wrote after it: "systemd-252", "systemd-252 + tuned-2.20"."""
        return " + ".join((self.rules.name,) + self.after)


@dataclass(frozen=True)
class Decision:
    """Why a key ends where it does."""

    key: str
    value: str
    write: Optional[ReplayWrite]
    side_effect: bool  # the write was to the partner key and zeroed this one
    message: str


# ------------------------------------------------------------------ which files, in which order


def select_files(sources: Mapping[str, sf.SysctlSource], rules: ToolRules) -> List[sf.SysctlSource]:
    """The sources the tool reads, in the order it reads them."""
    chosen = {}  # type: Dict[str, sf.SysctlSource]
    for directory in rules.dirs:
        for src in sources.values():
            if src.directory != directory or not src.name.endswith(".conf"):
                continue
            if rules.skips_hidden_files and src.name.startswith("."):
                continue
            chosen.setdefault(src.name, src)  # the first (highest) directory wins the name
    ordered = [chosen[name] for name in sorted(chosen, key=_name_order)]
    conf = sources.get(sf.SYSCTL_CONF)
    if rules.reads_sysctl_conf_last and conf is not None and conf.status == sf.STATUS_FILE:
        ordered.append(conf)
    return ordered


def _name_order(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")  # strcmp order


# ------------------------------------------------------------------ lines


def _systemd_lines(data: bytes) -> Tuple[List[bytes], Optional[int]]:
    """Lines as systemd's read_line splits them; the second item is the line that was too long."""
    if b"\r" in data or b"\0" in data:
        return _systemd_lines_bytewise(data)
    # Only "\n" ends lines here, so a split gives the same lines as the byte-by-byte reading
    # below, which costs a Python loop per byte and ran ten times per file and run.
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # a final newline ends the last line; it does not start an empty one
    for index, line in enumerate(lines):
        if len(line) >= _SYSTEMD_LONG_LINE_MAX:
            return lines[:index], index + 1
    return lines, None


def _systemd_lines_bytewise(data: bytes) -> Tuple[List[bytes], Optional[int]]:
    """read_line's rules byte by byte: "\r\n" and "\n\r" end one line, "\0" ends one alone."""
    lines = []  # type: List[bytes]
    i, n = 0, len(data)
    while i < n:
        buf = bytearray()
        previous = 0
        while True:
            if len(buf) >= _SYSTEMD_LONG_LINE_MAX:
                return lines, len(lines) + 1
            if i >= n:
                break
            c = data[i]
            eol = 2 if c == 10 else 4 if c == 13 else 1 if c == 0 else 0
            if previous & 1 or (eol == 0 and previous) or (eol and previous & eol):
                break
            i += 1
            if eol:
                previous |= eol
                continue
            buf.append(c)
        lines.append(bytes(buf))
    return lines, None


def _getline_lines(data: bytes) -> List[bytes]:
    """Lines as getline(3) returns them: split after each newline, which is kept."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _lstrip(data: bytes, chars: bytes) -> bytes:
    return data.lstrip(chars)


def _c_rstrip(data: bytes) -> bytes:
    # procps' rstrip never removes the first character: " " stays " ".
    if len(data) <= 1:
        return data
    stripped = data.rstrip(_C_ISSPACE)
    return stripped if stripped else data[:1]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def systemd_normalize(key: str) -> str:
    """systemd's sysctl_normalize: swap separators if the first is a dot, then simplify."""
    first = re.search(r"[/.]", key)
    if first and key[first.start()] == ".":
        head, tail = key[:first.start()], key[first.start():]
        key = head + tail.translate(str.maketrans("./", "/."))
    key = _path_simplify(key)
    if key.startswith("/") and len(key) > 1:
        key = key[1:]
    return key


def _path_simplify(path: str) -> str:
    if not path:
        return path
    absolute = path.startswith("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    simplified = ("/" if absolute else "") + "/".join(parts)
    return simplified or "."


def procps_slashdot(key: str) -> str:
    """procps' slashdot(key, '.', '/'): swap separators only if the first one is a dot."""
    first = re.search(r"[/.]", key)
    if not first or key[first.start()] == "/":
        return key
    return key[:first.start()] + key[first.start():].translate(str.maketrans("./", "/."))


def parse_source(data: bytes, path: str, rules: ToolRules) -> Tuple[List[Entry], List[Problem]]:
    """The entries one file yields under ``rules``, and the complaints on the way."""
    # One run replays the same files under every tool version, at boot and again from the live
    # values, before and after its own change: parsed once per syntax, not ten times.
    key = (rules.systemd_syntax, path, data)
    parsed = _PARSED.get(key)
    if parsed is None:
        if len(_PARSED) >= _PARSED_MAX_FILES:
            _PARSED.clear()
        parsed = _parse_systemd(data, path) if rules.systemd_syntax else _parse_procps(data, path)
        parsed = _PARSED[key] = (tuple(parsed[0]), tuple(parsed[1]))
    # Entry and Problem are frozen; fresh lists keep callers from changing the memo.
    return list(parsed[0]), list(parsed[1])


# Parsed files of this process, keyed by (syntax, path, bytes); bounded for long-lived callers.
_PARSED = {}  # type: Dict[Tuple[bool, str, bytes], Tuple[Tuple[Entry, ...], Tuple[Problem, ...]]]
_PARSED_MAX_FILES = 512


def _parse_systemd(data: bytes, path: str) -> Tuple[List[Entry], List[Problem]]:
    entries = []  # type: List[Entry]
    problems = []  # type: List[Problem]
    lines, too_long = _systemd_lines(data)
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip(_SYSTEMD_WHITESPACE)
        if not line or line[:1] in (b"#", b";"):
            continue
        ignore_failure = False
        eq = line.find(b"=")
        if eq >= 0:
            if line[:1] == b"-":
                ignore_failure = True
                line = line[1:]
                eq -= 1
            key_raw = line[:eq]
            value = line[eq + 1:].strip(_SYSTEMD_WHITESPACE)  # type: Optional[bytes]
        elif line[:1] == b"-":
            key_raw, value = line[1:], None
        else:
            problems.append(Problem(path, lineno, "line is not an assignment, ignored: %s" % sk.show(line)))
            continue
        key = systemd_normalize(_text(key_raw.strip(_SYSTEMD_WHITESPACE)))
        entries.append(Entry(path, lineno, key, value, ignore_failure))
    if too_long is not None:
        problems.append(Problem(path, too_long, "line longer than 1 MiB: systemd stops reading this file here"))
    return entries, problems


def _parse_procps(data: bytes, path: str) -> Tuple[List[Entry], List[Problem]]:
    entries = []  # type: List[Entry]
    problems = []  # type: List[Problem]
    for lineno, raw in enumerate(_getline_lines(data), start=1):
        if len(raw) < 2:
            continue
        line = raw.split(b"\0", 1)[0]  # C string functions stop at a NUL
        key = _lstrip(line, _C_ISSPACE)
        if len(key) < 2 or key[:1] in (b"#", b";"):
            continue
        ignore_failure = False
        eq = key.find(b"=")
        if eq < 0:
            if key[:1] != b"-":
                problems.append(Problem(path, lineno, "invalid syntax, continuing: %s" % sk.show(line.strip())))
                continue
            key = _c_rstrip(key[1:])
            value = None  # type: Optional[bytes]
        else:
            value_raw = key[eq + 1:]
            key = key[:eq]
            if key[:1] == b"-":
                ignore_failure = True
                key = key[1:]
            value = _c_rstrip(_lstrip(value_raw, _C_ISSPACE))
            key = _c_rstrip(key)
        name = _text(key)
        if name.startswith("-"):  # setting_new drops one more leading '-'
            name = name[1:]
        entries.append(Entry(path, lineno, PROC_SYS + procps_slashdot(name), value, ignore_failure))
    return entries, problems


# ------------------------------------------------------------------ globs


def _glob_regex(pattern: str, pathname: bool) -> "re.Pattern[str]":
    """A glob pattern as a regex, with glibc's rules (``[!x]``/``[^x]``, backslash escapes)."""
    out = []
    i, n = 0, len(pattern)
    any_char = "[^/]" if pathname else "."
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(any_char + "*")
        elif c == "?":
            out.append(any_char)
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append("[%s%s]" % ("^" if negate else "", body))
        else:
            out.append(re.escape(c))
    return re.compile("(?s:%s)\\Z" % "".join(out))


def glob_paths(pattern: str, candidates: Iterable[str]) -> List[str]:
    """glob(3) of ``pattern`` (relative to /proc/sys) over known key paths, sorted."""
    pattern_parts = [p for p in pattern.split("/") if p not in ("", ".")]
    regexes = [_glob_regex(part, True) for part in pattern_parts]
    matches = []
    for candidate in set(candidates):
        parts = candidate.split("/")
        if len(parts) != len(regexes):
            continue
        if all(rx.match(part) and (not part.startswith(".") or pat.startswith("."))
               for rx, part, pat in zip(regexes, parts, pattern_parts)):
            matches.append(candidate)
    return sorted(matches, key=_name_order)


def _is_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


# ------------------------------------------------------------------ the replay


def replay(
    sources: Mapping[str, sf.SysctlSource],
    rules: ToolRules,
    start: Mapping[str, Optional[str]],
    existing_keys: Sequence[str] = (),
) -> Replay:
    """Replay one tool version over ``sources`` from the live values ``start``.

    ``start`` maps the tracked keys to canonical values (KERNEL_BOOT_DEFAULTS for a
    boot; missing keys are taken from there). ``existing_keys`` (dotted) adds keys
    that exist on the host for glob expansion; the managed keys always exist.
    """
    state = {k: (start.get(k) if start.get(k) is not None else sk.KERNEL_BOOT_DEFAULTS[k]) for k in sk.TRACKED_KEYS}
    result = Replay(rules=rules, start=dict(state), end=state)
    candidates = set(TRACKED_PATHS) | {k.replace(".", "/") for k in existing_keys}
    entries = []  # type: List[Entry]
    for src in select_files(sources, rules):
        result.files.append(src.path)
        if src.status == sf.STATUS_MASKED:
            continue
        if src.status == sf.STATUS_SKIPPED:
            if src.kind in _HANGING_KINDS:
                result.hung_on = src.path
                result.problems.append(Problem(src.path, None, "%s blocks reading %s (%s): it applies nothing at all"
                                               % (rules.tool, src.path, src.note)))
                result.end = dict(result.start)
                return result
            result.problems.append(Problem(src.path, None, _skip_message(src, rules)))
            continue
        file_entries, problems = parse_source(src.data or b"", src.path, rules)
        entries.extend(file_entries)
        result.problems.extend(problems)
    if rules.systemd_syntax:
        _apply_systemd(entries, candidates, result)
    else:
        _apply_procps(entries, candidates, result)
    return result


def _skip_message(src: sf.SysctlSource, rules: ToolRules) -> str:
    if src.kind == sf.KIND_DANGLING:
        if rules.tool == TOOL_SYSTEMD:
            return "%s; it hides any same-named file below and contributes nothing" % src.note
        return "%s: %s cannot open it; it hides any same-named file below" % (src.note, rules.tool)
    if src.kind == sf.KIND_DIRECTORY:
        return "a directory named *.conf: read fails, nothing from it; it hides any same-named file below"
    if src.kind in (sf.KIND_TOO_LARGE, sf.KIND_UNREADABLE):
        return "%s: not read here, the prediction does not include it" % src.note
    return "%s: %s cannot read it" % (src.note, rules.tool)


def _apply_systemd(entries: List[Entry], candidates: Iterable[str], result: Replay) -> None:
    options = OrderedDict()  # type: OrderedDict[str, Entry]
    for entry in entries:
        existing = options.get(entry.key)
        if existing is not None:
            if existing.value == entry.value:
                if entry.ignore_failure and not existing.ignore_failure:
                    options[entry.key] = Entry(existing.path, existing.lineno, existing.key, existing.value, True)
                continue
            del options[entry.key]  # replaced, and moved to the end of the order
        options[entry.key] = entry
    for option in options.values():
        if option.value is None:
            continue  # a negative entry only keeps globs away
        if option.is_glob:
            for rel in glob_paths(option.key, candidates):
                if rel in options:
                    continue  # "explicit setting exists"
                _write(result, rel, option, glob=option.key)
        else:
            target = _path_simplify("/" + option.key)[1:]
            if ".." in target.split("/"):
                result.problems.append(Problem(option.path, option.lineno, "key %r is not a normalised path: EINVAL"
                                               % option.key))
                continue
            _write(result, target, option)


def _procps_resolve(path: str) -> Optional[str]:
    """The key path the kernel's path walk reaches, or None if stat(2) fails."""
    rel = path[len(PROC_SYS):]
    parts = []  # type: List[str]
    for comp in rel.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return None  # leaves /proc/sys: "Path is not under /proc/sys/"
            parts.pop()
            continue
        parts.append(comp)
    target = "/".join(parts)
    if rel.endswith("/") and target in TRACKED_PATHS:
        return None  # a trailing slash after a file: ENOTDIR
    return target


def _apply_procps(entries: List[Entry], candidates: Iterable[str], result: Replay) -> None:
    paths = [e.key for e in entries]
    exclusions = [e.key for e in entries if e.value is None]
    for entry in entries:
        if entry.value is None:
            continue
        if _is_glob(entry.key):
            for rel in glob_paths(entry.key[len(PROC_SYS):], candidates):
                full = PROC_SYS + rel
                if full in paths:
                    continue  # an assignment or exclusion of the same path wins
                if result.rules.exclusion_globs and any(
                        _is_glob(x) and _glob_regex(x, False).match(full) for x in exclusions):
                    continue
                _write(result, rel, entry, glob=entry.key[len(PROC_SYS):])
            continue
        target = _procps_resolve(entry.key)
        if target is None:
            if _looks_managed(entry.key):
                result.problems.append(Problem(entry.path, entry.lineno, "cannot stat %r: nothing written" % entry.key))
            continue
        _write(result, target, entry)


def _looks_managed(path: str) -> bool:
    """A key that names one of ours in a form the tool cannot open: worth a problem."""
    return any(tracked.rsplit("/", 1)[1] in path for tracked in TRACKED_PATHS)


def _write(result: Replay, target: str, entry: Entry, glob: Optional[str] = None) -> None:
    key = TRACKED_PATHS.get(target)
    if key is None or entry.value is None:
        if entry.value is not None and _looks_managed(target):
            result.problems.append(Problem(entry.path, entry.lineno, "unknown key %r: nothing written" % target))
        return  # not a key we track; no other sysctl changes ours
    before = dict(result.end)
    if result.rules.suppresses_unchanged_writes and entry.value == before[key].encode("ascii"):
        result.writes.append(ReplayWrite(key, entry.value, entry.path, entry.lineno, True, None, before, before,
                                         suppressed=True, glob=glob))
        return
    outcome = sk.kernel_write(before, key, entry.value + b"\n")
    result.end = outcome.state
    result.writes.append(ReplayWrite(key, entry.value, entry.path, entry.lineno, outcome.accepted, outcome.error,
                                     before, dict(outcome.state), glob=glob, ignored_tail=outcome.ignored_tail))
    if not outcome.accepted:
        ignored = entry.ignore_failure and result.rules.tool == TOOL_SYSTEMD
        result.problems.append(Problem(entry.path, entry.lineno, "%s%s = %s: %s" % (
            "(ignored, '-' line) " if ignored else "", key, sk.show(entry.value), outcome.error)))


# ------------------------------------------------------------------ explaining the end state


def decided_by(result: Replay, key: str) -> Decision:
    """The write that left ``key`` at its end value, including a zeroing by the partner key."""
    value = result.end[key]
    for write in reversed(result.writes):
        if write.suppressed and write.key == key:
            # systemd-sysctl skips a write whose value is already there, but the line still
            # decides: it replaced any earlier line for the key (ours included).
            msg = "%s = %s is set by %s (%s; already %s, so %s did not write it)" % (
                key, value, write.where, write.line, value, write.tool or result.rules.tool)
            return Decision(key, value, write, False, msg)
        if not write.took_effect:
            continue
        # A writer after the boot tool (tuned) is named with its file: the file alone would read
        # as if the boot tool had applied it.
        by = "%s from %s" % (write.tool, write.where) if write.tool else write.where
        if write.key == key:
            via = ", from glob %s" % write.glob if write.glob else ""
            msg = "%s = %s is set by %s (%s%s)" % (key, value, by, write.line, via)
            return Decision(key, value, write, False, msg)
        if sk.PARTNER.get(write.key) == key:
            msg = ("%s = 0 because %s writes %s, and a write to %s zeroes %s"
                   % (key, by, write.line, write.key, key))
            return Decision(key, value, write, True, msg)
    if result.hung_on:
        msg = "%s stays %s: %s hangs on %s and applies nothing" % (key, value, result.rules.tool, result.hung_on)
    else:
        msg = "%s stays %s: no file read by %s sets it" % (key, value, result.label)
    return Decision(key, value, None, False, msg)


@dataclass(frozen=True)
class ManagedLine:
    """A line of a file that names one of our keys, as one tool reads it."""

    key: str  # dotted managed key, or the glob as written when the line is a glob
    value: Optional[bytes]  # None for an exclusion ("-key" without "=")
    lineno: int
    is_glob: bool


def managed_lines(data: bytes, path: str, rules: ToolRules = SYSTEMD_257,
                  existing_keys: Sequence[str] = ()) -> List[ManagedLine]:
    """The lines of one file that can touch a managed key under ``rules``, in file order.

    For checking our own drop-in's content and for finding the lines to take over in other
    files: key spellings are resolved as the tool resolves them, and a glob line is listed
    when it matches a managed key.
    """
    entries, _problems = parse_source(data, path, rules)
    candidates = set(MANAGED_PATHS) | {k.replace(".", "/") for k in existing_keys}
    out = []
    for entry in entries:
        rel = entry.key[len(PROC_SYS):] if entry.key.startswith(PROC_SYS) else entry.key
        if entry.is_glob:
            if any(m in MANAGED_PATHS for m in glob_paths(rel, candidates)):
                out.append(ManagedLine(rel.replace("/", "."), entry.value, entry.lineno, True))
            continue
        target = _procps_resolve(entry.key) if not rules.systemd_syntax else _path_simplify("/" + rel)[1:]
        if target in MANAGED_PATHS:
            out.append(ManagedLine(MANAGED_PATHS[target], entry.value, entry.lineno, False))
    return out
