"""Every script that fills the cache works from an empty cache: exit 0 and the path on stdout.

A warm cache hid a first-build failure for weeks: `ls | grep -v | xargs rm` ended the builders, and
under pipefail grep's exit 1 (nothing stale to drop on a new machine) failed every first build of
`make test` and `make demo`. These tests run each builder as a new machine does, with an empty
cache (DBFLEET_CACHE in a temp dir), and with stand-ins on PATH for the slow or privileged tools
(debootstrap, chroot, unshare, mkfs.ext4, the UML kernel, podman, a Python to build a venv with),
which record their arguments and leave what the real tool would leave behind. Then once more with
the cache warm: the same path, and nothing rebuilt.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

REPO = Path(__file__).resolve().parents[3]

STAND_INS = {
    # debootstrap [OPTIONS] SUITE TARGET MIRROR: a root with what the recipes then trim and use.
    "debootstrap": """
        target=${@: -2:1}
        mkdir -p "$target"/etc/ssh "$target"/usr/share/doc/x "$target"/usr/share/man/x \\
                 "$target"/var/lib/apt/lists "$target"/etc/systemd/system "$target"/lib/systemd/system-generators \\
                 "$target"/lib/systemd/system "$target"/usr/sbin
        echo nameserver 127.0.0.1 > "$target"/etc/resolv.conf
        touch "$target"/lib/systemd/system-generators/systemd-fstab-generator
        """,
    "chroot": "exit 0",
    "unshare": "exit 0",
    # mkfs.ext4 -q -L LABEL -d ROOT IMAGE SIZE
    "mkfs.ext4": 'touch "${@: -2:1}"',
    "linux.uml": 'echo "6.1.0-stand-in"',
    # podman image inspect -> not there; podman import -> done.
    "podman": '[[ $1 == image ]] && exit 125; exit 0',
    "pyenv": 'echo "$STAND_IN_PYENV_ROOT"',
}

# A Python >= 3.12 for venv.sh: answers the version check, -V, and -m venv (with a pip that installs nothing).
STAND_IN_PYTHON = """#!/bin/bash
case $1 in
  -c) exit 0 ;;
  -V) echo "Python 3.13.99" ;;
  -m) mkdir -p "$3/bin"; printf '#!/bin/bash\\necho "$0 $*" >> "%s/pip.log"\\n' "$3" > "$3/bin/pip"
      chmod 755 "$3/bin/pip" ;;
esac
"""


def _write_exe(path: Path, body: str) -> None:
    path.write_text(body if body.startswith("#!") else "#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def new_machine(tmp_path: Path) -> Dict[str, str]:
    """The environment of a machine that never built anything: an empty cache, the stand-ins first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        _write_exe(bin_dir / name, body)
    pyenv_root = tmp_path / "pyenv"
    (pyenv_root / "versions/3.13.99/bin").mkdir(parents=True)
    _write_exe(pyenv_root / "versions/3.13.99/bin/python3", STAND_IN_PYTHON)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), DBFLEET_CACHE=str(tmp_path / "cache"),
               STAND_IN_PYENV_ROOT=str(pyenv_root), PYENV_ROOT=str(pyenv_root), DEBIAN_MIRROR="http://mirror.invalid/debian",
               DBFLEET_LAB_RUN=str(tmp_path / "run"))
    return env


def run_builder(env: Dict[str, str], *argv: str) -> str:
    proc = subprocess.run([str(REPO / argv[0])] + list(argv[1:]), env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert proc.returncode == 0, "%s exited %d:\n%s" % (" ".join(argv), proc.returncode, proc.stderr[-3000:])
    lines: List[str] = proc.stdout.strip().splitlines()
    assert lines, "%s printed nothing on stdout" % " ".join(argv)
    return lines[-1]


BUILDERS = [
    pytest.param(("scripts/build-rootfs.sh", "bookworm"), ".tar", id="rootfs"),
    pytest.param(("tests/lab/image/build-flavour-rootfs.sh", "bookworm", "db"), ".tar", id="db-rootfs"),
    pytest.param(("tests/lab/image/build-flavour-rootfs.sh", "bookworm", "tuned"), ".tar", id="tuned-rootfs"),
    pytest.param(("tests/lab/image/build-image.sh", "bookworm", "tuned"), ".img", id="lab-tuned-image"),
    pytest.param(("tests/lab/image/build-image.sh", "bookworm"), ".img", id="lab-image"),
    pytest.param(("tests/lab/image/build-image.sh", "bookworm", "db"), ".img", id="lab-db-image"),
    pytest.param(("scripts/venv.sh",), "", id="venv"),
    pytest.param(("scripts/podman-image.sh", "bookworm"), "", id="podman-image"),
]


@pytest.mark.parametrize("argv, suffix", BUILDERS)
def test_a_builder_succeeds_on_an_empty_cache_and_then_finds_its_own_work(new_machine, argv, suffix):
    first = run_builder(new_machine, *argv)
    assert first.endswith(suffix)
    if first.startswith("/"):
        assert os.path.exists(first), first
        assert first.startswith(new_machine["DBFLEET_CACHE"])
    assert run_builder(new_machine, *argv) == first


def test_a_stale_recipe_is_dropped_and_the_current_one_kept(new_machine):
    cache = Path(new_machine["DBFLEET_CACHE"]) / "rootfs"
    cache.mkdir(parents=True)
    stale = cache / "bookworm-000000000000.tar"
    stale.write_text("an older recipe's tarball")
    current = run_builder(new_machine, "scripts/build-rootfs.sh", "bookworm")
    assert not stale.exists() and os.path.exists(current)


def test_debootstrap_gets_the_mirror_of_this_machines_apt_sources(new_machine, tmp_path):
    """No mirror host is named in the repo: the builder asks apt's own configuration."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://archive.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n")
    (apt / "sources.list").write_text("# deb http://commented.example/debian bookworm main\n")
    env = dict(new_machine, APT_ETC=str(apt), DEBIAN_CODENAME="bookworm")
    del env["DEBIAN_MIRROR"]
    assert run_builder(env, "scripts/debian-mirror.sh") == "http://archive.example/debian"
    (apt / "sources.list.d/debian.sources").unlink()
    (apt / "sources.list").write_text("deb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm main\n")
    assert run_builder(env, "scripts/debian-mirror.sh") == "http://old.example/debian"
    (apt / "sources.list").write_text("")
    proc = subprocess.run([str(REPO / "scripts/debian-mirror.sh")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "set DEBIAN_MIRROR" in proc.stderr
