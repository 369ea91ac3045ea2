# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tuned writes to the tracked sysctl keys when it starts at boot, told from files alone.

tuned.service is ordered after systemd-sysctl.service. At its start tuned loads the active
profile (with its ``include=`` chain), and its sysctl plugin writes the merged profile's
``[sysctl]`` keys; then, with ``reapply_sysctl`` on (the default), it writes again every line of
/run/sysctl.d and /etc/sysctl.d (``*.conf``) and, last, /etc/sysctl.conf. So tuned can undo our
drop-in after systemd-sysctl applied it (``reapply_sysctl = 0`` and a profile that sets our keys),
or redo it in another order than systemd did. This module predicts those writes
(``tuned_boot_writes``) and appends them to a boot replay (``apply_tuned``), so that
sysctl_replay.decided_by can name the profile file and line that leaves a key where it ends.

Every rule was read in tuned's sources at the tag a rule set names (``TunedRules.source``); the
tuned-2.20 and tuned-2.25 rules were checked against the real tuned of Debian 12 (2.20.0) and
Debian 13 (2.25.1) in the lab (tests/lab/test_tuned_differential.py). Rules all versions share:

* Startup profile (tuned/daemon/daemon.py ``_get_startup_profile``, tuned/utils/commands.py
  ``get_active_profile``): /etc/tuned/active_profile and /etc/tuned/profile_mode, each stripped.
  profile_mode "manual" or "auto"; empty means manual when a profile is named, else auto; any
  other value and no profile is applied. In auto mode tuned applies the *recommended* profile
  (virt-what, /etc/system-release-cpe, processes, dmidecode: not told from files) unless
  ``recommend_command = 0``, which makes it "balanced". Debian's package ships both files empty:
  a fresh install runs in auto mode. Several names (space separated) are merged in order; the
  name in /etc/tuned/post_loaded_profile (one word, else nothing is applied) comes last. Every
  name must exist as ``DIR/NAME/tuned.conf`` (a regular file after links), else nothing is
  applied; names with other characters than ``[a-zA-Z0-9_.-]`` are dropped.
* Global config (tuned/utils/global_config.py): /etc/tuned/tuned-main.conf, parsed by Python's
  configparser under a made-up section header (``=`` only, ``#`` inline comments after a blank,
  keys keep their case, a repeated key: the last wins). ``reapply_sysctl`` is read with
  ``getboolean``: 1/yes/true/on and 0/no/false/off in any case; any other value, or a bad
  integer in an integer option, raises out of tuned's start: tuned does not run at all, nor does
  it without the file.
* Profiles (tuned/profiles/loader.py, locator.py, merger.py, unit.py): configparser with the
  same settings; a parse error and the whole profile set is refused (nothing applied).
  ``[main] include=`` names (split at ``,``/``;``) are loaded before the profile itself; a name
  starting with ``-`` may be missing. A name is looked up in the profile directories, last
  directory first; a file already loaded is skipped and the search goes on below, which is how
  ``/etc/tuned/x/tuned.conf`` with ``include=x`` extends the shipped ``x``. Profiles merge in
  load order: a unit (section) of a later profile updates the options of the same-named unit
  (``replace=true`` replaces the unit, ``drop=`` removes named options); ``enabled`` is true
  only for ``True``/``true``/``1`` (``yes`` disables), and a later unit always sets it. A unit's
  plugin is its ``type=`` (default: its name), so ``[my_vm] type=sysctl`` is a second sysctl
  instance; instances run in ``priority`` order (default ``default_instance_priority``, stable).
* sysctl plugin (tuned/plugins/plugin_sysctl.py): for each option in order, the value is
  unquoted (``"40"`` -> ``40``), variables and functions (``${...}``) expanded, and a leading
  ``>``/``<`` compares with the live value (tuned/plugins/base.py
  ``_process_assignment_modifiers``: written only if larger/smaller, as Python ints; a value that
  is not an int is written with its sign). Then, per sysctl instance, the reapply: names from
  /run/sysctl.d then /etc/sysctl.d (the first directory wins a name; hidden names too), sorted as
  Python strings, then /etc/sysctl.conf; each line stripped of (Unicode) blanks, ``#``/``;`` lines
  skipped, split at the first ``=``, key and value stripped; nothing else: no quote removal, no
  ``-`` prefix, no globs. Files are read as UTF-8 text (Python's universal newlines: ``\\r`` ends
  a line too). A value is written as it stands, without a newline, by Python (an empty value
  writes nothing).

Where versions differ (one TunedRules value each):

* key spelling: 2.20-2.21 turn every ``.`` into ``/`` (``vm/overcommit_ratio`` still works);
  2.22+ swap ``.`` and ``/`` (plugin_sysctl.py ``_get_sysctl_path``, commands.py ``tr``), so a
  slash spelling names another file and writes nothing.
* unchanged values: 2.23+ skip a write when the file already reads the value
  (commands.py ``write_to_file(ignore_same=True)``), so ``vm.overcommit_kbytes = 0`` no longer
  zeroes the ratio when kbytes is already 0; 2.20-2.22 always write.
* profile directories: 2.20-2.22 /usr/lib/tuned and /etc/tuned (consts.LOAD_DIRECTORIES);
  2.23+ /usr/lib/tuned/profiles and /etc/tuned/profiles, or ``profile_dirs`` of tuned-main.conf
  (consts.CFG_DEF_PROFILE_DIRS, daemon/application.py): /etc/tuned/NAME is then not a profile.
* exclusions: 2.27+ skip reapplied keys matching a pattern of ``reapply_sysctl_exclude``
  (fnmatch on the key as written, ``,``/``;`` separated).
* collapse: 2.28 collects the reapplied lines first and writes each key once, at its first
  place, with its last value (plugin_sysctl.py ``_apply_system_sysctl``, an OrderedDict keyed by
  the key as written).

