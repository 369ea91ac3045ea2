# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of the OOM priority, read-only: unit files, ``systemctl show``, /proc/PID.

    read_host_units(run, profiles) -> rules.HostUnits   what oom_priority decides on
    describe_host(run)             -> the report of overcommit_info (rules.describe_units)

systemctl is run through ``run`` (AnsibleModule.run_command in the module), and only ever as
``systemctl show`` here. Paths go through ``host_path`` (_host.files, so unit tests use one fake
tree), and every file is read by regular_file's one rule: unit files through their links as
systemd follows them, our own drop-ins never through a link. The writes are transaction.py's;
overcommit_info imports only this file, so an audit compiles neither them nor the lock.
No Ansible import.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._host import container
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.plugins.module_utils._host import regular_file as rf
from ansible_collections.dbfleet.memory.plugins.module_utils._host.files import Refused
from ansible_collections.dbfleet.memory.plugins.module_utils._oom import rules as core

Runner = Callable[[List[str]], Tuple[int, str, str]]
SYSTEMCTL = "systemctl"
_TEXT_CAP_BYTES = 1024 * 1024


def show_command(names: Sequence[str]) -> List[str]:
    return [SYSTEMCTL, "show", "--no-pager", "--property=" + ",".join(core.SHOW_PROPERTIES), "--"] + list(names)


systemd_booted = container.systemd_booted  # one copy of sd_booted(3)


def read_unit_files() -> Dict[str, core.UnitFile]:
    """*.service names in the unit directories; the first directory listing a name wins."""
    out: Dict[str, core.UnitFile] = {}
    for directory in core.UNIT_DIRS:
        try:
            names = sorted(os.listdir(files.host_path(directory)))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".service") or name in out:
                continue
            path = directory + "/" + name
            real = files.host_path(path)
            try:
                masked = (os.path.islink(real) and os.readlink(real) == "/dev/null") or os.stat(real).st_size == 0
            except OSError:
                continue  # a dangling link: systemd ignores it too
            out[name] = core.UnitFile(name, path, masked)
    return out


def _read(path: str) -> rf.FileRead:
    return rf.read_regular_file(files.host_path(path), _TEXT_CAP_BYTES)


def _read_small(path: str) -> Optional[bytes]:
    """A /proc/PID file's bytes (procfs files are regular, size 0), by regular_file's rule; None
    when absent, not a regular file, unreadable or larger than the cap: a cut file could read as
    another value ("OOMScoreAdjust=-1000" cut to "-1", an environment entry cut short)."""
    got = _read(path)
    return got.data if got.is_read else None


def read_unit_text(path: str) -> Optional[str]:
    """A unit file or drop-in as systemd reads it: through its links (Debian links mysql.service
    to mariadb.service), each hop inside the host tree, then by regular_file's rule. None when
    it cannot be read whole; a link to /dev/null (a mask) has no text."""
    final, problem = rf.resolve_links(path, files.host_path)
    if problem is not None or final == rf.DEV_NULL:
        return None
    data = _read_small(final)
    return None if data is None else data.decode("utf-8", "replace")


def read_process(pid: int) -> core.ProcessState:
    score_text = _read_small("/proc/%d/oom_score_adj" % pid)
    environ = _read_small("/proc/%d/environ" % pid)
    try:
        score = int(score_text.decode("ascii").strip()) if score_text is not None else None
    except ValueError:
        score = None
    return core.ProcessState(pid, score, core.parse_environ(environ or b""), readable_environ=environ is not None)


def read_ours() -> Dict[str, str]:
    out: Dict[str, str] = {}
    try:
        dirs = sorted(os.listdir(files.host_path(core.SYSTEMD_ETC)))
    except OSError:
        return out
    for d in dirs:
        if not d.endswith(".d"):
            continue
        try:
            names = sorted(os.listdir(files.host_path("%s/%s" % (core.SYSTEMD_ETC, d))))
        except OSError:
            continue
        for name in names:
            if core.OUR_NAME.match(name):
                path = "%s/%s/%s" % (core.SYSTEMD_ETC, d, name)
                # Ours is a regular file we wrote: never followed through a link, and read whole or
                # refused, since a rollback puts back only what it read.
                got = _read(path)
                if got.status == rf.STATUS_ABSENT:
                    continue
                if not got.is_read or got.data is None:
                    raise Refused(files.own_file_refusal(path, got))
                out[path] = got.data.decode("utf-8", "replace")
    return out


def show_units(run: Runner, names: Sequence[str]) -> Dict[str, core.UnitState]:
    rc, out, err = run(show_command(names))
    if rc != 0:
        raise Refused("Nothing changed: systemctl show failed (rc %d): %s" % (rc, (err or out).strip()))
    units: Dict[str, core.UnitState] = {}
    for props in core.parse_show(out):
        unit = core.unit_from_show(props)
        units.setdefault(unit.unit_id, unit)
    return units


def read_host_units(run: Runner, profiles: Sequence[str], units: Sequence[str] = ()) -> core.HostUnits:
    """Everything decide.decide and rules.describe_units need from this host. Read-only."""
    if not systemd_booted():
        raise Refused("Nothing changed: systemd is not running here (no /run/systemd/system); OOMScoreAdjust= "
                      "drop-ins need systemd as PID 1")
    unit_files = read_unit_files()
    patterns = core.candidate_names(profiles, ())
    names = core.candidate_names(profiles, [u for u in units if not core.is_template(u)])
    # Globs match loaded units only: add the unit files on disk that the patterns name.
    names += [n for n in core.matching_unit_files(patterns, unit_files) if not core.is_template(n) and n not in names]
    shown = show_units(run, [n for n in names if not core.is_template(n)] + [core.OOMD_UNIT])
    oomd = shown.get(core.OOMD_UNIT)
    if core.OOMD_UNIT not in names:
        shown.pop(core.OOMD_UNIT, None)
    processes = {u.main_pid: read_process(u.main_pid) for u in shown.values() if u.running}
    texts: Dict[str, Optional[str]] = {}
    # Unit files found on disk too: a template with no loaded instance is judged by its own text.
    on_disk = [unit_files[n].path for n in core.matching_unit_files(patterns, unit_files)]
    for unit in shown.values():
        for path in (unit.fragment_path,) + unit.dropin_paths + tuple(on_disk):
            if path and path not in texts:
                texts[path] = read_unit_text(path)
    kind, evidence = container.detect()
    return core.HostUnits(units=shown, unit_files=unit_files, processes=processes, ours=read_ours(),
                          file_texts=texts, container=kind, container_evidence=evidence,
                          oomd_active=oomd is not None and oomd.active_state == "active")


def describe_host(run: Runner, profiles: Sequence[str] = core.PROFILES,
                  units: Sequence[str] = ()) -> Dict[str, Any]:
    """For overcommit_info: {"units": describe_units(...), "container": ..., "oomd_active": ...,
    "error": None} or, where systemd is not running or systemctl fails, {"units": [], "error": why}."""
    try:
        host = read_host_units(run, profiles, units)
    except Refused as exc:
        return {"units": [], "container": None, "oomd_active": None, "error": exc.msg.replace("Nothing changed: ", "")}
    return {"units": core.describe_units(host, profiles, units), "container": host.container,
            "oomd_active": host.oomd_active, "error": None}
