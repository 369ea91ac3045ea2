"""Shared fixtures for the unit tests.

The plugins import each other as ansible_collections.dbfleet.memory.*, so the tests run
with that package importable: `make unit` puts scripts/collection-path.sh on PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
