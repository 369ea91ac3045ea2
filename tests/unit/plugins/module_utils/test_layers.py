"""The layers of module_utils import only downwards, and nothing lives outside them.

    _common < _host < _kernel < _boot < _overcommit        _oom: only _common and _host

_host reads and writes files safely and holds the lock; _kernel knows the running kernel; _boot
models what writes the keys at boot; _db reads the databases' own configuration; _overcommit
plans, decides and carries out; _oom is the other half of the defence and shares only the host
layer. A layer that imported upwards would turn the tree into a web again.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

MODULE_UTILS = Path(__file__).resolve().parents[4] / "plugins" / "module_utils"
PREFIX = "ansible_collections.dbfleet.memory.plugins.module_utils."

ALLOWED: Dict[str, Set[str]] = {
    "_common": set(),
    "_host": {"_common"},
    "_kernel": {"_common", "_host"},
    "_boot": {"_common", "_host", "_kernel"},
    "_db": {"_common", "_host", "_kernel"},
    "_overcommit": {"_common", "_host", "_kernel", "_boot", "_db"},
    "_oom": {"_common", "_host"},
}


def imported_layers(path: Path) -> List[Tuple[int, str]]:
    """(line, layer) of every import of another module_utils module, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: List[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ["%s.%s" % (node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.extend(sorted({(node.lineno, name[len(PREFIX):].split(".")[0]) for name in names
                             if name.startswith(PREFIX)}))
    return found


def test_every_module_utils_file_lives_in_a_layer():
    loose = sorted(p.name for p in MODULE_UTILS.glob("*.py") if p.name != "__init__.py")
    assert loose == [], "module_utils files outside the layers: %s" % loose
    assert {p.name for p in MODULE_UTILS.iterdir() if p.is_dir() and p.name.startswith("_")} <= set(ALLOWED) | {
        "__pycache__"}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((MODULE_UTILS / layer).glob("*.py")):
            for lineno, other in imported_layers(path):
                if other != layer and other not in allowed:
                    wrong.append("%s:%d imports %s" % (path.relative_to(MODULE_UTILS), lineno, other))
    assert wrong == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check itself: a file that imports upwards is found (so an empty result means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from %s_overcommit.planner import plan_overcommit\n" % PREFIX)
    assert imported_layers(bad) == [(1, "_overcommit")]
