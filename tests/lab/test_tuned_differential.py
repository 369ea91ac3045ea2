"""Differential test of the tuned model: prediction against Debian 12's real tuned on a real kernel.

One guest of the "tuned" image flavour (Debian 12 with its tuned 2.20 package, as installed:
tests/lab/image/build-flavour-rootfs.sh), in a lab of this module's own; DBFLEET_TUNED_SUITE=trixie
runs the same cases on Debian 13 (tuned 2.25.1, systemd 257) instead. For each planted case:

1. stop tuned, plant the case's files (profiles under /etc/tuned with [sysctl] keys and
   include=, tuned-main.conf with reapply_sysctl 0 or 1, the active profile in manual mode,
   files in /etc/sysctl.d, /run/sysctl.d and /etc/sysctl.conf);
2. read tuned's and the sysctl files back from the guest as bytes (tar keeps links and odd nodes
   what they are), with the product's readers (tuned_files, sysctl_files), and predict:
   sysctl_replay (the guest's systemd) from the boot's values, then _boot.tuned.apply_tuned with
   the rule set rules_for_version picks from the guest's tuned/version.py;
3. do what a boot does: set the boot's values, run the guest's real systemd-sysctl, start the
   real tuned (``systemctl start`` returns once tuned.service is active, which tuned reaches after
   its static tuning; its log must say so), read /proc/sys/vm;
4. assert prediction == reality, key by key, and that the prediction had nothing it could not model.

No case sets vm.overcommit_memory=2: several end with the ratio 0 (kbytes 0 written), which in
mode 2 would leave the swapless guest a CommitLimit of 0 and lock it out, as on a real host.
"""

from __future__ import annotations

import base64
import io
import os
import shlex
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, Mapping, Optional, Tuple

import pytest

from umlab import GuestSpec, Lab, LabError, check_host

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_outcome as so
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned_files as tf
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import tuned as tm

GUEST = "tuned"
SUITE = os.environ.get("DBFLEET_TUNED_SUITE", "bookworm")
GUESTS = [GuestSpec(GUEST, mem_mb=768, suite=SUITE, flavour="tuned")]
# The keys compared: the managed ones and the non-root holdback. UML has no hugetlb, so no nr_hugepages.
KEYS = sk.MANAGED_KEYS + (sk.USER_RESERVE,)
START = {key: sk.KERNEL_BOOT_DEFAULTS[key] for key in KEYS}
START_TIMEOUT_S = 240  # tuned reached "active" in 7-60 s in UML, depending on the host's load
OURS = "/etc/sysctl.d/90-dbfleet-overcommit.conf"
TUNED_FILES = ("/etc/tuned/tuned-main.conf", "/etc/tuned/active_profile", "/etc/tuned/profile_mode",
               "/etc/tuned/post_loaded_profile", "/etc/sysctl.conf")
# What is read back: every sysctl directory and tuned's files; /lib is a link on merged /usr.
READ_BACK_PATHS = ("etc/sysctl.d", "run/sysctl.d", "usr/lib/sysctl.d", "usr/local/lib/sysctl.d", "lib",
                   "etc/sysctl.conf", "etc/tuned", "usr/lib/tuned", "etc/systemd/system",
                   "usr/lib/systemd/system/tuned.service", "usr/lib/systemd/system/tuned.service.d",
                   "usr/lib/python3/dist-packages/tuned/version.py")
# The user profile directory of the guest's tuned: /etc/tuned (2.20-2.22) or /etc/tuned/profiles (2.23+).
PROFILES = "{profiles}"


def main_conf(reapply: int) -> str:
    """tuned-main.conf as Debian 12 installs it, with reapply_sysctl set."""
    return ("# Global tuned configuration file (Debian's values)\ndaemon = 1\ndynamic_tuning = 1\n"
            "sleep_interval = 1\nupdate_interval = 10\nrecommend_command = 1\nreapply_sysctl = %d\n"
            "default_instance_priority = 0\nudev_buffer_size = 1MB\nlog_file_count = 2\n"
            "log_file_max_size = 1MB\n" % reapply)


