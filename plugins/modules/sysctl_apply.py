#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysctl_apply
short_description: Apply vm.overcommit_* settings live and as a sysctl.d drop-in, safely
version_added: 0.1.0
description:
  - Holds a set of C(vm.overcommit_*) and C(vm.admin_reserve_kbytes) values in the running kernel and
    in one sysctl.d drop-in file, in a way that cannot lock the host out half-way.
  - Before changing anything it computes, for every managed key, which sysctl file wins after a reboot
    (systemd-sysctl) and under C(sysctl --system) (procps), so a drop-in that another file would silently
    override is reported instead of written.
  - Live values are written first, in the only safe order (entering mode 2 sets the admin reserve, then the
    limit, then the mode; leaving mode 2 sets the mode first), read back and checked against the expected
    C(CommitLimit). The file is written after that, so a value the kernel refuses is never persisted.
  - On any failure the previous live values (in reverse order) and the previous file content or absence are
    restored, then the task fails.
  - Of C(vm.overcommit_ratio) and C(vm.overcommit_kbytes) only the managed one is ever written, because the
    kernel zeroes the other on every write.
  - Writes to C(/proc/sys) are done by the module itself; no C(sysctl) binary is needed on the target.
  - Usually called by the P(dbfleet.memory.overcommit#role) role with the plan of
    M(dbfleet.memory.overcommit_plan).
author:
  - dbfleet maintainers (@dbfleet)
options:
  path:
    description:
      - The drop-in file to manage. Must be a C(.conf) file directly in C(/etc/sysctl.d).
    type: path
    default: /etc/sysctl.d/90-dbfleet-overcommit.conf
  content:
    description:
      - The complete text of the drop-in, rendered on the controller.
      - Must set every key of O(values) exactly once, to the same value, and no other managed key.
      - Required when O(state=present); not allowed when O(state=absent).
    type: str
  values:
    description:
      - The values to hold live, key to value, for example C(vm.overcommit_memory=2).
      - Keys are C(vm.overcommit_memory), C(vm.overcommit_ratio), C(vm.overcommit_kbytes) and
        C(vm.admin_reserve_kbytes); values are non-negative integers.
      - C(vm.overcommit_ratio) and C(vm.overcommit_kbytes) exclude each other, and C(vm.overcommit_kbytes=0)
        is refused because it would make C(CommitLimit) equal to swap alone.
      - Required when O(state=present); not allowed when O(state=absent).
    type: dict
  state:
    description:
      - V(present) writes the values live and the drop-in.
      - V(absent) removes the drop-in and returns the keys it managed to what the remaining sysctl files set,
        or to the kernel defaults (C(overcommit_memory=0), C(overcommit_ratio=50), C(admin_reserve_kbytes=8192)).
        When the drop-in does not exist nothing is touched, so other tooling's live values are left alone.
    type: str
    choices: [present, absent]
    default: present
  live:
    description:
      - V(auto) writes live values except in a container, where C(vm.*) sysctls are not namespaced and a write
        would change the container host's kernel; the result says why live application was skipped.
      - V(always) writes live values even in a container. Only for disposable hosts whose kernel is their own.
      - V(never) manages the file only.
    type: str
    choices: [auto, always, never]
    default: auto
  shadowing:
    description:
      - What to do when another sysctl file would override a managed key after a reboot or C(sysctl --system).
      - V(fail) fails before changing anything, naming the winning file, line and value.
      - V(warn) applies anyway and warns with the same details.
    type: str
    choices: [fail, warn]
    default: fail
  expect_commit_limit_kb:
    description:
      - The C(CommitLimit) (kB) the kernel must show in C(/proc/meminfo) once the live values are in place,
        with a tolerance of one page. A mismatch rolls everything back.
      - Only checked when live values are handled (not in check mode, not when live application is skipped).
    type: int
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Returns details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
    details: The diff shows the drop-in before and after, and the managed live values before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
    details: Linux only; needs C(/proc/sys/vm) and C(/proc/meminfo).
notes:
  - Reading C(/proc/1/environ) for container detection needs root; run with become.
seealso:
  - module: dbfleet.memory.overcommit_plan
  - name: sysctl.d(5)
    description: The systemd rules for which file wins.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Plan the overcommit settings for this host
  dbfleet.memory.overcommit_plan:
    profile: postgresql
  register: plan

- name: Apply them live and in a drop-in
  dbfleet.memory.sysctl_apply:
    path: /etc/sysctl.d/90-dbfleet-overcommit.conf
    content: |
      # Managed by Ansible (dbfleet.memory); do not edit.
      {% for key, value in plan.sysctl | dictsort %}
      {{ key }} = {{ value }}
      {% endfor %}
    values: "{{ plan.sysctl }}"
    expect_commit_limit_kb: "{{ plan.commit_limit_kb }}"

- name: Remove the drop-in and return the live values to what the other files say
  dbfleet.memory.sysctl_apply:
    path: /etc/sysctl.d/90-dbfleet-overcommit.conf
    state: absent
"""

RETURN = r"""
file_changed:
  description: Whether the drop-in was (or in check mode would be) written, removed, or had its owner or mode fixed.
  returned: always
  type: bool
  sample: true
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
shadowing:
  description:
    - Per managed key, the file that wins under each rule (V(systemd) at boot, V(procps) for C(sysctl --system)),
      whether it is ours, and a status V(ours), V(agrees) (another file wins with the same value) or V(shadowed).
    - Empty for O(state=absent).
  returned: always
  type: dict
  sample:
    vm.overcommit_memory:
      status: shadowed
      message: "vm.overcommit_memory = 2 in /etc/sysctl.d/90-dbfleet-overcommit.conf is shadowed: ..."
      systemd: {"path": "/etc/sysctl.d/99-sysctl.conf", "value": "0", "lineno": 3, "ours": false}
      procps: {"path": "/etc/sysctl.conf", "value": "0", "lineno": 3, "ours": false}
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
  description: The values held, in canonical form (for O(state=absent), the values the host was returned to).
  returned: always
  type: dict
  sample: {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "87", "vm.admin_reserve_kbytes": "131072"}
path:
  description: The drop-in path.
  returned: always
  type: str
  sample: /etc/sysctl.d/90-dbfleet-overcommit.conf
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbfleet.memory.plugins.module_utils import container_detect
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_precedence as prec
from ansible_collections.dbfleet.memory.plugins.module_utils import sysctl_writes as sw

# Prefix for every host path the module touches. Unit tests point it at a fake
# tree; it is deliberately not an option, so no play can aim the module elsewhere.
_ROOT = ""

DROPIN_DIR = "/etc/sysctl.d"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*\.conf$")


class ApplyError(Exception):
    """A failure after something may have changed: triggers the rollback."""


def _host(path):
    return _ROOT + path


def _proc_sys(key):
    return _host("/proc/sys/" + key.replace(".", "/"))


def read_live(keys):
    live = {}
    for key in keys:
        try:
            with open(_proc_sys(key)) as f:
                live[key] = sw.canonical(f.read())
        except (OSError, ValueError):
            live[key] = None  # e.g. overcommit_kbytes does not exist before Linux 3.14
    return live


def write_live(key, value):
    # O_TRUNC is ignored by procfs; it keeps a plain-file fake tree honest too.
    fd = os.open(_proc_sys(key), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode("ascii"))
    finally:
        os.close(fd)


def read_commit_limit_kb():
    try:
        with open(_host("/proc/meminfo")) as f:
            for line in f:
                if line.startswith("CommitLimit:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def page_size_kb():
    return os.sysconf("SC_PAGE_SIZE") // 1024


def _read_optional(path, binary=False):
    try:
        with open(_host(path), "rb" if binary else "r") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def detect_container():
    paths = container_detect.EVIDENCE_PATHS
    kind = container_detect.detect_container(
        systemd_container=_read_optional(paths["systemd_container"]),
        containerenv=_read_optional(paths["containerenv"]),
        dockerenv=os.path.lexists(_host(paths["dockerenv"])),
        pid1_environ=_read_optional(paths["pid1_environ"], binary=True),
        pid1_cgroup=_read_optional(paths["pid1_cgroup"]),
    )
    return container_detect.sanitize_kind(kind)


def _read_entry(logical):
    """Text of a sysctl file, prec.MASKED for a /dev/null link, or False if unreadable."""
    real = _host(logical)
    if os.path.islink(real):
        target = os.readlink(real)
        if target == "/dev/null" or os.path.realpath(real) == "/dev/null":
            return prec.MASKED
    try:
        with open(real) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return False  # dangling link or unreadable: neither program applies it


def read_sysctl_files():
    files = {}
    for directory in prec.SYSCTL_DIRS:
        real = _host(directory)
        # On merged-/usr systems /lib is /usr/lib: same files, lower rank, absorbed.
        try:
            names = sorted(os.listdir(real))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".conf") or os.path.isdir(os.path.join(real, name)):
                continue
            entry = _read_entry(directory + "/" + name)
            if entry is not False:
                files[directory + "/" + name] = entry
    conf = _read_entry(prec.SYSCTL_CONF)
    if conf is not False:
        files[prec.SYSCTL_CONF] = conf
    return files


def _file_state(path):
    """(content or None if absent, needs_attr_fix)"""
    real = _host(path)
    if not os.path.lexists(real):
        return None, False
    if os.path.islink(real) or not os.path.isfile(real):
        return False, False
    st = os.stat(real)
    with open(real) as f:
        content = f.read()
    return content, (st.st_mode & 0o7777) != 0o644 or _owner_wrong(st)


def _owner_wrong(st):
    # Unprivileged runs (unit tests as a user) cannot chown; root must own it.
    return os.geteuid() == 0 and (st.st_uid != 0 or st.st_gid != 0)


def write_file(path, content):
    real = _host(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".dbfleet-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
    except Exception:
        os.unlink(tmp)
        raise
    return tmp


def remove_file(path):
    os.unlink(_host(path))


# ---------------------------------------------------------------------------------------------
# Validation: everything is checked before the host is read for writing, so a bad input
# changes nothing.


def _validate(module):
    p = module.params
    errors = []
    path = p["path"]
    if not path.startswith("/") or os.path.normpath(path) != path or os.path.dirname(path) != DROPIN_DIR:
        errors.append("path must be a file directly in %s, got %r" % (DROPIN_DIR, path))
    elif not _NAME.match(os.path.basename(path)):
        errors.append(
            "path must name a '.conf' file (letters, digits, '_.@+-'); systemd-sysctl ignores others, got %r"
            % os.path.basename(path)
        )
    desired = {}
    if p["state"] == "present":
        if p["content"] is None:
            errors.append("content is required with state=present")
        if not p["values"]:
            errors.append("values is required with state=present (a dict of key to integer string)")
        else:
            try:
                desired = sw.validate_desired(p["values"])
            except ValueError as exc:
                errors.append("values: %s" % exc)
        if p["content"] is not None and desired:
            errors.extend(_content_errors(p["content"], desired))
    else:
        for name in ("content", "values", "expect_commit_limit_kb"):
            if p[name] not in (None, {}):
                errors.append("%s is only used with state=present" % name)
    if p["expect_commit_limit_kb"] is not None and p["expect_commit_limit_kb"] <= 0:
        errors.append("expect_commit_limit_kb must be a positive number of kB, got %s" % p["expect_commit_limit_kb"])
    if errors:
        module.fail_json(msg="Invalid arguments, nothing changed: " + "; ".join(errors), errors=errors)
    return desired


def _content_errors(content, desired):
    """The file and the live values must say the same thing, or a reboot changes the host."""
    errors = []
    seen = {}
    for a in prec.parse_sysctl_conf(content, "content"):
        if a.key in sw.MANAGED_KEYS:
            seen.setdefault(a.key, []).append(a)
    for key in sw.MANAGED_KEYS:
        found = seen.get(key, [])
        if key not in desired:
            if found:
                errors.append("content sets %s (line %d) but values does not manage it" % (key, found[0].lineno))
            continue
        if len(found) != 1:
            errors.append("content must set %s exactly once, found %d times" % (key, len(found)))
            continue
        try:
            same = sw.canonical(found[0].value) == desired[key]
        except ValueError:
            same = False
        if not same:
            errors.append(
                "content sets %s = %s (line %d) but values says %s" % (key, found[0].value, found[0].lineno, desired[key])
            )
    return errors


# ---------------------------------------------------------------------------------------------


def _live_diff(live, target_live, keys):
    def render(values):
        return "".join("%s = %s\n" % (k, values.get(k)) for k in keys)

    return {"before_header": "live /proc/sys/vm", "after_header": "live /proc/sys/vm",
            "before": render(live), "after": render(target_live)}


def _rollback(applied, live_snapshot, file_snapshot, path, file_touched):
    """Best effort: put the file and the live values back. Returns problems seen."""
    problems = []
    if file_touched:
        try:
            if file_snapshot is None:
                if os.path.lexists(_host(path)):
                    remove_file(path)
            else:
                tmp = write_file(path, file_snapshot)
                os.rename(tmp, _host(path))
        except OSError as exc:
            problems.append("restoring %s: %s" % (path, exc))
    known = dict((k, v) for k, v in live_snapshot.items() if v is not None)
    for w in sw.rollback_writes(applied, known):
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            problems.append("restoring %s = %s: %s" % (w.key, w.after, exc))
    return problems


def _apply_live(writes, expect_limit_kb, applied):
    """Write in order; ``applied`` collects every write that may have reached the kernel."""
    for w in writes:
        try:
            write_live(w.key, w.after)
        except OSError as exc:
            raise ApplyError("the kernel refused %s = %s: %s" % (w.key, w.after, exc.strerror or exc))
        applied.append(w)
        got = read_live([w.key])[w.key]
        if got != w.after:
            raise ApplyError("%s reads back %s after writing %s" % (w.key, got, w.after))
    if expect_limit_kb is not None:
        got = read_commit_limit_kb()
        if got is None or abs(got - expect_limit_kb) > page_size_kb():
            raise ApplyError(
                "CommitLimit is %s kB after applying, the plan expected %d kB (tolerance one page, %d kB)"
                % (got, expect_limit_kb, page_size_kb())
            )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default=DROPIN_DIR + "/90-dbfleet-overcommit.conf"),
            content=dict(type="str"),
            values=dict(type="dict"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            live=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            shadowing=dict(type="str", default="fail", choices=["fail", "warn"]),
            expect_commit_limit_kb=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    desired = _validate(module)
    p = module.params
    path, state = p["path"], p["state"]

    content = p["content"]
    if content is not None and not content.endswith("\n"):
        content += "\n"

    old_content, attrs_wrong = _file_state(path)
    if old_content is False:
        module.fail_json(msg="%s exists but is not a regular file; refusing to replace it" % path)

    files = read_sysctl_files()
    live = read_live(sw.MANAGED_KEYS)
    container = detect_container()

    shadowing = {}
    if state == "present":
        new_files = dict(files)
        new_files[path] = content
        shadowing = prec.shadowing_report(new_files, path, desired)
        messages = [e["message"] for e in shadowing.values() if e["status"] == "shadowed"]
        if messages and p["shadowing"] == "fail":
            module.fail_json(
                msg="Nothing changed: another sysctl file would override the drop-in. " + " | ".join(messages)
                + ". Remove or change that setting, or pick a later overcommit priority.",
                shadowing=shadowing, container=container, path=path)
        for message in messages:
            module.warn(message)
        target = desired
        file_changed = old_content != content or attrs_wrong
    else:
        managed = []
        if old_content is not None:
            managed = sorted(set(a.key for a in prec.parse_sysctl_conf(old_content, path)) & set(sw.MANAGED_KEYS))
        remaining = dict((k, v) for k, v in files.items() if k != path)
        winners = prec.resolve(remaining, managed)
        # At boot systemd-sysctl decides, so the host returns to what it would boot with.
        target = sw.settle_target(
            dict((k, (w[prec.RULE_SYSTEMD].assignment.value if w[prec.RULE_SYSTEMD].assignment else None))
                 for k, w in winners.items()), managed)
        file_changed = old_content is not None

    skip = None
    if p["live"] == "never":
        skip = "live=never: file only"
    elif container and p["live"] == "auto":
        skip = "container (%s): vm.* sysctls are not namespaced, a write would change the host kernel" % container
    else:
        missing = [k for k in target if live.get(k) is None]
        if missing:
            module.fail_json(msg="Nothing changed: cannot read %s from /proc/sys; is this a Linux kernel that has them?"
                             % ", ".join(missing))

    known_live = dict((k, v) for k, v in live.items() if v is not None)
    writes = [] if skip else sw.plan_writes(known_live, target)
    live_changes = [w.as_dict() for w in writes]
    changed = bool(file_changed or writes)

    result = dict(
        changed=changed, file_changed=bool(file_changed), live_changes=live_changes,
        live_applied=False, live_skipped_reason=skip, container=container, shadowing=shadowing,
        target_values=target, path=path, live_values=live, commit_limit_kb=read_commit_limit_kb(),
    )
    if module._diff:
        new_text = content if state == "present" else None
        result["diff"] = [
            {"before_header": path, "after_header": path,
             "before": old_content or "", "after": new_text or ""},
            _live_diff(live, sw.simulate(known_live, writes), sorted(target)),
        ]
    if module.check_mode:
        if not skip:
            result["live_skipped_reason"] = "check mode"
        module.exit_json(**result)

    applied = []
    file_touched = False
    try:
        if not skip:
            _apply_live(writes, p["expect_commit_limit_kb"], applied)
        if file_changed:
            file_touched = True
            if state == "present":
                tmp = write_file(path, content)
                module.atomic_move(tmp, _host(path))
                os.chmod(_host(path), 0o644)
                if os.geteuid() == 0:
                    os.chown(_host(path), 0, 0)
            else:
                remove_file(path)
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever broke (the kernel, the disk, our own bug), the host must not be left half-changed.
        problems = _rollback(applied, live, old_content, path, file_touched)
        reason = str(exc) if isinstance(exc, ApplyError) else "%s: %s" % (type(exc).__name__, exc)
        msg = "Apply failed, %s: %s" % ("rolled back" if not problems else "ROLLBACK INCOMPLETE", reason)
        if problems:
            msg += "; rollback problems: " + "; ".join(problems)
        result.update(changed=False, live_values=read_live(sw.MANAGED_KEYS), commit_limit_kb=read_commit_limit_kb(),
                      rollback_problems=problems)
        result.pop("diff", None)
        module.fail_json(msg=msg, **result)

    result["live_applied"] = skip is None
    result["live_values"] = read_live(sw.MANAGED_KEYS)
    result["commit_limit_kb"] = read_commit_limit_kb()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
