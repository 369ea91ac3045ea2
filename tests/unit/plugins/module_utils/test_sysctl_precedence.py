"""Which sysctl file wins, under systemd-sysctl (boot) and procps `sysctl --system`."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_precedence as prec

OURS = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
OUR_TEXT = "# managed\nvm.overcommit_memory = 2\nvm.overcommit_ratio = 87\n"

# A real Debian 12 layout: procps ships the 99-sysctl.conf link and a commented sysctl.conf.
DEBIAN_SYSCTL_CONF = """#
# /etc/sysctl.conf - Configuration file for setting system variables
# See /etc/sysctl.d/ for additional system variables.
#kernel.domainname = example.com
#net.ipv4.conf.default.rp_filter=1
"""
DEBIAN = {
    "/etc/sysctl.d/99-sysctl.conf": DEBIAN_SYSCTL_CONF,  # symlink to ../sysctl.conf, followed
    "/etc/sysctl.conf": DEBIAN_SYSCTL_CONF,
    "/usr/lib/sysctl.d/50-pid-max.conf": "kernel.pid_max = 4194304\n",
    "/usr/lib/sysctl.d/50-default.conf": "-net.ipv4.conf.all.rp_filter = 2\nvm.overcommit_memory = 0\n",
    OURS: OUR_TEXT,
}


def winner(files, key, rule):
    a = prec.resolve(files, [key])[key][rule].assignment
    return (a.path, a.value) if a else None


def test_parse_handles_comments_dash_whitespace_and_slash_keys():
    text = (
        "# hash comment\n"
        "; semicolon comment\n"
        "   \n"
        "vm.swappiness=10\n"
        "  -vm.overcommit_ratio   =   87  \n"
        "vm/overcommit_memory = 2\n"
        "net/ipv4/conf/eth0.1/rp_filter = 0\n"
        "kernel.core_pattern = |/bin/false # not a comment mid-line\n"
        "no assignment here\n"
        "= no key\n"
    )
    got = [(a.key, a.value, a.lineno, a.ignore_failure) for a in prec.parse_sysctl_conf(text)]
    assert got == [
        ("vm.swappiness", "10", 4, False),
        ("vm.overcommit_ratio", "87", 5, True),
        ("vm.overcommit_memory", "2", 6, False),
        ("net.ipv4.conf.eth0/1.rp_filter", "0", 7, False),
        ("kernel.core_pattern", "|/bin/false # not a comment mid-line", 8, False),
    ]


@pytest.mark.parametrize(
    "key, normal",
    [
        ("vm.overcommit_memory", "vm.overcommit_memory"),
        ("vm/overcommit_memory", "vm.overcommit_memory"),
        ("net.ipv4.conf.eth0/1.rp_filter", "net.ipv4.conf.eth0/1.rp_filter"),
        ("net/ipv4/conf/eth0.1/rp_filter", "net.ipv4.conf.eth0/1.rp_filter"),
        ("  vm.swappiness ", "vm.swappiness"),
    ],
)
def test_normalize_key(key, normal):
    assert prec.normalize_key(key) == normal


@pytest.mark.parametrize(
    "extra, key, systemd, procps",
    [
        pytest.param({}, "vm.overcommit_memory", (OURS, "2"), (OURS, "2"), id="debian-defaults-ours-wins"),
        pytest.param(
            {"/etc/sysctl.d/99-zz-tuning.conf": "vm.overcommit_memory = 0\n"},
            "vm.overcommit_memory",
            ("/etc/sysctl.d/99-zz-tuning.conf", "0"),
            ("/etc/sysctl.d/99-zz-tuning.conf", "0"),
            id="later-basename-wins-under-both",
        ),
        pytest.param(
            {"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n"},
            "vm.overcommit_ratio",
            ("/usr/lib/sysctl.d/95-vendor.conf", "50"),
            ("/usr/lib/sysctl.d/95-vendor.conf", "50"),
            id="lower-directory-later-name-still-wins",
        ),
        pytest.param(
            {"/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n", "/etc/sysctl.d/95-vendor.conf": None},
            "vm.overcommit_ratio",
            (OURS, "87"),
            (OURS, "87"),
            id="dev-null-mask-in-etc-hides-vendor-file",
        ),
        pytest.param(
            {
                "/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n",
                "/etc/sysctl.d/95-vendor.conf": "kernel.pid_max = 65536\n",
            },
            "vm.overcommit_ratio",
            (OURS, "87"),
            (OURS, "87"),
            id="same-name-in-etc-replaces-vendor-file",
        ),
        pytest.param(
            {"/run/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 60\n",
             "/usr/lib/sysctl.d/95-vendor.conf": "vm.overcommit_ratio = 50\n"},
            "vm.overcommit_ratio",
            ("/run/sysctl.d/95-vendor.conf", "60"),
            ("/run/sysctl.d/95-vendor.conf", "60"),
            id="run-beats-usr-lib-for-same-name",
        ),
        pytest.param(
            {"/etc/sysctl.conf": "vm.overcommit_memory = 0\n", "/etc/sysctl.d/99-sysctl.conf": "vm.overcommit_memory = 0\n"},
            "vm.overcommit_memory",
            ("/etc/sysctl.d/99-sysctl.conf", "0"),
            ("/etc/sysctl.conf", "0"),
            id="sysctl-conf-via-99-link-and-last-for-procps",
        ),
        pytest.param(
            {"/etc/sysctl.conf": "vm.overcommit_memory = 0\n", "/etc/sysctl.d/99-sysctl.conf": None},
            "vm.overcommit_memory",
            (OURS, "2"),
            ("/etc/sysctl.conf", "0"),
            id="sysctl-conf-without-link-only-procps-reads-it",
        ),
        pytest.param(
            {"/etc/sysctl.d/10-early.conf": "vm.overcommit_ratio = 20\n"},
            "vm.overcommit_ratio",
            (OURS, "87"),
            (OURS, "87"),
            id="earlier-basename-loses",
        ),
        pytest.param(
            {"/etc/sysctl.d/99-globs.conf": "vm.overcommit_* = 1\n"},
            "vm.overcommit_memory",
            (OURS, "2"),
            ("/etc/sysctl.d/99-globs.conf", "1"),
            id="explicit-beats-later-glob-only-under-systemd",
        ),
        pytest.param(
            {"/etc/sysctl.d/99-zz.txt": "vm.overcommit_memory = 0\n", "/etc/other/99-zz.conf": "vm.overcommit_memory = 0\n"},
            "vm.overcommit_memory",
            (OURS, "2"),
            (OURS, "2"),
            id="non-conf-files-and-other-dirs-are-ignored",
        ),
    ],
)
def test_winner_per_rule(extra, key, systemd, procps):
    files = dict(DEBIAN)
    files.update(extra)
    assert winner(files, key, prec.RULE_SYSTEMD) == systemd
    assert winner(files, key, prec.RULE_PROCPS) == procps


def test_last_assignment_within_one_file_wins():
    files = {OURS: "vm.overcommit_ratio = 50\nvm.overcommit_ratio = 87\n"}
    assert winner(files, "vm.overcommit_ratio", prec.RULE_SYSTEMD) == (OURS, "87")


def test_unset_key_has_no_winner():
    assert winner(DEBIAN, "vm.admin_reserve_kbytes", prec.RULE_SYSTEMD) is None


def test_effective_files_sorted_by_basename_across_directories():
    got = [path for path, _text in prec.effective_files(DEBIAN)]
    assert got == [
        "/usr/lib/sysctl.d/50-default.conf",
        "/usr/lib/sysctl.d/50-pid-max.conf",
        OURS,
        "/etc/sysctl.d/99-sysctl.conf",
    ]


def test_report_ours_when_we_win_everywhere():
    report = prec.shadowing_report(DEBIAN, OURS, {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87"})
    assert {k: v["status"] for k, v in report.items()} == {"vm.overcommit_memory": "ours", "vm.overcommit_ratio": "ours"}
    assert report["vm.overcommit_memory"]["systemd"] == {"path": OURS, "value": "2", "lineno": 2, "ours": True}
    assert report["vm.overcommit_memory"]["message"] is None


def test_report_names_the_shadowing_file_line_and_value():
    conf = "# x\nvm.overcommit_ratio = 50\n"
    files = dict(DEBIAN, **{"/etc/sysctl.conf": conf, "/etc/sysctl.d/99-sysctl.conf": conf})
    report = prec.shadowing_report(files, OURS, {"vm.overcommit_ratio": "87"})
    entry = report["vm.overcommit_ratio"]
    assert entry["status"] == "shadowed"
    assert entry["systemd"] == {"path": "/etc/sysctl.d/99-sysctl.conf", "value": "50", "lineno": 2, "ours": False}
    assert entry["procps"] == {"path": "/etc/sysctl.conf", "value": "50", "lineno": 2, "ours": False}
    assert "sysctl --system applies /etc/sysctl.conf:2 last, setting vm.overcommit_ratio = 50" in entry["message"]


def test_report_agrees_when_a_later_file_sets_the_same_value():
    files = dict(DEBIAN, **{"/etc/sysctl.d/99-zz.conf": "vm.overcommit_memory =  2\n"})
    report = prec.shadowing_report(files, OURS, {"vm.overcommit_memory": "2"})
    assert report["vm.overcommit_memory"]["status"] == "agrees"


def test_report_shadowed_when_our_name_is_masked_elsewhere():
    # A /dev/null link with our name in a higher directory hides our file from both programs.
    files = {"/etc/sysctl.d/90-x.conf": None, "/usr/lib/sysctl.d/90-x.conf": "vm.overcommit_memory = 2\n"}
    report = prec.shadowing_report(files, "/usr/lib/sysctl.d/90-x.conf", {"vm.overcommit_memory": "2"})
    assert report["vm.overcommit_memory"]["status"] == "shadowed"
    assert "would not read /usr/lib/sysctl.d/90-x.conf at all" in report["vm.overcommit_memory"]["message"]
