# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's overcommit verdict as a Prometheus textfile, for node_exporter's textfile collector.

Between runs of the role or the audit, Prometheus watches the host: node_exporter already exports the live
``node_memory_CommitLimit_bytes``, ``node_memory_Committed_AS_bytes`` and ``node_vmstat_oom_kill``; this file adds
what only the planner knows (the planned CommitLimit, the lower bound, whether the next boot is safe, whether the
drop-in is in force), so alert rules (prometheus/dbfleet_overcommit_rules.yml) can compare the two on the same
``instance``.

The textfile collector's conventions, and why:

* The file describes the host it lies on, so it carries no host label: node_exporter's scrape adds ``instance``.
* Sizes in bytes and names ending in ``_bytes``, as node_exporter's own; yes/no as 1/0 gauges.
* Text labels (profiles, verdict, the drop-in's path) only on ``dbfleet_overcommit_info``, whose value is 1, so the
  numbers' series stay stable when a label changes.
* Written atomically: the new text goes to a temporary file in the same directory whose name does not end in
  ``.prom`` (the collector reads only ``*.prom``), is flushed to disk, then renamed over the file. A scrape sees the
  old file or the new one, never half of one. A file already holding the same text is left alone (idempotent).

Pure Python, no Ansible import.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host.regular_file import STATUS_ABSENT, read_regular_file

PREFIX = "dbfleet_overcommit_"
SUFFIX = ".prom"
FILE_MODE = 0o644
MAX_BYTES = 1024 * 1024
BYTES_PER_KB = 1024

# name -> help text. Every metric is a gauge; every size is in bytes.
METRICS: Dict[str, str] = {
    "info": "The plan's labels for this host: profiles, verdict, planned mode, the key that sets the limit, the drop-in "
            "and the container kind (empty on a host of its own); the value is always 1.",
    "plan_safe": "1 when the planned CommitLimit lies between the lower and the upper bound (always 1 in mode 1).",
    "planned_mode": "The planned vm.overcommit_memory.",
    "planned_commit_limit_bytes": "The CommitLimit the kernel shows once the plan is applied.",
    "lower_bound_bytes": "The least CommitLimit that still lets a process without CAP_SYS_ADMIN commit the demand "
                         "plus headroom past the admin and user reserves.",
    "upper_bound_bytes": "The most that RAM (less huge pages and the kernel reserve) and swap can back.",
    "workload_commit_bytes": "The expected peak committed memory the plan was made for (the workload_commit_mb option).",
    "database_configured_peak_bytes": "The peak committed memory the databases' own configuration allows; "
                                      "only present when it is known.",
    "next_boot_safe": "1 when the sysctl files as they are now leave no unsafe mode 2 at the next boot or a later "
                      "sysctl --system.",
    "dropin_in_force": "1 when the drop-in holds this plan and no other sysctl file overrides it.",
    "apply_would_change": "1 when applying the plan would change a live value or a file.",
    "apply_refused": "1 when applying the plan would be refused (unsafe plan, or a file that would override it).",
}
# Keys a report may carry that only later work fills in; each becomes its metric only when present.
DATABASE_PEAK_KEY = "database_configured_peak_kb"


class TextfileError(Exception):
    """The textfile cannot be written or replaced; the message names the path and why."""


def _label_value(value: Any) -> str:
    # The exposition format escapes backslash, double quote and line feed in label values.
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, value: Any, labels: Iterable[Tuple[str, Any]] = ()) -> str:
    pairs = ",".join('%s="%s"' % (key, _label_value(label)) for key, label in labels)
    return "%s%s%s %s" % (PREFIX, name, "{%s}" % pairs if pairs else "", value)


def _flag(condition: Any) -> int:
    return 1 if condition else 0


def dropin_path(priority: int) -> str:
    return "/etc/sysctl.d/%02d-dbfleet-overcommit.conf" % priority


