"""The next boot's memory (_boot.memory): its swap, its huge pages and its sysctl start values.

Each test states one rule, with the kernel or systemd file it comes from in the module's
docstring. Fixture texts are what the kernel and the tools print or read. The lab test
tests/lab/test_boot_memory_on_kernel.py checks the swap and command-line rules on a real kernel.
"""

from __future__ import annotations

from typing import Dict, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import zram
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.commit_limit import commit_limit_kb
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape

MIB = 1024
GIB = 1024 * 1024

# /proc/swaps as mm/swapfile.c swap_show prints it: names padded to 40 columns.
PROC_SWAPS = (
    "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    "/dev/sdb2                               partition\t2097148\t\t0\t\t-2\n"
    "/swapfile                               file\t\t785404\t\t1024\t\t-3\n"
    "/var/lib/swap\\040space                  file\t\t65532\t\t0\t\t-4\n"
    "/dev/zram0                              partition\t4194300\t\t0\t\t100\n"
)

# A Debian installer's fstab plus an administrator's additions.
FSTAB = b"""# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/sda1 during installation
UUID=6c1b2f5e-9d3a-4c1e-8f0b-2a7d1e3c4b5a /               ext4    errors=remount-ro 0       1
# swap was on /dev/sda5 during installation
UUID=0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a none            swap    sw              0       0
/swapfile none swap defaults 0 0
LABEL=spare\\040swap none swap sw,noauto 0 0
PARTUUID=1c2d3e4f-01 none swap sw,nofail,x-systemd.device-timeout=5s 0 0
PARTLABEL=swap2 none swap pri=10
/dev/sdb2\tnone\tswap\tsw\t0\t0
"""


def area(path: str, size_kb: int, kind: str = "file") -> bm.SwapArea:
    return bm.SwapArea(path, kind, size_kb, 0, -2)


def fstab_line(spec: str, options: str = "defaults", lineno: int = 1) -> bm.FstabSwap:
    return bm.FstabSwap(spec, bm.spec_to_path(spec), tuple(options.split(",")), lineno)


def same_node_of(aliases: Dict[str, str]):
    """same_node for a fake host: paths are the same node when they map to one name; paths in
    ``aliases`` as None cannot be stat'ed."""

    def resolve(path: str) -> Optional[str]:
        return aliases.get(path, path)

    def same(a: str, b: str) -> Optional[bool]:
        first, second = resolve(a), resolve(b)
        if first is None or second is None:
            return None
        return first == second

    return same


SAME_PATH = same_node_of({})
NO_ZRAM = bm.ZramBoot()


# --------------------------------------------------------------------------------------------
# /proc/swaps, fstab, units
# --------------------------------------------------------------------------------------------


def test_proc_swaps_gives_each_area_its_size_and_unescapes_names():
    areas = bm.parse_proc_swaps(PROC_SWAPS)
    assert [(a.path, a.type, a.size_kb, a.used_kb, a.priority) for a in areas] == [
        ("/dev/sdb2", "partition", 2097148, 0, -2),
        ("/swapfile", "file", 785404, 1024, -3),
        ("/var/lib/swap space", "file", 65532, 0, -4),
        ("/dev/zram0", "partition", 4194300, 0, 100),
    ]
    # SwapTotal is the sum of the areas' sizes (total_swap_pages sums si->pages).
    assert sum(a.size_kb for a in areas) == 7142384


def test_proc_swaps_with_no_swap_is_just_the_header():
    assert bm.parse_proc_swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n") == []


