"""The lab itself: guests boot real kernels with the memory and swap asked for, under
systemd; sysctl drop-ins survive both a clean reboot and a power-cycle; bulk SSH
traffic into guests flows without retransmission storms."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest

from umlab import Lab, offloads_on

MIB_KB = 1024


@pytest.mark.parametrize("name", ["plain", "swap", "mode0", "mode2", "trixie"])
def test_guest_memory_and_swap_match_spec(lab: Lab, name: str) -> None:
    spec = lab.guests[name].spec
    meminfo = lab.meminfo(name)
    mem_total_mb = meminfo["MemTotal"] / MIB_KB
    print(f"{name}: mem={spec.mem_mb}M -> MemTotal {mem_total_mb:.1f} MiB; "
          f"swap {spec.swap_mb} MiB -> SwapTotal {meminfo['SwapTotal']} kB")
    # The kernel keeps its own image and early allocations out of MemTotal: a few %.
    assert 0.85 * spec.mem_mb <= mem_total_mb <= spec.mem_mb
    # mkswap's header takes the first page of the swap file.
    expected_swap_kb = spec.swap_mb * MIB_KB - 4 if spec.swap_mb else 0
    assert meminfo["SwapTotal"] == expected_swap_kb
    assert meminfo.get("Hugetlb", 0) == 0 and meminfo.get("HugePages_Total", 0) == 0  # UML: no hugetlb


@pytest.mark.parametrize("name", ["plain", "swap", "trixie"])
def test_systemd_is_pid1_and_ran_systemd_sysctl(lab: Lab, name: str) -> None:
    out = lab.run(name, "cat /proc/1/comm; readlink /proc/1/exe; "
                        "systemctl show -p ActiveState -p Result systemd-sysctl.service; "
                        "systemctl is-system-running || true").stdout.split()
    comm, exe, *props = out
    print(f"{name}: pid 1 = {comm} ({exe}); systemd-sysctl {props}")
    assert comm == "systemd"
    assert exe.endswith("/systemd")
    assert "ActiveState=active" in props and "Result=success" in props
    assert props[-1] == "running", f"units failed at boot: {lab.run(name, 'systemctl --failed').stdout}"


def test_sysctl_dropin_survives_power_cycle(lab: Lab) -> None:
    name = "swap"
    lab.run(name, "echo 'vm.overcommit_ratio = 77' >/etc/sysctl.d/90-x.conf && sync")
    assert lab.sysctl(name, "vm.overcommit_ratio") == "50", "the drop-in must not be live before the boot"
    boot_before = lab.boot_id(name)
    try:
        lab.power_cycle(name)   # pulls the plug: only what was synced survives
        assert lab.boot_id(name) != boot_before, "the guest did not really boot again"
        ratio = lab.sysctl(name, "vm.overcommit_ratio")
        print(f"{name}: after power-cycle in {lab.guests[name].boot_seconds[-1]} s, vm.overcommit_ratio = {ratio}")
        assert ratio == "77"
    finally:
        lab.run(name, "rm -f /etc/sysctl.d/90-x.conf && sync && sysctl -q -w vm.overcommit_ratio=50")


def test_sysctl_dropin_survives_clean_reboot(lab: Lab) -> None:
    name = "plain"
    # No sync: a clean shutdown must write it out by itself.
    lab.run(name, "echo 'vm.overcommit_ratio = 66' >/etc/sysctl.d/90-y.conf")
    boot_before = lab.boot_id(name)
    try:
        lab.reboot(name)
        assert lab.boot_id(name) != boot_before, "the guest did not really boot again"
        ratio = lab.sysctl(name, "vm.overcommit_ratio")
        print(f"{name}: after clean reboot in {lab.guests[name].boot_seconds[-1]} s, vm.overcommit_ratio = {ratio}")
        assert ratio == "66"
    finally:
        lab.run(name, "rm -f /etc/sysctl.d/90-y.conf && sync && sysctl -q -w vm.overcommit_ratio=50")


UPLOAD_MIB = 4
# Measured on this machine: 0.2 % with the tap/bridge offloads off, 60 % with them on.
MAX_RETRANS_PCT = 2.0


def test_bulk_upload_to_every_guest_is_not_retransmitted(lab: Lab) -> None:
    """What an Ansible module upload does, in bulk: 4 MiB into each guest over SSH. With
    the host side's offloads on, such a transfer retransmitted most of its segments and
    stalled for minutes; the lab switches them off on every tap and the bridge."""
    for device in ["br0", *(guest.tap for guest in lab.guests.values())]:
        assert offloads_on(lab.netns, device) == [], f"{device}: offloads back on"
    payload = base64.b64encode(os.urandom(UPLOAD_MIB * 1024 * 1024 * 3 // 4)).decode()
    digest = hashlib.sha256(payload.encode()).hexdigest()
    before = lab.tcp_counters()
    started = time.monotonic()
    for name in lab.guests:
        received = lab.run(name, "sha256sum", input_text=payload, timeout=60).stdout.split()[0]
        assert received == digest, f"{name}: the upload arrived damaged"
    seconds = time.monotonic() - started
    sent = lab.tcp_counters() - before
    print(f"{len(lab.guests)} x {UPLOAD_MIB} MiB over SSH in {seconds:.1f} s: {sent}")
    assert sent.retrans_pct < MAX_RETRANS_PCT, str(sent)
