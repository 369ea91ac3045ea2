# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # What the overcommit module returns about its apply step.
    DOCUMENTATION = r"""
options: {}
"""

    RETURN = r"""
file_changed:
  description: Whether the drop-in was (or in check mode would be) written, removed, or had its owner or mode fixed.
  returned: always
  type: bool
  sample: true
files:
  description:
    - Every file operation of the run (or in check mode, to be made), in order, as C(path), C(action)
      (V(create), V(update), V(remove)) and C(why).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/sysctl.d/90-dbfleet-overcommit.conf", "action": "create", "why": "the planned drop-in"}]
live_changes:
  description:
    - The live writes done (or in check mode to be done), in the order they were made.
    - Empty when live application is skipped.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "vm.overcommit_ratio", "before": "50", "after": "87"}, {"key": "vm.overcommit_memory", "before": "0", "after": "2"}]
live_applied:
  description: Whether the managed live values now hold what was asked (written now or already equal).
  returned: always
  type: bool
  sample: true
live_skipped_reason:
  description: Why live values were not handled (container, O(live=never), check mode), or null.
  returned: always
  type: str
  sample: "container (podman): vm.* sysctls are not namespaced, a write would change the host kernel"
container:
  description: The container kind detected on the target (for example V(podman), V(docker), V(lxc)), or null.
  returned: always
  type: str
  sample: podman
container_evidence:
  description: The evidence that decided RV(container), or null.
  returned: always
  type: str
  sample: "/run/.containerenv exists"
rollback:
  description:
    - After a failure, whether the rollback brought every live value and file back (C(complete)), what is still
      different from before the run (C(left), read back from the host), and errors met while restoring
      (C(problems)). An incomplete rollback reports C(changed=true).
    - A rollback never restores an unsafe mode 2. If the host was in one before the run, it leaves
      C(vm.overcommit_memory=0) instead and says why in C(unsafe_before) (then C(changed=true) too).
  returned: when the run failed after a change began
  type: dict
  sample: {"complete": true, "left": [], "problems": [], "unsafe_before": null}
shadowing:
  description:
    - Per planned key, after replaying every sysctl file the way each modelled tool version does (systemd-sysctl of
      Debian 12 and 13, procps C(sysctl --system) of Debian 12, 13 and later), at boot and on a later re-run.
    - C(status) is V(ours) (our drop-in decides everywhere), V(agrees) (another file decides somewhere, with the
      same value) or V(shadowed) (the key would end elsewhere); C(message) names the file and line;
      C(by_tool) gives, per tool version and moment, the end C(value), the C(decided_by) file and line, and C(ours).
    - Empty for O(state=absent).
  returned: always
  type: dict
  sample:
    vm.overcommit_memory:
      status: shadowed
      message: "vm.overcommit_memory = 2 in /etc/sysctl.d/90-dbfleet-overcommit.conf is overridden: ..."
      by_tool:
        procps-4.0.2 boot: {"value": "0", "decided_by": "/etc/sysctl.d/99-zz-tuning.conf:1", "ours": false}
boot:
  description:
    - The replay behind RV(shadowing), for the files as they will be after the run, per tool version and moment
      (C(boot) from a fresh kernel, C(rerun) from the live values the run leaves), with the C(end) values of the
      managed keys and the C(problems) the tool would report.
  returned: always
  type: dict
live_values:
  description: The managed live values read from C(/proc/sys/vm) at the end of the run.
  returned: always
  type: dict
  sample: {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87", "vm.overcommit_kbytes": "0", "vm.admin_reserve_kbytes": "131072"}
commit_limit_kb:
  description: C(CommitLimit) read from C(/proc/meminfo) at the end of the run (null if unreadable).
  returned: always
  type: int
  sample: 14562000
target_values:
  description:
    - The values held, in canonical form.
    - For O(state=absent), the values the host was returned to; keys the boot tools disagree about are missing when
      they were left live as they were (a warning says so).
  returned: always
  type: dict
  sample: {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87", "vm.admin_reserve_kbytes": "131072"}
dropin_path:
  description: The drop-in's path.
  returned: always
  type: str
  sample: /etc/sysctl.d/90-dbfleet-overcommit.conf
"""
