"""Runs inside a lab guest (test code, not product code): the product's boot-memory reader on
the guest's own files, /proc and stat, printed as JSON for the test to compare with the
kernel after the next boot.

  boot_memory_probe.py COLLECTION_ROOT

COLLECTION_ROOT holds ansible_collections/dbfleet/memory/plugins/module_utils/ as the test
uploaded it (the guest has no collection installed), so it goes on sys.path here.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory as bm  # noqa: E402
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import memory_files as bf  # noqa: E402
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel.meminfo import memory_from_meminfo  # noqa: E402


def on_host(path):
    return path


with open("/proc/meminfo") as handle:
    now = memory_from_meminfo(handle.read())
host = bf.read_boot_memory(on_host)
swap = bf.host_boot_swap(host, on_host, now.memtotal_kb)
huge = bf.host_boot_hugetlb(host, None)
print(json.dumps({
    "swap": swap.as_dict(),
    "huge": huge.as_dict(),
    "start": bm.boot_start(now, host.params, host.default_huge_page_kb, host.hugetlb_supported,
                           host.huge_page_sizes_kb or None),
    "next": bm.next_boot_memory(now, swap, huge).as_dict(),
    "hugetlb_supported": host.hugetlb_supported,
    "generators": host.generators,
    "params": host.params,
    "unmodelled": bf.host_unmodelled(host),
}))
