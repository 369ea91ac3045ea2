# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options of the fleet_report filter and the audit_report action that mean the same in both:
    # both report every host the audit targeted through the same rows_from_dicts and render
    # the same title, so they document these once.
    DOCUMENTATION = r"""
options:
  hosts:
    description:
      - Every host the audit targeted (for example C(ansible_play_hosts_all)). A host without a row is reported
        as failed, so no host is silently dropped.
    type: list
    elements: str
    default: []
  generated_at:
    description:
      - A timestamp or label printed in the report's title.
    type: str
    default: ""
"""
