# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizing from the database: what each database on the host is configured to commit at its peak.

    /proc (procfs)            -> the running servers, and what each commits now (commit charge)
    their own clients         -> their memory settings, read-only (postgresql, mysql, redis)
      through a Runner           (every failure is a ReadFailure that says why, never an exception)
    settings + a Load         -> an Estimate: named terms, each with its one-line formula
    Estimate + room (kB)      -> a FitVerdict: "fits", or "does not fit" with fixes in the
                                 database's own terms (fit)

``host.read_databases(host_path, run)`` is the one call that reads a host; ``fit.judge`` the one
that says whether a database's configured peak fits the room the plan leaves it. The
formulas and their sources are in docs/docsite/rst/guide_sizing.rst; their calibration against
Committed_AS on PostgreSQL 15 and MariaDB 10.11 is there too (make lab-sizing).

Pure, typed Python with no Ansible import. The only module_utils file used is _host.regular_file
(the one rule for reading a host's files without blocking).
"""
