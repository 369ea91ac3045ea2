"""dbfleet.memory.overcommit and the next boot: replayed files, the lower-bound check on every
path that can leave mode 2, and taking over lines copied from blog posts.

Fake host as in fake_kernel.py: 4000000 kB RAM, 1000000 kB swap; the plan is ratio 90
(CommitLimit 4600000 kB), or kbytes 3600000 with prefer=kbytes.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.takeover import MARKER
from ansible_collections.dbfleet.memory.plugins.modules import overcommit
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import BOOT, DEBIAN_SYSCTL_CONF, no_systemd, snapshot

DROPIN = "etc/sysctl.d/90-dbfleet-overcommit.conf"
PG = {"profile": ["postgresql"]}
SEED_ADVICE = "vm.overcommit_memory = 2\nvm.overcommit_ratio = 100\n"


def write(kernel, path, text):
    (kernel.root / path).write_text(text)


def test_a_later_kbytes_zero_is_refused_because_it_zeroes_our_ratio(kernel, run_module):
    """Finding 1: 'vm.overcommit_kbytes = 0' in a later file was called harmless; sysctl --system
    then zeroed the ratio and CommitLimit fell to swap only."""
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_kbytes = 0\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "Nothing changed" in result["msg"]
    assert ("vm.overcommit_ratio would end at 0, not 90: vm.overcommit_ratio = 0 because "
            "/etc/sysctl.d/99-zz-tuning.conf:1 writes vm.overcommit_kbytes = 0") in result["msg"]
    assert "procps-4.0.2 boot" in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []


def test_a_ratio_line_in_sysctl_conf_against_a_kbytes_plan_is_refused(kernel, run_module):
    """Finding 1: a ratio line in /etc/sysctl.conf replaced a kbytes plan under both tools."""
    write(kernel, "etc/sysctl.conf", DEBIAN_SYSCTL_CONF + "vm.overcommit_ratio = 90\n")
    failed, result = run_module(overcommit.main, dict(PG, prefer="kbytes"))
    assert failed
    assert "vm.overcommit_kbytes would end at 0, not 3600000" in result["msg"]
    assert "systemd-252 boot" in result["msg"] and "procps-4.0.4 boot" in result["msg"]


def test_a_file_that_agrees_is_reported_and_accepted(kernel, run_module):
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_memory=2\n")
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    entry = result["shadowing"]["vm.overcommit_memory"]
    assert entry["status"] == "agrees"
    # systemd keeps the earlier place of a repeated key with the same value: ours decides;
    # procps writes every line in order: the later file decides, with the same value.
    assert entry["by_tool"]["systemd-252 boot"]["ours"] is True
    procps = {"value": "2", "decided_by": "/etc/sysctl.d/99-zz-tuning.conf:1", "ours": False}
    assert entry["by_tool"]["procps-4.0.2 boot"] == procps


def test_warn_never_leaves_an_unsafe_mode_2_at_boot(kernel, run_module):
    """A later file with mode 2 and a low ratio: with shadowing=warn it would still boot locked out."""
    kernel.set_committed(2900000)
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_ratio = 50\n")
    failed, result = run_module(overcommit.main, dict(PG, shadowing="warn"))
    assert failed and result["msg"].startswith(
        "Nothing changed: the next boot, or a later sysctl --system or tuned restart, would leave an unsafe mode 2:")
    assert "vm.overcommit_memory=2 with vm.overcommit_ratio=50" in result["msg"]
    assert "/etc/sysctl.d/99-zz-tuning.conf:1" in result["msg"] and kernel.writes == []


def test_absent_refuses_to_leave_an_unsafe_mode_2_from_another_file(kernel, run_module):
    """Finding 2: absent settled into the seed's half-done advice (mode 2, ratio 50) over the
    committed memory, with rc 0 and no warning."""
    kernel.set_committed(2900000)
    write(kernel, "etc/sysctl.d/10-half-done.conf", "vm.overcommit_memory = 2\n")
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    before = snapshot(kernel.root)
    live = kernel.live()
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert failed
    assert result["msg"].startswith("Nothing changed: without our drop-in the remaining sysctl files would leave "
                                    "an unsafe mode 2")
    assert "/etc/sysctl.d/10-half-done.conf:1" in result["msg"]
    assert "vm.overcommit_memory=2 with vm.overcommit_ratio=50" in result["msg"]
    assert snapshot(kernel.root) == before and kernel.live() == live


def test_absent_into_a_safe_mode_2_from_another_file_is_carried_out(kernel, run_module):
    write(kernel, "etc/sysctl.d/10-half-done.conf", "vm.overcommit_memory = 2\n")
    run_module(overcommit.main, PG)
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert kernel.live() == dict(BOOT, overcommit_memory="2")


def test_shadowing_takeover_comments_out_the_seed_advice_and_absent_puts_it_back(kernel, run_module):
    """Finding 12: the seed's lines in /etc/sysctl.conf stopped the role with 'shadowed'."""
    conf = kernel.root / "etc/sysctl.conf"
    original = DEBIAN_SYSCTL_CONF + SEED_ADVICE
    conf.write_text(original)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "/etc/sysctl.d/99-sysctl.conf:5" in result["msg"]

    before = snapshot(kernel.root)
    failed, check = run_module(overcommit.main, dict(PG, shadowing="takeover", _ansible_check_mode=True,
                                                     _ansible_diff=True))
    assert not failed, check["msg"]
    assert snapshot(kernel.root) == before
    assert {"path": "/etc/sysctl.conf", "action": "update",
            "why": "takeover: conflicting overcommit lines commented out"} in check["files"]
    conf_diff = next(d for d in check["diff"] if d["before_header"] == "/etc/sysctl.conf")
    assert MARKER.decode() + "vm.overcommit_ratio = 100" in conf_diff["after"]

    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert not failed, result["msg"]
    text = conf.read_text()
    assert MARKER.decode() + "vm.overcommit_ratio = 100\n" in text
    assert "vm.overcommit_memory = 2\n" in text.replace(MARKER.decode(), "#")  # agrees: may stay or go
    assert (kernel.root / DROPIN).exists()
    assert run_module(overcommit.main, dict(PG, shadowing="takeover"))[1]["changed"] is False

    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert conf.read_text() == original
    assert kernel.live() == dict(BOOT, overcommit_memory="2", overcommit_ratio="100")


