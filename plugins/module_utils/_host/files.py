# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One file operation of a transaction, as data: what a run would write or remove, and why.

Shared by the decision (which changes, in which order) and the host I/O (carrying them out
and rolling them back). Pure Python, no Ansible import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional


@dataclass(frozen=True)
class FileChange:
    """One file operation of the transaction: ``after`` None removes the file."""

    path: str
    before: Optional[bytes]
    after: Optional[bytes]
    why: str
    ours: bool = True  # our drop-in (0644 root:root) or another file we edit (keeps its mode and owner)

    @property
    def action(self) -> str:
        return "remove" if self.after is None else ("create" if self.before is None else "update")

    def as_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "action": self.action, "why": self.why}
