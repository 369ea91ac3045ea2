"""A database stand-in as a systemd unit on a lab guest: memhog.py as nobody, committing its memory
at every start, as a database's buffer pool does. In an unsafe mode 2 it fails at start with ENOMEM;
that is how a test tells that a boot left the database room to start."""

from __future__ import annotations

from helpers import MEMHOG, MIB_KB, expected_commit_limit_kb
from umlab import Lab, LabError

DB_UNIT = "lab-db.service"
READY = "/run/lab-db/ready"   # memhog writes it once every page is committed and touched


def db_unit_text(mb: int) -> str:
    return (f"[Unit]\nDescription=lab database stand-in: commits {mb} MiB at start\n"
            f"[Service]\nUser=nobody\nRuntimeDirectory=lab-db\n"
            f"ExecStart=/usr/bin/python3 {MEMHOG} --mb {mb} --hold --ready {READY}\n"
            "Restart=no\n[Install]\nWantedBy=multi-user.target\n")


def mb_just_over_ratio_50(lab: Lab, host: str, over_mb: int = 16) -> int:
    """A size that makes Committed_AS pass what mode 2 at the kernel's ratio 50 lets non-root commit."""
    meminfo = lab.meminfo(host)
    user_reserve_kb = int(lab.sysctl(host, "vm.user_reserve_kbytes"))
    room_at_ratio_50_kb = expected_commit_limit_kb(meminfo, ratio=50, kbytes=0) - 8192 - user_reserve_kb - 4
    return (room_at_ratio_50_kb - meminfo["Committed_AS"]) // MIB_KB + over_mb


def install(lab: Lab, host: str, mb: int) -> None:
    """The unit, enabled and started; on disk (synced) like any file that was there long before."""
    lab.put(host, f"/etc/systemd/system/{DB_UNIT}", db_unit_text(mb))
    lab.run(host, f"systemctl daemon-reload && systemctl enable --now {DB_UNIT}")
    assert wait_ready(lab, host) == "active"
    lab.run(host, "sync")


def wait_ready(lab: Lab, host: str) -> str:
    """The unit's state once it has committed its memory, or "failed" (ENOMEM at start), or "timeout"."""
    script = (f"for i in $(seq 240); do [ -e {READY} ] && {{ systemctl is-active {DB_UNIT}; exit; }}; "
              f"systemctl -q is-failed {DB_UNIT} && {{ echo failed; exit; }}; sleep 0.25; done; echo timeout")
    return lab.run(host, script, timeout=120).stdout.strip()


def restart(lab: Lab, host: str) -> str:
    """Start it again under the values in force now (it commits its memory anew)."""
    lab.run(host, f"systemctl stop {DB_UNIT}; rm -f {READY}; systemctl start --no-block {DB_UNIT}")
    return wait_ready(lab, host)


def journal(lab: Lab, host: str) -> str:
    return lab.run(host, f"journalctl -q -b -u {DB_UNIT} | tail -5", check=False).stdout


def remove(lab: Lab, host: str, more: str = "") -> None:
    """The unit gone, with whatever else the test planted (``more``: a shell command)."""
    command = f"systemctl disable --now {DB_UNIT}; rm -f /etc/systemd/system/{DB_UNIT}; systemctl daemon-reload"
    command += f"; {more}" if more else ""
    try:
        lab.run(host, command, timeout=60)
    except LabError:
        lab.power_cycle(host)
        lab.run(host, command, timeout=60)
