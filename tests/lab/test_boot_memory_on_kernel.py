"""The next boot's memory (plugins/module_utils/_boot/memory.py), checked against a real kernel.

One guest of its own, `bootmem` (512 MiB, no swap disk), booted with two sysctls on its kernel
command line (GuestSpec.kernel_args). The product's reader runs *on the guest* (its files,
/proc and stat; tests/lab/guest/boot_memory_probe.py), predicts, and the guest is then
power-cycled (after `sync`, so the files survive) and the kernel says what it really did:

* swap switched on by hand, through /etc/fstab (plain, noauto, nofail), through an enabled and
  a disabled .swap unit, and with the lab image's masked systemd-fstab-generator: SwapTotal
  after the boot equals the swap the model counts, plus the nofail swap the model names as
  not counted (its file is there, so this boot does bring it back);
* `sysctl.vm.overcommit_ratio=77` and `sysctl/vm/admin_reserve_kbytes=65536` on the command
  line: the live values equal boot_start's prediction.

UML has no hugetlb: the probe must say so and predict 0; the hugetlb rules are proved on fake
roots and by the formula (tests/unit/plugins/module_utils/test_boot_memory*.py).
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from umlab import GuestSpec, Lab, check_host

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import commit_limit_kb

REPO = Path(__file__).resolve().parents[2]
MODULE_UTILS = REPO / "plugins" / "module_utils"
PROBE = Path(__file__).parent / "guest" / "boot_memory_probe.py"
ON_GUEST = "/root/bootmem"
GUEST = "bootmem"
RATIO = 77
ADMIN_RESERVE_KB = 65536
CMDLINE_ARGS = (f"sysctl.vm.overcommit_ratio={RATIO}", f"sysctl/vm/admin_reserve_kbytes={ADMIN_RESERVE_KB}")
# The lab image disables every generator this way (image/build-image.sh).
FSTAB_GENERATOR_MASK = "/etc/systemd/system-generators/systemd-fstab-generator"
FIX = "add it to /etc/fstab, or swapoff it and plan without it"


@pytest.fixture(scope="module")
def bmlab() -> Iterator[Lab]:
    check_host()
    with Lab([GuestSpec(GUEST, mem_mb=512, kernel_args=CMDLINE_ARGS)]) as lab:
        upload_product(lab)
        lab.run(GUEST, "cp /etc/fstab /root/fstab.image")
        print(f"bootmem lab booted: SSH after {lab.guests[GUEST].boot_seconds[0]:.1f} s")
        yield lab


def upload_product(lab: Lab) -> None:
    """The collection's module_utils and the probe, in one tar over SSH (the guest has no collection)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(MODULE_UTILS.rglob("*.py")):
            relative = path.relative_to(MODULE_UTILS)
            tar.add(path, arcname=f"ansible_collections/dbfleet/memory/plugins/module_utils/{relative}")
        tar.add(PROBE, arcname="boot_memory_probe.py")
    lab.run(GUEST, f"rm -rf {ON_GUEST} && mkdir -p {ON_GUEST} && base64 -d | tar -C {ON_GUEST} -xzf -",
            input_text=base64.b64encode(buf.getvalue()).decode())


def probe(lab: Lab) -> dict[str, Any]:
    """The product's prediction, made on the guest."""
    return json.loads(lab.run(GUEST, f"python3 {ON_GUEST}/boot_memory_probe.py {ON_GUEST}").stdout)


def live_swaps(lab: Lab) -> dict[str, int]:
    """Area -> size in kB, as the kernel lists them (the test's own reading of /proc/swaps)."""
    lines = lab.run(GUEST, "cat /proc/swaps").stdout.splitlines()[1:]
    return {line.split()[0]: int(line.split()[2]) for line in lines if line.strip()}


def item(prediction: dict[str, Any], what: str) -> dict[str, Any]:
    (found,) = [i for i in prediction["swap"]["items"] if i["what"] == what]
    return found


def reset(lab: Lab) -> None:
    """No swap, the image's fstab, no unit of ours, the fstab generator masked as in the image."""
    lab.run(GUEST, "swapoff -a; rm -f /swap? /swaphand /etc/systemd/system/swap?.swap "
                   "/etc/systemd/system/swap.target.wants/swap?.swap; cp /root/fstab.image /etc/fstab; "
                   f"mkdir -p {FSTAB_GENERATOR_MASK.rsplit('/', 1)[0]} && ln -sfn /dev/null {FSTAB_GENERATOR_MASK}")
    assert live_swaps(lab) == {}


