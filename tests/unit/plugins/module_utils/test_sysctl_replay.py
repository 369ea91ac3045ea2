"""Replaying the boot (systemd-sysctl) and ``sysctl --system`` (procps) per tool version.

Each test states one rule of a real tool and, where the old per-key check
(sysctl_precedence) got it wrong, says what that check answered. The lab suite
tests/lab/test_boot_replay_differential.py runs the same kind of files through the
real tools on a real kernel.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_outcome as so
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr

MODE, RATIO, KBYTES, RESERVE = sk.MODE, sk.RATIO, sk.KBYTES, sk.ADMIN_RESERVE
BOOT = sk.KERNEL_BOOT_DEFAULTS
# What state=absent restores: boot_end gives only the managed keys.
BOOT_MANAGED = {key: BOOT[key] for key in sk.MANAGED_KEYS}
OURS = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
RATIO_PLAN = {RESERVE: "131072", RATIO: "87", MODE: "2"}
KBYTES_PLAN = {RESERVE: "131072", KBYTES: "4194304", MODE: "2"}

SYSTEMD = [sr.SYSTEMD_252, sr.SYSTEMD_257]
PROCPS = [sr.PROCPS_4_0_2, sr.PROCPS_4_0_4, sr.PROCPS_4_0_5]
ALL = SYSTEMD + PROCPS

DEBIAN12_SYSCTL_CONF = "#\n# /etc/sysctl.conf - Configuration file for system variables\n#kernel.domainname = x\n"


def dropin(plan):
    """Our drop-in as the role renders it: reserve, limit, mode."""
    order = [RESERVE, RATIO, KBYTES, MODE]
    return "# managed by dbfleet.memory\n" + "".join("%s = %s\n" % (k, plan[k]) for k in order if k in plan)


def host(extra=None, plan=None, debian12=True):
    """Sources of a Debian-like host with our drop-in (RATIO_PLAN unless ``plan``), plus ``extra``
    {path: text, or None for a mask}."""
    files = {OURS: dropin(plan or RATIO_PLAN), "/usr/lib/sysctl.d/50-pid-max.conf": "kernel.pid_max = 4194304\n"}
    if debian12:
        files["/etc/sysctl.conf"] = DEBIAN12_SYSCTL_CONF
        files["/etc/sysctl.d/99-sysctl.conf"] = DEBIAN12_SYSCTL_CONF  # the symlink, followed
    files.update(extra or {})
    return so.sources_from_texts(files)


def end(sources, rules, start=None, **kw):
    return sr.replay(sources, rules, start or BOOT, **kw).end


def pick(state, *keys):
    return tuple(state[k] for k in keys)


ids = pytest.mark.parametrize("rules", ALL, ids=[r.name for r in ALL])


# ---------------------------------------------------------------- finding 1: the pair


@ids
def test_our_plan_alone_is_the_end_state(rules):
    result = sr.replay(host(), rules, BOOT)
    assert so.diff_end_state(result, RATIO_PLAN) == []
    assert result.problems == []


@pytest.mark.parametrize("rules", PROCPS, ids=[r.name for r in PROCPS])
def test_later_kbytes_0_zeroes_our_ratio_under_procps(rules):
    """Finding 1. procps writes every line, and a write of kbytes (even 0) zeroes the ratio:
    CommitLimit becomes swap only. Old sysctl_precedence: kbytes is another key, 'ours'."""
    sources = host({"/etc/sysctl.d/95-tuning.conf": "vm.overcommit_kbytes = 0\n"})
    result = sr.replay(sources, rules, BOOT)
    assert pick(result.end, RATIO, KBYTES, MODE) == ("0", "0", "2")
    assert so.diff_end_state(result, RATIO_PLAN) == [
        "%s: vm.overcommit_ratio ends at 0, not 87: vm.overcommit_ratio = 0 because "
        "/etc/sysctl.d/95-tuning.conf:1 writes vm.overcommit_kbytes = 0, and a write to "
        "vm.overcommit_kbytes zeroes vm.overcommit_ratio" % rules.name
    ]


@pytest.mark.parametrize("rules", SYSTEMD, ids=[r.name for r in SYSTEMD])
def test_systemd_skips_a_kbytes_0_write_when_kbytes_already_reads_0(rules):
    """systemd-sysctl reads the file first and does not write an unchanged value
    (WRITE_STRING_FILE_SUPPRESS_REDUNDANT_VIRTUAL), so the same line is harmless at boot."""
    sources = host({"/etc/sysctl.d/95-tuning.conf": "vm.overcommit_kbytes = 0\n"})
    result = sr.replay(sources, rules, BOOT)
    assert so.diff_end_state(result, RATIO_PLAN) == []
    assert [(w.key, w.suppressed) for w in result.writes if w.path.endswith("95-tuning.conf")] == [(KBYTES, True)]


@pytest.mark.parametrize("rules, expected", [(r, ("50", "0")) for r in SYSTEMD] + [(r, ("0", "0")) for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_kbytes_0_against_a_kbytes_plan(rules, expected):
    """A later kbytes = 0 against our kbytes plan. procps writes ours, then 0: ratio and kbytes
    are both 0 (CommitLimit = swap only). systemd keeps one entry per key: the later 0 replaces
    our line, which is never written, and writing 0 over 0 is skipped: the boot's ratio 50 stays."""
    sources = host({"/etc/sysctl.d/95-tuning.conf": "vm.overcommit_kbytes = 0\n"}, plan=KBYTES_PLAN)
    assert pick(end(sources, rules), RATIO, KBYTES) == expected