def test_takeover_keeps_the_edited_files_mode_and_edits_it_before_writing_ours(kernel, run_module, monkeypatch):
    conf = kernel.root / "etc/sysctl.conf"
    conf.write_text(DEBIAN_SYSCTL_CONF + SEED_ADVICE)
    os.chmod(conf, 0o600)
    order = []
    real_write = files.write_file_atomic

    def recording(path, data, keep_attrs=False):
        order.append(path)
        real_write(path, data, keep_attrs)

    monkeypatch.setattr(files, "write_file_atomic", recording)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert not failed, result["msg"]
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    # Killed between the two writes, the boot no longer reads the seed's lines, and not only ours.
    assert order == ["/etc/sysctl.conf", "/" + DROPIN]


def test_takeover_never_edits_vendor_files(kernel, run_module):
    vendor = kernel.root / "usr/lib/sysctl.d/99-vendor.conf"
    vendor.write_text("vm.overcommit_ratio = 40\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert failed and "takeover edits only files under /etc" in result["msg"]
    assert "/usr/lib/sysctl.d/99-vendor.conf:1" in result["msg"] and "later overcommit_dropin_priority" in result["msg"]
    assert snapshot(kernel.root) == before


def test_a_failed_takeover_puts_every_file_back(kernel, run_module, monkeypatch):
    conf = kernel.root / "etc/sysctl.conf"
    original = DEBIAN_SYSCTL_CONF + SEED_ADVICE
    conf.write_text(original)
    real_rename = os.rename

    def conf_on_a_full_disk(src, dst):
        if dst.endswith("/etc/sysctl.conf") and ".dbfleet-" in src:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", conf_on_a_full_disk)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert failed and result["rollback"]["complete"] is True
    assert conf.read_text() == original and not (kernel.root / DROPIN).exists()
    assert kernel.live() == BOOT
    assert not [n for n in os.listdir(kernel.root / "etc") if n.startswith(".dbfleet-")]


@pytest.mark.parametrize("text", ["vm.overcommit_ratio = 90 # default\n", "vm.overcommit_ratio = \"90\"\n"])
def test_odd_values_in_other_files_are_judged_as_the_kernel_reads_them(kernel, run_module, text):
    """Finding 10: a value like '0 # default' gave a traceback."""
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", text)
    failed, result = run_module(overcommit.main, PG)
    assert "Traceback" not in str(result)
    assert isinstance(result["shadowing"], dict)


def test_a_file_state_the_lower_bound_check_cannot_judge_is_refused_not_a_traceback(kernel, run_module):
    """Failed before the fix with a traceback (CommitStateInputError): a later file sets mode 2
    with a negative ratio, which the kernel stores and the check cannot judge."""
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_memory = 2\nvm.overcommit_ratio = -5\n")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed and result["msg"] == (
        "Nothing changed: an end state of the sysctl files or the live values cannot be judged by the lower-bound "
        "check: vm.overcommit_ratio: must be a canonical decimal string, got '-5'")
    assert snapshot(kernel.root) == before and kernel.writes == []


