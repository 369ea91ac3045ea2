"""What tuned writes at its start at boot, per tuned version, and how that continues a boot replay.

Each test states one rule read in tuned's sources (the rule set's ``source`` names the tag);
tests/lab/test_tuned_differential.py runs the same kind of files through Debian 12's real tuned
on a real kernel. Fixture texts are shaped like the files Debian installs (tuned-main.conf, the
shipped throughput-performance and postgresql profiles) and like an admin's own profile.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_outcome as so
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm

MODE, RATIO, KBYTES, RESERVE, USER = sk.MODE, sk.RATIO, sk.KBYTES, sk.ADMIN_RESERVE, sk.USER_RESERVE
BOOT = sk.KERNEL_BOOT_DEFAULTS
OURS = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
T20, T22, T25, T27, T28 = tm.TUNED_2_20, tm.TUNED_2_22, tm.TUNED_2_25, tm.TUNED_2_27, tm.TUNED_2_28
ALL = list(tm.TUNED_RULE_SETS)
ids = pytest.mark.parametrize("rules", ALL, ids=[r.name for r in ALL])

# tuned-main.conf as Debian 12 installs it (its long comments left out).
MAIN_CONF = """# Global tuned configuration file.
daemon = 1
dynamic_tuning = 1
sleep_interval = 1
update_interval = 10
recommend_command = 1
reapply_sysctl = 1
default_instance_priority = 0
udev_buffer_size = 1MB
log_file_count = 2
log_file_max_size = 1MB
"""
MAIN_CONF_NO_REAPPLY = MAIN_CONF.replace("reapply_sysctl = 1", "reapply_sysctl = 0")

# Shaped like the shipped throughput-performance: several plugins, a [sysctl] without our keys and
# a second sysctl unit that applies only on some ARM CPUs.
THROUGHPUT = """#
# throughput-performance (trimmed)
#

[main]
summary=Throughput first

[cpu]
governor=performance
energy_perf_bias=performance
min_perf_pct=100

[disk]
readahead=>4096

[sysctl]
kernel.sched_min_granularity_ns = 10000000
vm.dirty_ratio = 40
vm.dirty_background_ratio = 10
vm.swappiness=10

[sysctl.thunderx]
type=sysctl
uname_regex=aarch64
cpuinfo_regex=CPU part\\s+:\\s+0x0?516
kernel.numa_balancing=0
"""
POSTGRESQL = """#
# tuned configuration for PostgreSQL servers (trimmed)
#

[main]
summary=PostgreSQL server
include=throughput-performance

[cpu]
force_latency=1

[vm]
transparent_hugepages=never

[sysctl]
vm.dirty_background_ratio = 0
vm.dirty_ratio = 0
vm.dirty_background_bytes = 67108864
vm.dirty_bytes = 536870912
"""
# An admin's profile on a database host.
DB_PROFILE = """# Database hosts: PostgreSQL's profile with strict overcommit.
[main]
summary=PostgreSQL with strict overcommit
include=postgresql

