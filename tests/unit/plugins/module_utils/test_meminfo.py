from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import (
    MeminfoError,
    coerce_meminfo_fields,
    memory_from_fields,
    memory_from_meminfo,
    parse_meminfo,
)


@pytest.mark.parametrize(
    "fixture, memtotal_kb, swaptotal_kb, hugetlb_kb, committed_as_kb, commit_limit_kb",
    [
        ("small-vm-2g-noswap", 2014124, 0, 0, 612340, 1007060),
        ("db-host-256g-swap", 263856948, 16777212, 0, 98765432, 148705684),
        # 153600 pages of 2 MiB
        ("oracle-hugepages-300g", 528275036, 16777212, 314572800, 40000000, 123628328),
        # Hugetlb counts 1024 x 2 MiB and 16 x 1 GiB pages; HugePages_Total only the 2 MiB ones
        ("multi-hugepage-sizes", 131841700, 8388604, 18874368, 30000000, 64872268),
        ("already-mode2-ratio80", 16370300, 4194300, 0, 9876543, 17290540),
        # No Hugetlb line before 4.16: HugePages_Total 4096 x Hugepagesize 2048 kB
        ("el7-kernel-no-hugetlb-line", 65808216, 4194300, 8388608, 12000000, 32904104),
    ],
)
def test_real_meminfo_texts_give_the_memory_shape(
    meminfo_text, fixture, memtotal_kb, swaptotal_kb, hugetlb_kb, committed_as_kb, commit_limit_kb
):
    shape = memory_from_meminfo(meminfo_text(fixture))
    assert shape.memtotal_kb == memtotal_kb
    assert shape.swaptotal_kb == swaptotal_kb
    assert shape.hugetlb_kb == hugetlb_kb
    assert shape.committed_as_kb == committed_as_kb
    assert shape.commit_limit_kb == commit_limit_kb


def test_parse_keeps_every_field_including_counts_and_parenthesised_keys(meminfo_text):
    fields = parse_meminfo(meminfo_text("oracle-hugepages-300g"))
    assert fields["Active(anon)"] > 0
    assert fields["HugePages_Total"] == 153600  # a count, not kB
    assert fields["VmallocTotal"] == 34359738367
    assert len(fields) > 40


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("MemTotal: lots kB\n", "line 1 is malformed"),
        ("MemTotal:  1024 kB\nSwapTotal 0 kB\n", "line 2 is malformed"),
        ("MemTotal: -5 kB\n", "malformed"),
    ],
)
def test_malformed_text_is_refused_with_the_line(text, message):
    with pytest.raises(MeminfoError, match=message):
        parse_meminfo(text)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"SwapTotal": 0, "Committed_AS": 1}, "lacks required field\\(s\\) MemTotal"),
        ({"MemTotal": 1024}, "SwapTotal, Committed_AS"),
        ({"MemTotal": 0, "SwapTotal": 0, "Committed_AS": 0}, "MemTotal must be positive"),
        ({"MemTotal": 1024, "SwapTotal": 0, "Committed_AS": 0, "Hugetlb": 2048}, "exceeds MemTotal"),
    ],
)
def test_incomplete_or_impossible_shapes_are_refused(fields, message):
    with pytest.raises(MeminfoError, match=message):
        memory_from_fields(fields)


def test_page_size_must_be_a_power_of_two():
    with pytest.raises(MeminfoError, match="power of two"):
        memory_from_fields({"MemTotal": 1024, "SwapTotal": 0, "Committed_AS": 0}, page_size_kb=6)


def test_user_dict_accepts_numbers_strings_and_kb_suffix():
    assert coerce_meminfo_fields({"MemTotal": 1024, "SwapTotal": "0", "Committed_AS": "12 kB"}) == {
        "MemTotal": 1024,
        "SwapTotal": 0,
        "Committed_AS": 12,
    }


@pytest.mark.parametrize("bad", ["-1", "1.5", "lots", None, "12 MB"])
def test_user_dict_refuses_non_integers_naming_the_field(bad):
    with pytest.raises(MeminfoError, match="meminfo.SwapTotal must be a non-negative integer"):
        coerce_meminfo_fields({"MemTotal": 1024, "SwapTotal": bad})
