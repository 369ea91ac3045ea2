"""What a guest boots from: the cached, read-only disk image of its Debian suite and
flavour, built by image/build-image.sh, and an optional swap file of its own. (Each
guest writes to a copy-on-write file over the shared image, which UML creates itself:
see uml.kernel_argv.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import LabError
from .host import run_host

BUILD_IMAGE = Path(__file__).resolve().parent.parent / "image" / "build-image.sh"
SUITES = ("bookworm", "trixie")   # Debian 12 and 13 guests; build-image.sh makes one image each
# Image flavours: "" the plain image; "db" adds PostgreSQL and MariaDB from Debian's packages;
# "tuned" adds Debian's tuned (test_tuned_differential.py).
FLAVOURS = ("", "db", "tuned")


def ensure_image(image: str = "bookworm") -> Path:
    """Returns the cached guest disk image ("SUITE" or "SUITE+FLAVOUR", GuestSpec.image),
    building it (and its rootfs) if needed."""
    suite, _plus, flavour = image.partition("+")
    proc = subprocess.run([str(BUILD_IMAGE), suite, flavour], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise LabError(f"{BUILD_IMAGE} failed:\n{proc.stderr}")
    image = Path(proc.stdout.strip().splitlines()[-1])
    if not image.is_file():
        raise LabError(f"{BUILD_IMAGE} printed {image}, which does not exist")
    return image


def make_swap(path: Path, swap_mb: int) -> None:
    """A sparse swap file of swap_mb MiB, formatted (the guest's second disk)."""
    with open(path, "wb") as fh:
        fh.truncate(swap_mb * 1024 * 1024)   # sparse
    run_host(["mkswap", "-q", str(path)])
