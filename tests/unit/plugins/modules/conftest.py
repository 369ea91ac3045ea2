"""Run a module's main() in-process the way Ansible would, and return its result."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(capsys):
    """run_module(main, args) -> (failed, result_dict)."""

    def run(main, args):
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exited:
                main()
        result = json.loads(capsys.readouterr().out)
        failed = exited.value.code != 0
        assert failed == bool(result.get("failed")), "exit code and 'failed' disagree"
        return failed, result

    return run
