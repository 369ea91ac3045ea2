"""The guide "Sizing from the database" (docs/docsite/rst/guide_sizing.rst) says what the code does.

Its example verdict is computed here from the captured fixtures by the same calls the modules make, so a
change of formula, rule or wording that the guide does not follow fails; and it claims calibration only for
what the code marks calibrated.
"""

from __future__ import annotations

import re
from pathlib import Path

from ansible_collections.dbfleet.memory.plugins.module_utils._db import host, mysql, postgresql
from ansible_collections.dbfleet.memory.plugins.module_utils._db.model import MARIADB
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


def test_the_guide_claims_calibration_only_for_the_versions_the_code_marks_calibrated():
    """The table comes from make lab-sizing (tests/lab/test_db_calibration.py, margin 15 %, not in the tarball);
    the versions it names are the ones whose estimates say calibrated."""
    text = GUIDE.read_text()
    assert "**Calibrated on PostgreSQL 15 and MariaDB 10.11 only**" in text and "Calibration: pending" not in text
    assert postgresql.CALIBRATED_MAJORS == ("15",) and mysql.CALIBRATED == ((MARIADB, "10.11"),)
    assert "Every point must be\nwithin 15 %" in text
    rows = re.findall(r"^   \* - (PostgreSQL 15|MariaDB 10\.11)$", text, re.M)
    assert rows.count("PostgreSQL 15") == 3 and rows.count("MariaDB 10.11") == 3


def test_the_guide_is_in_the_docsite():
    assert "      - guide_sizing\n" in (DOCSITE / "extra-docs.yml").read_text()
