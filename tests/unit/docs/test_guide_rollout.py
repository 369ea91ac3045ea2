"""The rollout guide quotes the example site.yml that molecule/rollout runs, word for word."""

from __future__ import annotations

import textwrap
from pathlib import Path

DOCSITE = Path(__file__).resolve().parents[3] / "docs" / "docsite"
GUIDE = DOCSITE / "rst" / "guide_rollout.rst"
SITE = DOCSITE / "examples" / "rollout" / "site.yml"


def yaml_blocks(rst: str):
    """The bodies of the guide's ``.. code-block:: yaml`` directives, dedented."""
    blocks, lines = [], rst.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != ".. code-block:: yaml":
            continue
        body = []
        for following in lines[index + 2:]:
            if following and not following.startswith(" "):
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_the_guide_shows_the_tested_site_yml_as_it_is():
    assert SITE.read_text() in yaml_blocks(GUIDE.read_text())


def test_the_example_uses_a_canary_batch_and_stops_at_the_first_failure():
    text = SITE.read_text()
    assert "serial:\n    - 1\n" in text and "max_fail_percentage: 0" in text
    assert "tags: [overcommit]" in text and "tags: [database]" in text
