"""What a guest is: GuestSpec, what a test asks for (name, RAM, swap, Debian suite,
image flavour), checked at once; and Guest, one guest of a running lab (its tap, MAC,
address, UML pid and boots).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .disks import FLAVOURS, SUITES
from .network import FIRST_GUEST_HOST


@dataclass(frozen=True)
class GuestSpec:
    """What a guest looks like: its name, RAM (`mem=`), swap size (0 = no swap), Debian
    suite (bookworm = 12, trixie = 13), image flavour ("db": PostgreSQL and MariaDB; "tuned":
    Debian's tuned) and extra kernel parameters, appended to its UML command line at every boot
    (e.g. "sysctl.vm.overcommit_ratio=77": what a bootloader would pass; one word each)."""

    name: str
    mem_mb: int
    swap_mb: int = 0
    suite: str = "bookworm"
    flavour: str = ""
    kernel_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,14}", self.name):
            raise ValueError(f"guest name {self.name!r}: use [a-z][a-z0-9-], at most 15 chars")
        if self.mem_mb < 128 or self.swap_mb < 0:
            raise ValueError(f"guest {self.name}: mem_mb >= 128 and swap_mb >= 0 please")
        if self.suite not in SUITES:
            raise ValueError(f"guest {self.name}: suite {self.suite!r}, use one of {', '.join(SUITES)}")
        if self.flavour not in FLAVOURS:
            raise ValueError(f"guest {self.name}: flavour {self.flavour!r}, use one of {FLAVOURS}")
        object.__setattr__(self, "kernel_args", tuple(self.kernel_args))   # lab.json gives a list
        for arg in self.kernel_args:
            # UML joins its argv with spaces into the kernel command line: a blank or a quote
            # inside one argument would split or regroup the parameters.
            if not arg or any(c.isspace() or c == '"' for c in arg):
                raise ValueError(f"guest {self.name}: kernel argument {arg!r} must be one word without quotes")

    @property
    def image(self) -> str:
        """Which cached image the guest boots: the suite, plus "+flavour" if it has one."""
        return f"{self.suite}+{self.flavour}" if self.flavour else self.suite


@dataclass
class Guest:
    """One guest of a running lab. `boot` counts boots; each has its own SSH ControlPath."""

    spec: GuestSpec
    index: int
    ip: str
    boot: int = 0
    pid: int | None = None
    boot_seconds: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tap(self) -> str:
        return f"tap{self.index}"

    @property
    def mac(self) -> str:
        return f"52:54:00:d6:00:{FIRST_GUEST_HOST + self.index:02x}"
