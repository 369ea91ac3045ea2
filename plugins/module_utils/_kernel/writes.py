# -*- coding: utf-8 -*-
# Copyright: dbfleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order of live writes to /proc/sys/vm, and what "already applied" means.

The one place that knows two kernel facts (mm/util.c, overcommit-accounting.rst):

* Entering mode 2 must set admin_reserve_kbytes, then the limit (ratio or kbytes),
  then the mode: the other way round the host runs for a moment in mode 2 with
  the old, often 50 %, limit and can lock everyone out. Leaving mode 2 sets the
  mode first so the host never runs mode 2 with a half-written limit. Inside
  mode 2 the limit rises before the reserve does and the reserve falls before
  the limit does, so no moment has less room for non-root than both ends.
* overcommit_ratio and overcommit_kbytes exclude each other: writing the ratio
  sets kbytes to 0 and writing kbytes (any value, even 0) sets the ratio to 0.
  So we write only the managed one of the pair, never kbytes=0 (CommitLimit
  would become swap only), and compare only managed keys for idempotence.

Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sysctl_kernel
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.keys import ADMIN_RESERVE, KBYTES, MODE, RATIO

MANAGED_KEYS = sysctl_kernel.MANAGED_KEYS
USER_RESERVE = sysctl_kernel.USER_RESERVE
# Read, never written: what the lower bound holds back, and the huge pages a re-run may change.
OBSERVED_KEYS = MANAGED_KEYS + sysctl_kernel.BOOT_MEMORY_KEYS

STRICT_MODE = "2"


@dataclass(frozen=True)
class Write:
    key: str
    before: Optional[str]
    after: str

    def as_dict(self) -> Dict[str, Optional[str]]:
        return {"key": self.key, "before": self.before, "after": self.after}


def validate_desired(desired: Mapping[str, object]) -> Dict[str, str]:
    """Desired values as we write them, or ValueError saying what is wrong.

    Each value follows _kernel.sysctl.plain_decimal, the one rule: digits as they are, nothing
    reinterpreted ("010" is refused, not written as 10 for the kernel to read 8).
    """
    unknown = sorted(set(desired) - set(MANAGED_KEYS))
    if unknown:
        raise ValueError(
            "unsupported key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(MANAGED_KEYS))
        )
    out: Dict[str, str] = {}
    for key, value in desired.items():
        out[key] = sysctl_kernel.plain_decimal(key, value)
    if MODE in out and out[MODE] not in ("0", "1", "2"):
        raise ValueError("%s must be 0, 1 or 2, got %s" % (MODE, out[MODE]))
    if RATIO in out and KBYTES in out:
        raise ValueError(
            "%s and %s exclude each other (writing one zeroes the other); manage exactly one"
            % (RATIO, KBYTES)
        )
    if out.get(KBYTES) == "0":
        raise ValueError(
            "%s = 0 would make CommitLimit swap only; manage %s instead" % (KBYTES, RATIO)
        )
    return out


def _differs(key: str, live: Mapping[str, str], want: Mapping[str, str]) -> bool:
    if key == RATIO and live.get(KBYTES, "0") != "0":
        # A non-zero kbytes overrides any ratio; only writing the ratio clears it.
        return True
    return live.get(key) != want[key]


# Given a state of the managed keys, what a process without CAP_SYS_ADMIN may commit in mode 2
# (planner.check_commit_state's room_kb): how the order inside mode 2 is chosen.
RoomKb = Callable[[Mapping[str, str]], Optional[int]]


def _writes(live: Mapping[str, str], want: Mapping[str, str], order: List[str]) -> List[Write]:
    return [Write(key, live.get(key), want[key]) for key in order if key in want and _differs(key, live, want)]


def _order(live: Mapping[str, str], want: Mapping[str, str], room_kb: Optional[RoomKb]) -> List[str]:
    leaving_strict = live.get(MODE) == STRICT_MODE and want.get(MODE, STRICT_MODE) != STRICT_MODE
    rest = [ADMIN_RESERVE, RATIO, KBYTES]
    if leaving_strict:
        return [MODE] + rest
    staying_strict = live.get(MODE) == STRICT_MODE and want.get(MODE, STRICT_MODE) == STRICT_MODE
    if staying_strict and room_kb is not None:
        # Inside mode 2 each write is enforced at once. Of the limit and the reserve, the write that
        # leaves non-root processes more room goes first: the limit rises before the reserve does,
        # and the reserve falls before the limit does. The other order passes through a state with
        # less room than either end, where a kill (or a fork) can find new processes refused.
        limit_first = [RATIO, KBYTES, ADMIN_RESERVE]

        def room_after_first(order: List[str]) -> int:
            first = _writes(live, want, order)[:1]
            room = room_kb(simulate(live, first)) if first else None
            return room if room is not None else 0

        if room_after_first(limit_first) > room_after_first(rest):
            return limit_first + [MODE]
    return rest + [MODE]


def plan_writes(live: Mapping[str, str], desired: Mapping[str, object], room_kb: Optional[RoomKb] = None) -> List[Write]:
    """The writes that take ``live`` to ``desired``, in the only safe order.

    ``live`` holds what /proc/sys/vm reads now (canonical strings); ``desired``
    holds only managed keys. Unmanaged keys are never written. Entering mode 2: reserve,
    limit, mode; leaving it: mode first; inside it, with ``room_kb``, the write that gives
    non-root processes more room first.
    """
    want = validate_desired(desired)
    return _writes(live, want, _order(live, want, room_kb))


def limit_key_in_effect(snapshot: Mapping[str, str]) -> str:
    """Which of ratio/kbytes governs CommitLimit in a full live snapshot."""
    return KBYTES if snapshot.get(KBYTES, "0") != "0" else RATIO


def restore_target(snapshot: Mapping[str, str], keys: Optional[List[str]] = None) -> Dict[str, str]:
    """Desired values that bring the host back to ``snapshot``.

    Of the ratio/kbytes pair only the one in effect is restored: restoring the
    other would zero it (the ratio reads 0 while kbytes governs, and kbytes 0
    while the ratio does).
    """
    keys = list(MANAGED_KEYS) if keys is None else keys
    pair = {RATIO, KBYTES}
    limit_key = limit_key_in_effect(snapshot)
    target = {k: snapshot[k] for k in keys if k in snapshot and k not in pair}
    if pair & set(keys) and limit_key in snapshot:
        target[limit_key] = snapshot[limit_key]
    return target


def rollback_writes(applied: List[Write], snapshot: Mapping[str, str]) -> List[Write]:
    """Writes that undo ``applied`` (a prefix of a plan), newest first.

    Reversing a safe forward order is itself safe: entering mode 2 was reserve,
    limit, mode, so undoing it leaves mode 2 first. A pair write is undone by
    restoring whichever of ratio/kbytes governed in ``snapshot`` (see restore_target).
    """
    out: List[Write] = []
    done = set()
    limit_key = limit_key_in_effect(snapshot)
    for w in reversed(applied):
        key = limit_key if w.key in (RATIO, KBYTES) else w.key
        if key in done or snapshot.get(key) is None:
            continue
        done.add(key)
        out.append(Write(key, None, snapshot[key]))
    return out


def simulate(live: Mapping[str, str], writes: List[Write]) -> Dict[str, str]:
    """The live values after ``writes``, through the one model of the kernel's handlers
    (_kernel.sysctl), so the ratio/kbytes side effect lives in one place."""
    state = dict(live)
    for w in writes:
        state.update(sysctl_kernel.kernel_write(state, w.key, w.after).state)
    return state