Reported as not modelled (``TunedStart.unmodelled``), never guessed: auto mode with the
recommender on; a tracked key whose value uses a variable or function; ``[script]`` units and
``script_pre``/``script_post`` (a script can run sysctl); ``[bootloader]`` command lines (the
*next* boot's ``hugepages=``, ``sysctl.vm.*``); units with ``cpuinfo_regex``/``uname_regex``; a
profile or state file that exists but could not be read or decoded; a sysctl file skipped by the
reader (too large, unreadable) or one that blocks tuned (FIFO, device); a missing profile; an
unknown tuned version whose rule sets predict different writes; a tuned.service whose ExecStart
is not the stock one (``-p PROFILE`` overrides active_profile) or that has drop-ins; tuned
without its D-Bus name (``daemon``/``enable_dbus`` off), which systemd's start timeout then ends. Not modelled at all: tuned
restarts and profile switches after boot (each one writes again), dynamic tuning, the
``[variables]`` section's values, and D-Bus activation of a disabled tuned.

Pure Python, no Ansible import, no I/O: tuned_files reads the host.
"""

from __future__ import annotations

import configparser
import fnmatch
import posixpath
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr

MAIN_CONF = "/etc/tuned/tuned-main.conf"
ACTIVE_PROFILE = "/etc/tuned/active_profile"
PROFILE_MODE = "/etc/tuned/profile_mode"
POST_LOADED_PROFILE = "/etc/tuned/post_loaded_profile"
STATE_FILES = (MAIN_CONF, ACTIVE_PROFILE, PROFILE_MODE, POST_LOADED_PROFILE)
PROFILE_FILE = "tuned.conf"
# tuned/consts.py: the profile "auto" mode falls back to when the recommender is off.
DEFAULT_PROFILE = "balanced"
# The directories tuned reapplies from, in the order a name is looked up (the first wins it).
REAPPLY_DIRS = ("/run/sysctl.d", "/etc/sysctl.d")

UNIT_ENABLED = "enabled"
UNIT_DISABLED = "disabled"
UNIT_MASKED = "masked"
UNIT_NOT_INSTALLED = "not-installed"

# tuned.service's command in every version read here: no -p, so the profile comes from active_profile.
STOCK_EXEC_START = "/usr/sbin/tuned -l -P"

ORIGIN_PROFILE = "profile"
ORIGIN_REAPPLY = "reapply"

# Kinds of a path that exists but is no regular file to tuned (TunedHost.not_files values).
NOT_FILE_DANGLING = "dangling"  # a symlink chain ending where nothing is: tuned's open() says ENOENT

# The section header tuned puts above tuned-main.conf (tuned/consts.py MAGIC_HEADER_NAME): any
# name that no file uses does the same.
_MAIN_SECTION = "dbfleet_tuned_main_conf"
# tuned-main.conf options tuned reads with getboolean/getint (tuned/consts.py CFG_FUNC_*; the
# same list in every version read here). A value these refuse raises out of tuned's start.
_MAIN_CONF_BOOLEANS = ("daemon", "dynamic_tuning", "recommend_command", "reapply_sysctl", "enable_dbus",
                       "enable_unix_socket")
_MAIN_CONF_INTEGERS = ("sleep_interval", "update_interval", "default_instance_priority", "log_file_count",
                       "connections_backlog")
# What tuned's profile loader accepts as a profile name (tuned/profiles/loader.py safe_name).
_SAFE_NAME = re.compile(r"[a-zA-Z0-9_.-]+\Z")
# Unit options tuned takes out before the rest become plugin options (tuned/profiles/unit.py).
_UNIT_KEYS = ("type", "enabled", "replace", "drop", "devices", "devices_udev_regex", "cpuinfo_regex",
              "uname_regex", "script_pre", "script_post", "priority", "prepend")
_TRUE_WORDS = ("True", "true", "1")  # unit.py: what "enabled" and "replace" accept as true
_PROFILE_DIR_VAR = re.compile(r"(?<!\\)\$\{i:PROFILE_DIR\}")
_SWAP_SEPARATORS = str.maketrans("./", "/.")
_VARIABLES = "variables"
_CHUNK_BYTES = 8192  # Python's text reader decodes a file in chunks of this size
# What tuned's open() may block on (a FIFO without writer) or act on (a device).
_HANGING = (sf.KIND_FIFO, sf.KIND_CHAR_DEVICE, sf.KIND_BLOCK_DEVICE)


@dataclass(frozen=True)
class TunedRules:
    """One range of tuned versions and how they write sysctl keys (see the module docstring)."""

    name: str  # e.g. "tuned-2.20"
    version: str  # the version read
    distro: str  # where it ships
    source: str  # the tag and files the rules were read in
    first: Tuple[int, int]  # the (major, minor) versions these rules cover, inclusive
    last: Tuple[int, int]
    swaps_dots_and_slashes: bool  # 2.22+: "vm/x" names file "vm.x"; before, every "." becomes "/"
    suppresses_unchanged_writes: bool  # 2.23+: a write of the value already there is skipped
    profile_dirs: Tuple[str, ...]  # default profile directories, lowest priority first
    profile_dirs_option: bool  # 2.23+: tuned-main.conf's profile_dirs replaces them
    reapply_exclusions: bool  # 2.27+: reapply_sysctl_exclude
    collapses_reapplied: bool  # 2.28: one write per key, first place, last value

    def covers(self, version: Optional[str]) -> bool:
        parts = version_parts(version)
        return parts is not None and self.first <= parts <= self.last


_OLD_DIRS = ("/usr/lib/tuned", "/etc/tuned")
_NEW_DIRS = ("/usr/lib/tuned/profiles", "/etc/tuned/profiles")
_COMMON_FILES = ("tuned/plugins/plugin_sysctl.py, tuned/plugins/base.py, tuned/utils/commands.py, "
                 "tuned/profiles/{loader,locator,merger,unit,profile,variables}.py, tuned/units/manager.py, "
                 "tuned/daemon/{daemon,application}.py, tuned/utils/global_config.py, tuned/consts.py")

TUNED_2_20 = TunedRules(
    name="tuned-2.20", version="2.20", distro="Debian 12 (2.20.0-1); upstream 2.20-2.21",
    source="tuned v2.20.0 and v2.21.0: " + _COMMON_FILES + "; Debian's 2.20.0-1 differs from the tag "
           "only in grub and irqbalance paths",
    first=(2, 20), last=(2, 21), swaps_dots_and_slashes=False, suppresses_unchanged_writes=False,
    profile_dirs=_OLD_DIRS, profile_dirs_option=False, reapply_exclusions=False, collapses_reapplied=False,
)
TUNED_2_22 = TunedRules(
    name="tuned-2.22", version="2.22", distro="upstream 2.22.0-2.22.1",
    source="tuned v2.22.1: " + _COMMON_FILES + " (plugin_sysctl.py _get_sysctl_path uses commands.tr)",
    first=(2, 22), last=(2, 22), swaps_dots_and_slashes=True, suppresses_unchanged_writes=False,
    profile_dirs=_OLD_DIRS, profile_dirs_option=False, reapply_exclusions=False, collapses_reapplied=False,
)
TUNED_2_25 = TunedRules(
    name="tuned-2.25", version="2.25.1", distro="Debian 13 (2.25.1); upstream 2.23-2.26",
    source=("tuned v2.25.1 (plugin_sysctl.py as in v2.23.0-v2.26.0): %s (write_to_file ignore_same; "
            "consts.CFG_DEF_PROFILE_DIRS); Debian's 2.25.1 package differs from the tag only in grub and irqbalance "
            "paths" % _COMMON_FILES),
    first=(2, 23), last=(2, 26), swaps_dots_and_slashes=True, suppresses_unchanged_writes=True,
    profile_dirs=_NEW_DIRS, profile_dirs_option=True, reapply_exclusions=False, collapses_reapplied=False,
)
TUNED_2_27 = TunedRules(
    name="tuned-2.27", version="2.27.0", distro="Debian forky (2.27)",
    source="tuned v2.27.0: " + _COMMON_FILES + " (plugin_sysctl.py _is_sysctl_excluded, global_config get_list)",
    first=(2, 27), last=(2, 27), swaps_dots_and_slashes=True, suppresses_unchanged_writes=True,
    profile_dirs=_NEW_DIRS, profile_dirs_option=True, reapply_exclusions=True, collapses_reapplied=False,
)
TUNED_2_28 = TunedRules(
    name="tuned-2.28", version="2.28.0-rc.1", distro="upstream 2.28 (release candidate, HEAD)",
    source=("tuned v2.28.0-rc.1 (HEAD 2bfa442): %s (plugin_sysctl.py _apply_system_sysctl collects an "
            "OrderedDict)" % _COMMON_FILES),
    first=(2, 28), last=(2, 28), swaps_dots_and_slashes=True, suppresses_unchanged_writes=True,
    profile_dirs=_NEW_DIRS, profile_dirs_option=True, reapply_exclusions=True, collapses_reapplied=True,
)

TUNED_RULE_SETS = (TUNED_2_20, TUNED_2_22, TUNED_2_25, TUNED_2_27, TUNED_2_28)
TUNED_RULES_BY_NAME = {rules.name: rules for rules in TUNED_RULE_SETS}


def version_parts(version: Optional[str]) -> Optional[Tuple[int, int]]:
    """(major, minor) of "2.20.0" and the like, or None."""
    match = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def rules_for_version(version: Optional[str]) -> Tuple[TunedRules, ...]:
    """The rule set covering ``version``, or every rule set when it is unknown or not covered."""
    matching = tuple(rules for rules in TUNED_RULE_SETS if rules.covers(version))
    return matching or TUNED_RULE_SETS


# ------------------------------------------------------------------ what the reader fills


@dataclass(frozen=True)
class TunedHost:
    """tuned's files on one host, as tuned_files.read_tuned_host read them (pure data).

    A file's bytes are None when it is absent; ``not_files`` holds paths that exist but are no
    regular file after links (value: regular_file.KIND_* or NOT_FILE_DANGLING), ``unreadable``
    paths that tuned would read but the reader could not (too large, refused: value says why).
    ``profile_files`` maps every ``DIR/NAME/tuned.conf`` found under ``profile_dirs_listed``.
    """

    installed: bool
    version: Optional[str] = None  # from tuned/version.py, e.g. "2.20.0"
    version_evidence: Optional[str] = None  # the version.py read
    unit_state: str = UNIT_NOT_INSTALLED  # UNIT_ENABLED, UNIT_DISABLED, UNIT_MASKED or UNIT_NOT_INSTALLED
    unit_evidence: Tuple[str, ...] = ()  # the wants symlinks, the mask, the unit file
    unit_exec_start: Tuple[str, ...] = ()  # ExecStart= values of the unit file, as written
    unit_dropins: Tuple[str, ...] = ()  # tuned.service.d/*.conf in /etc or /usr/lib: may change how tuned starts
    main_conf: Optional[bytes] = None
    active_profile: Optional[bytes] = None
    profile_mode: Optional[bytes] = None
    post_loaded_profile: Optional[bytes] = None
    profile_files: Mapping[str, bytes] = field(default_factory=dict)
    profile_dirs_listed: Tuple[str, ...] = ()  # directories looked into (present or not)
    not_files: Mapping[str, str] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def state_file(self, path: str) -> Optional[bytes]:
        return {MAIN_CONF: self.main_conf, ACTIVE_PROFILE: self.active_profile, PROFILE_MODE: self.profile_mode,
                POST_LOADED_PROFILE: self.post_loaded_profile}[path]


# ------------------------------------------------------------------ what the model says


@dataclass(frozen=True)
class TunedWrite:
    """One write tuned makes to a tracked key at its start, in its order."""

    key: str  # dotted tracked key
    raw: bytes  # what tuned writes (without a modifier sign; no newline follows)
    path: str  # the profile file or sysctl file the value comes from
    lineno: int  # 0 when the line is not known
    origin: str  # ORIGIN_PROFILE or ORIGIN_REAPPLY
    modifier: Optional[str] = None  # ">" or "<": written only if larger / smaller than the live value
    skips_unchanged: bool = False  # not written when the key already reads ``raw``
    option: str = ""  # the key as the file spells it
    unit: str = ""  # the profile unit (sysctl instance) that wrote it

    @property
    def where(self) -> str:
        return "%s:%d" % (self.path, self.lineno)


@dataclass(frozen=True)
class TunedIssue:
    """Something tuned would complain about, or a reason the prediction may be wrong."""

    path: str
    lineno: Optional[int]
    message: str
    unmodelled: bool

    def __str__(self) -> str:
        where = self.path if self.lineno is None else "%s:%d" % (self.path, self.lineno)
        return "%s: %s" % (where, self.message)


@dataclass(frozen=True)
class TunedStart:
    """What tuned does to the tracked keys when it starts at boot, under one rule set."""

    rules: TunedRules
    runs: bool  # tuned starts at boot and applies a profile
    why: str
    profiles: Tuple[str, ...] = ()  # profile names loaded, in order (active ones, then post-loaded)
    chain: Tuple[str, ...] = ()  # the profile files merged, parents first
    reapply: bool = False  # reapply_sysctl is on (and a sysctl instance exists to do it)
    reapplied_files: Tuple[str, ...] = ()  # sysctl files tuned reads again, in order
    writes: Tuple[TunedWrite, ...] = ()
    issues: Tuple[TunedIssue, ...] = ()
    hung_on: Optional[str] = None  # tuned blocks opening this file; nothing after it is written

    @property
    def unmodelled(self) -> List[str]:
        """Every reason the prediction may be wrong."""
        return [str(issue) for issue in self.issues if issue.unmodelled]

    @property
    def notes(self) -> List[str]:
        """What tuned would log as an error, as modelled (a key it cannot open, a line it skips)."""
        return [str(issue) for issue in self.issues if not issue.unmodelled]


# ------------------------------------------------------------------ small rules


def _decode(data: bytes) -> Optional[str]:
    """The text Python's open() gives tuned: UTF-8 (tuned runs under a UTF-8 or C locale, which
    Python 3.7+ reads as UTF-8), universal newlines. None when the bytes are not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _lines(text: str) -> List[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _new_parser() -> configparser.ConfigParser:
    """The parser tuned builds for its own files (profiles, tuned-main.conf)."""
    parser = configparser.ConfigParser(delimiters=("=",), inline_comment_prefixes=("#",), strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser


def _split_list(value: str) -> List[str]:
    """global_config.get_list: "" is no entry; otherwise split at "," and ";" and stripped."""
    if value.strip() == "":
        return []
    return [item.strip() for item in re.split(r",|;", value)]


def _unquote(value: str) -> str:
    """One pair of double quotes around the whole value goes (not across a line break)."""
    if len(value) >= 2 and value[0] == value[-1] == '"' and "\n" not in value[1:-1]:
        return value[1:-1]
    return value


def proc_path(option: str, rules: TunedRules) -> str:
    """The /proc/sys file tuned opens for a sysctl name as written."""
    if rules.swaps_dots_and_slashes:
        return "/proc/sys/" + option.translate(_SWAP_SEPARATORS)
    return "/proc/sys/" + option.replace(".", "/")


_TRACKED_FULL = {"proc/sys/" + path: key for path, key in sr.TRACKED_PATHS.items()}
_TRACKED_NAMES = tuple(path.rsplit("/", 1)[1] for path in sr.TRACKED_PATHS)


def tracked_key(path: str) -> Optional[str]:
    """The tracked key the kernel's path walk reaches for ``path``, or None.

    Empty and ``.`` components vanish, ``..`` goes up, and nothing may follow a file (a trailing
    slash or ``/.`` after it is ENOTDIR)."""
    parts = []  # type: List[str]
    for comp in path.split("/"):
        if "/".join(parts) in _TRACKED_FULL:
            return None
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return _TRACKED_FULL.get("/".join(parts))


def _names_tracked(option: str) -> bool:
    return any(name in option for name in _TRACKED_NAMES)


# ------------------------------------------------------------------ tuned-main.conf


@dataclass(frozen=True)
class MainConf:
    """What tuned takes from tuned-main.conf, or why it does not start."""

    fails: Optional[str] = None  # tuned stops before applying anything, and why
    reapply: bool = True
    recommend_command: bool = True
    default_priority: int = 0
    profile_dirs: Optional[Tuple[str, ...]] = None  # the profile_dirs option, when set
    exclusions: Tuple[str, ...] = ()
    dbus: bool = True  # daemon and enable_dbus: tuned takes its D-Bus name, which Type=dbus waits for
    unsure: Tuple[str, ...] = ()  # reasons the reading may differ from tuned's


def read_main_conf(data: Optional[bytes]) -> MainConf:
    """tuned-main.conf as tuned's GlobalConfig reads it (the same in every version read here;
    which options a version uses is the caller's business)."""
    if data is None:
        return MainConf(fails="%s is missing: tuned stops at start (GlobalConfig raises)" % MAIN_CONF)
    text = _decode(data)
    if text is None:
        why = "%s is not UTF-8: tuned's read raises and it stops at start" % MAIN_CONF
        return MainConf(fails=why, unsure=(why,))
    parser = _new_parser()
    try:
        parser.read_string("[%s]\n%s" % (_MAIN_SECTION, text), MAIN_CONF)
    except configparser.Error as exc:
        return MainConf(fails="tuned cannot parse %s (%s): it stops at start" % (MAIN_CONF, _first_line(exc)))
    values = {}  # type: Dict[str, object]
    unsure = []
    for option in parser.options(_MAIN_SECTION):
        try:
            if option in _MAIN_CONF_BOOLEANS:
                values[option] = parser.getboolean(_MAIN_SECTION, option)
            elif option in _MAIN_CONF_INTEGERS:
                values[option] = parser.getint(_MAIN_SECTION, option)
            else:
                values[option] = parser.get(_MAIN_SECTION, option, raw=True)
                parser.get(_MAIN_SECTION, option)  # tuned interpolates the options it knows
        except configparser.InterpolationError:
            if option in values:
                unsure.append("%s: %s = %s: a '%%' tuned may fail to interpolate (it then stops at start)"
                              % (MAIN_CONF, option, values[option]))
                continue
            return MainConf(fails="%s: %s is not valid to tuned: it stops at start" % (MAIN_CONF, option))
        except (configparser.Error, ValueError) as exc:
            return MainConf(fails="%s: %s = %s is refused (%s): tuned stops at start"
                                  % (MAIN_CONF, option, parser.get(_MAIN_SECTION, option, raw=True), exc))
    dirs = values.get("profile_dirs")
    exclusions = values.get("reapply_sysctl_exclude")
    return MainConf(
        reapply=bool(values.get("reapply_sysctl", True)),
        recommend_command=bool(values.get("recommend_command", True)),
        default_priority=int(values.get("default_instance_priority", 0)),  # type: ignore[call-overload]
        profile_dirs=None if dirs is None else tuple(_split_list(str(dirs))),
        exclusions=() if exclusions is None else tuple(_split_list(str(exclusions))),
        dbus=bool(values.get("daemon", True)) and bool(values.get("enable_dbus", True)),
        unsure=tuple(unsure),
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def profile_dirs(rules: TunedRules, main: MainConf) -> Tuple[str, ...]:
    """The profile directories of this version and config, lowest priority first."""
    if rules.profile_dirs_option and main.profile_dirs is not None:
        # A relative entry is relative to tuned's working directory, "/" under systemd.
        return tuple(posixpath.normpath(posixpath.join("/", d)) for d in main.profile_dirs)
    return rules.profile_dirs


def profile_dirs_to_read(main_conf: Optional[bytes]) -> Tuple[str, ...]:
    """Every directory any modelled version may load profiles from, for the reader."""
    main = read_main_conf(main_conf)
    out = []  # type: List[str]
    for rules in TUNED_RULE_SETS:
        for directory in profile_dirs(rules, main):
            if directory not in out:
                out.append(directory)
    return tuple(out)


# ------------------------------------------------------------------ profiles


@dataclass
class _Option:
    value: str
    path: str
    lineno: int


@dataclass
class _Unit:
    """A profile section as tuned's Unit keeps it; options remember where they come from."""

    name: str
    type: str
    enabled: bool
    replace: bool
    drop: Optional[List[str]]
    priority: Optional[str]
    cpuinfo_regex: Optional[str]
    uname_regex: Optional[str]
    script_pre: Optional[str]
    script_post: Optional[str]
    options: "OrderedDict[str, _Option]"
    path: str


@dataclass
class _Profile:
    name: str
    path: str
    main: Dict[str, str]
    units: "OrderedDict[str, _Unit]"


class _Stop(Exception):
    """The prediction stops here, a reason it may be wrong: tuned applies no profile at all
    (``applies`` False) or something the files do not tell (``applies`` True)."""

    def __init__(self, path: str, message: str, applies: bool) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.applies = applies


_SECTION_RE = re.compile(r"\[(?P<header>.+)\]")


def _option_lines(text: str) -> Dict[Tuple[str, str], int]:
    """(section, option) -> the line of its last definition, walking lines as configparser does."""
    where = {}  # type: Dict[Tuple[str, str], int]
    section = None  # type: Optional[str]
    option_indent = None  # type: Optional[int]
    for lineno, line in enumerate(_lines(text), start=1):
        body = re.sub(r"(^|\s)#.*", "", line) if line.lstrip()[:1] not in ("#", ";") else ""
        stripped = body.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if option_indent is not None and indent > option_indent:
            continue  # a continuation line of the option above
        header = _SECTION_RE.match(stripped)
        if header:
            section, option_indent = header.group("header"), None
            continue
        if section is None or "=" not in stripped:
            continue
        where[(section, stripped.split("=", 1)[0].rstrip())] = lineno
        option_indent = indent
    return where


def _parse_profile(name: str, path: str, data: bytes) -> _Profile:
    text = _decode(data)
    if text is None:
        raise _Stop(path, "not UTF-8: tuned's profile loader raises out of its start, nothing is applied", False)
    parser = _new_parser()
    try:
        parser.read_string(text, path)
    except configparser.Error as exc:
        raise _Stop(path, "tuned cannot parse it (%s): no profile is applied" % _first_line(exc), False)
    lines = _option_lines(text)
    directory = posixpath.dirname(path)
    main = {}  # type: Dict[str, str]
    units = OrderedDict()  # type: OrderedDict[str, _Unit]
    for section in parser.sections():
        values = OrderedDict()  # type: OrderedDict[str, _Option]
        for option in parser.options(section):
            value = _PROFILE_DIR_VAR.sub(directory.replace("\\", "\\\\"), parser.get(section, option, raw=True))
            lineno = lines.get((section, option), lines.get((parser.default_section, option), 0))
            values[option] = _Option(value, path, lineno)
        if section == "main":
            main = {k: v.value for k, v in values.items()}
            continue
        units[section] = _unit(section, values, path)
    return _Profile(name, path, main, units)


def _unit(name: str, values: "OrderedDict[str, _Option]", path: str) -> _Unit:
    def pop(key: str) -> Optional[str]:
        option = values.pop(key, None)
        return None if option is None else option.value

    unit_type = pop("type")
    enabled = pop("enabled")
    replace = pop("replace")
    drop = pop("drop")
    unit = _Unit(
        name=name, type=unit_type if unit_type is not None else name,
        enabled=enabled is None or enabled in _TRUE_WORDS, replace=replace is not None and replace in _TRUE_WORDS,
        drop=None if drop is None else re.split(r"\b\s*[,;]\s*", drop),
        priority=pop("priority"), cpuinfo_regex=pop("cpuinfo_regex"), uname_regex=pop("uname_regex"),
        script_pre=pop("script_pre"), script_post=pop("script_post"), options=values, path=path)
    for key in _UNIT_KEYS:
        values.pop(key, None)
    return unit


def _merge(profiles: Sequence[_Profile]) -> "OrderedDict[str, _Unit]":
    """merger.py: later profiles update earlier ones, unit by unit."""
    units = OrderedDict()  # type: OrderedDict[str, _Unit]
    for profile in profiles:
        for name, unit in profile.units.items():
            old = units.get(name)
            if old is None or unit.replace:
                units[name] = unit
                continue
            old.type, old.enabled = unit.type, unit.enabled
            for attr in ("priority", "cpuinfo_regex", "uname_regex", "script_pre", "script_post"):
                if getattr(unit, attr) is not None:
                    setattr(old, attr, getattr(unit, attr))
            for option in unit.drop or ():
                old.options.pop(option, None)
            old.options.update(unit.options)
    return units


class _Loader:
    """The profile lookup and include chain of tuned/profiles/loader.py and locator.py."""

    def __init__(self, host: TunedHost, dirs: Tuple[str, ...]) -> None:
        self.host = host
        self.dirs = dirs
        self.loaded = []  # type: List[str]
        self.profiles = []  # type: List[_Profile]

    def is_file(self, path: str) -> bool:
        """os.path.isfile as tuned sees it; _Stop when the reader could not tell."""
        if path in self.host.profile_files or path in self.host.unreadable:
            return True
        if path in self.host.not_files:
            return False
        parent = posixpath.dirname(posixpath.dirname(path))
        if parent in self.host.unreadable:
            raise _Stop(parent, "cannot be listed here (%s): its profiles are unknown" % self.host.unreadable[parent],
                        True)
        if parent in self.host.profile_dirs_listed and posixpath.basename(path) == PROFILE_FILE:
            return False
        raise _Stop(path, "tuned may read this file, which was not read here", True)

    def known_names(self) -> List[str]:
        names = set()
        for directory in self.dirs:
            if directory in self.host.unreadable:
                raise _Stop(directory, "cannot be listed here (%s): its profiles are unknown"
                            % self.host.unreadable[directory], True)
            if directory not in self.host.profile_dirs_listed:
                raise _Stop(directory, "profile directory not read here", True)
            for path in list(self.host.profile_files) + list(self.host.unreadable):
                if posixpath.dirname(posixpath.dirname(path)) == directory and path.endswith("/" + PROFILE_FILE):
                    names.add(posixpath.basename(posixpath.dirname(path)))
        return sorted(names)

    def find(self, name: str) -> Optional[str]:
        """locator.get_config: the file for ``name``; "" to skip it; None when it is missing."""
        found = None  # type: Optional[str]
        conditional = name[:1] == "-"
        if conditional:
            name = name[1:]
        for directory in reversed(self.dirs):
            path = posixpath.normpath(posixpath.join(directory, posixpath.basename(name), PROFILE_FILE))
            if path in self.loaded:
                found = ""
                continue
            if self.is_file(path):
                return path
        if conditional and found is None:
            found = ""
        return found

    def load(self, names: Iterable[str]) -> None:
        for name in names:
            path = self.find(name)
            if path == "":
                continue
            if path is None:
                raise _Stop(name, "profile %r is not found in %s: tuned applies no profile"
                            % (name, ", ".join(reversed(self.dirs))), False)
            self.loaded.append(path)
            data = self.host.profile_files.get(path)
            if data is None:
                raise _Stop(path, "cannot be read here (%s)" % self.host.unreadable.get(path, "not read"), True)
            profile = _parse_profile(name, path, data)
            include = profile.main.pop("include", None)
            if include is not None:
                if "${" in include:
                    raise _Stop(path, "include=%s uses a variable or function (not modelled)" % include, True)
                self.load(re.split(r"\s*[,;]\s*", include))
            self.profiles.append(profile)


# ------------------------------------------------------------------ the start


class _Run:
    """Collects one prediction."""

    def __init__(self, rules: TunedRules) -> None:
        self.rules = rules
        self.issues = []  # type: List[TunedIssue]
        self.writes = []  # type: List[TunedWrite]
        self.reapplied = []  # type: List[str]
        self.hung_on = None  # type: Optional[str]

    def issue(self, path: str, lineno: Optional[int], message: str, unmodelled: bool) -> None:
        self.issues.append(TunedIssue(path, lineno, message, unmodelled))

    def done(self, runs: bool, why: str, **kwargs: object) -> TunedStart:
        return TunedStart(rules=self.rules, runs=runs, why=why, writes=tuple(self.writes), issues=tuple(self.issues),
                          reapplied_files=tuple(self.reapplied), hung_on=self.hung_on, **kwargs)  # type: ignore[arg-type]


def _state_text(host: TunedHost, path: str) -> Tuple[Optional[str], Optional[str]]:
    """(stripped text or None when absent, or None and why tuned applies no profile). _Stop when unsure."""
    if path in host.unreadable:
        raise _Stop(path, "cannot be read here (%s)" % host.unreadable[path], True)
    kind = host.not_files.get(path)
    if kind == NOT_FILE_DANGLING:
        return None, None  # ENOENT: as if absent
    if kind is not None:
        if kind in (sf.KIND_DIRECTORY, sf.KIND_SOCKET):
            return None, "%s is a %s: tuned cannot read it and applies no profile" % (path, kind)
        raise _Stop(path, "is a %s: tuned's open() may block or act on it (not modelled)" % kind, True)
    data = host.state_file(path)
    if data is None:
        return None, None
    text = _decode(data)
    if text is None:
        raise _Stop(path, "not UTF-8: tuned's read raises out of its start, nothing is applied", False)
    return text.strip(), None


def _boot_writes(host: TunedHost, rules: TunedRules, sources: Mapping[str, sf.SysctlSource]) -> TunedStart:
    run = _Run(rules)
    if not host.installed:
        return run.done(False, "tuned is not installed")
    evidence = ", ".join(host.unit_evidence)
    if host.unit_state == UNIT_MASKED:
        return run.done(False, "tuned.service is masked (%s)" % evidence)
    if host.unit_state == UNIT_NOT_INSTALLED:
        return run.done(False, "no tuned.service unit file: nothing starts tuned at boot")
    if host.unit_state != UNIT_ENABLED:
        shown = " (%s)" % evidence if evidence else ""
        return run.done(False, "tuned.service is not enabled: no *.wants link starts it at boot%s" % shown)
    for command in host.unit_exec_start:
        if command.strip() != STOCK_EXEC_START:
            run.issue("tuned.service", None, "ExecStart=%s is not the stock %s: a -p PROFILE there replaces "
                                             "active_profile (not modelled)" % (command, STOCK_EXEC_START), True)
    if host.unit_dropins:
        run.issue("tuned.service", None, "drop-ins %s may change how tuned starts or run other commands "
                                         "(not modelled)" % ", ".join(host.unit_dropins), True)
    if host.version is not None and not rules.covers(host.version):
        run.issue(host.version_evidence or "tuned", None, "host has tuned %s; %s covers %d.%d-%d.%d"
                  % (host.version, rules.name, rules.first[0], rules.first[1], rules.last[0], rules.last[1]), True)
    try:
        return _profile_start(run, host, sources)
    except _Stop as stop:
        run.issue(stop.path, None, stop.message, True)
        if stop.applies:
            return run.done(True, "tuned starts, but what it applies is not told by the files: " + stop.message)
        return run.done(False, stop.message)


def _profile_start(run: _Run, host: TunedHost, sources: Mapping[str, sf.SysctlSource]) -> TunedStart:
    rules = run.rules
    kind = host.not_files.get(MAIN_CONF)
    if MAIN_CONF in host.unreadable or kind in _HANGING:
        raise _Stop(MAIN_CONF, "cannot be read here (%s)" % (host.unreadable.get(MAIN_CONF) or kind), True)
    if kind is not None:  # a dangling link, a directory, a socket: open() fails, as for a missing file
        main = read_main_conf(None)
    else:
        main = read_main_conf(host.main_conf)
    for reason in main.unsure:
        run.issue(MAIN_CONF, None, reason, True)
    if main.fails:
        return run.done(False, main.fails)
    if not main.dbus:
        # tuned.service is Type=dbus: without the bus name systemd fails the start after its timeout,
        # and a daemon tuned then rolls its profile's values back (tuned.py, daemon.py).
        run.issue(MAIN_CONF, None, "daemon or enable_dbus is off: tuned never takes the D-Bus name tuned.service "
                                   "waits for, and what systemd's start timeout then leaves is not modelled", True)

    # daemon.py _init_profile: the post-loaded profile is read first, then the active one and the mode.
    post, no_profile = _state_text(host, POST_LOADED_PROFILE)
    if no_profile:
        return run.done(False, no_profile)
    if post and len(post.split()) > 1:
        return run.done(False, "%s names more than one profile: tuned applies no profile" % POST_LOADED_PROFILE)
    active, no_profile = _state_text(host, ACTIVE_PROFILE)
    if no_profile:
        return run.done(False, no_profile)
    mode, no_profile = _state_text(host, PROFILE_MODE)
    if no_profile:
        return run.done(False, no_profile)
    mode = mode or ""
    if mode not in ("", "auto", "manual"):
        return run.done(False, "%s says %r (not auto or manual): tuned applies no profile" % (PROFILE_MODE, mode))
    manual = (mode == "manual") if mode else bool(active)
    if not manual:
        if main.recommend_command:
            raise _Stop(PROFILE_MODE, "auto mode: tuned applies the profile its recommender picks (virt-what, "
                                      "/etc/system-release-cpe, dmidecode, processes), which files do not tell", True)
        active = DEFAULT_PROFILE  # recommend_command = 0: the recommender answers its fixed default
    names = (active or "").split() + ([post] if post else [])
    if not names:
        return run.done(False, "no active profile (manual mode, %s empty): tuned applies nothing" % ACTIVE_PROFILE)

    dirs = profile_dirs(rules, main)
    loader = _Loader(host, dirs)
    known = loader.known_names()
    for name in names:
        if name not in known:
            run.issue(ACTIVE_PROFILE, None, "profile %r does not exist in %s: tuned applies no profile"
                      % (name, ", ".join(reversed(dirs))), True)
            return run.done(False, "profile %r does not exist: tuned applies no profile" % name, profiles=tuple(names))
    safe = [name for name in names if _SAFE_NAME.match(name)]
    if not safe:
        return run.done(False, "no profile name tuned accepts in %r: it applies nothing" % " ".join(names))
    loader.load(safe)
    units = _merge(loader.profiles)
    chain = tuple(p.path for p in loader.profiles)
    order = _sysctl_units(run, units, main)
    if order is None:
        return run.done(False, "tuned's unit manager raises on a priority: no unit is applied", profiles=tuple(safe),
                        chain=chain)
    plain = [unit for unit, conditional in order if not conditional]
    reapply = _reapply_sequence(rules, main, sources) if main.reapply else None
    if reapply is not None and plain:
        run.issues.extend(reapply.issues)
        run.reapplied = list(reapply.files)
    for unit in plain:
        if not _profile_writes(run, unit):
            continue  # tuned raised inside this unit: its reapply does not happen, the next unit's does
        if reapply is not None:
            run.writes.extend(replace(write, unit=unit.name) for write in reapply.writes)
            if reapply.hung_on is not None:
                run.hung_on = reapply.hung_on
                break
    _judge_conditional_units(run, order, reapply)
    why = "tuned applies %s (%s)" % (" ".join(safe), "reapply_sysctl on" if main.reapply else "reapply_sysctl off")
    if not plain:
        why += "; the merged profile has no sysctl unit, so it writes and reapplies none of our keys"
    return run.done(True, why, profiles=tuple(safe), chain=chain, reapply=reapply is not None and bool(plain))


def _sysctl_units(run: _Run, units: "OrderedDict[str, _Unit]", main: MainConf) -> Optional[List[Tuple[_Unit, bool]]]:
    """The sysctl units tuned instantiates, in the order it applies them (units/manager.py: enabled
    units, sorted by priority, stable), each with whether it depends on cpuinfo/uname. None when
    tuned's unit manager raises. Notes script and bootloader units on the way."""
    chosen = []  # type: List[Tuple[int, _Unit, bool]]
    for name, unit in units.items():
        by_name, by_type = name == _VARIABLES, unit.type == _VARIABLES
        if by_name or by_type:
            if by_name != by_type:
                run.issue(unit.path, None, "unit [%s] type=%s: tuned before 2.26 tells [variables] by its name, "
                                           "2.26+ by its type (not modelled)" % (name, unit.type), True)
            continue
        if not unit.enabled:
            continue
        conditional = unit.cpuinfo_regex is not None or unit.uname_regex is not None
        try:
            priority = int(unit.priority) if unit.priority is not None else main.default_priority
        except ValueError:
            run.issue(unit.path, None, "unit [%s] priority=%s is not an int: tuned's unit manager raises and "
                                       "applies nothing" % (name, unit.priority), True)
            return None
        maybe = " (if /proc/cpuinfo or uname match its pattern)" if conditional else ""
        if unit.type == "script":
            run.issue(unit.path, None, "unit [%s] runs a script at tuned's start%s, which may set any sysctl "
                                       "(not modelled)" % (name, maybe), True)
        elif unit.type == "bootloader":
            cmdline = " ".join(v.value for k, v in unit.options.items() if k.startswith("cmdline"))
            if cmdline:
                run.issue(unit.path, None, "unit [%s] changes the next boot's kernel command line%s (%s): "
                                           "hugepages= or sysctl.vm.* there is not modelled" % (name, maybe, cmdline),
                          True)
        elif unit.type != "sysctl" and (unit.script_pre or unit.script_post):
            run.issue(unit.path, None, "unit [%s] runs script_pre/script_post%s, which may set any sysctl "
                                       "(not modelled)" % (name, maybe), True)
        if unit.type == "sysctl":
            chosen.append((priority, unit, conditional))
    chosen.sort(key=lambda item: item[0])
    return [(unit, conditional) for _priority, unit, conditional in chosen]


def _judge_conditional_units(run: _Run, order: List[Tuple[_Unit, bool]], reapply: Optional["_Reapply"]) -> None:
    """Whether a sysctl unit that applies only on matching hardware can change the tracked keys.

    Every write tuned makes without a ``>``/``<`` sets keys to fixed values (even a skipped
    unchanged write: it equals setting the key alone), so the reapply is idempotent: running it
    twice in a row ends like running it once. A conditional unit that sets none of our keys only
    adds a reapply right after another one, which cannot matter, unless it is the only sysctl
    unit (then it decides whether the reapply happens) or it runs first and the first unit's
    ``>``/``<`` values would compare with the reapplied values instead of the boot's.
    """
    plain = [unit for unit, conditional in order if not conditional]
    for position, (unit, conditional) in enumerate(order):
        if not conditional:
            continue
        what = "unit [%s] applies only if /proc/cpuinfo or uname match its pattern" % unit.name
        tracked = [option for option in unit.options if tracked_key(proc_path(option, run.rules))]
        reapply_matters = reapply is not None and any((bool(reapply.writes), reapply.hung_on is not None,
                                                       any(i.unmodelled for i in reapply.issues)))
        first_plain = next((i for i, (_u, c) in enumerate(order) if not c), None)
        if tracked:
            run.issue(unit.path, None, "%s, and it sets %s (not modelled)" % (what, ", ".join(tracked)), True)
        elif not reapply_matters:
            run.issue(unit.path, None, "%s; it sets none of our keys and adds no reapply of them" % what, False)
        elif not plain:
            run.issue(unit.path, None, "%s, and it is the only sysctl unit: whether tuned reapplies the sysctl "
                                       "files depends on it (not modelled)" % what, True)
        elif first_plain is not None and position < first_plain and _has_modifier(plain[0], run.rules):
            run.issue(unit.path, None, "%s, and it would run first: [%s]'s >/< values would then compare with "
                                       "reapplied values (not modelled)" % (what, plain[0].name), True)
        else:
            run.issue(unit.path, None, "%s; it sets none of our keys, and its reapply repeats one that happens "
                                       "anyway" % what, False)


def _has_modifier(unit: _Unit, rules: TunedRules) -> bool:
    for option, opt in unit.options.items():
        value = _unquote(opt.value)
        if tracked_key(proc_path(option, rules)) and len(value) > 1 and value[0] in "<>":
            return True
    return False


def _profile_writes(run: _Run, unit: _Unit) -> bool:
    """The [sysctl] options of one instance; False when tuned raises and stops this instance."""
    for option, opt in unit.options.items():
        if "\0" in option:
            run.issue(opt.path, opt.lineno, "key %r holds a NUL byte: Python raises and tuned stops applying [%s] "
                                            "(not modelled)" % (option, unit.name), True)
            return False
        key = tracked_key(proc_path(option, run.rules))
        if key is None:
            if _names_tracked(option):
                run.issue(opt.path, opt.lineno, "%s cannot read %s as %s: it does not set it"
                          % (run.rules.name, option, proc_path(option, run.rules)), False)
            continue
        value = _unquote(opt.value)
        if "${" in value:
            run.issue(opt.path, opt.lineno, "%s = %s uses a variable or function (not modelled)"
                      % (option, opt.value), True)
            continue
        modifier = None
        if len(value) > 1 and value[0] in "<>":
            modifier, value = value[0], value[1:]
        run.writes.append(TunedWrite(key, value.encode("utf-8", "surrogateescape"), opt.path, opt.lineno,
                                     ORIGIN_PROFILE, modifier, run.rules.suppresses_unchanged_writes, option, unit.name))
    return True


def reapply_files(sources: Mapping[str, sf.SysctlSource]) -> List[sf.SysctlSource]:
    """The sysctl files tuned reads again, in its order: /run/sysctl.d wins a name over
    /etc/sysctl.d, names sorted as Python strings, then /etc/sysctl.conf."""
    chosen = {}  # type: Dict[str, sf.SysctlSource]
    for directory in REAPPLY_DIRS:
        for src in sorted(sources.values(), key=lambda s: s.path):
            if src.directory == directory and src.name.endswith(".conf"):
                chosen.setdefault(src.name, src)
    ordered = [chosen[name] for name in sorted(chosen)]
    conf = sources.get(sf.SYSCTL_CONF)
    if conf is not None:
        ordered.append(conf)
    return ordered


@dataclass
class _Reapply:
    """One reapply pass (the same for every sysctl instance): its writes, issues and files."""

    writes: List[TunedWrite] = field(default_factory=list)
    issues: List[TunedIssue] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    hung_on: Optional[str] = None


def _reapply_sequence(rules: TunedRules, main: MainConf, sources: Mapping[str, sf.SysctlSource]) -> _Reapply:
    """plugin_sysctl.py _apply_system_sysctl under ``rules``."""
    out = _Reapply()
    collected = OrderedDict()  # type: OrderedDict[str, Tuple[str, str, int]]
    for src in reapply_files(sources):
        out.files.append(src.path)
        if src.status == sf.STATUS_MASKED:
            continue  # /dev/null reads empty
        if src.status == sf.STATUS_SKIPPED:
            if src.kind == sf.KIND_DANGLING:
                out.issues.append(TunedIssue(src.path, None, "%s: tuned's open() fails with ENOENT and it goes on "
                                                             "without a word" % src.note, False))
                continue
            if src.kind in _HANGING:
                out.issues.append(TunedIssue(src.path, None, "%s (%s): tuned blocks opening it and writes nothing "
                                                             "after; systemd then kills it (not modelled)"
                                             % (src.note, src.kind), True))
                out.hung_on = src.path
                return out
            if src.kind in (sf.KIND_DIRECTORY, sf.KIND_SOCKET):
                out.issues.append(TunedIssue(src.path, None, "a %s: tuned cannot read it and goes on" % src.kind,
                                             False))
                continue
            out.issues.append(TunedIssue(src.path, None, "%s: not read here, tuned reapplies it (not modelled)"
                                         % src.note, True))
            continue
        text = _decode(src.data or b"")
        if text is None:
            chunked = " (lines in its first 8 KiB chunks are written first)" if len(src.data or b"") > _CHUNK_BYTES \
                else ""
            out.issues.append(TunedIssue(src.path, None, "not UTF-8: tuned's read raises and its reapply stops "
                                                         "here%s (not modelled)" % chunked, True))
            if rules.collapses_reapplied:
                collected.clear()  # the collected lines were to be written after the last file: never
            break
        for lineno, line in enumerate(_lines(text), start=1):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if "=" not in line or not line.split("=", 1)[0].strip():
                if _names_tracked(line):
                    out.issues.append(TunedIssue(src.path, lineno, "tuned: syntax error (no key = value), "
                                                                   "line skipped", False))
                continue
            option, value = (part.strip() for part in line.split("=", 1))
            if rules.reapply_exclusions and any(fnmatch.fnmatch(option, p) for p in main.exclusions):
                continue
            if rules.collapses_reapplied:
                collected[option] = (value, src.path, lineno)
            elif not _reapply_write(rules, out, option, value, src.path, lineno):
                return out
    for option, (value, path, lineno) in collected.items():
        if not _reapply_write(rules, out, option, value, path, lineno):
            return out
    return out


def _reapply_write(rules: TunedRules, out: _Reapply, option: str, value: str, path: str, lineno: int) -> bool:
    """One reapplied line; False when tuned raises there and its reapply stops."""
    if "\0" in option:
        out.issues.append(TunedIssue(path, lineno, "key %r holds a NUL byte: Python raises and tuned's reapply "
                                                   "stops (not modelled)" % option, True))
        return False
    key = tracked_key(proc_path(option, rules))
    if key is None:
        if _names_tracked(option):
            out.issues.append(TunedIssue(path, lineno, "%s opens %s for %r: no such key, nothing written"
                                         % (rules.name, proc_path(option, rules), option), False))
        return True
    out.writes.append(TunedWrite(key, value.encode("utf-8", "surrogateescape"), path, lineno, ORIGIN_REAPPLY, None,
                                 rules.suppresses_unchanged_writes, option))
    return True


def _signature(start: TunedStart) -> Tuple[object, ...]:
    """What decides the end state: the writes in order (not where they come from: the profile
    directories differ between versions), with the skip flag only where it can matter (a skipped
    "0" to ratio or kbytes keeps the partner; any other unchanged write changes nothing)."""
    return (start.runs, start.hung_on is not None, tuple(
        (w.key, w.raw, w.modifier, w.skips_unchanged and w.key in sk.PARTNER and w.raw == b"0")
        for w in start.writes))


def tuned_boot_writes(host: TunedHost, rules: TunedRules, sysctl_sources: Mapping[str, sf.SysctlSource]) -> TunedStart:
    """What tuned writes to the tracked keys at its start at boot, under ``rules``.

    ``sysctl_sources`` are sysctl_files.read_sysctl_sources' reading of the host. When the host's
    tuned version is unknown (or no rule set covers it) and other rule sets predict other writes,
    that is reported in ``unmodelled``.
    """
    start = _boot_writes(host, rules, sysctl_sources)
    if any(r.covers(host.version) for r in TUNED_RULE_SETS):
        return start
    mine = _signature(start)
    others = [r.name for r in TUNED_RULE_SETS
              if r is not rules and _signature(_boot_writes(host, r, sysctl_sources)) != mine]
    if not others:
        return start
    issue = TunedIssue(host.version_evidence or "tuned", None, "tuned's version is %s: %s predict other writes "
                       "than %s (not modelled)" % (host.version or "unknown", ", ".join(others), rules.name), True)
    return TunedStart(rules=start.rules, runs=start.runs, why=start.why, profiles=start.profiles, chain=start.chain,
                      reapply=start.reapply, reapplied_files=start.reapplied_files, writes=start.writes,
                      issues=start.issues + (issue,), hung_on=start.hung_on)


# ------------------------------------------------------------------ onto the boot replay


def _modified(write: TunedWrite, current: str) -> Optional[bytes]:
    """What a ``>``/``<`` value writes against the live value, or None (base.py: Python ints)."""
    text = write.raw.decode("utf-8", "surrogateescape")
    try:
        wanted, live = int(text), int(current)
    except ValueError:
        return (write.modifier or "").encode() + write.raw  # tuned writes the value with its sign
    if (write.modifier == ">" and wanted > live) or (write.modifier == "<" and wanted < live):
        return write.raw
    return None


def apply_tuned(replay: sr.Replay, start: TunedStart) -> sr.Replay:
    """A new Replay: ``replay`` continued by tuned's writes at its start (``replay`` is not changed)."""
    result = sr.Replay(rules=replay.rules, start=dict(replay.start), end=dict(replay.end),
                       files=list(replay.files), writes=list(replay.writes), problems=list(replay.problems),
                       hung_on=replay.hung_on, after=replay.after + (start.rules.name,))
    tool = start.rules.name
    for issue in start.issues:
        prefix = "%s: not modelled: " % tool if issue.unmodelled else "%s: " % tool
        result.problems.append(sr.Problem(issue.path, issue.lineno, prefix + issue.message))
    if not start.runs:
        return result
    result.files.extend(path for path in start.chain + start.reapplied_files)
    for write in start.writes:
        before = dict(result.end)
        raw = write.raw if write.modifier is None else _modified(write, before[write.key])
        if raw is None or raw == b"":
            continue  # the modifier says no, or an empty value: Python writes no byte
        if write.skips_unchanged and raw == before[write.key].encode("ascii"):
            result.writes.append(sr.ReplayWrite(write.key, raw, write.path, write.lineno, True, None, before, before,
                                                suppressed=True, tool=tool))
            continue
        outcome = sk.kernel_write(before, write.key, raw)
        result.end = outcome.state
        result.writes.append(sr.ReplayWrite(write.key, raw, write.path, write.lineno, outcome.accepted, outcome.error,
                                            before, dict(outcome.state), ignored_tail=outcome.ignored_tail, tool=tool))
        if not outcome.accepted:
            result.problems.append(sr.Problem(write.path, write.lineno, "%s: %s = %s: %s"
                                              % (tool, write.key, sk.show(raw), outcome.error)))
    return result