def dropin(ratio: str = "90", mode: str = "1") -> str:
    """A drop-in like ours, in mode 1 (see the module docstring)."""
    return ("# managed by dbfleet.memory\nvm.admin_reserve_kbytes = 131072\nvm.overcommit_ratio = %s\n"
            "vm.overcommit_memory = %s\n" % (ratio, mode))


@dataclass(frozen=True)
class Case:
    name: str
    profile: str  # the active profile (manual mode)
    reapply: int
    files: Mapping[str, str] = field(default_factory=dict)  # path -> text; "{profiles}/NAME/tuned.conf": a profile
    sysctl_conf: Optional[str] = None  # replaces /etc/sysctl.conf (Debian 12's 99-sysctl.conf link reads it too)
    expect: Mapping[str, str] = field(default_factory=dict)  # values the case is about (checked on the model too)
    after_systemd: Mapping[str, str] = field(default_factory=dict)  # what tuned changes, as systemd-sysctl left it
    expect_by_rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # where a version differs

    def expected(self, rules: tm.TunedRules) -> Mapping[str, str]:
        return self.expect_by_rules.get(rules.name, self.expect)

    def planted(self, rules: tm.TunedRules) -> Dict[str, str]:
        return {path.format(profiles=rules.profile_dirs[1]): text for path, text in self.files.items()}


PG_WITH_RATIO_40 = ("# Database hosts: PostgreSQL's profile with our ratio.\n[main]\nsummary=PostgreSQL, ratio 40\n"
                    "include=postgresql\n\n[sysctl]\nvm.overcommit_memory = 1\nvm.overcommit_ratio = 40\n")

