"""The kernel's sysctl handlers for the four vm keys we manage (_kernel.sysctl).

Each row is what Linux 6.1/6.12 does with one write(2) of that buffer; the lab suite
checks the same rows against a real kernel through the real tools.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk

MODE, RATIO, KBYTES, RESERVE = sk.MODE, sk.RATIO, sk.KBYTES, sk.ADMIN_RESERVE
BOOT = sk.KERNEL_BOOT_DEFAULTS


def test_boot_defaults_are_the_kernels():
    # user_reserve_kbytes boots as min(free/32, 128 MiB): the cap stands in until the boot
    # model puts the host's own value in; no huge pages without a file or the command line.
    assert BOOT == {MODE: "0", RATIO: "50", KBYTES: "0", RESERVE: "8192",
                    sk.USER_RESERVE: "131072", sk.NR_HUGEPAGES: "0"}


def test_a_write_keeps_the_boot_memory_keys_of_the_state_and_adds_none():
    live = {MODE: "2", RATIO: "80", KBYTES: "0", RESERVE: "131072", sk.USER_RESERVE: "4096"}
    after = sk.kernel_write(live, RATIO, "90\n").state
    assert after == dict(live, **{RATIO: "90"})  # no default nr_hugepages slipped in
    assert sk.kernel_write(live, sk.NR_HUGEPAGES, "512").state[sk.NR_HUGEPAGES] == "512"


@pytest.mark.parametrize(
    "key, raw, stored",
    [
        pytest.param(RATIO, "87\n", "87", id="plain-value-with-the-tools-newline"),
        pytest.param(RATIO, "87", "87", id="newline-is-optional"),
        pytest.param(RATIO, "  \t87  \n", "87", id="blanks-around-are-skipped"),
        pytest.param(RATIO, "0 # default\n", "0", id="text-after-a-blank-is-ignored-value-set"),
        pytest.param(RATIO, "87 50\n", "87", id="only-the-first-number-counts"),
        pytest.param(RATIO, "010", "8", id="leading-zero-is-octal"),
        pytest.param(RATIO, "0x1f", "31", id="0x-is-hex"),
        pytest.param(RATIO, "0X1F", "31", id="0X-is-hex-too"),
        pytest.param(RATIO, "-5", "-5", id="ratio-is-a-signed-int-and-keeps-a-negative"),
        pytest.param(RATIO, "-2147483648", "-2147483648", id="int-min-fits"),
        pytest.param(MODE, "2", "2", id="mode-2"),
        pytest.param(MODE, " 0\n", "0", id="mode-0-with-blanks"),
        pytest.param(KBYTES, "1048576", "1048576", id="kbytes"),
        pytest.param(RESERVE, "18446744073709551615", "18446744073709551615", id="ulong-max-fits"),
        pytest.param(RESERVE, b"131072 \xff\xfe", "131072", id="undecodable-bytes-after-a-blank-are-ignored"),
    ],
)
def test_accepted_writes_store_this_value(key, raw, stored):
    result = sk.kernel_write(BOOT, key, raw)
    assert (result.accepted, result.took_effect, result.error) == (True, True, None)
    assert result.state[key] == stored == result.value


@pytest.mark.parametrize(
    "key, raw, reason",
    [
        pytest.param(RATIO, "0#default", "'#' follows the number", id="comment-glued-to-the-number"),
        pytest.param(RATIO, "87%", "'%' follows the number", id="percent-sign"),
        pytest.param(RATIO, "08", "'8' follows the number", id="8-is-not-an-octal-digit"),
        pytest.param(RATIO, "+87", "wants a digit", id="plus-sign"),
        pytest.param(RATIO, '"87"', "wants a digit", id="quotes-are-not-removed-by-anyone"),
        pytest.param(RATIO, "", "nothing but whitespace", id="empty"),
        pytest.param(RATIO, " \t\n", "nothing but whitespace", id="only-blanks"),
        pytest.param(RATIO, "2147483648", "32-bit int", id="int-overflow"),
        pytest.param(RATIO, "0" * 20 + "1", "21 or more characters", id="21-characters"),
        pytest.param(RATIO, b"87\xff", "byte 0xff follows", id="undecodable-byte-glued-to-the-number"),
        pytest.param(MODE, "3", "maximum 2", id="mode-above-2"),
        pytest.param(MODE, "-1", "minimum 0", id="mode-below-0"),
        pytest.param(KBYTES, "-0", "rejects any '-'", id="unsigned-rejects-minus-zero"),
        pytest.param(KBYTES, "-5", "rejects any '-'", id="unsigned-rejects-negative"),
        pytest.param(RESERVE, "18446744073709551616", "64 bits", id="ulong-overflow"),
    ],
)
def test_rejected_writes_change_nothing_and_say_einval(key, raw, reason):
    start = {MODE: "2", RATIO: "87", KBYTES: "0", RESERVE: "131072"}
    result = sk.kernel_write(start, key, raw)
    assert (result.accepted, result.took_effect) == (False, False)
    assert result.error.startswith("EINVAL") and reason in result.error
    assert result.state == start


@pytest.mark.parametrize(
    "start, key, raw, end",
    [
        pytest.param({RATIO: "87", KBYTES: "0"}, KBYTES, "0", {RATIO: "0", KBYTES: "0"},
                     id="kbytes-0-zeroes-our-ratio"),
        pytest.param({RATIO: "0", KBYTES: "1048576"}, RATIO, "50", {RATIO: "50", KBYTES: "0"},
                     id="a-ratio-line-zeroes-our-kbytes"),
        pytest.param({RATIO: "0", KBYTES: "1048576"}, RATIO, "0", {RATIO: "0", KBYTES: "0"},
                     id="ratio-0-still-zeroes-kbytes"),
        pytest.param({RATIO: "87", KBYTES: "0"}, RATIO, "87", {RATIO: "87", KBYTES: "0"},
                     id="same-ratio-again-keeps-both"),
        pytest.param({RATIO: "87", KBYTES: "0"}, KBYTES, "0#x", {RATIO: "87", KBYTES: "0"},
                     id="a-rejected-kbytes-write-zeroes-nothing"),
        pytest.param({RATIO: "0", KBYTES: "1048576"}, MODE, "2", {RATIO: "0", KBYTES: "1048576"},
                     id="mode-leaves-the-pair-alone"),
        pytest.param({RATIO: "0", KBYTES: "1048576"}, RESERVE, "131072", {RATIO: "0", KBYTES: "1048576"},
                     id="admin-reserve-leaves-the-pair-alone"),
    ],
)
def test_ratio_and_kbytes_are_one_setting(start, key, raw, end):
    """Finding 1. Old sysctl_precedence looked at each key alone, so a later
    ``vm.overcommit_kbytes = 0`` was 'a different key' and harmless to the ratio."""
    full = dict(BOOT, **start)
    result = sk.kernel_write(full, key, raw)
    assert {RATIO: result.state[RATIO], KBYTES: result.state[KBYTES]} == end


def test_zeroed_names_the_partner_only_for_accepted_pair_writes():
    assert sk.kernel_write(BOOT, RATIO, "87").zeroed == KBYTES
    assert sk.kernel_write(BOOT, KBYTES, "1").zeroed == RATIO
    assert sk.kernel_write(BOOT, KBYTES, "x").zeroed is None
    assert sk.kernel_write(BOOT, MODE, "1").zeroed is None


def test_ignored_tail_shows_what_the_kernel_did_not_read():
    """Finding 10: ``0 # default`` used to be a traceback; the kernel sets 0 and ignores the rest."""
    result = sk.kernel_write(BOOT, KBYTES, "0 # default\n")
    assert result.accepted and result.ignored_tail == b"# default\n"


