"""The CommitLimit formula, checked against a real kernel's /proc/meminfo:
  kbytes = 0: ((MemTotal_pages - hugetlb_pages) * ratio / 100 + swap_pages) * 4 kB
  kbytes > 0: (kbytes / 4 + swap_pages) * 4 kB      (integer division, 4 KiB pages)
and vm.overcommit_ratio / vm.overcommit_kbytes zero each other when written.
The prediction is the product's (plugins/module_utils/commit_limit.py) and must equal
the kernel's number exactly: the kernel computes it in whole pages, so does the product."""

from __future__ import annotations

import pytest

from helpers import expected_commit_limit_kb, read_overcommit
from umlab import Lab


@pytest.mark.parametrize("name", ["plain", "swap"])
@pytest.mark.parametrize("ratio", [1, 37, 50, 100, 150])
def test_commit_limit_from_ratio(lab: Lab, name: str, ratio: int) -> None:
    lab.run(name, f"sysctl -q -w vm.overcommit_ratio={ratio}")
    meminfo = lab.meminfo(name)
    expected = expected_commit_limit_kb(meminfo, ratio=ratio, kbytes=0)
    print(f"{name}: ratio={ratio} MemTotal={meminfo['MemTotal']} SwapTotal={meminfo['SwapTotal']} "
          f"-> CommitLimit {meminfo['CommitLimit']} kB, predicted {expected} kB")
    assert meminfo["CommitLimit"] == expected
    assert read_overcommit(lab, name)["vm.overcommit_kbytes"] == 0


@pytest.mark.parametrize("name", ["plain", "swap"])
@pytest.mark.parametrize("kbytes", [65536, 100001, 300002])
def test_commit_limit_from_kbytes(lab: Lab, name: str, kbytes: int) -> None:
    lab.run(name, f"sysctl -q -w vm.overcommit_kbytes={kbytes}")
    meminfo = lab.meminfo(name)
    expected = expected_commit_limit_kb(meminfo, ratio=0, kbytes=kbytes)
    print(f"{name}: kbytes={kbytes} SwapTotal={meminfo['SwapTotal']} "
          f"-> CommitLimit {meminfo['CommitLimit']} kB, predicted {expected} kB")
    assert meminfo["CommitLimit"] == expected
    assert read_overcommit(lab, name)["vm.overcommit_ratio"] == 0


def test_ratio_and_kbytes_exclude_each_other(lab: Lab) -> None:
    name = "plain"
    lab.run(name, "sysctl -q -w vm.overcommit_ratio=60")
    lab.run(name, "sysctl -q -w vm.overcommit_kbytes=200000")
    after_kbytes = read_overcommit(lab, name)
    lab.run(name, "sysctl -q -w vm.overcommit_ratio=70")
    after_ratio = read_overcommit(lab, name)
    print(f"after kbytes=200000: {after_kbytes}\nafter ratio=70: {after_ratio}")
    assert (after_kbytes["vm.overcommit_kbytes"], after_kbytes["vm.overcommit_ratio"]) == (200000, 0)
    assert (after_ratio["vm.overcommit_ratio"], after_ratio["vm.overcommit_kbytes"]) == (70, 0)