CASES = [
    Case("profile-ratio-40-wins-with-reapply-off", "dbfleet-pg", 0,
         {"{profiles}/dbfleet-pg/tuned.conf": PG_WITH_RATIO_40, OURS: dropin()},
         expect={sk.RATIO: "40", sk.ADMIN_RESERVE: "131072"}, after_systemd={sk.RATIO: "90"}),
    Case("drop-in-ratio-90-reapplied-with-reapply-on", "dbfleet-pg", 1,
         {"{profiles}/dbfleet-pg/tuned.conf": PG_WITH_RATIO_40, OURS: dropin()},
         expect={sk.RATIO: "90"}),
    Case("include-chain-child-overrides-parent", "dbfleet-child", 0, {
        "{profiles}/dbfleet-base/tuned.conf": "[main]\nsummary=base\n\n[sysctl]\nvm.overcommit_ratio = 30\n"
                                              "vm.admin_reserve_kbytes = 65536\nvm.user_reserve_kbytes = 100000\n",
        "{profiles}/dbfleet-child/tuned.conf": "[main]\nsummary=child\ninclude=dbfleet-base\n\n[sysctl]\n"
                                               "vm.overcommit_ratio = 45\n",
        OURS: dropin()}, expect={sk.RATIO: "45", sk.ADMIN_RESERVE: "65536", sk.USER_RESERVE: "100000"},
        after_systemd={sk.RATIO: "90", sk.ADMIN_RESERVE: "131072", sk.USER_RESERVE: "131072"}),
    Case("etc-profile-extends-the-shipped-one-of-its-name", "postgresql", 0, {
        "{profiles}/postgresql/tuned.conf": "[main]\nsummary=ours over the shipped one\ninclude=postgresql\n\n"
                                            "[sysctl]\nvm.overcommit_ratio = 35\n",
        OURS: dropin()}, expect={sk.RATIO: "35"}, after_systemd={sk.RATIO: "90"}),
    Case("run-wins-a-name-over-etc", "postgresql", 1, {
        OURS: dropin(),
        "/etc/sysctl.d/99-zz-tune.conf": "vm.overcommit_ratio = 62\n",
        "/run/sysctl.d/99-zz-tune.conf": "vm.overcommit_ratio = 61\n"},
        expect={sk.RATIO: "61"}, after_systemd={sk.RATIO: "62"}),
    Case("sysctl-conf-is-reapplied-last", "postgresql", 1, {
        OURS: dropin(), "/etc/sysctl.d/99-zz-local.conf": "vm.overcommit_ratio = 64\n"},
        sysctl_conf="# local settings\nvm.overcommit_ratio = 63\n", expect={sk.RATIO: "63"},
        after_systemd={sk.RATIO: "64"}),
    # 2.20 writes kbytes 0 although it is 0 already, which zeroes the ratio; 2.23+ skip the unchanged value.
    Case("kbytes-0-in-a-profile", "dbfleet-kb0", 0, {
        "{profiles}/dbfleet-kb0/tuned.conf": "[main]\ninclude=postgresql\n\n[sysctl]\nvm.overcommit_kbytes = 0\n",
        OURS: dropin()}, expect={sk.RATIO: "0", sk.KBYTES: "0"}, after_systemd={sk.RATIO: "90"},
        expect_by_rules={"tuned-2.25": {sk.RATIO: "90", sk.KBYTES: "0"}}),
    Case("greater-and-less-modifiers-compare-with-the-live-value", "dbfleet-mod", 0, {
        "{profiles}/dbfleet-mod/tuned.conf": "[sysctl]\nvm.admin_reserve_kbytes = >65536\n"
                                             "vm.user_reserve_kbytes = <100000\nvm.overcommit_ratio = >95\n",
        OURS: dropin()}, expect={sk.ADMIN_RESERVE: "131072", sk.USER_RESERVE: "100000", sk.RATIO: "95"},
        after_systemd={sk.USER_RESERVE: "131072", sk.RATIO: "90"}),
    Case("quotes-comments-and-a-slash-spelling", "dbfleet-q", 1, {
        "{profiles}/dbfleet-q/tuned.conf": "[sysctl]\nvm.overcommit_ratio = \"44\"\n"
                                           "vm.admin_reserve_kbytes = 65536 # db host\n",
        OURS: dropin(),
        "/etc/sysctl.d/95-x.conf": "vm.user_reserve_kbytes = 100000 # trailing text\n"
                                   "vm/overcommit_kbytes = 262144\n"},
         expect={sk.KBYTES: "262144", sk.RATIO: "0", sk.USER_RESERVE: "100000", sk.ADMIN_RESERVE: "131072"},
         after_systemd={sk.KBYTES: "262144", sk.RATIO: "0"},  # 2.20: tuned's 44 and 65536 are overwritten again
         # 2.23+ open /proc/sys/vm.overcommit_kbytes for the slash spelling: ENOENT, the drop-in's 90 stays.
         expect_by_rules={"tuned-2.25": {sk.KBYTES: "0", sk.RATIO: "90", sk.USER_RESERVE: "100000",
                                         sk.ADMIN_RESERVE: "131072"}}),
    Case("sysctl-units-run-in-priority-order", "dbfleet-prio", 0, {
        "{profiles}/dbfleet-prio/tuned.conf": "[sysctl]\npriority=20\nvm.overcommit_ratio = 70\n\n"
                                              "[memory_pin]\ntype=sysctl\npriority=10\nvm.overcommit_ratio = 60\n",
        OURS: dropin()}, expect={sk.RATIO: "70"}, after_systemd={sk.RATIO: "90"}),
    Case("enabled-yes-disables-the-unit-and-its-reapply", "dbfleet-yes", 1, {
        "{profiles}/dbfleet-parent/tuned.conf": "[sysctl]\nvm.overcommit_ratio = 42\n",
        "{profiles}/dbfleet-yes/tuned.conf": "[main]\ninclude=dbfleet-parent\n\n[sysctl]\nenabled=yes\n",
        OURS: dropin(), "/run/sysctl.d/99-late.conf": "vm.overcommit_ratio = 77\n",
        "/etc/sysctl.d/99-late.conf": "vm.overcommit_ratio = 78\n"},
        expect={sk.RATIO: "78"}, after_systemd={sk.RATIO: "78"}),  # tuned reapplies nothing (it would write 77)
]