def make_swap(lab: Lab, path: str, mb: int, on: bool = True) -> None:
    lab.run(GUEST, f"fallocate -l {mb}M {path} && chmod 600 {path} && mkswap -q {path}"
                   + (f" && swapon {path}" if on else ""))


def power_cycle(lab: Lab) -> float:
    """Pull the plug after `sync` and boot again; returns the seconds it took."""
    lab.run(GUEST, "sync")
    t0 = time.monotonic()
    lab.power_cycle(GUEST)
    seconds = time.monotonic() - t0
    print(f"power-cycle of {GUEST}: {seconds:.1f} s")
    return seconds


def read_vm(lab: Lab, *keys: str) -> dict[str, str]:
    out = lab.run(GUEST, " ".join(f"cat /proc/sys/vm/{key};" for key in keys)).stdout.split()
    return {f"vm.{key}": value for key, value in zip(keys, out)}


def test_command_line_sysctls_are_the_start_values_boot_start_predicts(bmlab: Lab) -> None:
    lab = bmlab
    cmdline = lab.run(GUEST, "cat /proc/cmdline").stdout.split()
    assert set(CMDLINE_ARGS) <= set(cmdline), cmdline
    # No sysctl file of the image sets these keys, so after the boot they still hold the start values.
    setters = lab.run(GUEST, "grep -rsE '^[[:space:]]*vm[./](overcommit|admin_reserve|user_reserve)' /etc/sysctl.d "
                             "/run/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d /etc/sysctl.conf || true").stdout.strip()
    assert setters == "", f"the premise fails: a sysctl file sets a key this test checks:\n{setters}"
    predicted = probe(lab)
    print("unmodelled writers the guest's files show: %s" % (predicted["unmodelled"] or "none"))
    # The lab's own lab-setup.service switches a swap disk on from a script: a boot writer no rule
    # models, which the reader must name (this guest has no swap disk, so it does nothing here).
    assert any(w.startswith("/usr/local/sbin/lab-setup:") and w.endswith("swapon /dev/ubdb")
               for w in predicted["unmodelled"]), predicted["unmodelled"]
    start = predicted["start"]
    live = read_vm(lab, "overcommit_ratio", "admin_reserve_kbytes", "overcommit_memory", "overcommit_kbytes",
                   "user_reserve_kbytes")
    print(f"kernel: {live}\nboot_start: {start}")
    for key in ("vm.overcommit_ratio", "vm.admin_reserve_kbytes", "vm.overcommit_memory", "vm.overcommit_kbytes"):
        assert live[key] == start[key], key
    assert (start["vm.overcommit_ratio"], start["vm.admin_reserve_kbytes"]) == (str(RATIO), str(ADMIN_RESERVE_KB))
    # The kernel sized it from free memory at boot; the model from MemTotal, the larger bound.
    assert int(live["vm.user_reserve_kbytes"]) <= int(start["vm.user_reserve_kbytes"])
    # UML has no hugetlb: the reader sees it and predicts no huge pages, as the kernel has none.
    meminfo = lab.meminfo(GUEST)
    assert predicted["hugetlb_supported"] is False
    assert predicted["huge"]["hugetlb_kb"] == 0 == predicted["next"]["hugetlb_kb"] == meminfo.get("Hugetlb", 0)
    assert meminfo["CommitLimit"] == commit_limit_kb(meminfo["MemTotal"], 0, meminfo["SwapTotal"], RATIO)


def test_swap_switched_on_by_hand_is_not_counted_and_is_gone_after_a_power_cycle(bmlab: Lab) -> None:
    lab = bmlab
    reset(lab)
    make_swap(lab, "/swaphand", 32)
    assert live_swaps(lab) == {"/swaphand": 32 * 1024 - 4}
    before = probe(lab)
    hand = item(before, "/swaphand")
    print(f"model before the boot: {json.dumps(before['swap'], indent=1)}")
    assert (hand["counted"], hand["size_kb"], hand["source"]) == (False, 32 * 1024 - 4, "/proc/swaps")
    assert FIX in hand["why"]
    power_cycle(lab)
    after = lab.meminfo(GUEST)
    print(f"kernel after the boot: SwapTotal {after['SwapTotal']} kB, model {before['swap']['swaptotal_kb']} kB")
    assert after["SwapTotal"] == before["swap"]["swaptotal_kb"] == 0
    assert live_swaps(lab) == {}