def samples(report: Mapping[str, Any], priority: int) -> List[Tuple[str, str]]:
    """(metric name, sample line) for one host, from an overcommit_info result (_overcommit.api.examine)."""
    bounds = report.get("bounds") or {}
    options = report.get("options") or {}
    shadowing = report.get("shadowing") or {}
    shadowed = any(isinstance(entry, Mapping) and entry.get("status") == "shadowed" for entry in shadowing.values())
    info_labels = (
        ("profile", ",".join(report.get("profile") or ())),
        ("verdict", report.get("verdict")),
        ("planned_mode", report.get("mode")),
        ("limit_by", report.get("limit_by") or ""),
        ("dropin", dropin_path(priority)),
        ("container", report.get("container") or ""),
    )
    lines = [
        ("info", _sample("info", 1, info_labels)),
        ("plan_safe", _sample("plan_safe", _flag(report.get("safe")))),
        ("planned_mode", _sample("planned_mode", int(report["mode"]))),
        ("planned_commit_limit_bytes", _sample("planned_commit_limit_bytes", int(report["commit_limit_kb"]) * BYTES_PER_KB)),
        ("lower_bound_bytes", _sample("lower_bound_bytes", int(bounds["lower_kb"]) * BYTES_PER_KB)),
        ("upper_bound_bytes", _sample("upper_bound_bytes", int(bounds["upper_kb"]) * BYTES_PER_KB)),
        ("workload_commit_bytes", _sample("workload_commit_bytes", int(options.get("workload_commit_kb") or 0) * BYTES_PER_KB)),
    ]
    peak_kb = report.get(DATABASE_PEAK_KEY)
    if isinstance(peak_kb, int) and not isinstance(peak_kb, bool) and peak_kb >= 0:
        lines.append(("database_configured_peak_bytes", _sample("database_configured_peak_bytes", peak_kb * BYTES_PER_KB)))
    lines += [
        ("next_boot_safe", _sample("next_boot_safe", _flag(not report.get("boot_now_unsafe")))),
        # The drop-in holds the plan when applying would write, replace or remove no file.
        ("dropin_in_force", _sample("dropin_in_force", _flag(not report.get("files") and not shadowed))),
        ("apply_would_change", _sample("apply_would_change", _flag(report.get("would_change")))),
        ("apply_refused", _sample("apply_refused", _flag(report.get("would_refuse")))),
    ]
    return lines


def render(report: Mapping[str, Any], priority: int) -> str:
    """The textfile: HELP and TYPE once per metric, then its sample, in a fixed order."""
    out: List[str] = []
    for name, line in samples(report, priority):
        out += ["# HELP %s%s %s" % (PREFIX, name, METRICS[name]), "# TYPE %s%s gauge" % (PREFIX, name), line]
    return "\n".join(out) + "\n"


def check_path(path: str) -> Optional[str]:
    """Why ``path`` cannot be a textfile for the collector, or None."""
    if not os.path.isabs(path):
        return "must be an absolute path, got %r" % path
    if not path.endswith(SUFFIX) or os.path.basename(path).startswith("."):
        return "must name a file ending in %s (node_exporter's textfile collector reads no other), got %r" % (SUFFIX, path)
    return None


def current_text(path: str) -> Optional[str]:
    """What the file holds now: None when there is none; TextfileError when something else is there."""
    found = read_regular_file(path, MAX_BYTES)
    if found.status == STATUS_ABSENT:
        return None
    if not found.is_read:
        raise TextfileError("%s: %s; it is left as it is" % (path, found.reason or found.status))
    return found.data.decode("utf-8", "replace")


def write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temporary file in the same directory, fsync, rename)."""
    directory = os.path.dirname(path)
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            raise TextfileError("%s is not a directory" % directory)
    except FileNotFoundError:
        raise TextfileError("the directory %s does not exist (node_exporter's --collector.textfile.directory)" % directory)
    temporary = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # not left to the umask: node_exporter runs as its own user
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise TextfileError("cannot write %s: %s" % (path, exc.strerror or exc))