# ---------------------------------------------------------------------------------- guest side


def read_vm(lab: Lab) -> Dict[str, str]:
    out = lab.run(GUEST, "cd /proc/sys && for k in %s; do printf '%%s=%%s\\n' $k \"$(cat ${k//.//})\"; done"
                  % " ".join(KEYS)).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def set_start(lab: Lab) -> None:
    # Mode first (it never leaves mode 2 here, but that is the safe order), then the reserves, then the ratio.
    lab.run(GUEST, "sysctl -q -w vm.overcommit_memory=%s -w vm.admin_reserve_kbytes=%s -w vm.user_reserve_kbytes=%s "
                   "-w vm.overcommit_ratio=%s" % (START[sk.MODE], START[sk.ADMIN_RESERVE], START[sk.USER_RESERVE],
                                                  START[sk.RATIO]))
    assert read_vm(lab) == START


def plant(lab: Lab, case: Case, rules: tm.TunedRules) -> None:
    script = ["echo manual > /etc/tuned/profile_mode", "echo %s > /etc/tuned/active_profile" % case.profile,
              ": > /etc/tuned/post_loaded_profile", _write("/etc/tuned/tuned-main.conf", main_conf(case.reapply))]
    script += [_write(path, text) for path, text in case.planted(rules).items()]
    if case.sysctl_conf is not None:
        script.append(_write("/etc/sysctl.conf", case.sysctl_conf))
    lab.run(GUEST, " && ".join(script))


def _write(path: str, text: str) -> str:
    return "mkdir -p %s && printf %%s %s | base64 -d > %s" % (
        shlex.quote(path.rsplit("/", 1)[0]), base64.b64encode(text.encode()).decode(), shlex.quote(path))


def unplant(lab: Lab, case: Case, rules: tm.TunedRules, saved: Mapping[str, Optional[str]]) -> None:
    """Removes what the case planted (a profile: its directory) and puts tuned's files back."""
    user_dir = rules.profile_dirs[1] + "/"
    planted = sorted({path.rsplit("/", 1)[0] if path.startswith(user_dir) else path for path in case.planted(rules)})
    script = ["rm -rf " + " ".join(shlex.quote(p) for p in planted)]
    script += ["rm -f %s" % path if data is None else "printf %%s %s | base64 -d > %s" % (data, path)
               for path, data in saved.items()]
    lab.run(GUEST, " ; ".join(script))


READ_BACK = ("cd / && tar -cf - $(for p in %s; do if [ -e $p ] || [ -L $p ]; then echo $p; fi; done) | base64 -w0"
             % " ".join(READ_BACK_PATHS))


def read_back(lab: Lab, tmp: str) -> Tuple[tm.TunedHost, Dict[str, sf.SysctlSource]]:
    """tuned's files and the sysctl files of the guest, as the product's readers read a host."""
    blob = base64.b64decode(lab.run(GUEST, READ_BACK, timeout=120).stdout)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        try:
            tar.extractall(tmp, filter="fully_trusted")  # FIFOs and absolute links as they are
        except TypeError:  # Python without extraction filters
            tar.extractall(tmp)
    return tf.read_tuned_host(lambda p: tmp + p), sf.read_sysctl_sources(lambda p: tmp + p)


def start_tuned(lab: Lab, profile: str) -> float:
    """Starts tuned as the boot does (after systemd-sysctl); returns the seconds it took to be active."""
    started = time.monotonic()
    lab.run(GUEST, "systemctl start tuned", timeout=START_TIMEOUT_S)
    seconds = time.monotonic() - started
    state = lab.run(GUEST, "systemctl is-active tuned", check=False).stdout.strip()
    log = lab.run(GUEST, "cat /var/log/tuned/tuned.log").stdout
    if state != "active" or "static tuning from profile '%s' applied" % profile not in log:
        raise LabError("tuned did not apply %s (state %s):\n%s" % (profile, state, log[-3000:]))
    return seconds


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tuned_lab() -> Iterator[Tuple[Lab, Dict[str, Optional[str]]]]:
    check_host()
    with Lab(GUESTS) as lab:
        started = time.monotonic()
        lab.run(GUEST, "systemctl start tuned", timeout=START_TIMEOUT_S)  # joins the boot's start job
        print("tuned guest (%s): SSH after %.1f s, tuned active %.1f s later"
              % (SUITE, lab.guests[GUEST].boot_seconds[0], time.monotonic() - started))
        saved = {}  # type: Dict[str, Optional[str]]
        for path in TUNED_FILES:  # None: absent (Debian 13 has no /etc/sysctl.conf)
            out = lab.run(GUEST, "if [ -e %s ]; then base64 -w0 %s; echo; else echo absent; fi" % (path, path)).stdout
            saved[path] = None if out.strip() == "absent" else out.strip()
        yield lab, saved


