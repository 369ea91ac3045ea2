"""Session fixtures for the lab suite: one lab of UML guests shared by all tests.

The lab needs root and user-mode-linux. When they are missing the fixture raises
(the tests error out loudly); it never skips.

This directory is the lab's import root: pytest puts it on sys.path before it imports
this file (its default "prepend" import mode, for a directory without __init__.py),
so the tests import the package `umlab` and the modules beside it by name.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from helpers import MEMHOG_PATTERN, OVERCOMMIT_KEYS, install_memhog, read_overcommit
from umlab import GuestSpec, Lab, LabError, check_host, cleanup_stale

# Five small guests, booted in parallel once per session (about 10-20 s on 2 cores):
#   plain  - no swap: boots, CommitLimit formula without swap, the naive disaster
#   swap   - with swap: SwapTotal, the formula's swap term, reboot persistence
#   mode0 / mode2 - identical twins (768 MiB) for the side-by-side memory-pressure test
#   trixie - Debian 13 (systemd 257, procps 4.0.4): the boot replay against its own tools
GUESTS = [
    GuestSpec("plain", mem_mb=512, swap_mb=0),
    GuestSpec("swap", mem_mb=768, swap_mb=256),
    GuestSpec("mode0", mem_mb=768, swap_mb=0),
    GuestSpec("mode2", mem_mb=768, swap_mb=0),
    GuestSpec("trixie", mem_mb=512, swap_mb=0, suite="trixie"),
]

_boot_report: list[str] = []
_network_report: list[str] = []


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    check_host()
    removed = cleanup_stale()
    if removed:
        print(f"lab: removed stale labs {removed}")
    the_lab = Lab(GUESTS)
    with the_lab:
        for name, guest in the_lab.guests.items():
            install_memhog(the_lab, name)
        _boot_report.append("initial parallel boot of %d guests: %s" % (
            len(GUESTS), ", ".join(f"{g.name} {g.boot_seconds[0]:.1f} s" for g in the_lab.guests.values())))
        the_lab.boot_defaults = {name: read_overcommit(the_lab, name) for name in the_lab.guests}  # type: ignore[attr-defined]
        yield the_lab
        for guest in the_lab.guests.values():
            if len(guest.boot_seconds) > 1:
                _boot_report.append(f"{guest.name} re-boots: {guest.boot_seconds[1:]} s")
    # Read at teardown: every SSH and Ansible byte of the session went through this netns.
    _network_report.append(f"whole session: {the_lab.final_tcp}")
    _network_report.extend(f"slowest call: {seconds} s  {what}" for seconds, what in the_lab.slowest_calls)


@pytest.fixture(autouse=True)
def restore_guests(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, on every guest at once: no memory hog runs and the overcommit
    settings are the ones it booted with. A guest that cannot run that (locked out,
    hung) is power-cycled. One multiplexed SSH command per guest keeps this ~1 s."""
    yield
    if "lab" not in request.fixturenames:
        return
    the_lab: Lab = request.getfixturevalue("lab")

    def restore(name: str) -> None:
        defaults = the_lab.boot_defaults[name]  # type: ignore[attr-defined]
        # Leave mode 2 first, then the reserves; ratio and kbytes exclude each other,
        # so write only the one that was non-zero at boot.
        order = ["vm.overcommit_memory", "vm.admin_reserve_kbytes", "vm.user_reserve_kbytes",
                 "vm.overcommit_kbytes" if defaults["vm.overcommit_kbytes"] else "vm.overcommit_ratio"]
        assert set(order) <= set(OVERCOMMIT_KEYS)
        command = (f"pkill -KILL -f {MEMHOG_PATTERN} ; sysctl -q "
                   + " ".join(f"-w {key}={defaults[key]}" for key in order))
        try:
            the_lab.run(name, command, timeout=30)
        except LabError as exc:
            print(f"restore: {name} power-cycled: {exc}")
            the_lab.power_cycle(name)
            the_lab.run(name, command, timeout=30)

    with ThreadPoolExecutor(max_workers=len(the_lab.guests)) as pool:
        list(pool.map(restore, the_lab.guests))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _boot_report:
        terminalreporter.section("lab boot times (UML start -> SSH answers)")
        for line in _boot_report:
            terminalreporter.write_line(line)
    if _network_report:
        terminalreporter.section("lab network: TCP retransmits of the lab's namespace")
        for line in _network_report:
            terminalreporter.write_line(line)
