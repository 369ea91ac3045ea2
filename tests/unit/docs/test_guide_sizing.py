"""The guide "Sizing from the database" (docs/docsite/rst/guide_sizing.rst) says what the code does.

Its example verdict is computed here from the captured fixtures by the same calls the modules make, so a
change of formula, rule or wording that the guide does not follow fails; and it claims no calibration that
was not made.
"""

from __future__ import annotations

import re
from pathlib import Path

from ansible_collections.dbfleet.memory.plugins.module_utils._db import host
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import MemoryShape
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import databases as dbs
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import PlanOptions, plan_overcommit
from ansible_collections.dbfleet.memory.tests.unit.plugins.module_utils.conftest import (
    FakeRunner,
    db_text,
    debian12_db_host,
    ok,
)

DOCSITE = Path(__file__).resolve().parents[3] / "docs" / "docsite"
GUIDE = DOCSITE / "rst" / "guide_sizing.rst"
GIB = 1024 * 1024


def example_block(rst: str) -> str:
    """The literal block after 'How to read a verdict', joined into one line."""
    section = rst.split("How to read a verdict", 1)[1]
    block = section.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return " ".join(line.strip() for line in block.splitlines())


def test_the_guides_example_verdict_is_what_the_code_says_for_its_host(host_tree):
    debian12_db_host(host_tree)
    run = FakeRunner([(["pg_lsclusters", "--json"], ok(db_text("pg_lsclusters-running.json"))),
                      (["psql"], ok(db_text("pg15-settings-30conn-workmem32MB.txt")))])
    found = host.read_databases(host_tree.path, run)
    memory = MemoryShape(memtotal_kb=4 * GIB, swaptotal_kb=1 * GIB, hugetlb_kb=0, committed_as_kb=1 * GIB)
    plan = plan_overcommit(memory, PlanOptions(profiles=("postgresql",), databases=dbs.demand_of(found)))
    lines = {line.server: line for line in dbs.judge(found, plan.database_verdict, 20)}
    assert example_block(GUIDE.read_text()) == lines["15/main"].reason


def test_the_guide_says_the_calibration_is_pending_and_claims_no_margin():
    text = GUIDE.read_text()
    assert "Calibration: pending" in text and "**The calibration is pending.**" in text
    assert not re.search(r"[Mm]argin: *[0-9]", text) and "CALIBRATION-TABLE" not in text


def test_the_guide_is_in_the_docsite():
    assert "      - guide_sizing\n" in (DOCSITE / "extra-docs.yml").read_text()
