"""Guests die with the process that owns their lab.

Every lab started without keep=True (labctl up keeps its lab) is registered here and
stopped at a normal exit (atexit) or on SIGTERM/SIGHUP (a CI job cancelled), so that
guests, the network namespace and the run directory never outlive their owner. SIGINT
needs nothing here: KeyboardInterrupt already unwinds context managers and pytest
fixtures. What a SIGKILL leaves behind, rundir.cleanup_stale removes later.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # only for annotations: lab imports this module
    from .lab import Lab

_LIVE_LABS: set[Lab] = set()
_HANDLERS_INSTALLED = False


def register(lab: Lab) -> None:
    """Stops `lab` when this process ends (once install_handlers has run)."""
    _LIVE_LABS.add(lab)


def unregister(lab: Lab) -> None:
    _LIVE_LABS.discard(lab)


def _stop_live_labs() -> None:
    for lab in list(_LIVE_LABS):
        try:
            lab.stop()
        except Exception as exc:  # teardown must go on for the other labs
            print(f"umlab: teardown of {lab.name} failed: {exc}", file=sys.stderr)


def _on_signal(signum: int, _frame: object) -> None:
    _stop_live_labs()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_handlers() -> None:
    """atexit for normal exits and SIGTERM/SIGHUP (CI cancelling a job) so guests,
    netns and files never outlive the process that owns the lab. SIGINT already
    unwinds context managers and pytest fixtures via KeyboardInterrupt."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    atexit.register(_stop_live_labs)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _on_signal)
    _HANDLERS_INSTALLED = True
