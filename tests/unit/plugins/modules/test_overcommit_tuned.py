"""dbfleet.memory.overcommit on a host with tuned: tuned writes after systemd-sysctl at boot, so its
profile is judged like any other file that sets the keys.

Fake host as in fake_kernel.py (4000000 kB RAM, 1000000 kB swap in fstab), with Debian 12's tuned
2.20 installed and enabled, in manual mode with a profile of the admin's under /etc/tuned.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.takeover import MARKER
from ansible_collections.dbfleet.memory.plugins.modules import overcommit, overcommit_info
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import snapshot

PG = {"profile": ["postgresql"]}
PROFILE = "etc/tuned/dbfleet-pg/tuned.conf"
VERSION_PY = "TUNED_VERSION_MAJOR = 2\nTUNED_VERSION_MINOR = 20\nTUNED_VERSION_PATCH = 0\n"
UNIT = ("[Unit]\nDescription=Dynamic System Tuning Daemon\nAfter=systemd-sysctl.service\n\n[Service]\nType=dbus\n"
        "BusName=com.redhat.tuned\nExecStart=/usr/sbin/tuned -l -P\n\n[Install]\nWantedBy=multi-user.target\n")


def install_tuned(root, reapply: int, sysctl: str) -> None:
    """Debian 12's tuned 2.20, enabled, with the admin's profile dbfleet-pg active (manual mode)."""
    files = {
        "usr/lib/python3/dist-packages/tuned/version.py": VERSION_PY,
        "usr/lib/systemd/system/tuned.service": UNIT,
        "etc/tuned/tuned-main.conf": "daemon = 1\nrecommend_command = 1\nreapply_sysctl = %d\n" % reapply,
        "etc/tuned/active_profile": "dbfleet-pg\n",
        "etc/tuned/profile_mode": "manual\n",
        "etc/tuned/post_loaded_profile": "",
        PROFILE: "[main]\nsummary=PostgreSQL, strict overcommit\n\n[sysctl]\n" + sysctl,
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    os.symlink("/usr/lib/systemd/system/tuned.service", wants / "tuned.service")


def test_a_profile_that_wins_over_the_drop_in_at_boot_is_refused_naming_it(kernel, run_module):
    """Failed before the fix: with reapply_sysctl = 0 tuned writes its ratio 40 after systemd-sysctl;
    the role reported ok and the next boot held ratio 40, not the plan."""
    install_tuned(kernel.root, reapply=0, sysctl="vm.overcommit_memory = 2\nvm.overcommit_ratio = 40\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "vm.overcommit_ratio would end at 40, not 90" in result["msg"]
    assert result["msg"].startswith("Nothing changed: another sysctl file or tuned would change the plan")
    assert "/etc/tuned/dbfleet-pg/tuned.conf:6" in result["msg"] and "systemd-252 + tuned-2.20 boot" in result["msg"]
    assert "reapply_sysctl = 1" in result["msg"]  # the fix: a later drop-in cannot win over tuned
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_takeover_comments_the_profile_lines_out_and_absent_puts_them_back(kernel, run_module):
    install_tuned(kernel.root, reapply=0, sysctl="vm.overcommit_memory = 2\nvm.overcommit_ratio = 40\n")
    profile = kernel.root / PROFILE
    original = profile.read_text()
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert not failed, result["msg"]
    assert profile.read_text() == original.replace("vm.overcommit", MARKER.decode() + "vm.overcommit")
    assert result["shadowing"]["vm.overcommit_ratio"]["by_tool"]["systemd-252 + tuned-2.20 boot"]["value"] == "90"
    assert run_module(overcommit.main, dict(PG, shadowing="takeover"))[1]["changed"] is False
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert profile.read_text() == original and not (kernel.root / "etc/sysctl.d/90-dbfleet-overcommit.conf").exists()
    # The live values return to what the next boot sets: systemd-sysctl, then tuned's profile.
    assert kernel.get("overcommit_memory") == "2" and kernel.get("overcommit_ratio") == "40"


def test_takeover_never_edits_a_vendor_profile(kernel, run_module):
    install_tuned(kernel.root, reapply=0, sysctl="")
    vendor = kernel.root / "usr/lib/tuned/strict/tuned.conf"
    vendor.parent.mkdir(parents=True)
    vendor.write_text("[sysctl]\nvm.overcommit_ratio = 40\n")
    (kernel.root / "etc/tuned/active_profile").write_text("strict\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert failed and "takeover edits only files under /etc" in result["msg"]
    assert "/usr/lib/tuned/strict/tuned.conf:2" in result["msg"] and snapshot(kernel.root) == before


def test_absent_that_hands_the_boot_to_tuneds_low_ratio_is_refused(kernel, run_module):
    """Failed before the fix: with the default reapply_sysctl = 1 our drop-in is written again after the
    profile, so present is fine; state=absent removes it, and the next boot keeps tuned's mode 2 at
    ratio 30, below what is committed. absent reported ok; the database failed at boot."""
    install_tuned(kernel.root, reapply=1, sysctl="vm.overcommit_memory = 2\nvm.overcommit_ratio = 30\n")
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    kernel.set_committed(2500000)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert failed and "would leave an unsafe mode 2" in result["msg"]
    assert "set by tuned-2.20 from /etc/tuned/dbfleet-pg/tuned.conf:6" in result["msg"]
    assert snapshot(kernel.root) == before


def test_overcommit_info_names_tuned_among_the_boot_writers(kernel, run_module):
    install_tuned(kernel.root, reapply=1, sysctl="vm.swappiness = 10\n")
    failed, result = run_module(overcommit_info.main, PG)
    assert not failed, result.get("msg")
    writers = result["next_boot"]["writers"]
    assert writers[0].startswith("systemd-sysctl at boot")
    assert any(w.startswith("tuned-2.20 after the boot tool: profile dbfleet-pg (/etc/tuned/dbfleet-pg/tuned.conf)")
               and w.endswith("reapply_sysctl on") for w in writers), writers
    assert "systemd-252 + tuned-2.20 boot" in result["boot_now"]
    assert "tuned-2.20 tuned restart" in result["boot_now"]


@pytest.mark.parametrize("mode", ["auto", ""])
def test_a_profile_tuned_picks_by_itself_is_reported_as_not_modelled(kernel, run_module, mode):
    install_tuned(kernel.root, reapply=1, sysctl="")
    (kernel.root / "etc/tuned/profile_mode").write_text(mode + "\n")
    (kernel.root / "etc/tuned/active_profile").write_text("")
    failed, result = run_module(overcommit_info.main, PG)
    assert not failed
    assert result["next_boot"]["unmodelled"], result["next_boot"]


def test_a_profile_the_drop_in_overrides_again_still_holds_for_a_moment_at_boot_and_is_warned_about(
        kernel, run_module):
    """With reapply_sysctl = 1 the end state is ours, but tuned first writes its profile's mode 2 at
    ratio 30: units starting at that moment of the boot can be refused memory."""
    install_tuned(kernel.root, reapply=1, sysctl="vm.overcommit_memory = 2\nvm.overcommit_ratio = 30\n")
    kernel.set_committed(2500000)
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    texts = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    assert any(t.startswith("tuned-2.20 at boot, after its profile and before it writes the sysctl files again:")
               and "/etc/tuned/dbfleet-pg/tuned.conf:6" in t for t in texts), texts
