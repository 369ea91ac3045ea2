"""Every deadline of the lab, in one place.

Every call that talks to a guest has a deadline and ends in a LabError naming the
guest, the command and the time: a stalled connection must fail a test, not hang it.
tests/lab/README.md ("Fragile spots") says how these compare with measured calls.
"""

from __future__ import annotations

import os

BOOT_TIMEOUT_S = float(os.environ.get("DBFLEET_LAB_BOOT_TIMEOUT", "120"))
SHUTDOWN_TIMEOUT_S = 60.0
SSH_COMMAND_TIMEOUT_S = 60.0     # Lab.run default; commands take 0.1-0.2 s over the master
SSH_PROBE_TIMEOUT_S = 10.0       # one "is sshd up" probe while booting
SHELL_OPEN_TIMEOUT_S = 60.0      # GuestShell: a full login plus a first answer
SHELL_COMMAND_TIMEOUT_S = 30.0   # GuestShell.run default
HOST_COMMAND_TIMEOUT_S = 60.0    # ip, ethtool, mkswap, ssh -O exit on this machine
ANSIBLE_TASK_TIMEOUT_S = 90      # ansible's own per-task limit; a role run takes 3-8 s
PLAYBOOK_TIMEOUT_S = 180.0       # the whole ansible-playbook process, killed with its workers
