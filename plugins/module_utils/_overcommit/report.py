# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only report on one host: its plan, its live and next-boot state, and what applying would do.

What the overcommit_info module returns, and what the overcommit_metrics module writes for node_exporter:
both read the host through this one function, so the textfile says exactly what overcommit_info would.
Pure Python, no Ansible import (the module passes its run_command in).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Mapping, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import transaction as txn
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import boot_check
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import transaction as oom_host
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import (
    MeminfoError,
    coerce_meminfo_fields,
    memory_from_fields,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import checked_options
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    CommitStateInputError,
    PlanInputError,
    check_commit_state,
)

SOURCE_OPTION = "meminfo option"


class ReportFailed(Exception):
    """The host cannot be reported on; ``msg`` says why and ``result`` holds what the module returns with it."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


@dataclass
class HostReport:
    """The module result (``result``) and what it was made from, for a caller that needs more (the facts)."""

    result: Dict[str, Any]
    host: Any
    live_state: Any
    boot_now: Any


def describe_host(params: Mapping[str, Any], run_command: Callable[..., Any],
                  meminfo_path: str = "/proc/meminfo", meminfo: Optional[Mapping[str, Any]] = None) -> HostReport:
    """Read the host and report on it with the shared options (plan_args.SHARED_ARGUMENT_SPEC) in ``params``.

    ``meminfo`` (fields in kB) stands in for the memory read from ``meminfo_path``, for what-if plans.
    Raises ReportFailed, naming the option or the problem; nothing on the host is changed either way.
    """
    try:
        options = checked_options(params)
    except PlanInputError as exc:
        raise ReportFailed(str(exc), option=exc.option)
    source = meminfo_path
    try:
        host = txn.read_host(meminfo_path=meminfo_path if meminfo is None else "/proc/meminfo")
        if meminfo is not None:
            source = SOURCE_OPTION
            host.memory = memory_from_fields(coerce_meminfo_fields(meminfo), page_size_kb=txn.page_size_kb())
            # A saved shape is not this host: its next boot is judged with that shape's own memory.
            host.boot = replace(host.boot, memory=None)
        # What the overcommit module would do with the same options; "warn" so that every
        # shadowing file is reported instead of stopping at the first refusal.
        request = txn.Request(state="present", priority=params["dropin_priority"], options=options,
                              live_mode="auto", shadowing="warn")
        decision = txn.decide(request, host)
        refusal = decision.refusal
        differences = decision.boot_check.differences if decision.boot_check else []
        if not refusal and differences:
            refusal = "another sysctl file or tuned would override the drop-in: " + " | ".join(differences)
    except MeminfoError as exc:
        raise ReportFailed("meminfo: %s" % exc)
    except CommitStateInputError as exc:
        raise ReportFailed("cannot judge this host's commit state: %s" % exc)
    except txn.Refused as exc:
        raise ReportFailed(exc.msg, **exc.result)
    applied = txn.report(decision, want_diff=False)
    # The host as it is: is it safe now, and what would its next boot leave if we did nothing?
    live_now = boot_check.full_state(host.live)
    try:
        live_state = check_commit_state(host.memory, live_now, decision.options)
        boot_now = boot_check.check_boot(host.sources, (), None, live_now, host.memory, decision.options, host.boot)
    except CommitStateInputError as exc:
        raise ReportFailed("cannot judge this host's commit state: %s" % exc)
    result = dict(decision.plan.as_dict())
    result.update(
        changed=False, source=source, live_values=applied["live_values"],
        would_change=applied["changed"], would_refuse=refusal, files=applied["files"],
        live_changes=applied["live_changes"], shadowing=applied["shadowing"],
        container=applied["container"], container_evidence=applied["container_evidence"],
        live_commit_state=live_state.as_dict(), boot_now=boot_now.as_dict(),
        boot_now_unsafe=boot_now.unsafe + boot_now.unpredictable, next_boot=host.boot.as_dict(),
        # The other half of the defence: which process the OOM killer picks (read-only, systemctl show).
        database_units=oom_host.describe_host(run_command),
    )
    return HostReport(result=result, host=host, live_state=live_state, boot_now=boot_now)