@ids
def test_ratio_line_in_sysctl_conf_replaces_a_kbytes_plan(rules):
    """Finding 1. The seed's advice in /etc/sysctl.conf (Debian 12 links it as 99-sysctl.conf;
    procps also reads it last) zeroes our kbytes. Old sysctl_precedence: kbytes and mode are
    'ours' under both tools, so the drop-in was accepted and lost at the next boot."""
    conf = DEBIAN12_SYSCTL_CONF + "vm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n"
    sources = host({"/etc/sysctl.conf": conf, "/etc/sysctl.d/99-sysctl.conf": conf}, plan=KBYTES_PLAN)
    result = sr.replay(sources, rules, BOOT)
    assert pick(result.end, KBYTES, RATIO, MODE) == ("0", "100", "2")
    where = "/etc/sysctl.conf:5" if rules.tool == sr.TOOL_PROCPS else "/etc/sysctl.d/99-sysctl.conf:5"
    assert sr.decided_by(result, KBYTES).message == (
        "vm.overcommit_kbytes = 0 because %s writes vm.overcommit_ratio = 100, and a write to "
        "vm.overcommit_ratio zeroes vm.overcommit_kbytes" % where)


@pytest.mark.parametrize("rules, expected", [(r, ("1048576", "0")) for r in SYSTEMD]
                         + [(r, ("0", "87")) for r in PROCPS], ids=[r.name for r in ALL])
def test_repeating_the_same_value_keeps_its_earlier_place_under_systemd(rules, expected):
    """systemd keeps one entry per key: a repeat with the same value stays where it first was,
    so a kbytes line between the two ratio lines wins; procps writes all three in order.
    Old sysctl_precedence: the last ratio line agrees with us under both tools."""
    sources = host({"/etc/sysctl.d/95-vendor.conf": "vm.overcommit_kbytes = 1048576\n",
                    "/etc/sysctl.d/99-local.conf": "vm.overcommit_ratio = 87\n"})
    assert pick(end(sources, sr.RULES_BY_NAME[rules.name]), KBYTES, RATIO) == expected


@ids
def test_a_different_value_moves_the_key_to_the_end_under_systemd(rules):
    sources = host({"/etc/sysctl.d/10-early.conf": "vm.overcommit_ratio = 50\n",
                    "/etc/sysctl.d/95-vendor.conf": "vm.overcommit_kbytes = 1048576\n",
                    "/etc/sysctl.d/99-local.conf": "vm.overcommit_ratio = 60\n"})
    result = sr.replay(sources, rules, BOOT)
    assert pick(result.end, RATIO, KBYTES) == ("60", "0")
    ratio_writes = [w.where for w in result.writes if w.key == RATIO]
    if rules.tool == sr.TOOL_SYSTEMD:
        assert ratio_writes == ["/etc/sysctl.d/99-local.conf:1"]
    else:
        assert ratio_writes == ["/etc/sysctl.d/10-early.conf:1", OURS + ":3", "/etc/sysctl.d/99-local.conf:1"]


# ---------------------------------------------------------------- finding 8: our drop-ins


@ids
@pytest.mark.parametrize("old, new", [("90", "95"), ("95", "90")])
def test_the_later_of_two_own_drop_ins_decides(rules, old, new):
    """Finding 8: raising the priority from 90 to 95 left the 90 file; whichever name sorts
    last decides, and the message names it."""
    old_plan = {RESERVE: "65536", RATIO: "70", MODE: "2"}
    files = {"/etc/sysctl.d/%s-dbfleet-overcommit.conf" % old: dropin(old_plan),
             "/etc/sysctl.d/%s-dbfleet-overcommit.conf" % new: dropin(RATIO_PLAN)}
    sources = so.sources_from_texts(files)
    result = sr.replay(sources, rules, BOOT)
    winner = max(old, new)
    want = RATIO_PLAN if winner == new else old_plan
    assert so.diff_end_state(result, want) == []
    assert sr.decided_by(result, RATIO).write.path == "/etc/sysctl.d/%s-dbfleet-overcommit.conf" % winner


# ---------------------------------------------------------------- finding 7: files and order


