# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_report
short_description: Render the fleet overcommit audit as Markdown, HTML, JSON or CSV
version_added: "0.1.0"
description:
  - Orders the rows made by P(dbfleet.memory.audit_row#filter) by risk, worst first, and renders them.
  - V(html) is a self-contained page (inline CSS and SVG chart, no script, no external resource) showing per host
    Committed_AS, the CommitLimit in force and what RAM and swap can back.
  - Risk is defined in C(plugins/plugin_utils/fleet_report.py); the CommitLimit at C(overcommit_ratio=100) is
    computed with the kernel's formula in C(commit_limit.py).
  - Runs on the controller; no remote call.
extends_documentation_fragment:
  - dbfleet.memory.report_options
options:
  _input:
    description: The list of rows.
    type: list
    elements: dict
    required: true
  format:
    description: The output format.
    type: str
    choices: [markdown, html, json, csv]
    default: markdown
"""

EXAMPLES = r"""
- name: Write the HTML report
  ansible.builtin.copy:
    dest: ./overcommit-audit/report.html
    content: "{{ rows | dbfleet.memory.fleet_report(format='html') }}"
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The rendered report.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.dbfleet.memory.plugins.plugin_utils.fleet_report import render, rows_from_dicts


def fleet_report(rows, format="markdown", generated_at="", hosts=()):  # pylint: disable=redefined-builtin
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise AnsibleFilterError("fleet_report: input must be a list of rows made by dbfleet.memory.audit_row")
    try:
        return render(rows_from_dicts(rows, [str(h) for h in hosts or ()]), str(format), str(generated_at))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("fleet_report: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"fleet_report": fleet_report}
