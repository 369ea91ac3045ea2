#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin plugins/action/audit_report.py does the work, on the controller; this file
# holds its documentation, as for other action-only plugins.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: audit_report
short_description: Write the fleet overcommit audit report files on the controller
version_added: "0.1.0"
description:
  - Renders the audit's rows as Markdown, HTML, JSON and CSV, with the same renderers as
    P(dbfleet.memory.fleet_report#filter), and writes them as C(report.md), C(report.html), C(report.json) and
    C(report.csv) in O(dest) on the controller.
  - The rows are either given (O(rows), as made by P(dbfleet.memory.audit_row#filter)) or built here for every host
    of O(hosts) (O(results_var)), which spares the play a task per host.
  - Runs in the controller's process. It contacts no host and runs no module, so one task writes every file
    in milliseconds; run it once per play (C(run_once=true)).
  - Each file is replaced atomically (a temporary file in O(dest), then a rename), with mode C(0644). A file that
    already holds the same report is left alone. O(dest) is created (mode C(0755)) when missing.
  - This is what the C(dbfleet.memory.audit) playbook's last task runs.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dbfleet.memory.report_options
options:
  dest:
    description:
      - The directory on the controller to write the report files to.
    type: path
    required: true
  rows:
    description:
      - The report's rows, one per host, as made by P(dbfleet.memory.audit_row#filter).
      - Exactly one of O(rows) and O(results_var) is required.
    type: list
    elements: dict
  results_var:
    description:
      - The name of the variable each host registered its M(dbfleet.memory.overcommit_info) result in. The row of
        each host of O(hosts) is built from it, as P(dbfleet.memory.audit_row#filter) builds it.
      - A host without an answer (unreachable, failed, not run) keeps a row. When its cached facts allow it (the
        C(dbfleet_overcommit) fact, or C(setup)'s C(memtotal_mb)), the row's numbers are planned from them with
        P(dbfleet.memory.overcommit_plan#filter), using that host's own C(overcommit_profile) and planner
        variables (C(overcommit_workload_commit_mb), C(overcommit_headroom_pct), C(overcommit_kernel_reserve_pct),
        C(overcommit_admin_reserve_mb), C(overcommit_prefer), C(overcommit_database_peak)), as the role plans.
      - Needs O(hosts).
    type: str
  from_cache:
    description:
      - With O(results_var), build every row from the hosts' cached facts only, ignoring their results.
    type: bool
    default: false
  formats:
    description:
      - Which files to write.
    type: list
    elements: str
    choices: [markdown, html, json, csv]
    default: [markdown, html, json, csv]
attributes:
  check_mode:
    support: full
    details: Reports which files would change and writes nothing.
  diff_mode:
    support: none
    details: The reports are whole pages; RV(changed_files) says which ones changed.
  platform:
    support: full
    platforms: posix
    details: Writes on the controller, whatever the task's host.
seealso:
  - plugin: dbfleet.memory.fleet_report
    plugin_type: filter
  - plugin: dbfleet.memory.audit_row
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read every host (read-only)
  dbfleet.memory.overcommit_info:
    profile: "{{ overcommit_profile | default(['generic']) }}"
    facts: true
  ignore_unreachable: true
  ignore_errors: true
  register: info

- name: Write report.md, report.html, report.json and report.csv
  dbfleet.memory.audit_report:
    dest: ./overcommit-audit
    results_var: info
    hosts: "{{ ansible_play_hosts_all }}"
    generated_at: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%SZ') }}"
  run_once: true
  register: overcommit_audit_report

- name: Only the HTML page
  dbfleet.memory.audit_report:
    dest: /srv/www/overcommit
    rows: "{{ rows }}"
    formats: [html]
  run_once: true
"""

RETURN = r"""
dest:
  description: The directory the files are in.
  returned: success
  type: str
  sample: /home/ops/overcommit-audit
files:
  description: Every report file, in the order markdown, html, json, csv (those asked for).
  returned: success
  type: list
  elements: str
  sample: [/home/ops/overcommit-audit/report.md, /home/ops/overcommit-audit/report.html]
changed_files:
  description: The files whose content was replaced (in check mode, would be).
  returned: success
  type: list
  elements: str
  sample: [/home/ops/overcommit-audit/report.md]
markdown:
  description: The report as Markdown, also when O(formats) leaves out the Markdown file, so a play can show it.
  returned: success
  type: str
"""
