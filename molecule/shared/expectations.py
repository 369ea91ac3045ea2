"""What verify expects of each memory shape, worked out by hand from its fake /proc/meminfo
(molecule/default/meminfo/): default checks its platforms against it, rollout its hosts of those shapes.

Not computed by calling the planner, so a planner bug cannot hide here. Default
options: kernel_reserve 10 %, admin reserve 128 MiB (131072 kB). upper bound =
(MemTotal - hugetlb) * 90 % + swap; the limit is the largest the kernel can express
at or below it; the kernel computes in 4 kB pages, rounding down.
"""

from __future__ import annotations

import re

MANAGED = ("vm.admin_reserve_kbytes", "vm.overcommit_ratio", "vm.overcommit_kbytes", "vm.overcommit_memory")
PAGE_KB = 4

EXPECT = {
    # 4026540 kB RAM, no swap: upper = 4026540 - 402654 = 3623886.
    # ratio 90: 1006635 pages * 90 // 100 = 905971 pages = 3623884 kB <= upper;
    # ratio 91 would give 3664148 > upper. One ratio step is 40 MB, so ratio.
    "vm-4g-noswap": {"values": {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90",
                                "vm.overcommit_memory": "2"}, "commit_limit_kb": 3623884},
    # 263855652 kB RAM, 8388604 kB swap: reserve 26385565, upper = 237470087 + 8388604 = 245858691.
    # One ratio step is 2.6 GB (> 1 GiB), so kbytes: the largest page multiple with
    # kbytes + swap <= upper is 59367521 pages = 237470084 kB; CommitLimit 245858688.
    "host-256g-swap": {"values": {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_kbytes": "237470084",
                                  "vm.overcommit_memory": "2"}, "commit_limit_kb": 245858688},
    # 65831944 kB RAM of which 41943040 kB huge pages, 2097148 kB swap: non-huge 23888904,
    # upper = 23888904 - 2388890 + 2097148 = 23597162. Non-huge pages 5972226:
    # ratio 90 -> 5375003 pages + 524287 swap pages = 5899290 pages = 23597160 kB.
    "hugepages-64g": {"values": {"vm.admin_reserve_kbytes": "131072", "vm.overcommit_ratio": "90",
                                 "vm.overcommit_memory": "2"}, "commit_limit_kb": 23597160},
    # Redis plans mode 1 only.
    "plain-trixie": {"values": {"vm.overcommit_memory": "1"}, "commit_limit_kb": None},
}
FAILING = ["vm-4g-overcommitted"]
APPLIED = ["plain-bookworm", "plain-trixie", "vm-4g-noswap", "host-256g-swap", "hugepages-64g"]
DROPIN = {"plain-trixie": "/etc/sysctl.d/60-dbfleet-overcommit.conf"}
DEFAULT_DROPIN = "/etc/sysctl.d/90-dbfleet-overcommit.conf"


def container_hosts(names):
    # testinfra's podman backend runs `podman exec` directly: many times faster than
    # going through ansible for every file read, and the instances are podman containers.
    return ["podman://" + n for n in names]


def settings(text):
    """(key, value) pairs of a sysctl file, in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _equals, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def header_numbers(text):
    nums = {}
    for label, key in (("MemTotal", "memtotal_kb"), ("SwapTotal", "swaptotal_kb"), ("hugetlb", "hugetlb_kb"),
                       ("CommitLimit", "commit_limit_kb")):
        m = re.search(r"^#.*\b%s (\d+)" % label, text, re.M)
        nums[key] = int(m.group(1)) if m else None
    m = re.search(r"^#.*upper bound .* (\d+)$", text, re.M)
    nums["upper_kb"] = int(m.group(1)) if m else None
    return nums


def meminfo(host):
    lines = host.file("/proc/meminfo").content_string.splitlines()
    return {parts[0].rstrip(":"): int(parts[1]) for parts in (line.split() for line in lines)}
