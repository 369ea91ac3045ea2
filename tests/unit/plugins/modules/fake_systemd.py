"""A fake systemd and /proc/PID tree for the oom_priority tests.

Its own small model of systemd, written from systemd.unit(5), not from the module's code:
unit files in /lib/systemd/system, drop-ins from the unit's and its template's .d directories
in /etc, /run and /lib merged by file name (the first directory wins a name) and applied in name
order; the last assignment of a key wins. ``systemctl show`` answers globs with loaded units only,
and an exact name with its unit, alias, or a not-found block, as systemd 252 does. The configured
values change only at ``daemon-reload``. Every command is recorded, so a test can prove that no
unit was ever started, stopped or restarted.
"""

from __future__ import annotations

import fnmatch
import os

PROPS = ("Id", "Names", "LoadState", "ActiveState", "SubState", "Type", "MainPID", "OOMScoreAdjust", "OOMPolicy",
         "ManagedOOMPreference", "FragmentPath", "DropInPaths", "NeedDaemonReload")
DROPIN_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system")

# Debian 12's postgresql-common units, trimmed to what matters here.
DEBIAN_PG_TEMPLATE = """[Unit]
Description=PostgreSQL Cluster %i
[Service]
Type=forking
OOMScoreAdjust=-900
ExecStart=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i start
PIDFile=/run/postgresql/%i.pid
"""
DEBIAN_PG_ONESHOT = "[Unit]\nDescription=PostgreSQL RDBMS\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n"
PGDG_UNIT = """[Service]
Type=notify
OOMScoreAdjust=-1000
Environment=PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj
Environment=PG_OOM_ADJUST_VALUE=0
ExecStart=/usr/pgsql-16/bin/postmaster -D ${PGDATA}
"""
# A distribution unit that runs the postmaster directly (Arch Linux's shape): no pg_ctlcluster.
DIRECT_PG_UNIT = """[Service]
Type=notify
User=postgres
OOMScoreAdjust=-200
ExecStart=/usr/bin/postgres -D ${PGROOT}/data
"""
MARIADB_UNIT = """[Service]
Type=notify
# OOMScoreAdjust=-600
ExecStart=/usr/sbin/mariadbd $MYSQLD_OPTS
"""
PG_ENV = b"PATH=/usr/bin\0PGSYSCONFDIR=/etc/postgresql-common\0PG_OOM_ADJUST_FILE=/proc/self/oom_score_adj\0"
PLAIN_ENV = b"PATH=/usr/bin\0LANG=C.UTF-8\0"