def test_a_swap_file_deleted_while_active_is_marked_and_never_counted():
    text = "Filename\tType\tSize\tUsed\tPriority\n/swapfile\\040(deleted)    file\t1020\t0\t-2\n"
    (only,) = bm.parse_proc_swaps(text)
    assert (only.path, only.deleted) == ("/swapfile", True)
    swap = bm.boot_swap([only], [fstab_line("/swapfile")], [], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 0 and "deleted" in swap.items[0].why


def test_fstab_swap_lines_keep_the_spec_as_written_and_name_the_device_they_mean():
    lines = bm.parse_fstab_swaps(FSTAB)
    got = [(l.spec, l.path, l.lineno, l.noauto, l.nofail) for l in lines]
    assert got == [
        ("UUID=0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a", "/dev/disk/by-uuid/0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a",
         7, False, False),
        ("/swapfile", "/swapfile", 8, False, False),
        ("LABEL=spare swap", "/dev/disk/by-label/spare\\x20swap", 9, True, False),
        ("PARTUUID=1c2d3e4f-01", "/dev/disk/by-partuuid/1c2d3e4f-01", 10, False, True),
        ("PARTLABEL=swap2", "/dev/disk/by-partlabel/swap2", 11, False, False),
        ("/dev/sdb2", "/dev/sdb2", 12, False, False),
    ]
    assert lines[3].options == ("sw", "nofail", "x-systemd.device-timeout=5s")
    assert lines[0].source == "/etc/fstab:7"


@pytest.mark.parametrize("path, unit", [
    ("/swapfile", "swapfile.swap"),
    ("/dev/sdb2", "dev-sdb2.swap"),
    ("/dev/disk/by-uuid/0a4f-77", "dev-disk-by\\x2duuid-0a4f\\x2d77.swap"),
    ("/var/lib/swap space", "var-lib-swap\\x20space.swap"),
    ("//var//.hidden/", "var-.hidden.swap"),  # only a leading '.' is escaped
    ("/.swapfile", "\\x2eswapfile.swap"),
])
def test_fstab_lines_become_the_unit_names_systemd_escapes_them_to(path, unit):
    assert bm.unit_name_from_path(path, ".swap") == unit


def test_a_swap_unit_says_what_it_activates_and_later_what_wins():
    unit = bm.parse_swap_unit(b"[Unit]\nDescription=Swap file\n\n[Swap]\nWhat=/old\n# What=/commented\n"
                              b"What=/var/swapfile\nPriority=5\n\n[Install]\nWantedBy=swap.target\n",
                              "/etc/systemd/system/var-swapfile.swap")
    assert (unit.what, unit.name, unit.enabled) == ("/var/swapfile", "var-swapfile.swap", False)


# --------------------------------------------------------------------------------------------
# Which active swap the next boot brings back
# --------------------------------------------------------------------------------------------


def test_swap_switched_on_by_hand_is_not_counted_and_the_fix_is_named():
    swap = bm.boot_swap([area("/swapfile", 785404)], [], [], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 0
    (item,) = swap.items
    assert (item.what, item.size_kb, item.counted, item.source) == ("/swapfile", 785404, False, "/proc/swaps")
    assert "add it to /etc/fstab, or swapoff it and plan without it" in item.why
    assert swap.uncounted_active_kb == 785404


def test_a_swap_file_listed_in_fstab_by_path_is_counted():
    swap = bm.boot_swap([area("/swapfile", 785404)], [fstab_line("/swapfile", lineno=8)], [], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 785404
    assert [(i.counted, i.source) for i in swap.items] == [(True, "/etc/fstab:8")]


def test_a_device_named_by_uuid_in_fstab_is_counted_when_its_link_leads_to_the_active_device():
    link = "/dev/disk/by-uuid/0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a"
    same = same_node_of({link: "/dev/sdb2"})
    swap = bm.boot_swap([area("/dev/sdb2", 2097148, "partition")],
                        [fstab_line("UUID=0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a", "sw", 7)], [], NO_ZRAM, same)
    assert swap.swaptotal_kb == 2097148


def test_a_device_under_another_name_of_the_same_node_is_counted():
    """/proc/swaps names /dev/dm-1; fstab says /dev/mapper/vg-swap (a link to it)."""
    same = same_node_of({"/dev/mapper/vg-swap": "/dev/dm-1"})
    swap = bm.boot_swap([area("/dev/dm-1", 1048572, "partition")], [fstab_line("/dev/mapper/vg-swap")], [],
                        NO_ZRAM, same)
    assert swap.swaptotal_kb == 1048572


def test_a_uuid_whose_link_cannot_be_followed_is_not_assumed_to_match():
    link = "/dev/disk/by-uuid/0a4f"
    same = same_node_of({link: None})  # type: ignore[dict-item]
    swap = bm.boot_swap([area("/dev/sdb2", 2097148, "partition")], [fstab_line("UUID=0a4f")], [], NO_ZRAM, same)
    assert swap.swaptotal_kb == 0
    active = [i for i in swap.items if i.what == "/dev/sdb2"][0]
    assert "could not tell whether /etc/fstab:1" in active.why


@pytest.mark.parametrize("options, counted, says", [
    ("defaults", True, "swap.target"),
    ("sw,noauto", False, "noauto"),
    ("sw,nofail", False, "nofail: the boot goes on without it"),
    ("sw,nofail,noauto", False, "noauto"),
    ("pri=10,discard", True, "swap.target"),
])
def test_fstab_options_decide_whether_the_boot_brings_the_swap_back(options, counted, says):
    swap = bm.boot_swap([area("/swapfile", 65532)], [fstab_line("/swapfile", options)], [], NO_ZRAM, SAME_PATH)
    (item,) = swap.items
    assert (item.counted, swap.swaptotal_kb) == (counted, 65532 if counted else 0)
    assert says in item.why
    assert item.size_kb == 65532  # an area active now keeps its size in the report, counted or not


@pytest.mark.parametrize("generator, params, says", [
    (bm.GENERATOR_MASKED, [], "systemd-fstab-generator is masked"),
    (bm.GENERATOR_ABSENT, [], "systemd-fstab-generator is absent"),
    (bm.GENERATOR_PRESENT, [("systemd.swap", "0")], "systemd.swap=0"),
    (bm.GENERATOR_PRESENT, [("fstab", "no")], "fstab=no"),
])
def test_fstab_swap_is_not_counted_when_no_unit_is_made_of_it(generator, params, says):
    swap = bm.boot_swap([area("/swapfile", 65532)], [fstab_line("/swapfile")], [], NO_ZRAM, SAME_PATH,
                        fstab_generator=generator, params=params)
    assert swap.swaptotal_kb == 0 and says in swap.items[0].why


def test_systemd_swap_on_the_command_line_keeps_fstab_swap_counted():
    swap = bm.boot_swap([area("/swapfile", 65532)], [fstab_line("/swapfile")], [], NO_ZRAM, SAME_PATH,
                        params=[("systemd.swap", None)])
    assert swap.swaptotal_kb == 65532


def test_masking_the_unit_of_a_fstab_line_keeps_it_from_being_counted():
    masked = bm.SwapUnit("/etc/systemd/system/swapfile.swap", None, masked=True)
    swap = bm.boot_swap([area("/swapfile", 65532)], [fstab_line("/swapfile")], [masked], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 0 and "swapfile.swap is masked" in swap.items[0].why


@pytest.mark.parametrize("enabled, counted", [(True, True), (False, False)])
def test_a_swap_unit_counts_only_when_enabled(enabled, counted):
    unit = bm.SwapUnit("/etc/systemd/system/var-swapfile.swap", "/var/swapfile", enabled=enabled)
    swap = bm.boot_swap([area("/var/swapfile", 131068)], [], [unit], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == (131068 if counted else 0)
    assert swap.items[0].source == "/etc/systemd/system/var-swapfile.swap"
    if not counted:
        assert "not enabled" in swap.items[0].why


def test_an_area_named_by_fstab_and_a_unit_is_counted_once():
    unit = bm.SwapUnit("/etc/systemd/system/swapfile.swap", "/swapfile", enabled=True)
    swap = bm.boot_swap([area("/swapfile", 65532)], [fstab_line("/swapfile")], [unit], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 65532 and len(swap.items) == 1


def test_configured_swap_that_is_not_active_now_is_listed_but_not_counted():
    swap = bm.boot_swap([], [fstab_line("/swapfile2", lineno=3)], [], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 0
    (item,) = swap.items
    assert (item.what, item.size_kb, item.counted, item.source) == ("/swapfile2", None, False, "/etc/fstab:3")
    assert "not active now" in item.why


def test_zram_configured_to_come_back_counts_at_the_smaller_of_its_sizes():
    zram = bm.ZramBoot((bm.ZramDevice("zram0", 2097148, "/etc/systemd/zram-generator.conf [zram0]", "rule"),))
    grown = bm.boot_swap([area("/dev/zram0", 4194300, "partition")], [], [], zram, SAME_PATH)
    assert grown.swaptotal_kb == 2097148 and "the size the boot will make" in grown.items[0].why
    same_size = bm.boot_swap([area("/dev/zram0", 1048572, "partition")], [], [], zram, SAME_PATH)
    assert same_size.swaptotal_kb == 1048572


def test_zram_whose_size_cannot_be_told_is_not_counted():
    zram = bm.ZramBoot((bm.ZramDevice("zram0", None, "/etc/systemd/zram-generator.conf [zram0]", "why"),))
    swap = bm.boot_swap([area("/dev/zram0", 1048572, "partition")], [], [], zram, SAME_PATH)
    assert swap.swaptotal_kb == 0 and "cannot be told" in swap.items[0].why


def test_a_zram_device_made_by_hand_is_not_counted():
    swap = bm.boot_swap([area("/dev/zram0", 1048572, "partition")], [], [], NO_ZRAM, SAME_PATH)
    assert swap.swaptotal_kb == 0 and bm.FIX_HAND_SWAP in swap.items[0].why


def test_the_whole_fixture_host():
    """The fixture's four areas: sdb2 by fstab, /swapfile by fstab, a hand-made one, zram by config."""
    zram_boot = zram.zram_generator_devices([("/usr/lib/systemd/zram-generator.conf", b"[zram0]\n")], 16 * GIB,
                                            bm.GENERATOR_PRESENT)
    swap = bm.boot_swap(bm.parse_proc_swaps(PROC_SWAPS), bm.parse_fstab_swaps(FSTAB), [], zram_boot,
                        same_node_of({"/dev/disk/by-uuid/0a4f6d2e-1b3c-4d5e-8f9a-7b6c5d4e3f2a": "/dev/sdb2"}))
    counted = {i.what: i.size_kb for i in swap.items if i.counted}
    # min(ram / 2, 4096) MB on 16 GiB: 4 GiB, minus mkswap's header page.
    assert counted == {"/dev/sdb2": 2097148, "/swapfile": 785404, "/dev/zram0": 4194300}
    assert swap.swaptotal_kb == 2097148 + 785404 + 4194300
    hand = [i for i in swap.items if i.what == "/var/lib/swap space"][0]
    assert not hand.counted and bm.FIX_HAND_SWAP in hand.why


_paths = st.sampled_from(["/swapfile", "/dev/sdb2", "/dev/zram0", "/var/swap", "/dev/dm-1"])


@settings(max_examples=200, deadline=None)
@given(active=st.lists(st.tuples(_paths, st.integers(0, 8 * GIB)), max_size=5, unique_by=lambda t: t[0]),
       lines=st.lists(st.tuples(_paths, st.sampled_from(["defaults", "noauto", "nofail", "sw,pri=5"])), max_size=5),
       units=st.lists(st.tuples(_paths, st.booleans(), st.booleans()), max_size=3),
       zram_kb=st.one_of(st.none(), st.integers(0, 8 * GIB)))
def test_counted_swap_never_exceeds_the_swap_active_now(active, lines, units, zram_kb):
    areas = [area(p, s) for p, s in active]
    fstab = [fstab_line(p, o, n) for n, (p, o) in enumerate(lines, start=1)]
    swap_units = [bm.SwapUnit("/etc/systemd/system/u%d.swap" % n, p, enabled=e, masked=m)
                  for n, (p, e, m) in enumerate(units)]
    zram = bm.ZramBoot((bm.ZramDevice("zram0", zram_kb, "conf", "rule"),))
    swap = bm.boot_swap(areas, fstab, swap_units, zram, SAME_PATH)
    assert swap.swaptotal_kb <= sum(a.size_kb for a in areas)
    assert swap.swaptotal_kb == sum(i.size_kb or 0 for i in swap.items if i.counted)
    # Every active area is reported once; nothing counted without a writer's source.
    assert sorted(i.what for i in swap.items if i.size_kb is not None and i.source != "configured") \
        == sorted(a.path for a in areas)
    assert all(i.source != "/proc/swaps" for i in swap.items if i.counted)


# --------------------------------------------------------------------------------------------
# zram writers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, memtotal_kb, swap_kb", [
    # zram-size defaults to min(ram / 2, 4096) MB
    (b"[zram0]\n", 2 * GIB, GIB - 4),
    (b"[zram0]\n", 32 * GIB, 4 * GIB - 4),
    (b"[zram0]\nzram-size = ram / 4\n", 8 * GIB, 2 * GIB - 4),
    (b"[zram0]\nzram-size = min(ram, 8192)\ncompression-algorithm = zstd\n", 4 * GIB, 4 * GIB - 4),
    (b"[zram0]\nzram-size = 512\n", 8 * GIB, 512 * MIB - 4),
])
def test_zram_generator_sizes_its_device_from_memtotal(config, memtotal_kb, swap_kb):
    boot = zram.zram_generator_devices([("/etc/systemd/zram-generator.conf", config)], memtotal_kb,
                                       bm.GENERATOR_PRESENT)
    assert [(d.name, d.swap_kb) for d in boot.devices] == [("zram0", swap_kb)]


def test_zram_generator_drop_ins_override_the_main_file():
    files = [("/usr/lib/systemd/zram-generator.conf", b"[zram0]\nzram-size = ram / 2\n"),
             ("/etc/systemd/zram-generator.conf.d/50-small.conf", b"[zram0]\nzram-size = 256\n")]
    (device,) = zram.zram_generator_devices(files, 8 * GIB, bm.GENERATOR_PRESENT).devices
    assert device.swap_kb == 256 * MIB - 4


@pytest.mark.parametrize("config, params, generator, says", [
    (b"[zram0]\nhost-memory-limit = 4096\n", [], bm.GENERATOR_PRESENT, "host-memory-limit"),
    (b"[zram0]\nmount-point = /var/tmp\n", [], bm.GENERATOR_PRESENT, "file system"),
    (b"[zram0]\n", [("systemd.zram", "0")], bm.GENERATOR_PRESENT, "systemd.zram=0"),
    (b"[zram0]\n", [], bm.GENERATOR_MASKED, "masked"),
    (b"[zram0]\nzram-size = 0\n", [], bm.GENERATOR_PRESENT, "gives 0"),
])
def test_zram_generator_makes_no_device(config, params, generator, says):
    boot = zram.zram_generator_devices([("/etc/systemd/zram-generator.conf", config)], 8 * GIB, generator, params)
    assert boot.devices == () and says in " ".join(boot.notes)


def test_a_zram_size_beyond_this_model_cannot_be_told():
    (device,) = zram.zram_generator_devices([("/etc/systemd/zram-generator.conf", b"[zram0]\nzram-size = ram ^ 2\n")],
                                            8 * GIB, bm.GENERATOR_PRESENT).devices
    assert device.swap_kb is None


@pytest.mark.parametrize("config, swap_kb", [
    (None, 256 * MIB - 4),  # SIZE=256 MiB by default
    (b"# Compression algorithm selection\nALGO=zstd\nSIZE=1024\nPRIORITY=100\n", GIB - 4),
    (b"ALGO=lz4\nPERCENT=25\nSIZE=1024\n", 2 * GIB - 4),  # PERCENT wins over SIZE
    (b"ALLOCATION=128\n", 128 * MIB - 4),  # old zram-tools: the smaller reading is taken
])
def test_zramswap_makes_zram0_from_etc_default_zramswap(config, swap_kb):
    (device,) = zram.zramswap_devices(config, True, 8 * GIB).devices
    assert (device.name, device.swap_kb) == ("zram0", swap_kb)


def test_zramswap_not_enabled_makes_nothing_and_shell_it_cannot_read_is_not_told():
    assert zram.zramswap_devices(b"SIZE=1024\n", False, 8 * GIB).devices == ()
    (device,) = zram.zramswap_devices(b"SIZE=$(nproc)\n", True, 8 * GIB).devices
    assert device.swap_kb is None


def test_two_writers_of_zram0_leave_the_smaller_size():
    a = bm.ZramBoot((bm.ZramDevice("zram0", 4 * GIB, "gen", "x"),))
    b = bm.ZramBoot((bm.ZramDevice("zram0", GIB, "zramswap", "y"),))
    assert bm.merge_zram(a, b).devices[0].swap_kb == GIB
    unknown = bm.ZramBoot((bm.ZramDevice("zram0", None, "zramswap", "?"),))
    assert bm.merge_zram(a, unknown).devices[0].swap_kb is None


# --------------------------------------------------------------------------------------------
# The kernel command line
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, params", [
    (b"BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=6c1b ro quiet\n",
     [("BOOT_IMAGE", "/boot/vmlinuz-6.1.0-28-amd64"), ("root", "UUID=6c1b"), ("ro", None), ("quiet", None)]),
    (b'dyndbg="file drivers/x.c +p"  a=b', [("dyndbg", "file drivers/x.c +p"), ("a", "b")]),
    (b'"sysctl.vm.overcommit_ratio=70"', [("sysctl.vm.overcommit_ratio", "70")]),
    (b'"a b"', [("a b", None)]),
    (b'x="a"b y', [("x", 'a"b'), ("y", None)]),  # the opening quote goes, the inner one stays
    (b"=a=b", [("=a", "b")]),  # next_arg ignores an '=' at position 0
    (b"k=", [("k", "")]),
    (b"init=/bin/sh -- single", [("init", "/bin/sh"), ("--", None), ("single", None)]),
    (b"\t a\xa0b ", [("a", None), ("b", None)]),  # 0xA0 is a space to the kernel
])
def test_the_command_line_is_split_as_the_kernel_splits_it(line, params):
    assert bm.parse_cmdline(line) == params


_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._/-"), min_size=1, max_size=12)
_value_chars = st.characters(blacklist_characters='"\x00', blacklist_categories=("Cs",), max_codepoint=0x7F)
_values = st.one_of(st.none(), st.text(_value_chars, max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _values), max_size=8))
def test_a_formatted_command_line_parses_back_to_its_params(params):
    assert bm.parse_cmdline(bm.format_cmdline(params)) == list(params)


def test_format_refuses_what_the_kernel_cannot_quote():
    with pytest.raises(ValueError):
        bm.format_cmdline([("a", 'x"y')])


def test_sysctl_writes_on_the_command_line_in_both_spellings_and_in_order():
    params = bm.parse_cmdline(b"ro sysctl.vm.overcommit_memory=2 sysctl/vm/overcommit_ratio=70 "
                              b"sysctl.kernel.panic=10 sysctl.vm.swappiness=10 sysctlvm.x=1 "
                              b"sysctl.vm.admin_reserve_kbytes= sysctl.vm.user_reserve_kbytes "
                              b"sysctl.vm/overcommit_kbytes=0 -- sysctl.vm.overcommit_memory=0")
    writes = bm.cmdline_sysctl_writes(params)
    assert [(w.key, w.value, w.param) for w in writes] == [
        (sk.MODE, b"2", "sysctl.vm.overcommit_memory=2"),
        (sk.RATIO, b"70", "sysctl/vm/overcommit_ratio=70"),
        (sk.KBYTES, b"0", "sysctl.vm/overcommit_kbytes=0"),
    ]


def test_quoted_sysctl_values_are_written_without_their_quotes():
    (write,) = bm.cmdline_sysctl_writes(bm.parse_cmdline(b'sysctl.vm.overcommit_ratio="70"'))
    assert write.value == b"70"


# --------------------------------------------------------------------------------------------
# Huge pages at boot
# --------------------------------------------------------------------------------------------


def hugetlb(line: bytes, nr: Optional[str] = None, default_now: int = 2048, supported: bool = True):
    return bm.boot_hugetlb(bm.parse_cmdline(line), nr, default_now, supported)


def pools(huge: bm.BootHugePages) -> Dict[int, int]:
    return {i.size_kb: i.count for i in huge.items if i.count}


@pytest.mark.parametrize("line, expected_pools, default_kb", [
    (b"", {}, 2048),
    (b"hugepages=512", {2048: 512}, 2048),
    (b"hugepagesz=1G hugepages=4", {1048576: 4}, 2048),
    (b"hugepagesz=1G hugepages=4 hugepagesz=2M hugepages=512", {1048576: 4, 2048: 512}, 2048),
    (b"default_hugepagesz=1G hugepages=8", {1048576: 8}, 1048576),
    (b"hugepages=8 default_hugepagesz=1G", {1048576: 8}, 1048576),  # a count first goes to the default
    (b"default_hugepagesz=1G hugepagesz=1G hugepages=4 hugepagesz=2M hugepages=512", {1048576: 4, 2048: 512},
     1048576),
    (b"hugepagesz=2M hugepages=100 hugepages=200", {2048: 100}, 2048),  # twice without hugepagesz: ignored
    (b"hugepagesz=4M hugepages=100", {}, 2048),  # not an x86_64 size: both ignored
    (b"hugepages=0:256,1:256", {2048: 512}, 2048),  # per-node counts add up
    (b"hugepages=64 hugepagesz=2M hugepages=32", {2048: 64}, 2048),  # the early count wins for the default
    (b"hugepagesz=0x40000000 hugepages=2", {1048576: 2}, 2048),  # memparse reads C numbers
    (b"hugepagesz=1G hugepages=x12", {}, 2048),  # invalid: that pool is 0
    (b"hugepagesz=1G hugepages=4 -- hugepages=999", {1048576: 4}, 2048),  # after "--" it is init's
    (b"default_hugepagesz=1G default_hugepagesz=2M hugepages=3", {}, 1048576),
])
def test_hugepages_on_the_command_line_reserve_what_mm_hugetlb_c_reserves(line, expected_pools, default_kb):
    huge = hugetlb(line)
    assert pools(huge) == expected_pools
    assert huge.default_size_kb == default_kb
    assert huge.hugetlb_kb == sum(size * count for size, count in expected_pools.items())


_hugetlb_params = st.lists(st.one_of(
    st.tuples(st.just("hugepages"), st.sampled_from(["0", "1", "64", "512", "0:8,1:8", "x", "7abc"])),
    st.tuples(st.sampled_from(["hugepagesz", "default_hugepagesz", "default-hugepagesz"]),
              st.sampled_from(["2M", "1G", "2048K", "4M", "0x200000", "bogus"]))), max_size=8)


@settings(max_examples=300, deadline=None)
@given(params=_hugetlb_params, nr=st.one_of(st.none(), st.sampled_from(["0", "16", "x"])))
def test_boot_hugetlb_sums_its_pools_of_valid_sizes_and_ignores_what_follows_the_double_dash(params, nr):
    huge = bm.boot_hugetlb(params, nr, 2048, True)
    assert huge.hugetlb_kb == sum(i.size_kb * i.count for i in huge.items) >= 0
    assert {i.size_kb for i in huge.items} <= set(bm.X86_64_HUGE_PAGE_SIZES_KB)
    assert huge.default_size_kb in bm.X86_64_HUGE_PAGE_SIZES_KB
    after_dashes = bm.boot_hugetlb(list(params) + [("--", None), ("hugepages", "999")], nr, 2048, True)
    assert after_dashes.hugetlb_kb == huge.hugetlb_kb
    assert bm.boot_hugetlb(params, nr, 2048, False).hugetlb_kb == 0


def test_nr_hugepages_from_the_files_replaces_the_default_sizes_count_only():
    huge = hugetlb(b"hugepagesz=1G hugepages=4 hugepages=512", nr="1024")
    # hugepages=512 follows hugepagesz=1G directly: it is the 1G pool's second count, ignored.
    assert pools(huge) == {1048576: 4, 2048: 1024}
    huge = hugetlb(b"hugepages=512 hugepagesz=1G hugepages=4", nr="1024")
    assert pools(huge) == {2048: 1024, 1048576: 4}
    assert huge.hugetlb_kb == 1024 * 2048 + 4 * 1048576
    assert any("vm.nr_hugepages = 1024 replaces the command line's 512" in n for n in huge.notes)


def test_nr_hugepages_zero_in_the_files_frees_the_command_lines_default_pool():
    assert hugetlb(b"hugepages=512", nr="0").hugetlb_kb == 0


def test_a_command_line_sysctl_vm_nr_hugepages_counts_when_no_file_sets_it():
    assert pools(hugetlb(b"hugepages=16 sysctl.vm.nr_hugepages=64")) == {2048: 64}
    assert pools(hugetlb(b"hugepages=16 sysctl.vm.nr_hugepages=64", nr="8")) == {2048: 8}


def test_a_kernel_without_hugetlb_reserves_nothing_whatever_is_asked():
    huge = hugetlb(b"hugepagesz=1G hugepages=4 hugepages=512", nr="1024", supported=False)
    assert huge.hugetlb_kb == 0 and huge.items == ()
    assert "no hugetlb" in huge.notes[0] and "hugepages=4" in huge.notes[1]


def test_the_default_size_is_this_boots_unless_the_command_line_names_one():
    arm64 = bm.boot_hugetlb(bm.parse_cmdline(b"hugepages=8"), None, 524288, True, valid_sizes_kb=(64, 2048, 524288))
    assert pools(arm64) == {524288: 8}


# --------------------------------------------------------------------------------------------
# Start values and the next boot's memory
# --------------------------------------------------------------------------------------------

HOST_16G = MemoryShape(memtotal_kb=16 * GIB - 180 * MIB, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=3 * GIB)
SMALL = MemoryShape(memtotal_kb=200 * MIB, swaptotal_kb=0, hugetlb_kb=0, committed_as_kb=50 * MIB)


def test_start_values_without_command_line_are_the_kernels_defaults_sized_for_the_host():
    start = bm.boot_start(HOST_16G, [])
    assert start == {sk.MODE: "0", sk.RATIO: "50", sk.KBYTES: "0", sk.ADMIN_RESERVE: "8192",
                     sk.USER_RESERVE: "131072", sk.NR_HUGEPAGES: "0"}
    small = bm.boot_start(SMALL, [])
    # min(MemTotal / 32, cap): free memory at boot is at most MemTotal, so this is the larger bound.
    assert (small[sk.USER_RESERVE], small[sk.ADMIN_RESERVE]) == (str(200 * MIB // 32), str(200 * MIB // 32))


def test_command_line_sysctls_are_the_start_values_before_any_file():
    params = bm.parse_cmdline(b"root=/dev/sda1 sysctl.vm.overcommit_memory=2 sysctl/vm/overcommit_ratio=70")
    start = bm.boot_start(HOST_16G, params)
    assert (start[sk.MODE], start[sk.RATIO], start[sk.KBYTES]) == ("2", "70", "0")


def test_command_line_sysctls_go_through_the_kernels_handlers():
    params = bm.parse_cmdline(b"sysctl.vm.overcommit_kbytes=4194304 sysctl.vm.overcommit_memory=3 "
                              b"sysctl.vm.admin_reserve_kbytes=0x20000")
    start = bm.boot_start(HOST_16G, params)
    assert start[sk.KBYTES] == "4194304" and start[sk.RATIO] == "0"  # the pair zeroes the ratio
    assert start[sk.MODE] == "0"  # 3 is above the handler's maximum: refused
    assert start[sk.ADMIN_RESERVE] == "131072"


def test_start_nr_hugepages_is_the_command_lines_default_size_count_then_its_sysctl():
    assert bm.boot_start(HOST_16G, bm.parse_cmdline(b"hugepages=256 hugepagesz=1G hugepages=2"))[sk.NR_HUGEPAGES] \
        == "256"
    assert bm.boot_start(HOST_16G, bm.parse_cmdline(b"hugepages=256 sysctl.vm.nr_hugepages=64"))[sk.NR_HUGEPAGES] \
        == "64"
    # 32M is a huge page size of arm64 (4K pages), not of x86_64: the sizes of the machine decide.
    line = bm.parse_cmdline(b"default_hugepagesz=32M hugepagesz=32M hugepages=8")
    assert bm.boot_start(HOST_16G, line, 2048, valid_sizes_kb=(64, 2048, 32768, 1048576))[sk.NR_HUGEPAGES] == "8"
    assert bm.boot_start(HOST_16G, line, 2048)[sk.NR_HUGEPAGES] == "0"
    no_hugetlb = bm.boot_start(HOST_16G, bm.parse_cmdline(b"hugepages=256"), hugetlb_supported=False)
    assert no_hugetlb[sk.NR_HUGEPAGES] == "0"


# The incident: 487 MiB of RAM, 767 MiB of swap switched on by hand, ratio 90.
INCIDENT_NOW = MemoryShape(memtotal_kb=498688, swaptotal_kb=785404, hugetlb_kb=0, committed_as_kb=300000,
                           commit_limit_kb=1234220)


def test_the_incident_hand_made_swap_leaves_the_next_boot_with_438_mib():
    swap = bm.boot_swap([area("/swapfile", 785404)], [], [], NO_ZRAM, SAME_PATH)
    huge = hugetlb(b"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro")
    nxt = bm.next_boot_memory(INCIDENT_NOW, swap, huge)
    assert (nxt.memtotal_kb, nxt.swaptotal_kb, nxt.hugetlb_kb, nxt.committed_as_kb) == (498688, 0, 0, 300000)
    assert commit_limit_kb(INCIDENT_NOW.memtotal_kb, 0, INCIDENT_NOW.swaptotal_kb, 90) == 1234220  # 1205 MiB now
    assert commit_limit_kb(nxt.memtotal_kb, nxt.hugetlb_kb, nxt.swaptotal_kb, 90) == 448816  # 438 MiB after


def test_counted_fstab_swap_keeps_the_commit_limit_of_today():
    swap = bm.boot_swap([area("/swapfile", 785404)], [fstab_line("/swapfile")], [], NO_ZRAM, SAME_PATH)
    nxt = bm.next_boot_memory(INCIDENT_NOW, swap, hugetlb(b""))
    assert commit_limit_kb(nxt.memtotal_kb, nxt.hugetlb_kb, nxt.swaptotal_kb, 90) == 1234220


@pytest.mark.parametrize("line, nr, hugetlb_now_kb, hugetlb_kb", [
    (b"hugepages=1024", None, 0, 2 * GIB),  # reserved at boot, not now: the boot's count
    (b"", None, GIB, GIB),  # reserved now by a writer we cannot see: still left out
    (b"hugepagesz=1G hugepages=2", "512", 0, 3 * GIB),
])
def test_the_next_boot_leaves_out_the_larger_of_boot_and_current_huge_pages(line, nr, hugetlb_now_kb, hugetlb_kb):
    now = MemoryShape(memtotal_kb=16 * GIB, swaptotal_kb=0, hugetlb_kb=hugetlb_now_kb, committed_as_kb=GIB)
    nxt = bm.next_boot_memory(now, bm.BootSwap(0), hugetlb(line, nr))
    assert nxt.hugetlb_kb == hugetlb_kb
    # CommitLimit = (MemTotal - hugetlb) * ratio / 100 + SwapTotal, through the one formula.
    assert commit_limit_kb(nxt.memtotal_kb, nxt.hugetlb_kb, nxt.swaptotal_kb, 80) \
        == (16 * GIB - hugetlb_kb) // 4 * 80 // 100 * 4


# --------------------------------------------------------------------------------------------
# Writers we cannot model, and the bootloader's pending command line
# --------------------------------------------------------------------------------------------


def test_boot_time_writers_that_may_touch_the_keys_or_swap_are_listed_with_their_lines():
    files = {
        "/etc/systemd/system/tune-vm.service": b"[Unit]\nDescription=Tune\n[Service]\nType=oneshot\n"
                                               b"ExecStart=/usr/sbin/sysctl -w vm.overcommit_ratio=95\n"
                                               b"ExecStartPost=-/bin/sh -c 'echo 2 > /proc/sys/vm/overcommit_memory'\n"
                                               b"# ExecStart=/sbin/swapon -a\n",
        "/etc/systemd/system/ssh.service.d/override.conf": b"[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D\n",
        "/etc/systemd/system/extra-swap.service": b"[Service]\nExecStart=/sbin/swapon /data/swap\n",
        "/etc/rc.local": b"#!/bin/sh -e\n# rc.local\nswapon /swapfile2\necho 1024 > /proc/sys/vm/nr_hugepages\n"
                         b"exit 0\n",
        "/etc/cloud/cloud.cfg.d/50-swap.cfg": b"swap:\n  filename: /swap.img\n  size: auto\n"
                                              b"bootcmd:\n  - [ sysctl, -w, vm.overcommit_memory=1 ]\n"
                                              b"runcmd:\n  - echo hello\n",
        "/etc/crontab": b"SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
        "/etc/cron.d/tune": b"@reboot root /opt/tune/boot.sh\n*/5 * * * * root /usr/bin/true\n",
    }
    assert bm.scan_unmodelled_writers(files) == [
        "/etc/cloud/cloud.cfg.d/50-swap.cfg:1: swap:",
        "/etc/cloud/cloud.cfg.d/50-swap.cfg:5: - [ sysctl, -w, vm.overcommit_memory=1 ]",
        "/etc/cron.d/tune:1: @reboot root /opt/tune/boot.sh",
        "/etc/rc.local:3: swapon /swapfile2",
        "/etc/rc.local:4: echo 1024 > /proc/sys/vm/nr_hugepages",
        "/etc/systemd/system/extra-swap.service:2: ExecStart=/sbin/swapon /data/swap",
        "/etc/systemd/system/tune-vm.service:5: ExecStart=/usr/sbin/sysctl -w vm.overcommit_ratio=95",
        "/etc/systemd/system/tune-vm.service:6: ExecStartPost=-/bin/sh -c 'echo 2 > /proc/sys/vm/overcommit_memory'",
    ]


def test_the_programs_a_unit_runs_are_named_without_their_exec_prefixes():
    unit = (b"[Service]\nType=oneshot\nExecStartPre=-/usr/local/sbin/prepare --now\nExecStart=\n"
            b"ExecStart=!!/usr/local/sbin/tune-vm\nExecStart=/usr/local/sbin/tune-vm again\n"
            b"ExecStop=sysctl -w vm.x=1\n#ExecStart=/opt/commented\n")
    assert bm.unit_exec_paths(unit) == ["/usr/local/sbin/prepare", "/usr/local/sbin/tune-vm"]


GRUB = b"""# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="hugepages=1024 sysctl.vm.overcommit_memory=2"
"""


def test_grub_defaults_give_the_configured_command_line():
    line, notes = bm.grub_cmdline([("/etc/default/grub", GRUB),
                                   ("/etc/default/grub.d/50-cloud.cfg",
                                    b'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT console=ttyS0"\n')])
    assert (line, notes) == ("hugepages=1024 sysctl.vm.overcommit_memory=2 quiet console=ttyS0", [])


def test_grub_values_that_need_the_shell_cannot_be_told():
    line, notes = bm.grub_cmdline([("/etc/default/grub", b'GRUB_CMDLINE_LINUX="$(cat /etc/x)"\n')])
    assert line is None and "cannot be read" in notes[0]


def test_a_pending_bootloader_change_to_memory_params_is_reported_as_unmodelled():
    now = bm.parse_cmdline(b"BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet hugepages=512")
    notes = bm.pending_cmdline_notes(now, {"/etc/default/grub": "hugepages=1024 sysctl.vm.overcommit_memory=2 quiet",
                                           "/etc/kernel/cmdline": "root=/dev/sda1 ro quiet hugepages=512"})
    assert notes == [
        "/etc/default/grub sets hugepages=1024, which /proc/cmdline lacks: a later boot may differ (not modelled)",
        "/etc/default/grub sets sysctl.vm.overcommit_memory=2, which /proc/cmdline lacks: a later boot may differ "
        "(not modelled)",
        "/proc/cmdline has hugepages=512, which /etc/default/grub lacks: a later boot may differ (not modelled)",
    ]


def test_unrelated_bootloader_differences_are_not_reported():
    now = bm.parse_cmdline(b"BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet")
    assert bm.pending_cmdline_notes(now, {"/etc/default/grub": "quiet splash console=ttyS0"}) == []
