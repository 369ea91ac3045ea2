"""Controller-side code (filters, the role's and the playbooks' YAML) checked against a module run on the fake host.

ansible-test units runs tests under plugins/modules/ and plugins/module_utils/ with only what a module may import
(no ansible.errors, no templating), as on a managed host; these tests need both sides, so they live here and take
the module tests' fixtures from their conftest.
"""

from __future__ import annotations

# pylint: disable-next=unused-import
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.conftest import kernel, run_module  # noqa: F401
