# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What both roles share: the database profiles, and where our drop-ins sort.

One host variable (``overcommit_profile``) feeds the overcommit and the oom_priority role, so the
profile names live below both. No Ansible import.
"""

from __future__ import annotations

from typing import Dict

# The overcommit mode each database asks for. Redis and Valkey fork for BGSAVE and
# replication and want mode 1; the others want mode 2 with a computed limit.
PROFILE_MODES: Dict[str, int] = {
    "generic": 2,
    "postgresql": 2,
    "mysql": 2,
    "mariadb": 2,
    "oracle": 2,
    "redis": 1,
    "valkey": 1,
}

# Two-digit prefix of a drop-in's name: 10-98 keeps it among the usual NN- names.
DROPIN_PRIORITY_RANGE = (10, 98)