# --- state=absent when the boot tools disagree about the remaining files -------------------------
# A vendor file sets ratio 70 and a later one "vm.overcommit_kbytes = 0": systemd-sysctl skips
# that write (kbytes already reads 0) and boots with ratio 70; sysctl --system writes it, which
# zeroes the ratio. Our drop-in hid both until state=absent removes it.

@pytest.fixture
def fresh_warnings(monkeypatch):
    """Warnings are process-global in module_utils: an earlier test's must not show here."""
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(warnings, "_global_warnings", {})


def warning_texts(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def plant_disagreement(kernel):
    write(kernel, "usr/lib/sysctl.d/30-vendor.conf", "vm.overcommit_ratio = 70\n")
    write(kernel, "etc/sysctl.d/99-zz-tuning.conf", "vm.overcommit_kbytes = 0\n")


def test_absent_restores_as_systemd_sysctl_when_systemd_boots_the_host(kernel, run_module, fresh_warnings):
    run_module(overcommit.main, PG)
    plant_disagreement(kernel)
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert kernel.live() == dict(BOOT, overcommit_ratio="70")
    assert warning_texts(result) == [
        "state=absent restored the live values as this host's boot tool sets them (systemd-252, systemd-257: "
        "systemd is PID 1, /run/systemd/system exists, and systemd-sysctl.service is not masked); "
        "the modelled tools disagree about the remaining files: systemd-252, systemd-257: vm.overcommit_ratio = 70 "
        "is set by /usr/lib/sysctl.d/30-vendor.conf:1 (vm.overcommit_ratio = 70) | procps-4.0.2, procps-4.0.4, "
        "procps-4.0.5: vm.overcommit_ratio = 0 because /etc/sysctl.d/99-zz-tuning.conf:1 writes "
        "vm.overcommit_kbytes = 0, and a write to vm.overcommit_kbytes zeroes vm.overcommit_ratio"]


@pytest.mark.parametrize("systemd_is", ["absent", "masked"])
def test_absent_does_not_guess_when_the_tools_disagree_and_the_boot_tool_is_unknown(
        kernel, run_module, systemd_is, fresh_warnings):
    """Failed before the fix: absent restored what Debian 12's systemd-sysctl would set (ratio 70)
    on any host. Now the keys the tools disagree about are left live as they are, the rest is
    restored, and the warning names the files and the tools."""
    run_module(overcommit.main, PG)
    plant_disagreement(kernel)
    why = "systemd is not PID 1: no /run/systemd/system"
    if systemd_is == "absent":
        no_systemd(kernel.root)
    else:
        (kernel.root / "etc/systemd/system").mkdir(parents=True)
        os.symlink("/dev/null", kernel.root / "etc/systemd/system/systemd-sysctl.service")
        why = "systemd-sysctl.service is masked: /etc/systemd/system/systemd-sysctl.service -> /dev/null"
    kernel.writes.clear()
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert not (kernel.root / DROPIN).exists()
    assert kernel.live() == dict(BOOT, overcommit_ratio="90")  # mode and reserve restored, the pair left
    assert [key for key, _value in kernel.writes] == ["vm.overcommit_memory", "vm.admin_reserve_kbytes"]
    assert result["target_values"] == {"vm.overcommit_memory": "0", "vm.admin_reserve_kbytes": "8192"}
    (warning,) = warning_texts(result)
    assert warning.startswith(
        "state=absent left vm.overcommit_ratio, vm.overcommit_kbytes live as they are (90, 0) rather than guess: "
        "the boot tool of this host cannot be told (%s) and the modelled tools disagree about the remaining files: "
        "systemd-252, systemd-257: vm.overcommit_ratio = 70 is set by /usr/lib/sysctl.d/30-vendor.conf:1" % why)
    assert "procps-4.0.5: vm.overcommit_ratio = 0 because /etc/sysctl.d/99-zz-tuning.conf:1" in warning


def test_absent_that_leaves_disputed_keys_alone_still_passes_the_lower_bound_check(kernel, run_module):
    """A file that sets mode 2 with the disagreement: procps would boot with CommitLimit = swap only.
    Leaving the pair alone is no way around the check: the run is refused, nothing changed."""
    run_module(overcommit.main, PG)
    plant_disagreement(kernel)
    write(kernel, "etc/sysctl.d/10-half-done.conf", "vm.overcommit_memory = 2\n")
    before = snapshot(kernel.root)
    live = kernel.live()
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert failed and result["msg"].startswith("Nothing changed: without our drop-in the remaining sysctl files "
                                               "would leave an unsafe mode 2")
    assert snapshot(kernel.root) == before and kernel.live() == live


# --- what cannot be predicted is a refusal, not a skip -------------------------------------------

def big_file_ending_in_ratio_1(kernel):
    path = kernel.root / "etc/sysctl.d/60-huge.conf"
    with open(path, "wb") as out:
        line = b"# " + b"x" * 1021 + b"\n"
        out.write(line * (17 * 1024))  # 17 MiB of comments
        out.write(b"vm.overcommit_ratio = 1\n")
    return path


@pytest.mark.parametrize("args", [PG, {"state": "absent"}])
def test_a_sysctl_file_too_large_to_read_is_a_refusal_naming_it(kernel, run_module, args):
    """Failed before the fix: the replay skipped the 17 MiB file and the run succeeded without a word;
    the real tools read it and boot into ratio 1."""
    if args.get("state") == "absent":
        assert not run_module(overcommit.main, PG)[0]
    big_file_ending_in_ratio_1(kernel)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, args)
    assert failed and result["msg"].startswith("Nothing changed: /etc/sysctl.d/60-huge.conf cannot be read here "
                                               "(larger than 16777216 bytes)")
    assert "the next boot cannot be predicted" in result["msg"]
    assert snapshot(kernel.root) == before


