"""Reading tuned's files from a host tree: safely (no blocking, no leaving the tree), from files alone.

The layouts are those Debian's tuned package installs (python package under dist-packages, the unit
in /lib/systemd/system on a merged-/usr root, profiles in /usr/lib/tuned) plus what an admin adds.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned_files as tf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm

VERSION_PY = ("TUNED_VERSION_MAJOR = 2\nTUNED_VERSION_MINOR = 20\nTUNED_VERSION_PATCH = 0\n\n"
              "TUNED_VERSION_STR = \"%d.%d.%d\" % (TUNED_VERSION_MAJOR, TUNED_VERSION_MINOR, TUNED_VERSION_PATCH)\n")
UNIT = ("[Unit]\nDescription=Dynamic System Tuning Daemon\nAfter=systemd-sysctl.service network.target dbus.service\n"
        "Requires=dbus.service\n\n[Service]\nType=dbus\nPIDFile=/run/tuned/tuned.pid\nBusName=com.redhat.tuned\n"
        "ExecStart=/usr/sbin/tuned -l -P\n\n[Install]\nWantedBy=multi-user.target\n")
MAIN_CONF = "# Global tuned configuration file.\ndaemon = 1\ndynamic_tuning = 1\nrecommend_command = 1\n" \
            "reapply_sysctl = 0\ndefault_instance_priority = 0\n"
POSTGRESQL = "[main]\nsummary=PostgreSQL server\ninclude=throughput-performance\n\n[vm]\ntransparent_hugepages=never\n"
THROUGHPUT = "[main]\nsummary=Throughput first\n\n[cpu]\ngovernor=performance\n\n[sysctl]\nvm.swappiness=10\n"
DB_PROFILE = ("# Database hosts: PostgreSQL's profile with strict overcommit.\n[main]\nsummary=PostgreSQL, strict\n"
              "include=postgresql\n\n[sysctl]\nvm.overcommit_memory = 2\nvm.overcommit_ratio = 40\n")
DROPIN = "# managed by dbfleet.memory\nvm.admin_reserve_kbytes = 131072\nvm.overcommit_ratio = 90\n" \
         "vm.overcommit_memory = 2\n"


def debian12(tree, enabled=True, active="dbfleet-pg", mode="manual"):
    """Debian 12 with tuned installed (merged /usr: /lib is a link to usr/lib) and our drop-in."""
    tree.link("/lib", "usr/lib")
    tree.file("/usr/lib/python3/dist-packages/tuned/version.py", VERSION_PY)
    tree.file("/usr/lib/systemd/system/tuned.service", UNIT)
    if enabled:
        tree.link("/etc/systemd/system/multi-user.target.wants/tuned.service", "/lib/systemd/system/tuned.service")
    tree.file("/etc/tuned/tuned-main.conf", MAIN_CONF)
    tree.file("/etc/tuned/active_profile", active + "\n")
    tree.file("/etc/tuned/profile_mode", mode + "\n")
    tree.file("/etc/tuned/post_loaded_profile", "")
    tree.file("/etc/tuned/bootcmdline", "")
    tree.file("/usr/lib/tuned/postgresql/tuned.conf", POSTGRESQL)
    tree.file("/usr/lib/tuned/throughput-performance/tuned.conf", THROUGHPUT)
    tree.file("/usr/lib/tuned/functions", "#!/bin/sh\n")  # a file among the profile directories
    tree.directory("/usr/lib/tuned/recommend.d")
    tree.file("/etc/tuned/dbfleet-pg/tuned.conf", DB_PROFILE)
    tree.file("/etc/sysctl.d/90-dbfleet-overcommit.conf", DROPIN)
    return tree


def read(tree):
    return tf.read_tuned_host(tree.path)


def test_a_debian_12_host_with_tuned_enabled_is_read_whole(host_tree):
    host = read(debian12(host_tree))
    assert (host.installed, host.version, host.version_evidence) == (
        True, "2.20.0", "/usr/lib/python3/dist-packages/tuned/version.py")
    assert (host.unit_state, host.unit_evidence) == (
        tm.UNIT_ENABLED, ("/etc/systemd/system/multi-user.target.wants/tuned.service",))
    assert (host.main_conf, host.active_profile, host.profile_mode, host.post_loaded_profile) == (
        MAIN_CONF.encode(), b"dbfleet-pg\n", b"manual\n", b"")
    assert host.profile_files == {"/usr/lib/tuned/postgresql/tuned.conf": POSTGRESQL.encode(),
                                  "/usr/lib/tuned/throughput-performance/tuned.conf": THROUGHPUT.encode(),
                                  "/etc/tuned/dbfleet-pg/tuned.conf": DB_PROFILE.encode()}
    assert host.profile_dirs_listed == ("/usr/lib/tuned", "/etc/tuned", "/usr/lib/tuned/profiles",
                                        "/etc/tuned/profiles")
    assert (host.unit_exec_start, host.unit_dropins) == (("/usr/sbin/tuned -l -P",), ())
    assert (host.not_files, host.unreadable) == ({}, {})


def test_the_read_host_predicts_the_profile_winning_over_the_drop_in_with_reapply_off(host_tree):
    """End to end from files: reader, tuned model and boot replay."""
    debian12(host_tree)
    host, sources = read(host_tree), sf.read_sysctl_sources(host_tree.path)
    rules = tm.rules_for_version(host.version)
    assert rules == (tm.TUNED_2_20,)
    tuned = tm.tuned_boot_writes(host, rules[0], sources)
    result = tm.apply_tuned(sr.replay(sources, sr.SYSTEMD_252, sk.KERNEL_BOOT_DEFAULTS), tuned)
    assert tuned.unmodelled == [] and result.end[sk.RATIO] == "40"
    assert sr.decided_by(result, sk.RATIO).message == (
        "vm.overcommit_ratio = 40 is set by tuned-2.20 from /etc/tuned/dbfleet-pg/tuned.conf:8 "
        "(vm.overcommit_ratio = 40)")


@pytest.mark.parametrize("plant, state, evidence", [
    (lambda t: t.link("/etc/systemd/system/tuned.service", "/dev/null"), tm.UNIT_MASKED,
     ("/etc/systemd/system/tuned.service -> /dev/null",)),
    (lambda t: t.file("/etc/systemd/system/tuned.service", ""), tm.UNIT_MASKED,
     ("/etc/systemd/system/tuned.service is empty",)),
    (lambda t: t.file("/etc/systemd/system/graphical.target.wants/unrelated.service", ""), tm.UNIT_DISABLED,
     ("/usr/lib/systemd/system/tuned.service",)),
], ids=["masked-by-link", "masked-by-empty-file", "not-enabled"])
def test_a_masked_or_not_enabled_unit_is_told_from_its_files(host_tree, plant, state, evidence):
    debian12(host_tree, enabled=False)
    plant(host_tree)
    host = read(host_tree)
    assert (host.unit_state, host.unit_evidence) == (state, evidence)
    assert not tm.tuned_boot_writes(host, tm.TUNED_2_20, {}).runs


def test_the_units_command_and_drop_ins_are_read(host_tree):
    debian12(host_tree)
    host_tree.file("/etc/systemd/system/tuned.service.d/10-profile.conf",
                   "[Service]\nExecStart=\nExecStart=/usr/sbin/tuned -l -P -p throughput-performance\n")
    host_tree.file("/etc/systemd/system/tuned.service.d/notes.txt", "not a drop-in\n")
    host = read(host_tree)
    assert host.unit_exec_start == ("/usr/sbin/tuned -l -P",)
    assert host.unit_dropins == ("/etc/systemd/system/tuned.service.d/10-profile.conf",)


def test_a_mask_wins_over_an_enabled_link(host_tree):
    debian12(host_tree)
    host_tree.link("/etc/systemd/system/tuned.service", "/dev/null")
    assert read(host_tree).unit_state == tm.UNIT_MASKED


def test_a_host_without_tuned_is_not_installed(host_tree):
    host_tree.file("/etc/sysctl.d/90-dbfleet-overcommit.conf", DROPIN)
    host = read(host_tree)
    assert (host.installed, host.version, host.unit_state, host.profile_files) == (
        False, None, tm.UNIT_NOT_INSTALLED, {})


def test_the_version_is_found_in_site_packages_too(host_tree):
    host_tree.file("/usr/lib/python3.12/site-packages/tuned/version.py", VERSION_PY.replace("= 20", "= 25"))
    host_tree.file("/usr/lib/systemd/system/tuned.service", UNIT)
    host = read(host_tree)
    assert (host.version, host.version_evidence) == ("2.25.0", "/usr/lib/python3.12/site-packages/tuned/version.py")


def test_two_python_trees_with_other_versions_leave_the_version_unknown(host_tree):
    host_tree.file("/usr/lib/python3/dist-packages/tuned/version.py", VERSION_PY)
    host_tree.file("/usr/local/lib/python3.11/dist-packages/tuned/version.py", VERSION_PY.replace("= 20", "= 27"))
    host = read(host_tree)
    assert host.installed and host.version is None
    assert host.version_evidence == ("/usr/lib/python3/dist-packages/tuned/version.py, "
                                     "/usr/local/lib/python3.11/dist-packages/tuned/version.py")


@pytest.mark.parametrize("path", ["/etc/tuned/active_profile", "/etc/tuned/tuned-main.conf",
                                  "/etc/tuned/dbfleet-pg/tuned.conf"])
def test_a_fifo_among_tuneds_files_is_reported_without_blocking(host_tree, deadline, path):
    debian12(host_tree)
    os.unlink(host_tree.path(path))
    host_tree.fifo(path)
    with deadline(5):
        host = read(host_tree)
    assert host.not_files == {path: "fifo"}


def test_a_directory_named_tuned_conf_is_no_profile(host_tree):
    debian12(host_tree)
    host_tree.directory("/etc/tuned/odd/tuned.conf")
    host = read(host_tree)
    assert host.not_files == {"/etc/tuned/odd/tuned.conf": "directory"}
    assert "/etc/tuned/odd/tuned.conf" not in host.profile_files


def test_a_dangling_profile_link_is_reported_as_dangling(host_tree):
    debian12(host_tree)
    host_tree.link("/etc/tuned/gone", "/srv/tuned/gone")
    assert read(host_tree).not_files == {"/etc/tuned/gone/tuned.conf": tm.NOT_FILE_DANGLING}


def test_links_are_followed_inside_the_tree_even_with_absolute_targets(host_tree):
    """A profile directory linked to /srv/..., and a tuned.conf linked by a relative path."""
    debian12(host_tree)
    host_tree.file("/srv/tuned-profiles/dbfleet-mem/real.conf", "[sysctl]\nvm.overcommit_ratio = 44\n")
    host_tree.link("/srv/tuned-profiles/dbfleet-mem/tuned.conf", "real.conf")
    host_tree.link("/etc/tuned/dbfleet-mem", "/srv/tuned-profiles/dbfleet-mem")
    host = read(host_tree)
    assert host.profile_files["/etc/tuned/dbfleet-mem/tuned.conf"] == b"[sysctl]\nvm.overcommit_ratio = 44\n"


def test_a_state_file_linked_to_dev_null_reads_empty(host_tree):
    debian12(host_tree)
    os.unlink(host_tree.path("/etc/tuned/post_loaded_profile"))
    host_tree.link("/etc/tuned/post_loaded_profile", "/dev/null")
    assert read(host_tree).post_loaded_profile == b""


def test_an_oversized_profile_is_reported_unread(host_tree, monkeypatch):
    debian12(host_tree)
    host_tree.file("/etc/tuned/dbfleet-pg/tuned.conf", DB_PROFILE + "#" * 4096 + "\n")
    monkeypatch.setattr(tf, "MAX_FILE_BYTES", 4096)
    host = read(host_tree)
    assert host.unreadable == {"/etc/tuned/dbfleet-pg/tuned.conf": "larger than 4096 bytes"}
    assert "/etc/tuned/dbfleet-pg/tuned.conf" not in host.profile_files
    tuned = tm.tuned_boot_writes(host, tm.TUNED_2_20, {})
    assert tuned.unmodelled == ["/etc/tuned/dbfleet-pg/tuned.conf: cannot be read here (larger than 4096 bytes)"]


def test_a_profile_that_cannot_be_opened_is_reported_with_the_reason(host_tree, refuse):
    debian12(host_tree)
    refuse("open", host_tree.path("/etc/tuned/dbfleet-pg/tuned.conf"))
    assert read(host_tree).unreadable == {"/etc/tuned/dbfleet-pg/tuned.conf": "cannot open: Permission denied"}


def test_a_profile_directory_that_cannot_be_listed_is_reported(host_tree, refuse):
    debian12(host_tree)
    refuse("listdir", host_tree.path("/etc/tuned"))
    host = read(host_tree)
    assert host.unreadable == {"/etc/tuned": "cannot list: Permission denied"}
    assert "/etc/tuned" not in host.profile_dirs_listed
    assert tm.tuned_boot_writes(host, tm.TUNED_2_20, {}).unmodelled == [
        "/etc/tuned: cannot be listed here (cannot list: Permission denied): its profiles are unknown"]


def test_profile_dirs_of_tuned_main_conf_are_read_too(host_tree):
    debian12(host_tree)
    host_tree.file("/etc/tuned/tuned-main.conf", MAIN_CONF + "profile_dirs = /usr/lib/tuned/profiles,/srv/tuned\n")
    host_tree.file("/srv/tuned/dbfleet-pg/tuned.conf", DB_PROFILE)
    host = read(host_tree)
    assert "/srv/tuned" in host.profile_dirs_listed
    assert host.profile_files["/srv/tuned/dbfleet-pg/tuned.conf"] == DB_PROFILE.encode()


@pytest.mark.parametrize("links, path, expected", [
    ({"/a": "/b", "/b": "/a"}, "/a/x", ("/a", "loop")),
    ({"/etc/t": "../srv/t"}, "/etc/t/../t/tuned.conf", ("/srv/t/tuned.conf", "dangling")),
    ({}, "/nothing/here", ("/nothing/here", "absent")),
    ({"/d": "/dev/null"}, "/d", ("/dev/null", None)),
])
def test_resolve_follows_every_component_in_logical_space(host_tree, links, path, expected):
    for link, target in links.items():
        host_tree.link(link, target)
    assert rf.resolve_all_links(path, host_tree.path) == expected
