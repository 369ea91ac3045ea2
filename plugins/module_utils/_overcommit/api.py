# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overcommit side's one public API: what the modules call, and all they call.

    examine(request)  -> Examination   read-only: the plan, the live and next-boot verdicts, and
                                       what apply() with the same request would do or why it would
                                       refuse (overcommit_info, overcommit_metrics, the audit)
    apply(request)    -> result dict   the locked transaction (the overcommit module)
    databases_reader(run_command)      what both pass to read the host's databases, read-only
                                       through their own clients (the _db layer, imported only
                                       when called)

Both read the host with the same reader and decide with the same ``decide``: what the report says
applying would do is what applying does. The typed Examination is the one source of a report's
numbers; ``result()`` is its JSON form. No Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Refused
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import live
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import keys
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import (
    MeminfoError,
    coerce_meminfo_fields,
    memory_from_fields,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import boot_check as bc
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit import transaction
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.decide import Decision, HostState, Request
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.planner import (
    CommitStateInputError,
    CommitStateVerdict,
    PlanInputError,
    check_commit_state,
    copied_advice_verdict,
)
from ansible_collections.dbfleet.memory.plugins.module_utils._overcommit.options import checked_options

SOURCE_OPTION = "meminfo option"


class ExamineFailed(Exception):
    """The host cannot be examined; ``msg`` says why and ``result`` holds what the module returns with it."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


@dataclass
class Examination:
    """One host, examined with one request, changing nothing."""

    source: str  # where the memory shape came from: the meminfo file, or SOURCE_OPTION
    host: HostState
    decision: Decision  # what apply() with the same request would do, and its refusal if it would refuse
    live_verdict: CommitStateVerdict  # the live values, by the one lower-bound rule
    boot_now: bc.BootCheck  # the next boot (and a later sysctl --system, a tuned restart) with today's files
    ratio100_verdict: Optional[CommitStateVerdict]  # the copied advice (mode 2, ratio 100) on this host, by the same rule

    @property
    def would_refuse(self) -> Optional[str]:
        return self.decision.refusal

    def result(self) -> Dict[str, Any]:
        """The JSON form: the plan's fields at the top (the overcommit_info result's shape)."""
        applied = transaction.report(self.decision, want_diff=False)
        out = dict(self.decision.plan.as_dict()) if self.decision.plan else {}
        out.update(
            changed=False, source=self.source, live_values=applied["live_values"],
            would_change=applied["changed"], would_refuse=self.would_refuse, files=applied["files"],
            live_changes=applied["live_changes"], shadowing=applied["shadowing"],
            container=applied["container"], container_evidence=applied["container_evidence"],
            live_commit_state=self.live_verdict.as_dict(), boot_now=self.boot_now.as_dict(),
            boot_now_unsafe=self.boot_now.unsafe + self.boot_now.unpredictable,
            next_boot=self.host.boot.as_dict(),
            ratio100_commit_state=self.ratio100_verdict.as_dict() if self.ratio100_verdict else None,
            databases=applied.get("databases"),
        )
        demand = self.host.database_demand
        if demand is not None and demand.servers:
            # The sum of the configured peaks of the databases whose peak is known (metrics.DATABASE_PEAK_KEY).
            out["database_configured_peak_kb"] = demand.peaks_kb
        return out


def request_for(params: Mapping[str, Any], state: str = "present", live_mode: str = "auto",
                shadowing: str = "fail") -> Request:
    """The request the modules' shared options (options.SHARED_ARGUMENT_SPEC) in ``params`` make,
    checked before the host is read; ExamineFailed names the option and what is allowed."""
    try:
        options = checked_options(params)
    except PlanInputError as exc:
        raise ExamineFailed(str(exc), option=exc.option)
    return Request(state=state, priority=params["dropin_priority"], options=options, live_mode=live_mode,
                   shadowing=shadowing)


def databases_reader(run_command: Callable[..., Any]) -> transaction.DatabaseReader:
    """A reader of this host's databases for examine() and apply(): _db.host.read_databases with
    ``run_command`` (AnsibleModule.run_command) as the clients' runner. Nothing is imported or run
    until the reader is called."""
    def read() -> Any:
        from ansible_collections.dbfleet.memory.plugins.module_utils._db.host import read_databases
        from ansible_collections.dbfleet.memory.plugins.module_utils._host import files

        # handle_exceptions=False: a client that is not installed is a reading failure, not fail_json.
        return read_databases(files.host_path, lambda argv: run_command(list(argv), handle_exceptions=False))
    return read


def examine(request: Request, meminfo_path: str = "/proc/meminfo",
            meminfo: Optional[Mapping[str, Any]] = None,
            read_databases: Optional[transaction.DatabaseReader] = None) -> Examination:
    """Read the host (``meminfo``, fields in kB, stands in for its memory for what-if plans) and
    decide what ``request`` would do there. Changes nothing; takes no lock (it writes nothing).
    ``read_databases`` (databases_reader) reads the host's databases too. Raises ExamineFailed,
    naming the problem."""
    source = meminfo_path
    try:
        host = transaction.read_host(meminfo_path=meminfo_path if meminfo is None else "/proc/meminfo",
                                     read_databases=read_databases)
        if meminfo is not None:
            source = SOURCE_OPTION
            host.memory = memory_from_fields(coerce_meminfo_fields(meminfo), page_size_kb=live.page_size_kb())
            # A saved shape is not this host: its next boot is judged with that shape's own memory.
            host.boot = replace(host.boot, memory=None)
        decision = transaction.decide_or_refuse(request, host)
        live_now = bc.full_state(host.live)
        live_verdict = check_commit_state(host.memory, live_now, decision.options)
        boot_now = bc.check_boot(host.sources, (), None, live_now, host.memory, decision.options, host.boot)
    except MeminfoError as exc:
        raise ExamineFailed("meminfo: %s" % exc)
    except CommitStateInputError as exc:
        raise ExamineFailed("cannot judge this host's commit state: %s" % exc)
    except Refused as exc:
        raise ExamineFailed(exc.msg, **exc.result)
    return Examination(source, host, decision, live_verdict, boot_now, ratio100_verdict(host, decision))


def ratio100_verdict(host: HostState, decision: Decision) -> Optional[CommitStateVerdict]:
    """The advice copied from blog posts (mode 2, ratio 100) on this host, with its live admin reserve."""
    admin_reserve = host.live.get(keys.ADMIN_RESERVE)
    if admin_reserve is None:
        return None
    return copied_advice_verdict(host.memory, int(admin_reserve), decision.options)


def apply(request: Request, check_mode: bool, want_diff: bool, lock_timeout_s: float,
          warn: Callable[[str], None], read_databases: Optional[transaction.DatabaseReader] = None) -> Dict[str, Any]:
    """The overcommit module's whole run. Raises files.Refused, files.Failed or lock.LockError."""
    return transaction.run(request, check_mode=check_mode, want_diff=want_diff, lock_timeout_s=lock_timeout_s,
                           warn=warn, read_databases=read_databases)


__all__: List[str] = ["Examination", "ExamineFailed", "Request", "request_for", "examine", "apply",
                      "databases_reader"]
