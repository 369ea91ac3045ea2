"""The example site.yml rolled out canary first: it stops at the unsafe host, leaves later batches
untouched, and the hosts already done stay as planned. And the role's three forms agree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from expectations import DEFAULT_DROPIN, EXPECT, settings
from fleet_run import run_playbook

MOLECULE = Path(__file__).resolve().parents[2]
SITE = MOLECULE.parent / "docs" / "docsite" / "examples" / "rollout" / "site.yml"
DATABASE_MARKER = "/etc/example-database.conf"   # what the stand-in database role writes
BATCHES = [["db1-canary"], ["db2", "db3-unsafe"], ["db4"]]   # serial [1, "50%"] over four hosts
DONE = ["db1-canary", "db2"]
UNSAFE = "db3-unsafe"
LATER = "db4"
FORMS = ["form-roles", "form-include", "form-import"]
PLANNED = EXPECT["vm-4g-noswap"]["values"]   # every host but the unsafe one has this memory shape
PLAY = "PLAY [Configure the database hosts, one canary first]"
ANSI = re.compile(r"\x1b\[[0-9;]*m")   # molecule forces colour on


def read(container: str, path: str) -> Optional[str]:
    """A file's text in a container, with its mtime: None if it does not exist."""
    proc = subprocess.run(["podman", "exec", container, "sh", "-c", 'stat -c %y "$0" && cat "$0"', path],
                          capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else None


def snapshot() -> Dict[str, Dict[str, Optional[str]]]:
    return {host: {path: read(host, path) for path in (DEFAULT_DROPIN, DATABASE_MARKER)}
            for batch in BATCHES for host in batch}


def batches_run(stdout: str) -> List[List[str]]:
    """The hosts each batch (each repetition of the play's header) reported a task result for."""
    chunks = ANSI.sub("", stdout).split(PLAY)[1:]
    return [sorted(set(re.findall(r"^(?:ok|changed|fatal|skipping): \[([^\]]+)\]", chunk, re.M))) for chunk in chunks]


@pytest.fixture(scope="module")
def rollout():
    first = run_playbook(str(SITE), expect_rc=2)
    after_first = snapshot()
    second = run_playbook(str(SITE), expect_rc=2)
    after_second = snapshot()
    tagged = run_playbook(str(SITE), "--tags", "overcommit", "--limit", ",".join(DONE))
    return {"first": first, "after_first": after_first, "second": second, "after_second": after_second,
            "tagged": tagged}


def test_the_rollout_ran_the_canary_then_one_batch_and_stopped(rollout):
    for run in ("first", "second"):
        assert batches_run(rollout[run]["stdout"]) == BATCHES[:2], rollout[run]["stdout"][-3000:]
        assert rollout[run]["stats"][UNSAFE]["failures"] == 1
        assert LATER not in rollout[run]["stats"]
    print("site.yml rollout over 4 hosts: %.1fs, again: %.1fs"
          % (rollout["first"]["elapsed_s"], rollout["second"]["elapsed_s"]))


def test_the_unsafe_host_was_refused_and_has_no_dropin(rollout):
    output = ANSI.sub("", rollout["first"]["stdout"] + rollout["first"]["stderr"])
    assert re.search(r"fatal: \[%s\]: FAILED!.*Unsafe overcommit plan" % UNSAFE, output, re.S), output[-3000:]
    assert rollout["after_first"][UNSAFE][DEFAULT_DROPIN] is None
    # The database role runs before the overcommit role in site.yml, so it did reach this host.
    assert rollout["after_first"][UNSAFE][DATABASE_MARKER] is not None


def test_the_host_of_the_later_batch_was_not_touched(rollout):
    for state in ("after_first", "after_second"):
        assert rollout[state][LATER] == {DEFAULT_DROPIN: None, DATABASE_MARKER: None}


def test_the_hosts_done_hold_the_planned_dropin(rollout):
    for host in DONE:
        assert rollout["first"]["stats"][host]["changed"] == 2   # the database file and the drop-in
        dropin = rollout["after_first"][host][DEFAULT_DROPIN]
        assert dropin is not None and dict(settings(dropin.split("\n", 1)[1])) == PLANNED


def test_running_again_changes_nothing_on_the_hosts_done(rollout):
    for host in DONE:
        assert rollout["second"]["stats"][host]["changed"] == 0
        assert rollout["after_second"][host] == rollout["after_first"][host]   # content and mtime


def test_the_overcommit_tag_runs_the_role_alone(rollout):
    tagged = rollout["tagged"]
    for host in DONE:
        assert tagged["hosts"][host]["actions"] == ["dbfleet.memory.overcommit"]
        assert tagged["stats"][host]["changed"] == 0


def test_roles_include_role_and_import_role_write_the_same_dropin():
    texts = {host: read(host, DEFAULT_DROPIN) for host in FORMS}
    bodies = {host: text.split("\n", 1)[1] for host, text in texts.items() if text is not None}
    assert sorted(bodies) == sorted(FORMS), texts
    assert len(set(bodies.values())) == 1, bodies
    assert dict(settings(bodies[FORMS[0]])) == PLANNED
