# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every vm.* key this collection reads or writes, and the one spelling of a value it writes.

No Ansible import.
"""

from __future__ import annotations

import re

MODE = "vm.overcommit_memory"
RATIO = "vm.overcommit_ratio"
KBYTES = "vm.overcommit_kbytes"
ADMIN_RESERVE = "vm.admin_reserve_kbytes"
# The keys we write: the mode, one of the ratio/kbytes pair, and the admin reserve.
MANAGED_KEYS = (ADMIN_RESERVE, RATIO, KBYTES, MODE)
# Read, never written: the kernel holds it back from each non-root request in mode 2.
USER_RESERVE = "vm.user_reserve_kbytes"
# Never written either: the huge pages of the default size, which CommitLimit leaves out.
NR_HUGEPAGES = "vm.nr_hugepages"
# What the next boot's lower-bound check needs besides the managed keys: a sysctl file (or
# tuned) that sets one of these changes the boot's CommitLimit or its non-root holdback.
BOOT_MEMORY_KEYS = (USER_RESERVE, NR_HUGEPAGES)
# Every key the boot replay follows.
TRACKED_KEYS = MANAGED_KEYS + BOOT_MEMORY_KEYS

# The one spelling of a number we write and judge: digits only, no sign, blanks or leading zeros.
# The kernel reads other spellings differently ("010" is 8) or refuses them ("087", "+87").
PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