[sysctl]
vm.overcommit_memory = 2
vm.overcommit_ratio = 40
"""
DB_PROFILE_LINE = {MODE: 7, RATIO: 8}
DROPIN = "# managed by dbfleet.memory\nvm.admin_reserve_kbytes = 131072\nvm.overcommit_ratio = 90\n" \
         "vm.overcommit_memory = 2\n"
DEBIAN12_SYSCTL_CONF = "#\n# /etc/sysctl.conf - Configuration file for system variables\n#kernel.domainname = x\n"


def profile_path(rules: tm.TunedRules, name: str, etc: bool = False) -> str:
    directory = rules.profile_dirs[1 if etc else 0]
    return "%s/%s/tuned.conf" % (directory, name)


def host(rules: tm.TunedRules = T20, active: Optional[str] = "dbfleet-pg", mode: Optional[str] = "manual",
         main: Optional[str] = MAIN_CONF, etc: Optional[Mapping[str, str]] = None,
         usr: Optional[Mapping[str, str]] = None, post: Optional[str] = None, **kwargs: object) -> tm.TunedHost:
    """A host with tuned enabled at boot, the shipped profiles in the version's system directory and
    ``etc`` {name: text} (default: the admin's dbfleet-pg profile) in its user directory."""
    files = {profile_path(rules, "throughput-performance"): THROUGHPUT, profile_path(rules, "postgresql"): POSTGRESQL,
             profile_path(rules, "balanced"): "[main]\nsummary=Balanced\n\n[cpu]\ngovernor=schedutil\n"}
    for name, text in (usr or {}).items():
        files[profile_path(rules, name)] = text
    for name, text in ({"dbfleet-pg": DB_PROFILE} if etc is None else etc).items():
        files[profile_path(rules, name, etc=True)] = text
    fields = dict(
        installed=True, version=rules.version + ".0" if rules.version.count(".") == 1 else rules.version,
        version_evidence="/usr/lib/python3/dist-packages/tuned/version.py", unit_state=tm.UNIT_ENABLED,
        unit_evidence=("/etc/systemd/system/multi-user.target.wants/tuned.service",),
        unit_exec_start=(tm.STOCK_EXEC_START,),
        main_conf=None if main is None else main.encode(), active_profile=None if active is None else
        (active + "\n").encode(), profile_mode=None if mode is None else (mode + "\n").encode(),
        post_loaded_profile=None if post is None else post.encode(),
        profile_files={path: text.encode() for path, text in files.items()},
        profile_dirs_listed=tm.profile_dirs_to_read(None if main is None else main.encode()),
    )
    fields.update(kwargs)
    return tm.TunedHost(**fields)  # type: ignore[arg-type]


def sources(extra: Optional[Mapping[str, Optional[str]]] = None, dropin: Optional[str] = DROPIN,
            debian12: bool = True) -> Dict[str, sf.SysctlSource]:
    files = {"/usr/lib/sysctl.d/50-pid-max.conf": "kernel.pid_max = 4194304\n"}  # type: Dict[str, Optional[str]]
    if dropin is not None:
        files[OURS] = dropin
    if debian12:
        files["/etc/sysctl.conf"] = DEBIAN12_SYSCTL_CONF
        files["/etc/sysctl.d/99-sysctl.conf"] = DEBIAN12_SYSCTL_CONF  # the symlink, followed
    files.update(extra or {})
    return so.sources_from_texts(files)


def boot(tuned_host: tm.TunedHost, srcs: Mapping[str, sf.SysctlSource], rules: tm.TunedRules = T20,
         start: Optional[Mapping[str, str]] = None):
    """(tuned's start, the replay of systemd-sysctl then tuned)."""
    tuned = tm.tuned_boot_writes(tuned_host, rules, srcs)
    return tuned, tm.apply_tuned(sr.replay(srcs, sr.SYSTEMD_252, start or BOOT), tuned)


def writes(start: tm.TunedStart):
    return [(w.key, w.raw.decode(), w.origin) for w in start.writes]


def pick(state, *keys):
    return tuple(state[k] for k in keys)


# ---------------------------------------------------------------- rule sets


@pytest.mark.parametrize("version, expected", [
    ("2.20.0", ["tuned-2.20"]), ("2.21.0", ["tuned-2.20"]), ("2.22.1", ["tuned-2.22"]), ("2.23.0", ["tuned-2.25"]),
    ("2.25.1", ["tuned-2.25"]), ("2.26.0", ["tuned-2.25"]), ("2.27.0", ["tuned-2.27"]), ("2.28.0", ["tuned-2.28"]),
    (None, [r.name for r in ALL]), ("2.19.0", [r.name for r in ALL]), ("2.29.0", [r.name for r in ALL]),
    ("not a version", [r.name for r in ALL]),
])
def test_rules_for_version_picks_the_covering_rule_set_or_all_when_unknown(version, expected):
    assert [r.name for r in tm.rules_for_version(version)] == expected


@ids
def test_every_rule_set_names_the_tag_it_was_read_at(rules):
    assert rules.source.startswith("tuned v%d.%d" % rules.first) or "v2.25.1" in rules.source
    assert rules.first <= tm.version_parts(rules.version) <= rules.last


# ---------------------------------------------------------------- does tuned run at all


@pytest.mark.parametrize("changes, why", [
    (dict(installed=False, unit_state=tm.UNIT_NOT_INSTALLED), "tuned is not installed"),
    (dict(unit_state=tm.UNIT_MASKED, unit_evidence=("/etc/systemd/system/tuned.service -> /dev/null",)),
     "tuned.service is masked (/etc/systemd/system/tuned.service -> /dev/null)"),
    (dict(unit_state=tm.UNIT_DISABLED, unit_evidence=("/lib/systemd/system/tuned.service",)),
     "tuned.service is not enabled: no *.wants link starts it at boot (/lib/systemd/system/tuned.service)"),
    (dict(unit_state=tm.UNIT_NOT_INSTALLED, unit_evidence=()),
     "no tuned.service unit file: nothing starts tuned at boot"),
], ids=["not-installed", "masked", "disabled", "package-without-unit"])
def test_tuned_that_does_not_start_at_boot_writes_nothing(changes, why):
    tuned, result = boot(host(**changes), sources(), T20)
    assert (tuned.runs, tuned.why, tuned.writes, tuned.unmodelled) == (False, why, (), [])
    assert result.end == sr.replay(sources(), sr.SYSTEMD_252, BOOT).end


@pytest.mark.parametrize("changes, reported", [
    (dict(unit_exec_start=("/usr/sbin/tuned -l -P -p throughput-performance",)),
     "tuned.service: ExecStart=/usr/sbin/tuned -l -P -p throughput-performance is not the stock"),
    (dict(unit_dropins=("/etc/systemd/system/tuned.service.d/10-local.conf",)),
     "tuned.service: drop-ins /etc/systemd/system/tuned.service.d/10-local.conf may change how tuned starts"),
], ids=["exec-start-with-a-profile", "drop-in"])
def test_a_changed_tuned_service_is_reported_as_not_modelled(changes, reported):
    tuned = tm.tuned_boot_writes(host(**changes), T20, sources())
    assert len(tuned.unmodelled) == 1 and tuned.unmodelled[0].startswith(reported)


def test_without_tuned_main_conf_tuned_stops_at_start():
    tuned = tm.tuned_boot_writes(host(main=None), T20, sources())
    assert not tuned.runs and tuned.why == "/etc/tuned/tuned-main.conf is missing: tuned stops at start (GlobalConfig raises)"


@pytest.mark.parametrize("line, reapply", [
    ("reapply_sysctl = 1", True), ("reapply_sysctl = yes", True), ("reapply_sysctl = TRUE", True),
    ("reapply_sysctl = on", True), ("reapply_sysctl = 0", False), ("reapply_sysctl = no", False),
    ("reapply_sysctl = False", False), ("reapply_sysctl = off", False), ("reapply_sysctl = 0 # off here", False),
    ("reapply_sysctl=0", False), ("# reapply_sysctl = 0", True), ("", True),
    ("reapply_sysctl = 0\nreapply_sysctl = 1", True), ("[main]\nreapply_sysctl = 0", True),
], ids=lambda v: repr(v) if isinstance(v, str) else str(v))
def test_reapply_sysctl_is_read_with_getboolean_and_defaults_to_on(line, reapply):
    """A repeated key: the last wins; a key under a section header of its own is not tuned's."""
    conf = MAIN_CONF.replace("reapply_sysctl = 1\n", "") + line + "\n"
    assert tm.read_main_conf(conf.encode()).reapply is reapply
    assert tm.tuned_boot_writes(host(main=conf), T20, sources()).reapply is reapply


@pytest.mark.parametrize("line", ["reapply_sysctl = maybe", "reapply_sysctl =", "sleep_interval = fast",
                                  "default_instance_priority = high", "recommend_command = 2"])
def test_a_value_getboolean_or_getint_refuses_stops_tuned_at_start(line):
    conf = MAIN_CONF + line + "\n"
    tuned = tm.tuned_boot_writes(host(main=conf), T20, sources())
    assert not tuned.runs and "tuned stops at start" in tuned.why and tuned.writes == ()


def test_a_main_conf_tuned_cannot_parse_stops_it_at_start():
    tuned = tm.tuned_boot_writes(host(main="reapply_sysctl\n"), T20, sources())
    assert not tuned.runs and tuned.why.startswith("tuned cannot parse /etc/tuned/tuned-main.conf")


# ---------------------------------------------------------------- which profile


@pytest.mark.parametrize("active, mode", [("", ""), (None, None), ("virtual-guest", "auto"), ("", "auto")],
                         ids=["debian-fresh-install", "no-files", "auto-with-a-name", "auto-empty"])
def test_auto_mode_is_not_modelled_because_the_recommender_asks_virt_what(active, mode):
    """Debian installs active_profile and profile_mode empty: that is auto mode."""
    tuned = tm.tuned_boot_writes(host(active=active, mode=mode), T20, sources())
    assert tuned.runs and tuned.writes == ()
    assert tuned.unmodelled == ["/etc/tuned/profile_mode: auto mode: tuned applies the profile its recommender picks "
                                "(virt-what, /etc/system-release-cpe, dmidecode, processes), which files do not tell"]


def test_auto_mode_with_the_recommender_off_applies_balanced():
    conf = MAIN_CONF.replace("recommend_command = 1", "recommend_command = 0")
    tuned = tm.tuned_boot_writes(host(active="", mode="auto", main=conf), T20, sources())
    assert (tuned.runs, tuned.profiles, tuned.unmodelled) == (True, ("balanced",), [])
    assert tuned.why.endswith("no sysctl unit, so it writes and reapplies none of our keys")


def test_a_named_profile_without_a_mode_file_is_manual():
    tuned = tm.tuned_boot_writes(host(mode=None), T20, sources())
    assert tuned.profiles == ("dbfleet-pg",) and tuned.unmodelled == []


@pytest.mark.parametrize("mode", ["Manual", "static"])
def test_a_profile_mode_tuned_does_not_know_means_no_profile(mode):
    tuned = tm.tuned_boot_writes(host(mode=mode), T20, sources())
    assert not tuned.runs and tuned.why == "/etc/tuned/profile_mode says %r (not auto or manual): tuned applies " \
                                           "no profile" % mode


def test_manual_mode_without_a_profile_applies_nothing():
    tuned = tm.tuned_boot_writes(host(active=""), T20, sources())
    assert not tuned.runs and tuned.why.startswith("no active profile")


def test_a_missing_active_profile_applies_nothing_and_is_reported():
    tuned = tm.tuned_boot_writes(host(active="oracle-db"), T20, sources())
    assert not tuned.runs and tuned.writes == ()
    assert tuned.unmodelled == ["/etc/tuned/active_profile: profile 'oracle-db' does not exist in /etc/tuned, "
                                "/usr/lib/tuned: tuned applies no profile"]


def test_several_active_profiles_merge_in_order_the_later_one_winning():
    later = "[main]\nsummary=later\n\n[sysctl]\nvm.overcommit_ratio = 55\n"
    tuned = tm.tuned_boot_writes(host(active="dbfleet-pg later", etc={"dbfleet-pg": DB_PROFILE, "later": later}),
                                 T20, sources(dropin=None))
    assert tuned.profiles == ("dbfleet-pg", "later")
    assert [(w.key, w.raw, w.path) for w in tuned.writes if w.origin == tm.ORIGIN_PROFILE] == [
        (MODE, b"2", profile_path(T20, "dbfleet-pg", True)), (RATIO, b"55", profile_path(T20, "later", True))]


def test_the_post_loaded_profile_comes_after_the_active_ones():
    extra = "[sysctl]\nvm.admin_reserve_kbytes = 65536\nvm.overcommit_ratio = 60\n"
    tuned = tm.tuned_boot_writes(host(post="dbfleet-extra\n", etc={"dbfleet-pg": DB_PROFILE, "dbfleet-extra": extra}),
                                 T20, sources(dropin=None))
    assert tuned.profiles == ("dbfleet-pg", "dbfleet-extra")
    assert [(w.key, w.raw) for w in tuned.writes if w.origin == tm.ORIGIN_PROFILE] == [
        (MODE, b"2"), (RATIO, b"60"), (RESERVE, b"65536")]


def test_two_post_loaded_profiles_mean_no_profile_at_all():
    tuned = tm.tuned_boot_writes(host(post="a b\n"), T20, sources())
    assert not tuned.runs and "more than one profile" in tuned.why


# ---------------------------------------------------------------- profiles: lookup, include, merge


def test_the_include_chain_loads_parents_first_and_the_child_overrides_them():
    base = "[sysctl]\nvm.overcommit_ratio = 30\nvm.admin_reserve_kbytes = 65536\nvm.overcommit_memory = 1\n"
    child = "[main]\ninclude=dbfleet-base\n\n[sysctl]\nvm.overcommit_ratio = 45\n"
    tuned = tm.tuned_boot_writes(host(active="dbfleet-child", etc={"dbfleet-base": base, "dbfleet-child": child}),
                                 T20, sources(dropin=None))
    assert tuned.chain == (profile_path(T20, "dbfleet-base", True), profile_path(T20, "dbfleet-child", True))
    # The child's value at the parent's place in the order (dict.update), with the child's line.
    assert [(w.key, w.raw, w.where) for w in tuned.writes if w.origin == tm.ORIGIN_PROFILE] == [
        (RATIO, b"45", profile_path(T20, "dbfleet-child", True) + ":5"),
        (RESERVE, b"65536", profile_path(T20, "dbfleet-base", True) + ":3"),
        (MODE, b"1", profile_path(T20, "dbfleet-base", True) + ":4")]


def test_the_shipped_chain_reaches_through_postgresql_to_throughput_performance():
    tuned = tm.tuned_boot_writes(host(), T20, sources())
    assert tuned.chain == (profile_path(T20, "throughput-performance"), profile_path(T20, "postgresql"),
                           profile_path(T20, "dbfleet-pg", True))


@pytest.mark.parametrize("rules", [T20, T25], ids=["tuned-2.20", "tuned-2.25"])
def test_a_profile_in_the_user_directory_replaces_the_shipped_one_of_the_same_name(rules):
    own = "[main]\nsummary=ours\n\n[sysctl]\nvm.overcommit_ratio = 35\n"
    tuned = tm.tuned_boot_writes(host(rules, active="postgresql", etc={"postgresql": own}), rules,
                                 sources(dropin=None))
    assert tuned.chain == (profile_path(rules, "postgresql", True),)
    assert writes(tuned)[0] == (RATIO, "35", tm.ORIGIN_PROFILE)


def test_a_user_profile_including_its_own_name_extends_the_shipped_one():
    """The locator skips the file already loaded and finds the shipped profile of that name below."""
    own = "[main]\ninclude=postgresql\n\n[sysctl]\nvm.overcommit_ratio = 35\n"
    tuned = tm.tuned_boot_writes(host(active="postgresql", etc={"postgresql": own}), T20, sources(dropin=None))
    assert tuned.chain == (profile_path(T20, "throughput-performance"), profile_path(T20, "postgresql"),
                           profile_path(T20, "postgresql", True))


@pytest.mark.parametrize("rules, found", [(T20, True), (T22, True), (T25, False), (T27, False), (T28, False)],
                         ids=lambda v: v.name if isinstance(v, tm.TunedRules) else str(v))
def test_since_2_23_profiles_live_in_profiles_subdirectories(rules, found):
    """/etc/tuned/dbfleet-pg/tuned.conf is a profile to 2.20-2.22 only."""
    old_style = {"/etc/tuned/dbfleet-pg/tuned.conf": DB_PROFILE.encode(),
                 "/usr/lib/tuned/postgresql/tuned.conf": POSTGRESQL.encode(),
                 "/usr/lib/tuned/throughput-performance/tuned.conf": THROUGHPUT.encode()}
    tuned = tm.tuned_boot_writes(host(rules, profile_files=old_style), rules, sources())
    assert tuned.runs is found
    assert (tuned.chain[-1] if found else tuned.why) == (
        "/etc/tuned/dbfleet-pg/tuned.conf" if found else "profile 'dbfleet-pg' does not exist: tuned applies no profile")


def test_profile_dirs_in_tuned_main_conf_replace_the_default_directories_since_2_23():
    conf = MAIN_CONF + "profile_dirs = /usr/lib/tuned/profiles, /etc/tuned/ ; /srv/tuned\n"
    own = {"/srv/tuned/dbfleet-pg/tuned.conf": b"[sysctl]\nvm.overcommit_ratio = 33\n"}
    tuned_host = host(T25, main=conf, profile_files=own)
    # 2.20-2.22 use their own directories whatever the option says: the reader reads both sets.
    assert tm.profile_dirs_to_read(conf.encode()) == ("/usr/lib/tuned", "/etc/tuned", "/usr/lib/tuned/profiles",
                                                      "/srv/tuned")
    tuned = tm.tuned_boot_writes(tuned_host, T25, sources(dropin=None))
    assert tuned.chain == ("/srv/tuned/dbfleet-pg/tuned.conf",) and writes(tuned)[0] == (RATIO, "33", "profile")
    assert not tm.tuned_boot_writes(tuned_host, T20, sources(dropin=None)).runs  # 2.20 ignores the option


def test_a_missing_conditional_include_is_skipped_and_a_missing_include_applies_nothing():
    soft = "[main]\ninclude=-dbfleet-local\n\n[sysctl]\nvm.overcommit_ratio = 41\n"
    tuned = tm.tuned_boot_writes(host(active="soft", etc={"soft": soft}), T20, sources(dropin=None))
    assert tuned.runs and writes(tuned)[0] == (RATIO, "41", "profile")
    hard = soft.replace("-dbfleet-local", "dbfleet-local")
    tuned = tm.tuned_boot_writes(host(active="hard", etc={"hard": hard}), T20, sources(dropin=None))
    assert not tuned.runs and tuned.writes == ()
    assert tuned.unmodelled == ["dbfleet-local: profile 'dbfleet-local' is not found in /etc/tuned, /usr/lib/tuned: "
                                "tuned applies no profile"]


@pytest.mark.parametrize("parent_enabled, child_section, ratio_written", [
    ("", "[sysctl]\nenabled=false\n", False),
    ("", "[sysctl]\nenabled=yes\n", False),  # only True, true and 1 enable a unit
    ("", "[sysctl]\nenabled=0\n", False),
    ("enabled=false\n", "[sysctl]\nenabled=true\n", True),
    ("enabled=false\n", "[sysctl]\nvm.swappiness = 5\n", True),  # a later unit always sets enabled (default true)
    ("enabled=false\n", "[cpu]\ngovernor=performance\n", False),
], ids=["false", "yes", "0", "true", "child-without-enabled", "child-without-the-unit"])
def test_enabled_is_true_only_for_true_and_1_and_a_child_unit_always_sets_it(
        parent_enabled, child_section, ratio_written):
    parent = "[sysctl]\n" + parent_enabled + "vm.overcommit_ratio = 42\n"
    child = "[main]\ninclude=parent\n\n" + child_section
    tuned = tm.tuned_boot_writes(host(active="child", etc={"parent": parent, "child": child}), T20,
                                 sources(dropin=None))
    assert ((RATIO, "42", "profile") in writes(tuned)) is ratio_written
    assert tuned.reapply is ratio_written  # no sysctl instance: no reapply either


def test_replace_drops_the_parents_options_and_drop_removes_named_ones():
    parent = "[sysctl]\nvm.overcommit_ratio = 42\nvm.admin_reserve_kbytes = 65536\nvm.overcommit_memory = 1\n"
    replacing = "[main]\ninclude=parent\n\n[sysctl]\nreplace=1\nvm.overcommit_memory = 0\n"
    dropping = "[main]\ninclude=parent\n\n[sysctl]\ndrop=vm.overcommit_ratio, vm.admin_reserve_kbytes\n"
    for child, expected in ((replacing, [(MODE, "0", "profile")]), (dropping, [(MODE, "1", "profile")])):
        tuned = tm.tuned_boot_writes(host(active="child", etc={"parent": parent, "child": child}), T20,
                                     sources(dropin=None, debian12=False))
        assert writes(tuned) == expected


def test_sysctl_units_run_in_priority_order_and_each_one_reapplies():
    profile = ("[main]\nsummary=two units\n\n[sysctl]\npriority=20\nvm.overcommit_ratio = 70\n\n"
               "[memory_pin]\ntype=sysctl\npriority=10\nvm.overcommit_ratio = 60\n")
    tuned = tm.tuned_boot_writes(host(active="two", etc={"two": profile}), T20, sources(debian12=False))
    assert [(w.key, w.raw.decode(), w.origin, w.unit) for w in tuned.writes if w.key == RATIO] == [
        (RATIO, "60", "profile", "memory_pin"), (RATIO, "90", "reapply", "memory_pin"),
        (RATIO, "70", "profile", "sysctl"), (RATIO, "90", "reapply", "sysctl")]


def test_default_section_options_flow_into_every_unit():
    profile = "[DEFAULT]\nvm.overcommit_ratio = 44\n\n[main]\nsummary=defaults\n\n[sysctl]\nvm.swappiness = 1\n"
    tuned = tm.tuned_boot_writes(host(active="d", etc={"d": profile}), T20, sources(dropin=None))
    assert [(w.key, w.raw, w.lineno) for w in tuned.writes] == [(RATIO, b"44", 2)]


@pytest.mark.parametrize("value, raw", [
    ("40", b"40"), ("40 # ours", b"40"), ("40#ours", b"40#ours"), ('"40"', b"40"), ("'40'", b"'40'"),
    ('"40', b'"40'), ("  40  ", b"40"),
])
def test_profile_values_lose_inline_comments_and_one_pair_of_double_quotes(value, raw):
    profile = "[sysctl]\nvm.overcommit_ratio = %s\n" % value
    tuned = tm.tuned_boot_writes(host(active="p", etc={"p": profile}), T20, sources(dropin=None))
    assert [w.raw for w in tuned.writes] == [raw]


@pytest.mark.parametrize("value", ["${ratio}", "${f:calc_ratio:90}", "\\${ratio}"])
def test_a_tracked_value_using_a_variable_or_function_is_not_modelled(value):
    profile = "[variables]\nratio=40\n\n[sysctl]\nvm.overcommit_ratio = %s\nvm.overcommit_memory = 2\n" % value
    tuned = tm.tuned_boot_writes(host(active="v", etc={"v": profile}), T20, sources(dropin=None))
    assert writes(tuned) == [(MODE, "2", "profile")]
    assert tuned.unmodelled == ["%s:5: vm.overcommit_ratio = %s uses a variable or function (not modelled)"
                                % (profile_path(T20, "v", True), value)]


def test_a_profile_tuned_cannot_parse_means_no_profile_and_is_reported():
    broken = "[main]\ninclude=postgresql\n\n[sysctl]\nvm.overcommit_ratio: 40\n"
    tuned = tm.tuned_boot_writes(host(etc={"dbfleet-pg": broken}), T20, sources())
    assert not tuned.runs and tuned.writes == ()
    assert tuned.unmodelled[0].startswith("%s: tuned cannot parse it" % profile_path(T20, "dbfleet-pg", True))


@pytest.mark.parametrize("section, reported", [
    ("[script]\nscript=${i:PROFILE_DIR}/memory.sh\n", "runs a script at tuned's start"),
    ("[bootloader]\ncmdline_db=hugepages=512\n", "changes the next boot's kernel command line (hugepages=512)"),
    ("[disk]\nscript_pre=${i:PROFILE_DIR}/pre.sh\n", "runs script_pre/script_post"),
])
def test_scripts_and_boot_command_lines_are_reported_as_not_modelled(section, reported):
    profile = DB_PROFILE + "\n" + section
    tuned = tm.tuned_boot_writes(host(etc={"dbfleet-pg": profile}), T20, sources())
    assert len(tuned.unmodelled) == 1 and reported in tuned.unmodelled[0]


@pytest.mark.parametrize("changes, runs, unmodelled", [
    (dict(not_files={tm.ACTIVE_PROFILE: "fifo"}, active_profile=None), True,
     "/etc/tuned/active_profile: is a fifo: tuned's open() may block or act on it (not modelled)"),
    (dict(not_files={tm.ACTIVE_PROFILE: "directory"}, active_profile=None), False, None),
    (dict(not_files={tm.ACTIVE_PROFILE: tm.NOT_FILE_DANGLING}, active_profile=None), True,
     "/etc/tuned/profile_mode: auto mode"),  # ENOENT: no name, so auto mode (mode file empty)
    (dict(unreadable={tm.MAIN_CONF: "cannot open: Permission denied"}, main_conf=None), True,
     "/etc/tuned/tuned-main.conf: cannot be read here (cannot open: Permission denied)"),
    (dict(unreadable={"/etc/tuned/dbfleet-pg/tuned.conf": "larger than 1048576 bytes"}), True,
     "/etc/tuned/dbfleet-pg/tuned.conf: cannot be read here (larger than 1048576 bytes)"),
    (dict(unreadable={"/etc/tuned": "cannot list: Permission denied"}), True,
     "/etc/tuned: cannot be listed here (cannot list: Permission denied): its profiles are unknown"),
    (dict(active_profile=b"dbfleet-pg\xff\n"), False, "/etc/tuned/active_profile: not UTF-8"),
], ids=["active-fifo", "active-directory", "active-dangling", "main-refused", "profile-too-large",
        "profile-dir-refused", "active-not-utf8"])
def test_tuned_files_that_could_not_be_read_are_reported_never_guessed(changes, runs, unmodelled):
    changes = dict(changes)
    if "unreadable" in changes and "/etc/tuned/dbfleet-pg/tuned.conf" in changes["unreadable"]:
        files = dict(host().profile_files)
        del files["/etc/tuned/dbfleet-pg/tuned.conf"]
        changes["profile_files"] = files
    tuned = tm.tuned_boot_writes(host(mode="" if "active_profile" in changes else "manual", **changes), T20,
                                 sources())
    assert tuned.runs is runs and tuned.writes == ()
    if unmodelled is None:
        assert tuned.unmodelled == [] and "tuned cannot read it and applies no profile" in tuned.why
    else:
        assert len(tuned.unmodelled) == 1 and tuned.unmodelled[0].startswith(unmodelled)


# ---------------------------------------------------------------- units that depend on the CPU


def test_a_conditional_sysctl_unit_without_our_keys_cannot_change_them_when_another_unit_reapplies():
    """throughput-performance's [sysctl.thunderx]: its reapply would repeat the one that happens anyway."""
    tuned = tm.tuned_boot_writes(host(), T20, sources())
    assert tuned.unmodelled == []
    assert tuned.notes == ["%s: unit [sysctl.thunderx] applies only if /proc/cpuinfo or uname match its pattern; it "
                           "sets none of our keys, and its reapply repeats one that happens anyway"
                           % profile_path(T20, "throughput-performance")]


@pytest.mark.parametrize("profile, reason", [
    ("[pin]\ntype=sysctl\ncpuinfo_regex=EPYC\nvm.overcommit_ratio = 70\n", "and it sets vm.overcommit_ratio"),
    ("[main]\nsummary=arm only\n\n[sysctl]\nuname_regex=aarch64\nvm.swappiness = 1\n",
     "it is the only sysctl unit: whether tuned reapplies the sysctl files depends on it"),
    ("[early]\ntype=sysctl\npriority=-1\nuname_regex=x86_64\nvm.swappiness = 1\n\n"
     "[sysctl]\nvm.admin_reserve_kbytes = >262144\n",
     "it would run first: [sysctl]'s >/< values would then compare with reapplied values"),
], ids=["sets-our-key", "only-sysctl-unit", "runs-before-a-modifier"])
def test_a_conditional_sysctl_unit_that_can_change_our_keys_is_not_modelled(profile, reason):
    tuned = tm.tuned_boot_writes(host(active="c", etc={"c": profile}), T20, sources())
    assert len(tuned.unmodelled) == 1 and reason in tuned.unmodelled[0]


# ---------------------------------------------------------------- the reapply and what wins


def test_profile_ratio_40_with_reapply_off_replaces_the_drop_ins_90_at_boot():
    """The case measured in the lab on Debian 12: with reapply_sysctl = 0 tuned's profile wins."""
    tuned, result = boot(host(main=MAIN_CONF_NO_REAPPLY), sources(), T20)
    assert tuned.runs and not tuned.reapply and tuned.unmodelled == []
    assert pick(result.end, RESERVE, RATIO, KBYTES, MODE) == ("131072", "40", "0", "2")
    assert result.label == "systemd-252 + tuned-2.20"
    where = "%s:%d" % (profile_path(T20, "dbfleet-pg", True), DB_PROFILE_LINE[RATIO])
    assert sr.decided_by(result, RATIO).message == (
        "vm.overcommit_ratio = 40 is set by tuned-2.20 from %s (vm.overcommit_ratio = 40)" % where)
    assert so.diff_end_state(result, {RATIO: 90}) == [
        "systemd-252: vm.overcommit_ratio ends at 40, not 90: vm.overcommit_ratio = 40 is set by tuned-2.20 from %s "
        "(vm.overcommit_ratio = 40)" % where]


@ids
def test_with_reapply_on_the_drop_in_is_written_again_after_the_profile(rules):
    tuned, result = boot(host(rules), sources(), rules)
    assert tuned.reapply and pick(result.end, RESERVE, RATIO, MODE) == ("131072", "90", "2")
    assert sr.decided_by(result, RATIO).write.path == OURS
    assert sr.decided_by(result, RATIO).write.tool == rules.name


def test_reapplied_files_come_from_run_over_etc_by_name_and_sysctl_conf_comes_last():
    srcs = sources({
        "/etc/sysctl.d/95-tune.conf": "vm.overcommit_ratio = 62\n",
        "/run/sysctl.d/95-tune.conf": "vm.overcommit_ratio = 61\n",  # systemd: /etc wins; tuned: /run wins
        "/etc/sysctl.d/99-zz-local.conf": "vm.overcommit_ratio = 64\n",
        "/etc/sysctl.conf": "vm.overcommit_ratio = 63\n", "/etc/sysctl.d/99-sysctl.conf": "vm.overcommit_ratio = 63\n",
        "/usr/lib/sysctl.d/96-vendor.conf": "vm.overcommit_ratio = 66\n",  # not reapplied since 2.13
    })
    tuned, result = boot(host(), srcs, T20)
    assert tuned.reapplied_files == (OURS, "/run/sysctl.d/95-tune.conf", "/etc/sysctl.d/99-sysctl.conf",
                                     "/etc/sysctl.d/99-zz-local.conf", "/etc/sysctl.conf")
    assert [w.raw for w in tuned.writes if w.key == RATIO] == [b"40", b"90", b"61", b"63", b"64", b"63"]
    assert sr.replay(srcs, sr.SYSTEMD_252, BOOT).end[RATIO] == "64"
    assert result.end[RATIO] == "63" and sr.decided_by(result, RATIO).write.path == "/etc/sysctl.conf"


def test_reapplied_names_sort_as_python_strings_and_hidden_names_count():
    srcs = sources({"/etc/sysctl.d/.hidden.conf": "vm.overcommit_ratio = 71\n",
                    "/etc/sysctl.d/Z-upper.conf": "vm.overcommit_ratio = 72\n",
                    "/etc/sysctl.d/a-lower.conf": "vm.overcommit_ratio = 73\n"}, debian12=False)
    tuned = tm.tuned_boot_writes(host(), T20, srcs)
    assert tuned.reapplied_files == ("/etc/sysctl.d/.hidden.conf", OURS, "/etc/sysctl.d/Z-upper.conf",
                                     "/etc/sysctl.d/a-lower.conf")


@pytest.mark.parametrize("line, by_rules", [
    ("vm.overcommit_ratio = 55", {T20: b"55", T22: b"55", T25: b"55"}),
    ("vm/overcommit_ratio = 55", {T20: b"55", T22: None, T25: None}),  # 2.22+ swap: file "vm.overcommit_ratio"
    ("vm..overcommit_ratio = 55", {T20: b"55", T22: b"55", T25: b"55"}),  # "vm//overcommit_ratio" either way
    ("vm.overcommit_ratio. = 55", {T20: None, T22: None, T25: None}),  # a trailing slash after a file
    ("-vm.overcommit_ratio = 55", {T20: None, T22: None, T25: None}),  # no '-' prefix rule, unlike systemd
    ("vm.overcommit_ratio = \"55\"", {T20: b'"55"', T22: b'"55"', T25: b'"55"'}),  # quotes stay
    ("vm.overcommit_ratio = 55 # comment", {T20: b"55 # comment", T22: b"55 # comment", T25: b"55 # comment"}),
    ("  vm.overcommit_ratio=55\t", {T20: b"55", T22: b"55", T25: b"55"}),
    ("vm.overcommit_ratio = 55\u00a0", {T20: b"55", T22: b"55", T25: b"55"}),  # Python's strip() is Unicode's
    ("vm.overcommit_ratio*", {T20: None, T22: None, T25: None}),
    ("; vm.overcommit_ratio = 55", {T20: None, T22: None, T25: None}),
])
def test_reapplied_lines_are_parsed_and_spelled_as_each_version_does(line, by_rules):
    srcs = sources({"/etc/sysctl.d/95-x.conf": line + "\n"}, dropin=None, debian12=False)
    for rules, raw in by_rules.items():
        tuned = tm.tuned_boot_writes(host(rules, active="p", etc={"p": "[sysctl]\nvm.swappiness = 1\n"}), rules, srcs)
        assert [w.raw for w in tuned.writes if w.key == RATIO] == ([raw] if raw else []), rules.name


def test_reapplied_values_reach_the_kernel_as_written():
    srcs = sources({"/etc/sysctl.d/95-x.conf": ("vm.overcommit_ratio = 55 # local\nvm.admin_reserve_kbytes = \"1\"\n"
                                                "vm.overcommit_memory =\n")})
    tuned, result = boot(host(), srcs, T20)
    assert result.end[RATIO] == "55"  # the kernel reads one number and ignores the rest
    assert result.end[RESERVE] == "131072" and result.end[MODE] == "2"  # '"1"' is EINVAL; an empty value writes nothing
    refused = [str(p) for p in result.problems if p.message.startswith("tuned-2.20: ") and "EINVAL" in p.message]
    assert refused == ["/etc/sysctl.d/95-x.conf:2: tuned-2.20: vm.admin_reserve_kbytes = \"1\": EINVAL: '\"1\"' is "
                       "rejected: the kernel wants a digit (or '-' and a digit) first"]


def test_a_universal_newline_ends_a_line_too():
    srcs = sources({"/etc/sysctl.d/95-x.conf": "vm.swappiness = 1\rvm.overcommit_ratio = 56\r\n"}, dropin=None)
    tuned = tm.tuned_boot_writes(host(), T20, srcs)
    assert [(w.raw, w.lineno) for w in tuned.writes if w.key == RATIO and w.origin == "reapply"] == [(b"56", 2)]


@pytest.mark.parametrize("rules, reapplied", [(T25, True), (T27, False), (T28, False)], ids=lambda v: getattr(v, "name", v))
def test_reapply_sysctl_exclude_keeps_matching_keys_from_the_reapply_since_2_27(rules, reapplied):
    conf = MAIN_CONF + "reapply_sysctl_exclude = net.ipv4.ip_forward, vm.overcommit_*\n"
    tuned, result = boot(host(rules, main=conf), sources(), rules)
    assert [w.key for w in tuned.writes if w.origin == "reapply"] == (
        [RESERVE, RATIO, MODE] if reapplied else [RESERVE])
    assert result.end[RATIO] == ("90" if reapplied else "40")


def test_exclusions_match_the_key_as_written():
    conf = MAIN_CONF + "reapply_sysctl_exclude = vm.overcommit_ratio\n"
    srcs = sources({"/etc/sysctl.d/95-x.conf": "vm.overcommit_ratio   =  91\n"}, dropin=None)
    tuned = tm.tuned_boot_writes(host(T27, main=conf), T27, srcs)
    assert [w.key for w in tuned.writes if w.origin == "reapply"] == []


def test_2_28_writes_each_reapplied_key_once_at_its_first_place_with_its_last_value():
    srcs = sources({"/etc/sysctl.d/10-a.conf": "vm.overcommit_kbytes = 262144\n",
                    "/etc/sysctl.d/20-b.conf": "vm.overcommit_ratio = 70\n",
                    "/etc/sysctl.d/30-c.conf": "vm.overcommit_kbytes = 524288\n"}, dropin=None, debian12=False)
    profile = {"p": "[sysctl]\nvm.swappiness = 1\n"}
    t25, r25 = boot(host(T25, active="p", etc=profile), srcs, T25)
    t28, r28 = boot(host(T28, active="p", etc=profile), srcs, T28)
    assert [(w.key, w.raw) for w in t25.writes] == [(KBYTES, b"262144"), (RATIO, b"70"), (KBYTES, b"524288")]
    assert [(w.key, w.raw, w.path) for w in t28.writes] == [(KBYTES, b"524288", "/etc/sysctl.d/30-c.conf"),
                                                            (RATIO, b"70", "/etc/sysctl.d/20-b.conf")]
    assert pick(r25.end, RATIO, KBYTES) == ("0", "524288")
    assert pick(r28.end, RATIO, KBYTES) == ("70", "0")


def test_2_28_collapses_by_the_key_as_written_and_an_empty_last_value_writes_nothing():
    srcs = sources({"/etc/sysctl.d/10-a.conf": "vm.overcommit_ratio = 60\nvm/overcommit_ratio = 61\n",
                    "/etc/sysctl.d/20-b.conf": "vm.overcommit_ratio =\n"}, dropin=None, debian12=False)
    profile = {"p": "[sysctl]\nvm.swappiness = 1\n"}
    t25, r25 = boot(host(T25, active="p", etc=profile), srcs, T25)
    t28, r28 = boot(host(T28, active="p", etc=profile), srcs, T28)
    assert r25.end[RATIO] == "60" and r28.end[RATIO] == "50"


@pytest.mark.parametrize("rules, ratio", [(T20, "0"), (T22, "0"), (T25, "90"), (T27, "90"), (T28, "90")],
                         ids=lambda v: getattr(v, "name", v))
def test_since_2_23_an_unchanged_value_is_not_written_so_kbytes_0_keeps_the_ratio(rules, ratio):
    profile = {"dbfleet-pg": "[main]\ninclude=postgresql\n\n[sysctl]\nvm.overcommit_kbytes = 0\n"}
    tuned, result = boot(host(rules, main=MAIN_CONF_NO_REAPPLY, etc=profile), sources(), rules)
    assert result.end[RATIO] == ratio
    decision = sr.decided_by(result, RATIO)
    if ratio == "0":
        assert decision.side_effect and decision.write.tool == rules.name
    else:
        assert sr.decided_by(result, KBYTES).message == (
            "vm.overcommit_kbytes = 0 is set by %s:5 (vm.overcommit_kbytes = 0; already 0, so %s did not write it)"
            % (profile_path(rules, "dbfleet-pg", True), rules.name))


@pytest.mark.parametrize("value, live, written", [
    (">262144", "131072", "262144"), (">65536", "131072", None), ("<100000", "131072", "100000"),
    ("<200000", "131072", None), (">131072", "131072", None), ("> 262144", "131072", "262144"),
    (">lots", "131072", "EINVAL"), (">", "131072", "EINVAL"),
])
def test_greater_and_less_modifiers_compare_with_the_live_value(value, live, written):
    profile = {"p": "[sysctl]\nvm.user_reserve_kbytes = %s\n" % value}
    start = dict(BOOT, **{USER: live})
    tuned, result = boot(host(main=MAIN_CONF_NO_REAPPLY, active="p", etc=profile), sources(dropin=None), T20, start)
    user_writes = [w for w in result.writes if w.key == USER]
    if written is None:
        assert user_writes == [] and result.end[USER] == live
    elif written == "EINVAL":
        assert not user_writes[0].accepted and result.end[USER] == live
    else:
        assert result.end[USER] == written and user_writes[0].tool == "tuned-2.20"


@pytest.mark.parametrize("kind, note, unmodelled, hung", [
    (sf.KIND_DANGLING, "dangling symlink to /nowhere", False, False),
    (sf.KIND_DIRECTORY, "not a regular file (directory); not opened", False, False),
    (sf.KIND_TOO_LARGE, "larger than 16777216 bytes", True, False),
    (sf.KIND_UNREADABLE, "cannot open: Permission denied", True, False),
    (sf.KIND_FIFO, "not a regular file (fifo); not opened", True, True),
])
def test_sysctl_files_the_reader_skipped_are_never_ignored_silently(kind, note, unmodelled, hung):
    odd = "/etc/sysctl.d/95-odd.conf"
    srcs = sources()
    srcs[odd] = sf.SysctlSource(odd, None, sf.STATUS_SKIPPED, note, kind)
    srcs["/etc/sysctl.d/97-later.conf"] = sf.SysctlSource("/etc/sysctl.d/97-later.conf", b"vm.overcommit_ratio = 97\n",
                                                          sf.STATUS_FILE)
    tuned, result = boot(host(), srcs, T20)
    assert bool(tuned.unmodelled) is unmodelled
    assert (tuned.hung_on == odd) is hung
    assert result.end[RATIO] == ("90" if hung else "97")
    assert [issue.unmodelled for issue in tuned.issues if issue.path == odd] == [unmodelled]


def test_a_sysctl_file_that_is_not_utf8_stops_the_reapply_and_is_reported():
    srcs = sources({"/etc/sysctl.d/95-latin1.conf": b"# caf\xe9\nvm.overcommit_ratio = 95\n",
                    "/etc/sysctl.d/96-after.conf": "vm.overcommit_ratio = 96\n"})
    tuned, result = boot(host(), srcs, T20)
    assert result.end[RATIO] == "90"
    assert tuned.unmodelled == ["/etc/sysctl.d/95-latin1.conf: not UTF-8: tuned's read raises and its reapply stops "
                                "here (not modelled)"]


# ---------------------------------------------------------------- unknown versions


def test_an_unknown_version_is_reported_when_the_rule_sets_predict_other_writes():
    tuned_host = host(T20, version=None, version_evidence=None)
    srcs = sources({"/etc/sysctl.d/95-x.conf": "vm/overcommit_ratio = 55\n"})
    tuned = tm.tuned_boot_writes(tuned_host, T20, srcs)
    assert tuned.unmodelled == ["tuned: tuned's version is unknown: tuned-2.22, tuned-2.25, tuned-2.27, tuned-2.28 "
                                "predict other writes than tuned-2.20 (not modelled)"]


def test_an_unknown_version_is_fine_when_every_rule_set_predicts_the_same_writes():
    """Not with the Debian layouts (profiles moved in 2.23): one profile set for every version."""
    files = {}
    for rules in ALL:
        files[profile_path(rules, "dbfleet-pg", True)] = b"[sysctl]\nvm.overcommit_ratio = 40\n"
    tuned_host = host(T20, version=None, version_evidence=None, profile_files=files)
    tuned = tm.tuned_boot_writes(tuned_host, T20, sources())
    assert tuned.unmodelled == [] and tuned.runs


def test_rules_of_another_version_than_the_hosts_are_reported():
    tuned = tm.tuned_boot_writes(host(T20), T25, sources())
    assert "host has tuned 2.20.0; tuned-2.25 covers 2.23-2.26" in tuned.unmodelled[0]


# ---------------------------------------------------------------- onto the replay


def test_apply_tuned_returns_a_new_replay_and_leaves_the_boot_replay_alone():
    srcs = sources()
    boot_replay = sr.replay(srcs, sr.SYSTEMD_252, BOOT)
    before = (dict(boot_replay.end), list(boot_replay.writes), list(boot_replay.problems), boot_replay.after)
    tuned = tm.tuned_boot_writes(host(main=MAIN_CONF_NO_REAPPLY), T20, srcs)
    result = tm.apply_tuned(boot_replay, tuned)
    assert (dict(boot_replay.end), list(boot_replay.writes), list(boot_replay.problems), boot_replay.after) == before
    assert result.rules is boot_replay.rules and result.start == boot_replay.start
    assert result.writes[:len(boot_replay.writes)] == boot_replay.writes
    assert [(w.key, w.raw, w.tool) for w in result.writes[len(boot_replay.writes):]] == [
        (MODE, b"2", "tuned-2.20"), (RATIO, b"40", "tuned-2.20")]
    assert result.after == ("tuned-2.20",) and result.label == "systemd-252 + tuned-2.20"


def test_apply_tuned_after_a_tuned_that_does_not_run_keeps_the_end_state():
    srcs = sources()
    boot_replay = sr.replay(srcs, sr.SYSTEMD_252, BOOT)
    result = tm.apply_tuned(boot_replay, tm.tuned_boot_writes(host(unit_state=tm.UNIT_MASKED), T20, srcs))
    assert result.end == boot_replay.end and result.writes == boot_replay.writes


def test_unmodelled_reasons_become_replay_problems():
    tuned, result = boot(host(active="", mode=""), sources(), T20)
    assert [str(p) for p in result.problems] == [
        "/etc/tuned/profile_mode: tuned-2.20: not modelled: auto mode: tuned applies the profile its recommender "
        "picks (virt-what, /etc/system-release-cpe, dmidecode, processes), which files do not tell"]


def test_tuned_writes_without_a_newline_and_the_kernel_reads_its_value():
    srcs = sources({"/etc/sysctl.d/95-x.conf": "vm.overcommit_ratio = 010\n"})
    tuned, result = boot(host(), srcs, T20)
    assert tuned.writes[-1].raw == b"010" and result.end[RATIO] == "8"  # octal to the kernel