def test_fstab_swap_under_the_lab_images_masked_fstab_generator_is_not_counted_and_does_not_come_back(
        bmlab: Lab) -> None:
    lab = bmlab
    reset(lab)
    make_swap(lab, "/swapa", 16)
    lab.run(GUEST, "echo '/swapa none swap sw 0 0' >>/etc/fstab")
    before = probe(lab)
    assert before["generators"]["systemd-fstab-generator"] == "masked"
    line = item(before, "/swapa")
    assert not line["counted"] and "systemd-fstab-generator is masked" in line["why"]
    power_cycle(lab)
    after = lab.meminfo(GUEST)
    print(f"kernel after the boot: SwapTotal {after['SwapTotal']} kB, model {before['swap']['swaptotal_kb']} kB")
    assert after["SwapTotal"] == before["swap"]["swaptotal_kb"] == 0


SWAP_UNIT = "[Unit]\nDescription=lab swap {name}\n\n[Swap]\nWhat=/{name}\n\n[Install]\nWantedBy=swap.target\n"


def test_fstab_lines_and_swap_units_bring_back_exactly_what_the_model_counts(bmlab: Lab) -> None:
    """Six areas active at once; after a power-cycle the kernel has the counted ones and the nofail one."""
    lab = bmlab
    reset(lab)
    lab.run(GUEST, f"rm {FSTAB_GENERATOR_MASK}")  # as on a normal host: fstab swap gets its units at boot
    sizes_mb = {"swapa": 16, "swapb": 20, "swapc": 24, "swapd": 28, "swape": 32, "swapf": 36}
    for name, mb in sizes_mb.items():
        make_swap(lab, "/" + name, mb)
    lab.run(GUEST, "printf '%s\\n' '/swapa none swap sw 0 0' '/swapb none swap sw,noauto 0 0' "
                   "'/swapc none swap sw,nofail 0 0' >>/etc/fstab")
    for name in ("swape", "swapf"):
        lab.put(GUEST, f"/etc/systemd/system/{name}.swap", SWAP_UNIT.format(name=name))
    lab.run(GUEST, "mkdir -p /etc/systemd/system/swap.target.wants && "
                   "ln -s ../swape.swap /etc/systemd/system/swap.target.wants/swape.swap")
    assert set(live_swaps(lab)) == {"/" + name for name in sizes_mb}

    before = probe(lab)
    print(f"model before the boot: {json.dumps(before['swap'], indent=1)}")
    counted = {i["what"]: i["size_kb"] for i in before["swap"]["items"] if i["counted"]}
    assert counted == {"/swapa": 16 * 1024 - 4, "/swape": 32 * 1024 - 4}
    image_lines = int(lab.run(GUEST, "wc -l </root/fstab.image").stdout)
    assert item(before, "/swapa")["source"] == f"/etc/fstab:{image_lines + 1}"
    assert item(before, "/swape")["source"] == "/etc/systemd/system/swape.swap"
    assert "noauto" in item(before, "/swapb")["why"]
    nofail = item(before, "/swapc")
    assert not nofail["counted"] and "nofail" in nofail["why"]
    assert FIX in item(before, "/swapd")["why"]
    assert "not enabled" in item(before, "/swapf")["why"]

    power_cycle(lab)
    after = lab.meminfo(GUEST)
    kernel_areas = live_swaps(lab)
    print(f"kernel after the boot: {kernel_areas}, SwapTotal {after['SwapTotal']} kB; model counted "
          f"{before['swap']['swaptotal_kb']} kB + nofail {nofail['size_kb']} kB")
    # The counted swap came back at the sizes the model gave; the nofail file is there, so the
    # boot brought it too (the model names it and does not count it); nothing else came back.
    assert kernel_areas == {**counted, "/swapc": nofail["size_kb"]}
    assert after["SwapTotal"] == before["swap"]["swaptotal_kb"] + nofail["size_kb"]
    # The lower bound the model gives holds on the booted kernel (MemTotal moves a little between UML boots).
    assert after["CommitLimit"] == commit_limit_kb(after["MemTotal"], 0, after["SwapTotal"], RATIO)
    assert commit_limit_kb(after["MemTotal"], 0, before["swap"]["swaptotal_kb"], RATIO) <= after["CommitLimit"]
    # Asked again on the new boot, the model counts the same swap.
    again = probe(lab)
    assert {i["what"]: i["size_kb"] for i in again["swap"]["items"] if i["counted"]} == counted
    reset(lab)
