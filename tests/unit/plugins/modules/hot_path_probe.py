"""Runs one module's main() on a fake host in a fresh interpreter and prints, as JSON, its result
and which of our module_utils modules the run imported (test_hot_path_imports.py).

Usage: python hot_path_probe.py MODULE ROOT ARGS_JSON. ROOT is a tree the tests' ``kernel`` and
``systemd`` fixtures planted; the run reads it as the tests do (files._ROOT) and runs no command
but a fake ``systemctl show``. Only what the run itself needs is imported before it: the host path
seam and the page size it patches, both on every run's path anyway.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pathlib
import sys

MODULE_UTILS = "ansible_collections.dbfleet.memory.plugins.module_utils."


def main() -> None:
    name, root, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    from ansible.module_utils import _internal, basic
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
    from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import live
    from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_systemd import FakeSystemd

    files._ROOT = root
    live.page_size_kb = lambda: 4
    _internal.is_controller = False
    fake = FakeSystemd(pathlib.Path(root))
    basic.AnsibleModule.run_command = lambda self, argv, **_kw: (
        fake.run(argv) if argv[0] == "systemctl" else (127, "", "%s: command not found (fake host)" % argv[0]))
    module = importlib.import_module("ansible_collections.dbfleet.memory.plugins.modules." + name)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    loaded = sorted(m[len(MODULE_UTILS):] for m in sys.modules if m.startswith(MODULE_UTILS))
    sys.stdout.write(json.dumps({"result": json.loads(out.getvalue()), "loaded": loaded}))


if __name__ == "__main__":
    main()