def test_takeover_never_follows_a_linked_directory_into_a_vendor_file(kernel, run_module):
    """Failed before the fix: /etc/sysctl.d/95-alt.conf -> /etc/alt/x.conf with /etc/alt linked to
    /usr/share/alt: the takeover took it for a file under /etc and rewrote the vendor file."""
    vendor = kernel.root / "usr/share/alt/x.conf"
    vendor.parent.mkdir(parents=True)
    vendor.write_text("vm.overcommit_ratio = 40\n")
    os.symlink("../usr/share/alt", kernel.root / "etc/alt")
    os.symlink("../alt/x.conf", kernel.root / "etc/sysctl.d/95-alt.conf")
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert failed and "takeover edits only files under /etc" in result["msg"]
    assert "/etc/sysctl.d/95-alt.conf:1" in result["msg"]
    assert snapshot(kernel.root) == before and vendor.read_text() == "vm.overcommit_ratio = 40\n"


def test_absent_puts_back_only_the_lines_our_drop_in_recorded(kernel, run_module, fresh_warnings):
    """Failed before the fix: absent un-commented every marked line, also one no run of ours wrote."""
    conf = kernel.root / "etc/sysctl.conf"
    someone_elses = MARKER.decode() + "vm.overcommit_kbytes = 0\n"
    conf.write_text(DEBIAN_SYSCTL_CONF + someone_elses + SEED_ADVICE)
    failed, result = run_module(overcommit.main, dict(PG, shadowing="takeover"))
    assert not failed, result["msg"]
    assert "# took over: " in (kernel.root / DROPIN).read_text()
    failed, result = run_module(overcommit.main, {"state": "absent"})
    assert not failed, result["msg"]
    assert conf.read_text() == DEBIAN_SYSCTL_CONF + someone_elses + SEED_ADVICE
    assert any("no drop-in of ours records" in text for text in warning_texts(result))


