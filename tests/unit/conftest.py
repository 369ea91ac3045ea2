"""Shared fixtures for the unit tests.

The plugins import each other as ansible_collections.dbfleet.memory.*, so the tests run
with that package importable: `make unit` puts scripts/collection-path.sh on PYTHONPATH.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator, List, Union

import pytest

if importlib.util.find_spec("ansible_collections.dbfleet.memory") is None:  # a setup error, reported loudly
    raise SystemExit(
        "ansible_collections.dbfleet.memory is not importable; run the tests through `make unit` "
        "or set PYTHONPATH=$(scripts/collection-path.sh)"
    )

MEMINFO_DIR = Path(__file__).parent / "fixtures" / "meminfo"


@pytest.fixture
def meminfo_text():
    """Return the text of a real-format /proc/meminfo fixture by name."""

    def load(name: str) -> str:
        return (MEMINFO_DIR / (name + ".meminfo")).read_text()

    return load


class HostTree:
    """A host's files under a tmp root, planted by their logical paths ("/etc/sysctl.d/90-x.conf").

    The readers under test take a ``host_path`` that maps a logical path to the real one; ``path``
    is that map for this tree. Each planting method creates the missing parent directories and
    returns the real path. Link targets are written as given, so an absolute target is resolved
    by the reader inside the tree, as on the host.
    """

    # An AF_UNIX socket's path must fit in sun_path (108 bytes); unix_socket binds by name, from its directory.
    MAX_SOCKET_PATH = 100

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sockets: List[socket.socket] = []

    def path(self, logical: str) -> str:
        return str(self.root) + logical

    def _new(self, logical: str) -> str:
        real = self.path(logical)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        return real

    def file(self, logical: str, data: Union[str, bytes]) -> str:
        """A regular file holding ``data`` (replaced if it is there)."""
        real = self._new(logical)
        with open(real, "wb") as handle:
            handle.write(data if isinstance(data, bytes) else data.encode())
        return real

    def link(self, logical: str, target: str) -> str:
        real = self._new(logical)
        os.symlink(target, real)
        return real

    def fifo(self, logical: str) -> str:
        """A FIFO with no writer: a blocking open of it never returns."""
        real = self._new(logical)
        os.mkfifo(real)
        return real

    def char_device(self, logical: str, major: int = 1, minor: int = 3) -> str:
        """A character device node (1, 3 is /dev/null's). mknod needs root: the suite runs as root,
        and a run without it fails here rather than skipping what it could not plant."""
        if os.geteuid() != 0:
            pytest.fail("planting a character device needs root (mknod); run the unit tests as root")
        real = self._new(logical)
        os.mknod(real, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        return real

    def directory(self, logical: str) -> str:
        real = self._new(logical)
        os.mkdir(real)
        return real

    def unix_socket(self, logical: str) -> str:
        """An AF_UNIX socket bound at ``logical``, open until the test ends."""
        real = self._new(logical)
        sock = socket.socket(socket.AF_UNIX)
        self._sockets.append(sock)
        # Bound by its name from inside its directory, so the path handed to bind(2) stays short however
        # deep the tmp root is (pytest-xdist under ansible-test units adds a level).
        name = os.path.basename(real)
        if len(name) > self.MAX_SOCKET_PATH:
            pytest.fail("socket name too long for an AF_UNIX socket: %s" % real)
        cwd = os.getcwd()
        os.chdir(os.path.dirname(real))
        try:
            sock.bind(name)
        finally:
            os.chdir(cwd)
        return real

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[HostTree]:
    """The files of a fake host, rooted at tmp_path (the modules' kernel fixture uses the same root)."""
    tree = HostTree(tmp_path)
    yield tree
    tree.close()


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def boom(_signum, _frame):
        raise AssertionError("blocked for more than %d s" % seconds)

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def deadline() -> Callable[[int], ContextManager[None]]:
    """``with deadline(5):`` fails the test if the body blocks (on a FIFO, say) instead of hanging the suite."""
    return _deadline


@pytest.fixture
def refuse(monkeypatch) -> Callable[[str, str], None]:
    """refuse(name, path): os.<name> fails with EACCES for ``path`` only.

    The tests run as root, whom mode 000 does not stop, so a refusal has to be patched in.
    """

    def refuse_for(name: str, path: str) -> None:
        original = getattr(os, name)

        def refusing(p, *args, **kwargs):
            if str(p) == path:
                raise PermissionError(errno.EACCES, "Permission denied", p)
            return original(p, *args, **kwargs)

        monkeypatch.setattr(os, name, refusing)

    return refuse_for
