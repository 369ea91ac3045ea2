"""What a no-op run and an audit import of module_utils: only what they need.

AnsiballZ runs a module from a zip without bytecode, so every module_utils file a run imports is
compiled on the target, on every run: importing it costs more than running it. A no-op run
(state=present, the host already at the plan) and an overcommit_info run still read and decide
everything (the next boot, tuned, swap, the databases); what they must not compile is code for
what this host does not have or this run does not do. Each run is made in a fresh interpreter
(hot_path_probe.py), so the imports of the other tests do not count. Nothing is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.dbfleet.memory.plugins.modules import overcommit

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hot_path_probe.py")
MODULE_UTILS = os.path.join(os.path.dirname(overcommit.__file__), "..", "module_utils")
PG = {"profile": ["postgresql"]}

# The fake host runs no database, so no engine's client and formulas are needed.
ENGINES = {"_db.mysql", "_db.postgresql", "_db.redis"}
# No tuned and no zram on the fake host; no metrics or facts asked for.
ABSENT_HERE = {"_boot.tuned", "_boot.tuned_files", "_boot.zram", "_overcommit.metrics", "_overcommit.facts"}
# What the boot leaves without our file: state=absent asks it, a present run and an audit do not.
ONLY_FOR_ABSENT = {"_boot.sysctl_outcome"}

# An audit writes nothing: no lock, and of the OOM side only the read-only report (_oom.host, rules).
NOT_FOR_AN_AUDIT = {"_host.lock", "_oom.transaction", "_oom.decide"}


def loaded_by(name, root, args):
    """(result, modules loaded) of one run of module ``name`` on the fake host at ``root``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, PROBE, name, str(root), json.dumps(args)], env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    return probe["result"], set(probe["loaded"])


@pytest.fixture
def at_the_plan(kernel, systemd, run_module):
    """The fake host after a first run: the next run with PG is a no-op."""
    failed, result = run_module(overcommit.main, PG)
    assert not failed and result["changed"], result.get("msg")
    return kernel.root


def test_a_no_op_run_compiles_no_engine_tool_or_state_it_does_not_run(at_the_plan):
    result, loaded = loaded_by("overcommit", at_the_plan, PG)
    assert result["changed"] is False and not result.get("failed"), result
    assert result["databases"] == []  # they were read: there are none
    assert "_db.host" in loaded and "_overcommit.boot_check" in loaded
    assert sorted(loaded & (ENGINES | ABSENT_HERE | ONLY_FOR_ABSENT)) == []
    assert sorted(m for m in loaded if m.startswith("_oom")) == []  # the other module's half


def test_an_audit_compiles_no_engine_tool_or_state_it_does_not_run(at_the_plan):
    result, loaded = loaded_by("overcommit_info", at_the_plan, PG)
    assert not result.get("failed") and result["would_change"] is False, result
    assert result["databases"] == []
    assert "_db.host" in loaded and "_oom.host" in loaded
    assert sorted(loaded & (ENGINES | ABSENT_HERE | ONLY_FOR_ABSENT)) == []


def test_an_audit_compiles_no_lock_and_no_oom_decision(at_the_plan):
    result, loaded = loaded_by("overcommit_info", at_the_plan, PG)
    assert result["database_units"]["error"] is None, result["database_units"]  # the OOM side was read
    assert sorted(loaded & NOT_FOR_AN_AUDIT) == []


def test_every_module_named_here_exists():
    """A module renamed or moved would make the assertions above pass for nothing."""
    named = ENGINES | ABSENT_HERE | ONLY_FOR_ABSENT | NOT_FOR_AN_AUDIT
    missing = sorted(m for m in named if not os.path.isfile(os.path.join(MODULE_UTILS, *m.split(".")) + ".py"))
    assert missing == []
