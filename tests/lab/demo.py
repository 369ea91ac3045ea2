"""`make demo`: boot a small fleet of real kernels, apply the role over SSH, show before/after.

Three User-mode Linux guests stand in for a fleet: a PostgreSQL host with swap, a
small host without swap and a Redis host. The demo reads each guest's live overcommit
state, applies the role with ansible-playbook over real SSH, reads the state again,
runs the role a second time to show it changes nothing, and tears the fleet down.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from role_runner import run_role  # noqa: E402  (the lab lives beside this file)
from umlab import GuestSpec, Lab, ensure_image  # noqa: E402

from ansible_collections.dbfleet.memory.plugins.module_utils.meminfo import parse_meminfo  # noqa: E402

FLEET = [
    (GuestSpec("pg1", mem_mb=1024, swap_mb=512), "postgresql"),
    (GuestSpec("small1", mem_mb=512), "generic"),
    (GuestSpec("redis1", mem_mb=512), "redis"),
]
STATE_COMMAND = "cat /proc/meminfo; for k in overcommit_memory overcommit_ratio overcommit_kbytes; do echo \"$k: $(cat /proc/sys/vm/$k)\"; done"


@dataclass
class KernelState:
    mode: int
    ratio_pct: int
    kbytes: int
    commit_limit_kb: int
    committed_as_kb: int

    @property
    def limit_text(self) -> str:
        return "kbytes %d" % self.kbytes if self.kbytes else "ratio %d" % self.ratio_pct


def say(message: str) -> None:
    print("[demo %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def read_state(lab: Lab, guest: str) -> KernelState:
    fields = parse_meminfo(lab.run(guest, STATE_COMMAND).stdout)
    return KernelState(mode=fields["overcommit_memory"], ratio_pct=fields["overcommit_ratio"],
                       kbytes=fields["overcommit_kbytes"], commit_limit_kb=fields["CommitLimit"],
                       committed_as_kb=fields["Committed_AS"])


def main() -> int:
    started = time.monotonic()
    say("building or reusing the guest disk image (cached after the first run)")
    ensure_image()
    profiles = {spec.name: profile for spec, profile in FLEET}
    say("booting %d User-mode Linux guests (real, separate kernels): %s" % (
        len(FLEET), ", ".join("%s %d MiB RAM, %s" % (spec.name, spec.mem_mb,
                                                      "%d MiB swap" % spec.swap_mb if spec.swap_mb else "no swap")
                              for spec, _ in FLEET)))
    with Lab([spec for spec, _ in FLEET], name="demo-%d" % (int(time.time()) % 100000)) as lab:
        say("guests answer SSH; boot times: %s" % ", ".join(
            "%s %.1f s" % (name, guest.boot_seconds[-1]) for name, guest in lab.guests.items()))
        lab.write_inventory()
        before = {name: read_state(lab, name) for name in profiles}
        say("applying the role dbfleet.memory.overcommit over SSH (a few seconds per run)")
        first = run_role(lab, lab_profiles=profiles)
        after = {name: read_state(lab, name) for name in profiles}
        say("running the role again: it must change nothing")
        second = run_role(lab, lab_profiles=profiles)

        print()
        header = "%-7s %-10s %-22s %-20s %-25s %-14s %-8s %s" % (
            "host", "profile", "mode", "limit", "CommitLimit kB", "Committed_AS", "verdict", "predicted = kernel")
        print(header)
        print("-" * len(header))
        for name, profile in profiles.items():
            plan = first.results[name].get("dbfleet.memory.overcommit", {}).get("plan") or {}
            b, a = before[name], after[name]
            predicted = plan.get("commit_limit_kb")
            matches = predicted == a.commit_limit_kb   # the kernel's page arithmetic, exactly
            print("%-7s %-10s %-22s %-20s %-25s %-14s %-8s %s" % (
                name, profile, "%d -> %d" % (b.mode, a.mode),
                "%s -> %s" % (b.limit_text, a.limit_text),
                "%d -> %d" % (b.commit_limit_kb, a.commit_limit_kb),
                "%d kB" % a.committed_as_kb, plan.get("verdict", "failed"),
                "yes (%d)" % predicted if matches else "NO (planned %s)" % predicted))
        print()
        stats_first, stats_second = first.stats, second.stats
        for name in profiles:
            print("%-7s first run: changed=%d failed=%d   second run: changed=%d failed=%d" % (
                name, stats_first[name]["changed"], stats_first[name]["failures"],
                stats_second[name]["changed"], stats_second[name]["failures"]))
        ok = all(stats_first[n]["failures"] == 0 and stats_second[n]["changed"] == 0 for n in profiles)
        say("tearing the fleet down")
    say("done in %.0f s: %s" % (time.monotonic() - started,
                                "every host applied, verified and idempotent" if ok else "SOMETHING FAILED (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
