#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: overcommit_metrics
short_description: Write a host's overcommit verdict as a Prometheus textfile for node_exporter
version_added: "0.2.0"
description:
  - Reads the host exactly as M(dbfleet.memory.overcommit_info) does, with the same options, and writes what it
    found to O(textfile), in the Prometheus text format that node_exporter's textfile collector serves beside its
    own metrics. Prometheus can then compare the plan with the live C(node_memory_CommitLimit_bytes) between runs.
  - "The metrics (all gauges, sizes in bytes): C(dbfleet_overcommit_info) (value 1; labels C(profile), C(verdict),
    C(planned_mode), C(limit_by), C(dropin), C(container)), C(dbfleet_overcommit_plan_safe),
    C(dbfleet_overcommit_planned_mode), C(dbfleet_overcommit_planned_commit_limit_bytes),
    C(dbfleet_overcommit_lower_bound_bytes), C(dbfleet_overcommit_upper_bound_bytes),
    C(dbfleet_overcommit_workload_commit_bytes), C(dbfleet_overcommit_next_boot_safe) (from RV(boot_now_unsafe)),
    C(dbfleet_overcommit_dropin_in_force), C(dbfleet_overcommit_apply_would_change) and
    C(dbfleet_overcommit_apply_refused). C(dbfleet_overcommit_database_configured_peak_bytes) is written only when
    the report knows the databases' configured peak: the sum of the configured peaks of the host's databases that
    could be read (read-only, as M(dbfleet.memory.overcommit_info) reads them)."
  - The file is replaced atomically (a temporary file in the same directory whose name does not end in C(.prom),
    then a rename), with mode C(0644). A file that already holds the same text is left alone.
  - The file carries no host label; node_exporter's scrape adds C(instance). The alert rules shipped in the
    collection's C(prometheus/) directory join these metrics with node_exporter's on it.
  - The C(dbfleet.memory.overcommit) role runs it after applying when C(overcommit_metrics_textfile) is set, and
    the C(dbfleet.memory.audit) playbook when C(overcommit_audit_textfile) is set.
author:
  - dbfleet maintainers (@dbfleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dbfleet.memory.planner
options:
  textfile:
    description:
      - The file to write, in the directory node_exporter reads with C(--collector.textfile.directory) (Debian's
        C(prometheus-node-exporter) package reads C(/var/lib/prometheus/node-exporter)).
      - Must be an absolute path to a file whose name ends in C(.prom). The directory must exist.
      - A symlink, directory or other non-regular file under that name is left alone and the task fails.
    type: path
    required: true
  dropin_priority:
    description:
      - The priority of the drop-in, as for M(dbfleet.memory.overcommit), to tell whether it is in force.
    type: int
    default: 90
attributes:
  check_mode:
    support: full
    details: Says whether the file would change, and writes nothing.
  diff_mode:
    support: full
    details: Shows the file's text before and after.
  platform:
    support: full
    platforms: [linux]
notes:
  - Needs write access to the textfile directory (usually root, C(become=true)).
  - Reads only; it never changes a sysctl value or file.
seealso:
  - module: dbfleet.memory.overcommit_info
  - ref: ansible_collections.dbfleet.memory.docsite.guide_watching
    description: The metrics, the alert rules, and how node_exporter and Prometheus are set up for them.
"""

EXAMPLES = r"""
- name: Let node_exporter serve this host's overcommit verdict
  dbfleet.memory.overcommit_metrics:
    textfile: /var/lib/prometheus/node-exporter/dbfleet_overcommit.prom
    profile: postgresql
    workload_commit_mb: 49152
  become: true
"""

RETURN = r"""
textfile:
  description: The file written (or in check mode, to be written).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/dbfleet_overcommit.prom
metrics:
  description: The text the file holds after the run (in check mode, would hold).
  returned: always
  type: str
verdict:
  description: The plan's verdict, V(safe) or V(unsafe), as M(dbfleet.memory.overcommit_info) returns it.
  returned: always
  type: str
  sample: safe
boot_now_unsafe:
  description: As M(dbfleet.memory.overcommit_info) returns it; empty when the next boot is safe.
  returned: always
  type: list
  elements: str
report:
  description: Everything M(dbfleet.memory.overcommit_info) returns with the same options, which the metrics come from.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import metrics as textfile
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import api
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import SHARED_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(SHARED_ARGUMENT_SPEC, textfile=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    p = module.params
    problem = textfile.check_path(p["textfile"])
    if problem:
        module.fail_json(msg="textfile: %s" % problem, option="textfile")
    try:
        report = api.examine(api.request_for(p), read_databases=api.databases_reader(module.run_command)).result()
    except api.ExamineFailed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    text = textfile.render(report, p["dropin_priority"])
    try:
        before = textfile.current_text(p["textfile"])
        changed = before != text
        if changed and not module.check_mode:
            textfile.write(p["textfile"], text)
    except textfile.TextfileError as exc:
        module.fail_json(msg="textfile: %s" % exc, option="textfile")
    result = dict(changed=changed, textfile=p["textfile"], metrics=text, verdict=report["verdict"],
                  boot_now_unsafe=report["boot_now_unsafe"], report=report)
    if module._diff:
        result["diff"] = dict(before="" if before is None else before, after=text,
                              before_header=p["textfile"], after_header=p["textfile"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
