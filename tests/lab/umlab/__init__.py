"""umlab: a lab of real, separate Linux kernels - User-mode Linux (UML) guests for tests.

Why UML: `vm.overcommit_*` and the other `vm.*` sysctls are not namespaced, so a
container shares (and a privileged one would change) the host's kernel. Every UML
guest is its own kernel running as ordinary processes on the host, with its own
`mem=`, swap, commit accounting and OOM killer, and it boots systemd in a few
seconds. Nothing here ever writes a `vm.*` sysctl of the host.

Layout of one lab (all removed by `Lab.stop()`):
  - a network namespace `dbfleet-lab-<name>` holding a bridge (10.213.0.1/24) and
    one tap per guest; guests are 10.213.0.10, .11, ... and are reachable only from
    inside that namespace (every SSH/Ansible call runs under `ip netns exec`);
  - a run directory `/run/dbfleet-lab/<name>/` with the lab's SSH key, each guest's
    copy-on-write disk over the shared cached image, swap file, console log, UML
    pid/mconsole files, SSH control sockets, `lab.json` (state for labctl) and the
    Ansible inventory.

Usage:
    with Lab([GuestSpec("db1", mem_mb=512), GuestSpec("db2", 768, swap_mb=256)]) as lab:
        lab.run("db1", "cat /proc/meminfo")
        lab.power_cycle("db2")
        lab.ansible_playbook("site.yml")   # inventory: lab.inventory_path

Import what you use from the package itself, as above. Its modules, each one part of
the lab, from the bottom up:
  errors     LabError, the one exception the lab raises
  timeouts   every deadline of the lab
  uml        a guest's kernel: its command line, its management console, powering it off
  host       commands on this machine under a deadline; check_host
  network    the namespace, bridge and taps; offloads; TCP counters
  disks      the cached guest images (image/build-image.sh) and swap files
  guests     GuestSpec (what a test asks for) and Guest (one guest of a running lab)
  ssh        SSH options, the guest shell that survives a failing fork(), control masters
  rundir     labs on this machine from their run directories: state, stale cleanup, destroy
  teardown   guests die with the process that owns their lab
  lab        Lab, which puts them together
"""

from .disks import FLAVOURS, SUITES, ensure_image
from .errors import LabError
from .guests import Guest, GuestSpec
from .host import check_host, run_bounded
from .lab import Lab
from .network import TcpCounters, offloads_on, tcp_counters
from .rundir import RUN_ROOT, cleanup_stale, destroy_lab, is_stale, list_labs, read_state
from .ssh import GuestShell
from .uml import pid_alive

__all__ = [
    "FLAVOURS", "RUN_ROOT", "SUITES",
    "Guest", "GuestShell", "GuestSpec", "Lab", "LabError", "TcpCounters",
    "check_host", "cleanup_stale", "destroy_lab", "ensure_image", "is_stale", "list_labs", "offloads_on",
    "pid_alive", "read_state", "run_bounded", "tcp_counters",
]