@ids
@pytest.mark.parametrize(
    "extra, ratio",
    [
        pytest.param({"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n"}, "50",
                     id="lower-directory-later-name-wins"),
        pytest.param({"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n",
                      "/etc/sysctl.d/95-vendor.conf": None}, "87", id="dev-null-link-masks"),
        pytest.param({"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n",
                      "/etc/sysctl.d/95-vendor.conf": ""}, "87", id="empty-file-of-the-same-name-masks"),
        pytest.param({"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n",
                      "/run/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 60\n"}, "60", id="run-beats-usr-lib"),
        pytest.param({"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n",
                      "/usr/local/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 70\n"}, "70",
                     id="usr-local-lib-beats-usr-lib"),
        pytest.param({"/run/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 60\n",
                      "/etc/sysctl.d/95-vendor.conf": "kernel.pid_max = 65536\n"}, "87", id="etc-beats-run"),
        pytest.param({"/run/sysctl.d/99-zz.conf": "vm.overcommit_ratio = 60\n"}, "60",
                     id="run-is-read-at-all"),
        pytest.param({"/etc/sysctl.d/10-early.conf": "vm.overcommit_ratio = 20\n"}, "87", id="earlier-name-loses"),
        pytest.param({"/etc/sysctl.d/99-zz.txt": "vm.overcommit_ratio = 1\n",
                      "/etc/other/99-zz.conf": "vm.overcommit_ratio = 1\n"}, "87", id="other-names-and-dirs-ignored"),
    ],
)
def test_directories_same_name_replacement_and_name_order(rules, extra, ratio):
    """Same under both tools (old sysctl_precedence agreed on these; they guard the new code)."""
    assert end(host(extra), rules)[RATIO] == ratio