class FakeSystemd:
    def __init__(self, root):
        self.root = root
        self.commands = []
        self.units = {}  # id -> dict(type, main_pid, active, template, aliases)
        self.configured = {}
        self.ignore_dropins = False  # a systemd that does not pick up drop-ins (for the rollback test)
        self.forced = {}  # unit -> OOMScoreAdjust systemd reports whatever the files say (a rule we do not model)
        (root / "run/systemd/system").mkdir(parents=True, exist_ok=True)
        (root / "lib/systemd/system").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)

    # --- building the host ---------------------------------------------------------------------
    def unit_file(self, name, text, where="lib/systemd/system"):
        (self.root / where / name).write_text(text)

    def mask(self, name):
        os.symlink("/dev/null", self.root / "etc/systemd/system" / name)

    def process(self, pid, score, environ=PLAIN_ENV):
        d = self.root / "proc" / str(pid)
        d.mkdir(parents=True, exist_ok=True)
        (d / "oom_score_adj").write_text("%d\n" % score)
        (d / "environ").write_bytes(environ)

    def score(self, pid):
        return int((self.root / "proc" / str(pid) / "oom_score_adj").read_text())

    def load(self, unit_id, main_pid=0, active="active", aliases=(), unit_type=None):
        """A loaded unit (running when main_pid)."""
        template = None
        if "@" in unit_id and not unit_id.split("@", 1)[1].startswith("."):
            template = unit_id.split("@")[0] + "@" + unit_id[unit_id.rfind("."):]
        self.units[unit_id] = dict(main_pid=main_pid, active=active, aliases=tuple(aliases), template=template,
                                   type=unit_type)
        self._reload()

    def oomd(self, active=True):
        self.units["systemd-oomd.service"] = dict(main_pid=55 if active else 0, active="active" if active else "inactive",
                                                  aliases=(), template=None, type="notify")
        self.unit_file("systemd-oomd.service", "[Service]\nType=notify\n")
        self._reload()

    # --- systemd's model ------------------------------------------------------------------------
    def _fragment(self, unit_id, template):
        for d in DROPIN_DIRS + ("/usr/lib/systemd/system",):
            for name in (unit_id, template):
                if name and (self.root / d.lstrip("/") / name).exists():
                    return "%s/%s" % (d, name)
        return ""

    def _dropins(self, unit_id, template):
        chosen = {}
        for name in (template, unit_id):  # the instance's own file of a name replaces the template's
            if not name:
                continue
            seen_here = set()
            for d in DROPIN_DIRS:  # within one unit, the first directory wins a name
                real = self.root / d.lstrip("/") / (name + ".d")
                if not real.is_dir():
                    continue
                for f in sorted(os.listdir(real)):
                    if f.endswith(".conf") and f not in seen_here:
                        seen_here.add(f)
                        chosen[f] = "%s/%s.d/%s" % (d, name, f)
        return [chosen[f] for f in sorted(chosen)]

    def _reload(self):
        for unit_id, u in self.units.items():
            fragment = self._fragment(unit_id, u["template"])
            dropins = [] if self.ignore_dropins else self._dropins(unit_id, u["template"])
            values = {"OOMScoreAdjust": "0", "OOMPolicy": "stop", "ManagedOOMPreference": "none", "Type": "simple"}
            for path in [fragment] + dropins:
                if not path:
                    continue
                section = None
                for line in (self.root / path.lstrip("/")).read_text().splitlines():
                    line = line.strip()
                    if line.startswith("["):
                        section = line
                    elif section == "[Service]" and "=" in line and not line.startswith("#"):
                        key, value = line.split("=", 1)
                        if key in values:
                            values[key] = value
            if u["type"]:
                values["Type"] = u["type"]
            if unit_id in self.forced:
                values["OOMScoreAdjust"] = self.forced[unit_id]
            self.configured[unit_id] = dict(values, FragmentPath=fragment, DropInPaths=" ".join(dropins))

    def _block(self, unit_id):
        u = self.units[unit_id]
        c = self.configured[unit_id]
        values = {"Id": unit_id, "Names": " ".join((unit_id,) + u["aliases"]), "LoadState": "loaded",
                  "ActiveState": u["active"], "SubState": "running" if u["main_pid"] else "dead",
                  "MainPID": str(u["main_pid"]), "NeedDaemonReload": "no"}
        values.update(c)
        return values

    def _missing(self, name):
        masked = os.path.islink(self.root / "etc/systemd/system" / name)
        return {"Id": name, "Names": name, "LoadState": "masked" if masked else "not-found",
                "ActiveState": "inactive", "SubState": "dead", "Type": "", "MainPID": "0", "OOMScoreAdjust": "0",
                "OOMPolicy": "", "ManagedOOMPreference": "none", "FragmentPath": "", "DropInPaths": "",
                "NeedDaemonReload": "no"}

    def _lookup(self, name):
        for unit_id, u in self.units.items():
            if name == unit_id or name in u["aliases"]:
                return unit_id
        # An exact name is loaded from disk on demand (inactive), as systemctl show does.
        if any((self.root / d.lstrip("/") / name).is_file() for d in ("/usr/lib/systemd/system",) + DROPIN_DIRS):
            self.load(name, active="inactive")
            return name
        return None

    # --- systemctl ------------------------------------------------------------------------------
    def run(self, args):
        self.commands.append(list(args))
        if args[0] != "systemctl":
            return 127, "", "not systemctl"
        if args[1:] == ["daemon-reload"]:
            self._reload()
            return 0, "", ""
        if args[1] != "show":
            return 1, "", "the fake refuses %s" % args[1]
        props = [a for a in args if a.startswith("--property=")][0].split("=", 1)[1].split(",")
        names = args[args.index("--") + 1:]
        blocks = []
        for name in names:
            if any(ch in name for ch in "*?["):
                blocks.extend(self._block(i) for i in sorted(self.units) if fnmatch.fnmatchcase(i, name))
            else:
                found = self._lookup(name)
                masked = os.path.islink(self.root / "etc/systemd/system" / name)
                blocks.append(self._missing(name) if found is None or masked else self._block(found))
        text = "\n\n".join("\n".join("%s=%s" % (p, b.get(p, "")) for p in props) for b in blocks)
        return 0, text + ("\n" if text else ""), ""

    def verbs(self):
        return [c[1] for c in self.commands]