def test_missing_keys_in_state_are_boot_defaults():
    result = sk.kernel_write({RATIO: "87"}, MODE, "2")
    assert result.state == {MODE: "2", RATIO: "87", KBYTES: "0", RESERVE: "8192"}


def test_only_the_first_page_is_read():
    result = sk.kernel_write(BOOT, RATIO, " " * 4095 + "87")
    assert not result.accepted and "nothing but whitespace" in result.error


def test_unknown_key_is_a_programming_error():
    with pytest.raises(ValueError, match="not a key this model knows"):
        sk.kernel_write(BOOT, "vm.swappiness", "10")


@pytest.mark.parametrize("raw, want", [("0x57", "87"), ("0127", "87"), ("87 ", "87"), ("087", None), ("8 7", "8")])
def test_canonical_or_none_is_the_kernels_reading(raw, want):
    """Old _kernel.writes.canonical said '087' is 87; the kernel rejects it."""
    assert sk.canonical_or_none(raw, RATIO) == want


# --- reading /proc/sys back, and the one rule for desired values ---------------------------------

@pytest.mark.parametrize("key, raw, want", [
    (RATIO, "87\n", "87"),
    (RATIO, "-5\n", "-5"),  # proc_dointvec stores a negative ratio and prints it back
    (KBYTES, "18446744073709551615\n", "18446744073709551615"),
    (sk.USER_RESERVE, "131072\n", "131072"),
    (MODE, "2\n", "2"),
    (RATIO, "", None),
    (RATIO, "87 x\n", None),  # the kernel prints one number: anything else is not its output
    (KBYTES, "-1\n", None),  # an unsigned handler never holds a negative value
])
def test_read_back_is_the_kernels_own_reading_of_proc_sys(key, raw, want):
    assert sk.read_back(key, raw) == want


@pytest.mark.parametrize("value, want", [("87", "87"), (87, "87"), ("0", "0"), (0, "0"),
                                         ("18446744073709551615", "18446744073709551615")])
def test_plain_decimal_takes_digits_and_ints_as_they_are(value, want):
    assert sk.plain_decimal(RATIO, value) == want


@pytest.mark.parametrize("value, reading", [
    ("010", "the kernel would read '010' as 8"),
    ("087", "the kernel would refuse '087'"),
    ("00", "the kernel would read '00' as 0"),
    ("+87", "the kernel would refuse '+87'"),
    ("0x57", "the kernel would read '0x57' as 87"),
    (" 87", "the kernel would read ' 87' as 87"),
    ("87\n", "the kernel would read '87\\n' as 87"),
    ("-1", "the kernel would read '-1' as -1"),
    (-1, "the kernel would read '-1' as -1"),
    ("", "the kernel would refuse ''"),
    ("8O", "the kernel would refuse '8O'"),
])
def test_plain_decimal_refuses_every_other_form_naming_the_key_and_the_allowed_form(value, reading):
    """Old _kernel.writes.canonical turned '087 ' into 87 and '010' into 10, where the kernel refuses
    the first and reads 8 from the second: desired values are never reinterpreted."""
    with pytest.raises(ValueError) as refused:
        sk.plain_decimal(RATIO, value)
    assert str(refused.value) == (
        "vm.overcommit_ratio = %r is refused: write a plain decimal number (digits only, no sign, blanks, leading "
        "zeros or base prefix; e.g. 87); %s" % (value if isinstance(value, str) else str(value), reading))


@pytest.mark.parametrize("value", [True, 8.7, None, b"87"])
def test_plain_decimal_refuses_what_is_not_an_int_or_a_string(value):
    with pytest.raises(ValueError, match=r"vm.overcommit_ratio = .* is refused: .*a non-negative integer or a string"):
        sk.plain_decimal(RATIO, value)