@pytest.mark.parametrize("rules, ratio", [(r, "87") for r in SYSTEMD] + [(r, "30") for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_lib_sysctl_d_is_read_only_by_procps(rules, ratio):
    """Debian 12 and 13 build systemd without split-usr: /lib/sysctl.d is not in its list."""
    assert end(host({"/lib/sysctl.d/99-lib.conf": "vm.overcommit_ratio = 30\n"}), rules)[RATIO] == ratio


@pytest.mark.parametrize("rules, ratio", [(r, "50") for r in SYSTEMD] + [(r, "40") for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_hidden_files_are_read_only_by_procps(rules, ratio):
    """systemd skips names starting with '.', procps only skips '.' and '..'."""
    sources = so.sources_from_texts({"/etc/sysctl.d/.hidden.conf": "vm.overcommit_ratio = 40\n"})
    assert end(sources, rules)[RATIO] == ratio


@pytest.mark.parametrize("rules, mode", [(r, "2") for r in SYSTEMD] + [(r, "0") for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_sysctl_conf_without_the_link_counts_only_for_procps(rules, mode):
    """Debian 13 has no 99-sysctl.conf link; procps still applies /etc/sysctl.conf, last."""
    sources = host({"/etc/sysctl.conf": "vm.overcommit_memory = 0\n"}, debian12=False)
    assert end(sources, rules)[MODE] == mode


@pytest.mark.parametrize("rules, mode", [(r, "1") for r in SYSTEMD] + [(r, "0") for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_procps_applies_sysctl_conf_after_every_drop_in(rules, mode):
    conf = "vm.overcommit_memory = 0\n"
    sources = host({"/etc/sysctl.conf": conf, "/etc/sysctl.d/99-sysctl.conf": conf,
                    "/etc/sysctl.d/99-zz-last.conf": "vm.overcommit_memory = 1\n"})
    assert end(sources, rules)[MODE] == mode


def _node(path, kind, note="not a regular file (%s); not opened"):
    return sf.SysctlSource(path, None, sf.STATUS_SKIPPED, note % kind if "%s" in note else note, kind)


@ids
def test_a_fifo_that_a_tool_reads_hangs_it_and_nothing_is_applied(rules):
    """Finding 7: both tools parse every file before the first write and block in open() on a
    FIFO; systemd-sysctl is then killed by its start timeout with nothing applied."""
    sources = host()
    sources["/etc/sysctl.d/99-x.conf"] = _node("/etc/sysctl.d/99-x.conf", sf.KIND_FIFO)
    result = sr.replay(sources, rules, BOOT)
    assert result.hung_on == "/etc/sysctl.d/99-x.conf"
    assert result.end == BOOT and result.writes == []
    assert so.diff_end_state(result, {RATIO: "87"}) == [
        "%s: vm.overcommit_ratio ends at 50, not 87: vm.overcommit_ratio stays 50: %s hangs on "
        "/etc/sysctl.d/99-x.conf and applies nothing" % (rules.name, rules.tool)]


@ids
@pytest.mark.parametrize("kind", [sf.KIND_FIFO, sf.KIND_CHAR_DEVICE, sf.KIND_BLOCK_DEVICE])
def test_a_fifo_or_a_device_other_than_dev_null_hangs_every_tool_and_nothing_is_applied(rules, kind):
    """open(2) of a FIFO waits for a writer; a device's read may never end (a terminal, a tape,
    /dev/zero): only /dev/null itself is a mask (sysctl_files reads it as masked, not skipped)."""
    sources = host()
    sources["/etc/sysctl.d/60-node.conf"] = _node("/etc/sysctl.d/60-node.conf", kind)
    result = sr.replay(sources, rules, BOOT)
    assert result.hung_on == "/etc/sysctl.d/60-node.conf"
    assert result.end == BOOT and result.writes == []
    assert [p.message for p in result.problems] == [
        "%s blocks reading /etc/sysctl.d/60-node.conf (not a regular file (%s); not opened): it applies nothing at "
        "all" % (rules.tool, kind)]


@ids
def test_a_fifo_hidden_by_a_same_named_file_above_is_never_opened(rules):
    sources = host({"/etc/sysctl.d/99-x.conf": "kernel.pid_max = 65536\n"})
    sources["/usr/lib/sysctl.d/99-x.conf"] = _node("/usr/lib/sysctl.d/99-x.conf", sf.KIND_FIFO)
    result = sr.replay(sources, rules, BOOT)
    assert result.hung_on is None and so.diff_end_state(result, RATIO_PLAN) == []


@pytest.mark.parametrize("rules", PROCPS, ids=[r.name for r in PROCPS])
def test_procps_only_reads_sysctl_conf_if_it_is_a_regular_file(rules):
    sources = host(debian12=False)
    sources["/etc/sysctl.conf"] = _node("/etc/sysctl.conf", sf.KIND_FIFO)
    result = sr.replay(sources, rules, BOOT)
    assert result.hung_on is None and "/etc/sysctl.conf" not in result.files


@ids
@pytest.mark.parametrize("kind", [sf.KIND_DANGLING, sf.KIND_DIRECTORY])
def test_a_dangling_link_or_directory_still_hides_the_same_name_below(rules, kind):
    sources = host({"/usr/lib/sysctl.d/99-vendor.conf": "vm.overcommit_ratio = 50\n"})
    sources["/etc/sysctl.d/99-vendor.conf"] = _node("/etc/sysctl.d/99-vendor.conf", kind, "odd node")
    result = sr.replay(sources, rules, BOOT)
    assert result.end[RATIO] == "87"
    assert [p.path for p in result.problems] == ["/etc/sysctl.d/99-vendor.conf"]


# ---------------------------------------------------------------- finding 7: lines and keys


@pytest.mark.parametrize(
    "line, systemd, procps",
    [
        pytest.param("vm/overcommit_ratio = 60", "60", "60", id="slashes"),
        pytest.param("vm..overcommit_ratio = 60", "60", "60", id="repeated-separator"),
        pytest.param(".vm.overcommit_ratio = 60", "60", "60", id="leading-separator"),
        pytest.param("vm.overcommit_ratio. = 60", "60", "87", id="trailing-separator-only-systemd"),
        pytest.param("vm/./overcommit_ratio = 60", "60", "60", id="dot-component"),
        pytest.param("  vm.overcommit_ratio\t=\t60  ", "60", "60", id="blanks-and-tabs"),
        pytest.param("-vm.overcommit_ratio = 60", "60", "60", id="dash-ignore-failure"),
        pytest.param("- vm.overcommit_ratio = 60", "60", "87", id="blank-after-dash-only-systemd"),
        pytest.param("VM.overcommit_ratio = 60", "87", "87", id="case-matters"),
        pytest.param("vm.overcommit_ratio 60", "87", "87", id="no-equals-sign"),
        pytest.param("vm.overcommit_ratio == 60", "50", "87", id="second-equals-is-part-of-the-value"),
        pytest.param("vm.overcommit_ratio = 60 # tuned", "60", "60", id="inline-comment-after-a-blank"),
        pytest.param("vm.overcommit_ratio = 60#tuned", "50", "87", id="inline-comment-glued"),
        pytest.param('vm.overcommit_ratio = "60"', "50", "87", id="quotes-are-kept-and-rejected"),
        pytest.param("vm.overcommit_ratio = 060", "48", "48", id="octal"),
        pytest.param("vm.overcommit_ratio = 0x3c", "60", "60", id="hex"),
        pytest.param("vm.overcommit_ratio =", "50", "87", id="empty-value-is-einval"),
        pytest.param("# vm.overcommit_ratio = 60", "87", "87", id="hash-comment"),
        pytest.param("; vm.overcommit_ratio = 60", "87", "87", id="semicolon-comment"),
    ],
)
def test_a_line_after_our_drop_in(line, systemd, procps):
    """Finding 7: each tool's key spelling and value rules, then the kernel's parse. A value
    the kernel rejects leaves ours in place under procps, but under systemd the later line
    *replaced* ours (one entry per key), so nothing is written and the boot value 50 stays.
    Old sysctl_precedence: 'vm..x', '.vm.x' and 'vm.x.' were other keys (false 'ours');
    '60 # tuned' and '0x3c' were different text (false refusal on a 60 plan); '"60"' and
    '060' differ from 60 textually but the kernel rejects the one and reads 48 from the other."""
    sources = host({"/etc/sysctl.d/95-local.conf": line + "\n"})
    for rules in SYSTEMD:
        assert end(sources, rules)[RATIO] == systemd, rules.name
    for rules in PROCPS:
        assert end(sources, rules)[RATIO] == procps, rules.name


@ids
def test_a_rejected_value_is_reported_with_file_and_line(rules):
    """Under systemd the rejected line also cancels our earlier mode line (same key, other
    value): the host boots in mode 0. Under procps ours is written, then the bad line fails."""
    sources = host({"/etc/sysctl.d/95-local.conf": "# x\nvm.overcommit_memory = 2#strict\n"})
    result = sr.replay(sources, rules, BOOT)
    assert result.end[MODE] == ("0" if rules.tool == sr.TOOL_SYSTEMD else "2")
    assert [str(p) for p in result.problems] == [
        "/etc/sysctl.d/95-local.conf:2: vm.overcommit_memory = 2#strict: EINVAL: '2#strict' is rejected: "
        "'#' follows the number (only space, tab or newline may)"]


@pytest.mark.parametrize(
    "data, systemd, procps",
    [
        pytest.param(b"vm.overcommit_memory = 0\r\nvm.overcommit_ratio = 10\r\n", ("0", "10"), ("0", "10"),
                     id="crlf"),
        pytest.param(b"vm.overcommit_memory = 0\rvm.overcommit_ratio = 10\r", ("0", "10"), ("2", "87"),
                     id="lone-cr-splits-only-for-systemd"),
        pytest.param(b"vm.overcommit_memory = 0\0vm.overcommit_ratio = 10\n", ("0", "10"), ("0", "87"),
                     id="nul-ends-a-line-for-systemd-and-the-text-for-procps"),
        pytest.param(b"# r\xe9glage latin-1\nvm.overcommit_ratio = 10\n", ("2", "10"), ("2", "10"),
                     id="latin1-comment-the-file-still-counts"),
        pytest.param(b"vm.overcommit_ratio = 10\xa0\n", ("2", "50"), ("2", "87"),
                     id="latin1-nbsp-glued-to-the-value-is-einval"),
        pytest.param(b"\xef\xbb\xbfvm.overcommit_ratio = 10\n", ("2", "87"), ("2", "87"),
                     id="utf8-bom-makes-the-first-key-unknown"),
        pytest.param(b"vm.overcommit_ratio = 10\v\n", ("2", "50"), ("2", "10"),
                     id="vertical-tab-is-stripped-only-by-procps"),
    ],
)
def test_line_ends_and_bytes_that_are_not_utf8(data, systemd, procps):
    """Finding 7/10: no tool decodes text. Old dropin_apply read files as text, so a Latin-1
    byte anywhere dropped the whole file from the check (false 'ours')."""
    sources = host({"/etc/sysctl.d/95-odd.conf": data})
    for rules in SYSTEMD:
        assert pick(end(sources, rules), MODE, RATIO) == systemd, rules.name
    for rules in PROCPS:
        assert pick(end(sources, rules), MODE, RATIO) == procps, rules.name


@pytest.mark.parametrize("rules, ratio", [(r, "50") for r in SYSTEMD] + [(r, "87") for r in PROCPS],
                         ids=[r.name for r in ALL])
def test_a_later_negative_entry_cancels_our_assignment_under_systemd(rules, ratio):
    """systemd stores '-vm.overcommit_ratio' (no '=') under the same key with no value: it
    replaces our assignment, which is then never written. procps uses it only against globs.
    Old sysctl_precedence ignored lines without '=' (false 'ours' under systemd)."""
    assert end(host({"/etc/sysctl.d/95-x.conf": "-vm.overcommit_ratio\n"}), rules)[RATIO] == ratio


@ids
def test_lines_without_equals_are_reported(rules):
    result = sr.replay(host({"/etc/sysctl.d/95-x.conf": "vm.overcommit_ratio\n"}), rules, BOOT)
    assert [(p.path, p.lineno) for p in result.problems] == [("/etc/sysctl.d/95-x.conf", 1)]


def test_systemd_stops_reading_a_file_at_a_line_over_1_mib():
    data = b"vm.overcommit_memory = 1\n" + b"#" * (1024 * 1024) + b"\nvm.overcommit_ratio = 10\n"
    result = sr.replay(host({"/etc/sysctl.d/95-big.conf": data}), sr.SYSTEMD_257, BOOT)
    assert pick(result.end, MODE, RATIO) == ("1", "87")
    assert "longer than 1 MiB" in str(result.problems[-1])


MIB = 1024 * 1024


@pytest.mark.parametrize("data, lines, too_long", [
    (b"#" * (MIB - 1) + b"\nvm.a = 1\n", [b"#" * (MIB - 1), b"vm.a = 1"], None),
    (b"#" * MIB + b"\nvm.a = 1\n", [], 1),          # read_line gives up at 1 MiB, newline or not
    (b"vm.a = 1\n" + b"#" * MIB, [b"vm.a = 1"], 2),  # ... and at the end of the file too
    (b"vm.a = 1\r\n" + b"#" * MIB, [b"vm.a = 1"], 2),
], ids=["just-under", "exactly-1-MiB", "last-line", "crlf-file"])
def test_systemd_line_limit_boundaries(data, lines, too_long):
    assert sr._systemd_lines(data) == (lines, too_long)
    assert sr._systemd_lines_bytewise(data) == (lines, too_long)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40).map(lambda b: bytes(b"ab =#\n"[x % 6] for x in b)))
def test_splitting_on_newlines_reads_the_lines_systemd_reads(data):
    """The fast split (files without CR or NUL) against read_line's rules byte by byte."""
    assert sr._systemd_lines(data) == sr._systemd_lines_bytewise(data)


def test_a_file_parsed_once_is_not_shared_mutably():
    """Parses are remembered per process; a caller changing its list must not change the next."""
    first = sr.parse_source(b"vm.overcommit_ratio = 90\n", "/etc/sysctl.d/95-x.conf", sr.SYSTEMD_257)[0]
    first.clear()
    again = sr.parse_source(b"vm.overcommit_ratio = 90\n", "/etc/sysctl.d/95-x.conf", sr.SYSTEMD_257)[0]
    assert [(e.key, e.value) for e in again] == [("vm/overcommit_ratio", b"90")]


# ---------------------------------------------------------------- finding 7: globs


@ids
def test_a_glob_skips_explicit_keys_but_hits_kbytes_which_zeroes_our_ratio(rules):
    """Both tools skip glob matches that have an explicit line anywhere, but our ratio plan
    does not name kbytes: the glob writes kbytes = 1 and the ratio drops to 0.
    Old sysctl_precedence: 'ours' under systemd (explicit beats glob), and 'shadowed' under
    procps for the wrong reason (it thought procps applies the glob over our lines)."""
    sources = host({"/etc/sysctl.d/99-globs.conf": "vm.overcommit_* = 1\n"})
    result = sr.replay(sources, rules, BOOT)
    assert pick(result.end, MODE, RATIO, KBYTES) == ("2", "0", "1")
    assert [w.key for w in result.writes if w.glob] == [KBYTES]
    assert "from glob vm" in sr.decided_by(result, KBYTES).message


@ids
@pytest.mark.parametrize("glob_file", ["/etc/sysctl.d/10-globs.conf", "/etc/sysctl.d/99-globs.conf"])
def test_explicit_beats_glob_whatever_the_file_order(rules, glob_file):
    sources = host({glob_file: "vm.overcommit_* = 1\n-vm.overcommit_kbytes\n"})
    assert so.diff_end_state(sr.replay(sources, rules, BOOT), RATIO_PLAN) == []


@pytest.mark.parametrize("rules, kbytes", [(sr.SYSTEMD_252, "1"), (sr.SYSTEMD_257, "1"), (sr.PROCPS_4_0_2, "1"),
                                           (sr.PROCPS_4_0_4, "1"), (sr.PROCPS_4_0_5, "0")],
                         ids=[r.name for r in ALL])
def test_a_glob_exclusion_works_only_in_procps_4_0_5_and_later(rules, kbytes):
    sources = host({"/etc/sysctl.d/99-globs.conf": "vm.overcommit_* = 1\n-vm.overcommit_k*\n"})
    assert end(sources, rules)[KBYTES] == kbytes


@ids
def test_glob_matches_are_written_in_sorted_order(rules):
    """vm.overcommit_[kr]* writes kbytes, then ratio: the ratio write zeroes kbytes again."""
    sources = so.sources_from_texts({"/etc/sysctl.d/50-g.conf": "vm.overcommit_[kr]* = 5\n"})
    result = sr.replay(sources, rules, BOOT)
    assert [w.key for w in result.writes] == [KBYTES, RATIO]
    assert pick(result.end, KBYTES, RATIO) == ("0", "5")


@ids
def test_globs_expand_over_existing_keys_too(rules):
    sources = so.sources_from_texts({"/etc/sysctl.d/50-g.conf": "vm.* = 3\n"})
    result = sr.replay(sources, rules, BOOT, existing_keys=["vm.swappiness"])
    # The boot-memory keys are followed too: a glob over vm.* sets the huge pages and user reserve.
    assert [w.key for w in result.writes] == [RESERVE, sk.NR_HUGEPAGES, KBYTES, MODE, RATIO, sk.USER_RESERVE]
    assert pick(result.end, MODE, RATIO, sk.NR_HUGEPAGES) == ("0", "3", "3")  # mode 3 is EINVAL


# ---------------------------------------------------------------- the explanations


@ids
def test_decided_by_names_the_write_or_says_no_file_sets_it(rules):
    result = sr.replay(host(), rules, BOOT)
    assert sr.decided_by(result, RATIO).message == (
        "vm.overcommit_ratio = 87 is set by %s:3 (vm.overcommit_ratio = 87)" % OURS)
    assert sr.decided_by(result, KBYTES).side_effect
    unset = sr.replay(so.sources_from_texts({}), rules, BOOT)
    assert sr.decided_by(unset, MODE).message == "vm.overcommit_memory stays 0: no file read by %s sets it" % (
        rules.name)


def test_decided_by_names_a_later_writer_with_its_file_and_the_whole_chain_when_none_sets_a_key():
    """A write appended by a writer after the boot tool (tuned) says who wrote it; "stays" names
    every writer that was followed, not just the boot tool."""
    result = sr.replay(host(), sr.SYSTEMD_252, BOOT)
    before = dict(result.end)
    after = sk.kernel_write(before, RATIO, b"40").state
    profile = "/etc/tuned/dbfleet-pg/tuned.conf"
    result.writes.append(sr.ReplayWrite(RATIO, b"40", profile, 9, True, None, before, after, tool="tuned-2.20"))
    result.end, result.after = after, ("tuned-2.20",)
    assert sr.decided_by(result, RATIO).message == (
        "vm.overcommit_ratio = 40 is set by tuned-2.20 from %s:9 (vm.overcommit_ratio = 40)" % profile)
    assert sr.decided_by(result, KBYTES).message == (
        "vm.overcommit_kbytes = 0 because tuned-2.20 from %s:9 writes vm.overcommit_ratio = 40, and a write to "
        "vm.overcommit_ratio zeroes vm.overcommit_kbytes" % profile)
    assert sr.decided_by(result, sk.USER_RESERVE).message == (
        "vm.user_reserve_kbytes stays 131072: no file read by systemd-252 + tuned-2.20 sets it")


def test_diff_end_state_takes_ints_and_refuses_values_the_kernel_would_read_otherwise():
    """Expected values follow _kernel.sysctl.plain_decimal, the one rule: ' 2' is not silently 2."""
    result = sr.replay(host(), sr.SYSTEMD_252, BOOT)
    assert so.diff_end_state(result, {RATIO: 87, MODE: "2"}) == []
    with pytest.raises(ValueError, match="vm.overcommit_memory = ' 2' is refused"):
        so.diff_end_state(result, {MODE: " 2"})


def test_start_values_come_from_the_live_host_for_a_later_sysctl_system():
    """A run of sysctl --system on a live host starts from the live values, not the boot's."""
    live = {MODE: "2", RATIO: "0", KBYTES: "4194304", RESERVE: "131072"}
    sources = so.sources_from_texts({OURS: dropin(KBYTES_PLAN)})
    assert sr.replay(sources, sr.PROCPS_4_0_4, live).end == dict(BOOT, **live)


def test_replay_all_covers_every_rule_set():
    assert sorted(so.replay_all(host(), BOOT)) == sorted(r.name for r in sr.RULE_SETS)
    assert {r.tool for r in sr.RULE_SETS} == {sr.TOOL_SYSTEMD, sr.TOOL_PROCPS}


def test_every_rule_set_names_its_source():
    for rules in sr.RULE_SETS:
        assert rules.version in rules.source and rules.distro


@pytest.mark.parametrize(
    "key, normal",
    [("vm.overcommit_ratio", "vm/overcommit_ratio"), ("vm/overcommit_ratio", "vm/overcommit_ratio"),
     ("net.ipv4.conf.eth0/1.rp_filter", "net/ipv4/conf/eth0.1/rp_filter"),
     ("net/ipv4/conf/eth0.1/rp_filter", "net/ipv4/conf/eth0.1/rp_filter"),
     ("//vm//overcommit_ratio/", "vm/overcommit_ratio"), ("vm.overcommit_*", "vm/overcommit_*")],
)
def test_systemd_normalize(key, normal):
    assert sr.systemd_normalize(key) == normal


# ---------------------------------------------------------------- helpers for callers


def test_with_file_answers_what_if_our_drop_in_changes_or_goes():
    sources = host({"/etc/sysctl.conf": "vm.overcommit_memory = 2\n", "/etc/sysctl.d/99-sysctl.conf":
                    "vm.overcommit_memory = 2\n"})
    gone = sr.replay(so.with_file(sources, OURS, None), sr.SYSTEMD_252, BOOT)
    assert pick(gone.end, MODE, RATIO, RESERVE) == ("2", "50", "8192")  # finding 2: absent settles into this
    changed = sr.replay(so.with_file(sources, OURS, dropin(KBYTES_PLAN).encode()), sr.SYSTEMD_252, BOOT)
    assert so.diff_end_state(changed, KBYTES_PLAN) == []


@pytest.mark.parametrize("rules", [sr.SYSTEMD_257, sr.PROCPS_4_0_4], ids=lambda r: r.name)
def test_managed_lines_resolve_spellings_and_list_globs_that_hit_our_keys(rules):
    data = (b"# x\nvm..overcommit_ratio = 60\nkernel.pid_max = 1\nvm.overcommit_* = 1\nvm.swappiness = 1\n"
            b"-vm.overcommit_kbytes\n")
    got = [(m.key, m.value, m.lineno, m.is_glob) for m in sr.managed_lines(data, "/etc/x.conf", rules)]
    assert got == [(RATIO, b"60", 2, False), ("vm.overcommit_*", b"1", 4, True), (KBYTES, None, 6, False)]


def test_report_is_json_friendly_and_says_why():
    sources = host({"/etc/sysctl.d/95-tuning.conf": "vm.overcommit_kbytes = 0\n"})
    summary = so.report(sr.replay(sources, sr.PROCPS_4_0_2, BOOT), RATIO_PLAN)
    assert summary["ok"] is False and summary["rules"] == "procps-4.0.2"
    assert summary["decided_by"][RATIO].startswith("vm.overcommit_ratio = 0 because /etc/sysctl.d/95-tuning.conf:1")
    assert summary["files"][-1] == "/etc/sysctl.conf"


@pytest.mark.parametrize("rules", SYSTEMD, ids=[r.name for r in SYSTEMD])
def test_a_later_line_that_systemd_skips_as_unchanged_still_decides_the_key(rules):
    """systemd keeps one entry per key: a later 'ratio = 50' replaces ours, and is then not
    written because the fresh kernel already reads 50. The explanation must name that line,
    not say that no file sets the key (it did, before this fix)."""
    later = "/etc/sysctl.d/99-zz-tuning.conf"
    result = sr.replay(host({later: "vm.overcommit_ratio = 50\n"}), rules, BOOT)
    decided = sr.decided_by(result, RATIO)
    assert result.end[RATIO] == "50"
    assert decided.write is not None and decided.write.where == later + ":1"
    assert decided.message == ("vm.overcommit_ratio = 50 is set by %s:1 (vm.overcommit_ratio = 50; already 50, "
                               "so systemd-sysctl did not write it)" % later)


# ---------------------------------------------------------------- what the boot leaves, when the tools disagree

VENDOR_AND_LATER_KBYTES_0 = {"/usr/lib/sysctl.d/30-vendor.conf": "vm.overcommit_ratio = 70\n",
                             "/etc/sysctl.d/99-zz.conf": "vm.overcommit_kbytes = 0\n"}


def without_ours(extra):
    sources = host(extra)
    del sources[OURS]
    return sources


def test_boot_end_is_the_common_end_when_every_tool_agrees():
    result = so.boot_end(without_ours({"/usr/lib/sysctl.d/30-vendor.conf": "vm.overcommit_ratio = 70\n"}), None)
    assert result.end == dict(BOOT_MANAGED, **{RATIO: "70"})
    assert result.rules == tuple(r.name for r in ALL) and result.disputed == {} and result.note is None


def test_boot_end_follows_the_hosts_own_boot_tool_when_the_tools_disagree():
    """systemd skips "kbytes = 0" (already 0) and keeps ratio 70; procps writes it and zeroes the ratio."""
    result = so.boot_end(without_ours(VENDOR_AND_LATER_KBYTES_0), sr.TOOL_SYSTEMD)
    assert result.end == dict(BOOT_MANAGED, **{RATIO: "70"}) and result.disputed == {}
    assert result.rules == ("systemd-252", "systemd-257")
    assert result.note.startswith("the modelled tools disagree about the remaining files: ")
    assert "systemd-252, systemd-257: vm.overcommit_ratio = 70 is set by /usr/lib/sysctl.d/30-vendor.conf:1" in result.note
    assert ("procps-4.0.2, procps-4.0.4, procps-4.0.5: vm.overcommit_ratio = 0 because /etc/sysctl.d/99-zz.conf:1 "
            "writes vm.overcommit_kbytes = 0") in result.note


def test_boot_end_without_the_hosts_tool_keeps_only_what_every_tool_agrees_on():
    """No guess: the pair is disputed as one setting, mode and admin reserve are agreed."""
    result = so.boot_end(without_ours(VENDOR_AND_LATER_KBYTES_0), None)
    assert result.end == {MODE: "0", RESERVE: "8192"}
    assert result.disputed == {
        RATIO: {"systemd-252": "70", "systemd-257": "70", "procps-4.0.2": "0", "procps-4.0.4": "0",
                "procps-4.0.5": "0"},
        KBYTES: {"systemd-252": "0", "systemd-257": "0", "procps-4.0.2": "0", "procps-4.0.4": "0",
                 "procps-4.0.5": "0"}}
    assert result.rules == tuple(r.name for r in ALL)


def test_boot_end_when_the_hosts_own_tool_versions_disagree_keeps_only_what_they_agree_on():
    """procps 4.0.5 honours a glob exclusion that 4.0.2 and 4.0.4 ignore (kbytes 1000 there)."""
    result = so.boot_end(without_ours({"/etc/sysctl.d/99-globs.conf": "vm.overcommit_k* = 1000\n-vm.overcommit_k*\n"}),
                         sr.TOOL_PROCPS)
    assert set(result.disputed) == {RATIO, KBYTES} and result.end == {MODE: "0", RESERVE: "8192"}
    assert result.disputed[KBYTES] == {"procps-4.0.2": "1000", "procps-4.0.4": "1000", "procps-4.0.5": "0"}
    assert result.rules == ("procps-4.0.2", "procps-4.0.4", "procps-4.0.5")
