from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import (
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


@pytest.mark.parametrize("bad", [
    "-1", "1.5", "lots", None, "12 MB", "", " kB", True, [12], {"kB": 12},
    "\u00b2",  # superscript two: str.isdigit() says yes, int() refuses it
    "1\u00b2 kB",
    "\u0661\u0662",  # Arabic-Indic 12: int() reads it as 12
    "\uff11\uff12",  # fullwidth 12
    "1_000",  # int() ignores the underscore
    "9" * 5000,  # beyond int()'s 4300-digit limit for text
    "1" + "0" * 20,  # more kB than a 64-bit kernel can count
])
def test_user_dict_refuses_anything_but_ascii_digits_naming_the_field_and_the_form(bad):
    with pytest.raises(MeminfoError) as refused:
        coerce_meminfo_fields({"MemTotal": 1024, "SwapTotal": bad})
    assert str(refused.value).startswith(
        "meminfo.SwapTotal must be a non-negative integer in kB (ASCII digits, optionally followed by ' kB'), got ")


@pytest.mark.parametrize("text", [
    "MemTotal: \u0661\u0662 kB\n",  # \d matches any Unicode digit
    "MemTotal: 12 kB\nSwapTotal: 0 kB\n\u00b2\n",
])
def test_meminfo_text_with_non_ascii_digits_is_malformed(text):
    with pytest.raises(MeminfoError, match="malformed"):
        parse_meminfo(text)
