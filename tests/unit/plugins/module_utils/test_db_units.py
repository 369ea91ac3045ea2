"""Sizes as the databases print them, in kB."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._db import units


@pytest.mark.parametrize("setting, unit, kb", [
    ("16384", "8kB", 131072),  # shared_buffers as pg_settings prints it
    ("4096", "kB", 4096),  # work_mem
    ("143", "MB", 146432),  # shared_memory_size
    ("-1", "kB", -1),  # autovacuum_work_mem: unset
    ("1000", "B", 1),  # bytes round up to a whole kB
])
def test_postgresql_memory_settings_are_their_number_times_their_unit(setting, unit, kb):
    assert units.pg_memory_kb(setting, unit) == kb


@pytest.mark.parametrize("setting, unit", [("4096", "MiB"), ("lots", "kB"), ("1.5", "kB"), ("", "kB")])
def test_anything_else_is_refused(setting, unit):
    with pytest.raises(units.SizeError):
        units.pg_memory_kb(setting, unit)


@pytest.mark.parametrize("text, value", [("2", 2.0), ("1.5", 1.5), (" 2 ", 2.0)])
def test_hash_mem_multiplier_is_read_as_a_real(text, value):
    assert units.pg_real(text) == value


@pytest.mark.parametrize("text, count", [
    ("134217728", 134217728), ("128M", 128 * 1024 ** 2), ("2g", 2 * 1024 ** 3), ("512K", 512 * 1024), ("0", 0),
])
def test_mariadb_sizes_are_bytes_with_an_optional_binary_suffix(text, count):
    assert units.mysql_bytes(text) == count


@pytest.mark.parametrize("text", ["12MB", "-1", "1.5G", "lots", ""])
def test_a_mariadb_size_that_is_not_one_is_refused(text):
    with pytest.raises(units.SizeError):
        units.mysql_bytes(text)


@pytest.mark.parametrize("kb, text", [(4096, "4 MiB"), (2048 + 512, "2.5 MiB"), (146432, "143 MiB"), (292, "292 kB"), (0, "0 MiB")])
def test_kb_are_shown_in_mib_with_a_decimal_only_where_it_matters(kb, text):
    assert units.mib_text(kb) == text


@pytest.mark.parametrize("kb, text", [(2048, "2MB"), (1984, "1984kB"), (1048576, "1GB"), (64, "64kB")])
def test_a_proposed_setting_is_written_in_the_largest_unit_that_divides_it(kb, text):
    assert units.size_text(kb) == text


@pytest.mark.parametrize("kb, text", [
    (1, "1 kB"), (1023, "1023 kB"), (1024, "1 MiB"), (1025, "1.1 MiB"), (1536, "1.5 MiB"), (1537, "1.6 MiB"),
    (10 * 1024, "10 MiB"), (10 * 1024 + 1, "11 MiB"), (1177810, "1151 MiB"),
])
def test_an_amount_to_make_up_is_rounded_up_never_short(kb, text):
    assert units.mib_text_up(kb) == text
