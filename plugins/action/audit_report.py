# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit_report action: render the audit rows and write the report files on the controller.

Runs entirely in the controller's process (no module, no connection to the task's host); its
documentation lives in plugins/modules/audit_report.py, as for other action-only plugins.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import (
    render,
    render_markdown,
    rows_from_dicts,
)
from ansible_collections.dbfleet.memory.plugins.plugin_utils.report_files import (
    EXTENSIONS,
    ReportWriteError,
    write_reports,
)

ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    rows=dict(type="list", elements="dict", required=True),
    hosts=dict(type="list", elements="str", default=[]),
    formats=dict(type="list", elements="str", choices=list(EXTENSIONS), default=list(EXTENSIONS)),
    generated_at=dict(type="str", default=""),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # nothing remote
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del validation
        try:
            rows = rows_from_dicts(args["rows"], args["hosts"])
            contents = {fmt: render(rows, fmt, args["generated_at"]) for fmt in args["formats"]}
            # Always returned, so a play can show the report without rendering it again.
            markdown = contents.get("markdown") or render_markdown(rows, args["generated_at"])
            outcome = write_reports(args["dest"], contents, check_mode=bool(self._task.check_mode))
        except (TypeError, ValueError) as exc:
            result.update(failed=True, msg="audit_report: rows: %s (they are made by dbfleet.memory.audit_row)" % exc)
            return result
        except ReportWriteError as exc:
            result.update(failed=True, msg="audit_report: %s" % exc)
            return result
        result.update(
            changed=bool(outcome.changed_paths or outcome.created_dir),
            dest=args["dest"],
            files=outcome.paths,
            changed_files=outcome.changed_paths,
            markdown=markdown,
        )
        return result