@pytest.fixture(scope="module")
def guest_rules(tuned_lab) -> Tuple[tm.TunedRules, sr.ToolRules, str]:
    """The rule sets of the guest's tuned (told from its files, checked against `tuned --version`) and
    systemd, and its systemd-sysctl."""
    lab, _saved = tuned_lab
    with tempfile.TemporaryDirectory(prefix="tuned-lab-") as tmp:
        host, _sources = read_back(lab, tmp)
    reported = lab.run(GUEST, "tuned --version").stdout.split()[-1]
    assert (host.installed, host.version, host.unit_state) == (True, reported, tm.UNIT_ENABLED)
    rules = tm.rules_for_version(host.version)
    assert len(rules) == 1, "no single rule set for the guest's tuned %s" % host.version
    systemd_version = lab.run(GUEST, "systemctl --version").stdout.split()[1]
    systemd = sr.RULES_BY_NAME.get("systemd-" + systemd_version)
    assert systemd is not None, "no rule set for the guest's systemd %s" % systemd_version
    binary = lab.run(GUEST, "ls /usr/lib/systemd/systemd-sysctl /lib/systemd/systemd-sysctl 2>/dev/null | head -1")
    assert binary.stdout.strip(), "no systemd-sysctl in the guest"
    return rules[0], systemd, binary.stdout.strip()


# ---------------------------------------------------------------------------------- the test


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_prediction_equals_the_real_tuned(tuned_lab, guest_rules, case: Case):
    """Each planted case: the boot replay continued by _boot.tuned ends where the real systemd-sysctl
    and the real tuned leave the kernel, key by key."""
    lab, saved = tuned_lab
    rules, systemd, systemd_sysctl = guest_rules
    lab.run(GUEST, "systemctl stop tuned && : > /var/log/tuned/tuned.log", timeout=START_TIMEOUT_S)
    plant(lab, case, rules)
    try:
        with tempfile.TemporaryDirectory(prefix="tuned-lab-") as tmp:
            host, sources = read_back(lab, tmp)
        boot = sr.replay(sources, systemd, START)
        tuned = tm.tuned_boot_writes(host, rules, sources)
        predicted = tm.apply_tuned(boot, tuned)

        set_start(lab)
        lab.run(GUEST, systemd_sysctl)
        after_systemd = read_vm(lab)
        seconds = start_tuned(lab, case.profile)
        real = read_vm(lab)
    finally:
        unplant(lab, case, rules, saved)

    print("%s (%s, tuned active after %.1f s)\n  systemd-sysctl: %s\n  predicted: %s\n  real:      %s\n  %s" % (
        case.name, predicted.label, seconds, after_systemd, {k: predicted.end[k] for k in KEYS}, real,
        "\n  ".join(sr.decided_by(predicted, key).message for key in KEYS)))
    assert tuned.runs and tuned.unmodelled == [], tuned.unmodelled
    assert {k: boot.end[k] for k in KEYS} == after_systemd, "the boot replay itself differs from systemd-sysctl"
    assert so.diff_end_state(predicted, real) == [], "prediction differs from the real tuned"
    assert {k: predicted.end[k] for k in case.expected(rules)} == dict(case.expected(rules))
    assert {k: after_systemd[k] for k in case.after_systemd} == dict(case.after_systemd)
