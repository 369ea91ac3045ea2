"""The lab's network, and what keeps it healthy.

Each lab has a network namespace of its own, `dbfleet-lab-<name>`, holding a bridge
(10.213.0.1/24) and one tap per guest; guests are 10.213.0.10, .11, ... and are
reachable only from inside that namespace (every SSH and Ansible call runs under
`ip netns exec`), so labs never collide with each other or with this machine's network.

Bulk TCP into a UML guest stalls unless some offloads are off on the host side of its
links (see OFFLOADS_OFF); the namespace's TCP counters show at once when it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .errors import LabError
from .host import run_host

SUBNET_PREFIX = "10.213.0"  # private to each lab's own netns, so labs never collide
BRIDGE_IP = f"{SUBNET_PREFIX}.1"
FIRST_GUEST_HOST = 10
NETNS_PREFIX = "dbfleet-lab-"

# Offloads the lab switches off on the host side of every tap and on the bridge. With
# them on, bulk TCP into a UML guest (a module upload, a 2 MiB scp) retransmitted 60 %
# of its bytes and stalled for minutes; with them off 0.2 %. (gro=0 on the guest side
# alone did not help.) See tests/lab/README.md, "Network".
OFFLOADS_OFF = ("tso", "gso", "tx", "sg")

# `ethtool -k` names of OFFLOADS_OFF (ethtool -K takes the short ones)
_OFFLOAD_NAMES = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                  "tx": "tx-checksumming", "sg": "scatter-gather"}


def create_network(netns: str, taps: Sequence[str]) -> None:
    """Makes the namespace, its bridge `br0` and the guests' taps on it, all with
    OFFLOADS_OFF switched off."""
    run_host(["ip", "netns", "add", netns])
    batch = ["link set lo up",
             "link add br0 type bridge",
             f"addr add {BRIDGE_IP}/24 dev br0",
             "link set br0 up"]
    for tap in taps:
        batch += [f"tuntap add {tap} mode tap",
                  f"link set {tap} master br0",
                  f"link set {tap} up"]
    run_host(["ip", "-n", netns, "-batch", "-"], input_text="\n".join(batch) + "\n")
    for device in ["br0", *taps]:
        switch_offloads_off(netns, device)


def switch_offloads_off(netns: str, device: str) -> None:
    """Switches OFFLOADS_OFF off on one of the lab's links and checks that they are.
    Done for each tap again once its guest has booted: UML turns checksum offload
    (`tx`) back on when it opens the tap (seen after every boot and power-cycle)."""
    argv = ["ip", "netns", "exec", netns, "ethtool", "-K", device]
    for feature in OFFLOADS_OFF:
        argv += [feature, "off"]
    run_host(argv)
    still_on = offloads_on(netns, device)
    if still_on:
        raise LabError(f"{netns}: {device} still has {', '.join(still_on)} on after ethtool -K")


def offloads_on(netns: str, device: str) -> list[str]:
    """Which of OFFLOADS_OFF are on for a link in netns (by their short names)."""
    shown = run_host(["ip", "netns", "exec", netns, "ethtool", "-k", device]).stdout
    state = dict(line.split(":", 1) for line in shown.splitlines() if ":" in line and not line.startswith("\t"))
    return [short for short in OFFLOADS_OFF
            if state.get(_OFFLOAD_NAMES[short], "").split()[:1] != ["off"]]


@dataclass(frozen=True)
class TcpCounters:
    """TCP segments the lab's namespace sent (its side of every SSH and Ansible
    connection: uploads to guests are its bulk traffic) and the segments it sent again:
    Tcp OutSegs and RetransSegs of /proc/net/snmp in that netns. OutSegs does not
    count retransmissions, so in a storm the rate can pass 100 % (seen: 125-158 %)."""

    out_segs: int
    retrans_segs: int

    def __sub__(self, earlier: "TcpCounters") -> "TcpCounters":
        return TcpCounters(self.out_segs - earlier.out_segs, self.retrans_segs - earlier.retrans_segs)

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retrans_segs / self.out_segs if self.out_segs else 0.0

    def __str__(self) -> str:
        return (f"{self.retrans_segs} TCP segments retransmitted for {self.out_segs} sent"
                f" ({self.retrans_pct:.2f} %)")


def tcp_counters(netns: str) -> TcpCounters:
    """The TCP counters of a network namespace (/proc/net/snmp is per namespace)."""
    snmp = run_host(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"]).stdout
    header, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    tcp = dict(zip(header, map(int, values)))
    return TcpCounters(tcp["OutSegs"], tcp["RetransSegs"])


def list_netns() -> list[str]:
    out = run_host(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