# --- the memory the next boot will have --------------------------------------------------------

def test_swap_switched_on_by_hand_is_not_counted_for_the_next_boot_and_the_fix_is_named(kernel, run_module):
    """Failed before the fix: the swap file is on now (meminfo's 1000000 kB) but in no /etc/fstab, so a
    reboot drops it. The plan fits now only with it; the run reported ok and the next boot locked
    the database out (the lab showed CommitLimit 438 MiB instead of 1204 MiB)."""
    (kernel.root / "etc/fstab").write_text("# no swap here\n")
    kernel.set_committed(3200000)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed, "a plan that needs the swap switched on by hand was applied"
    assert "The next boot has less swap than now (SwapTotal 1000000 kB now, 0 kB counted at boot)" in result["msg"]
    assert "/swapfile (1000000 kB, /proc/swaps)" in result["msg"] and "/etc/fstab" in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
    assert result["boot"]["systemd-252 boot"]["swaptotal_kb"] == 0


def test_swap_in_fstab_counts_for_the_next_boot(kernel, run_module):
    kernel.set_committed(3200000)
    failed, result = run_module(overcommit.main, PG)
    assert not failed, result["msg"]
    assert result["boot"]["systemd-252 boot"]["swaptotal_kb"] == 1000000


@pytest.mark.parametrize("where", ["sysctl file", "command line"])
def test_huge_pages_reserved_at_the_next_boot_are_left_out_of_its_commit_limit(kernel, run_module, where):
    """Failed before the fix: 800 huge pages of 2 MiB (1600 MiB of this 4000000 kB host) are not
    allocated now; the next boot reserves them and its CommitLimit shrinks below what is committed."""
    kernel.give_hugetlb(2048)
    if where == "sysctl file":
        (kernel.root / "etc/sysctl.d/60-huge.conf").write_text("vm.nr_hugepages = 800\n")
    else:
        (kernel.root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro hugepages=800\n")
    kernel.set_committed(2500000)
    before = snapshot(kernel.root)
    failed, result = run_module(overcommit.main, PG)
    assert failed and "would leave an unsafe mode 2" in result["msg"]
    assert result["boot"]["systemd-252 boot"]["hugetlb_kb"] == 800 * 2048
    assert "(MemTotal 4000000 kB - hugetlb 1638400 kB) * overcommit_ratio 90" in result["msg"]
    assert snapshot(kernel.root) == before and kernel.writes == []
