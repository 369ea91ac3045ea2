# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit_report action: build the audit's rows, render them and write the report files.

Runs entirely in the controller's process (no module, no connection to the task's host); its
documentation lives in plugins/modules/audit_report.py, as for other action-only plugins.

With ``results_var`` it builds every host's row itself, from each host's registered
overcommit_info result and, for a host that did not answer (or an audit from the cache), from
its cached facts and its own overcommit_* variables. One run_once task does for the whole
fleet what a per-host set_fact task did: each per-host task costs a worker per host on the
controller (about 1.8 s per audit at 32 hosts on 2 cores).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import PLANNER_OPTIONS, role_variable
from ansible_collections.dbfleet.memory.plugins.plugin_utils.facts_plan import (
    PLANNABLE_FACT_KEYS,
    FactsPlanError,
    plan_from_facts,
)
from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import (
    STATUS_FAILED,
    AuditRow,
    render,
    render_markdown,
    row_from_cached_plan,
    row_from_results,
    rows_from_dicts,
)
from ansible_collections.dbfleet.memory.plugins.plugin_utils.report_files import (
    EXTENSIONS,
    ReportWriteError,
    write_reports,
)


ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    rows=dict(type="list", elements="dict"),
    results_var=dict(type="str"),
    from_cache=dict(type="bool", default=False),
    hosts=dict(type="list", elements="str", default=[]),
    formats=dict(type="list", elements="str", choices=list(EXTENSIONS), default=list(EXTENSIONS)),
    generated_at=dict(type="str", default=""),
)


def answered(result):
    """Whether a registered overcommit_info result holds the host's numbers."""
    return isinstance(result, dict) and not result.get("unreachable") and not result.get("failed") and "memory" in result


def cached_plan(host_vars):
    """The plan from a host's cached facts with its own overcommit_* settings, or None without facts."""
    facts = host_vars.get("ansible_facts") or {}
    if not any(key in facts for key in PLANNABLE_FACT_KEYS):
        return None
    # Every planner option, from the host's role variable (overcommit_<option>) as the role reads it;
    # one the host does not set gets the modules' default.
    options = {option: host_vars[role_variable(option)] for option in PLANNER_OPTIONS if role_variable(option) in host_vars}
    return plan_from_facts(dict(facts), **options)


def row_for_host(host, host_vars, results_var, from_cache):
    """What the per-host audit_row filter makes, with the cached plan computed only when it is used."""
    result = None if from_cache else host_vars.get(results_var)
    try:
        plan = cached_plan(host_vars) if from_cache or not answered(result) else None
    except FactsPlanError as exc:
        return AuditRow(host=host, status=STATUS_FAILED, message="cannot plan from the cached facts: %s" % exc)
    if from_cache:
        return row_from_cached_plan(host, plan)
    return row_from_results(host, result, plan)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # nothing remote
        validation, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("rows", "results_var")],
            required_one_of=[("rows", "results_var")])
        del validation
        if args["results_var"] and not args["hosts"]:
            result.update(failed=True, msg="audit_report: hosts: the hosts to report on are required with results_var")
            return result
        try:
            if args["results_var"]:
                hostvars = (task_vars or {}).get("hostvars") or {}
                rows = [row_for_host(str(host), hostvars[host], args["results_var"], args["from_cache"])
                        for host in args["hosts"]]
            else:
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
