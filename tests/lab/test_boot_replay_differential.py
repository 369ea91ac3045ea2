"""Differential test of the boot replay: prediction (sysctl_replay) against the real tools.

For each case, on a real kernel in a UML guest:

1. plant the case's files (our drop-ins and the odd files around them);
2. read every sysctl file back from the guest as bytes (tar, so FIFOs and links stay what
   they are) and predict the end state with sysctl_replay, with the rule sets of the
   guest's own systemd and procps versions;
3. set the boot's start values, run the guest's real systemd-sysctl, read /proc/sys/vm;
4. set the start values again, run the real ``sysctl --system``, read again;
5. assert prediction == reality for both tools, key by key (and that a predicted hang is a
   real one: the tool is still blocked when `timeout` kills it, and nothing was applied).

The cases cover the rules of issue 8 item 7, the ratio/kbytes pair (item 1) and two of our
drop-ins at different priorities (item 8). It runs on a Debian 12 guest (systemd 252,
procps 4.0.2) and on a Debian 13 guest (systemd 257, procps 4.0.4), both on the lab's kernel.
"""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
import tempfile
from typing import Dict, Tuple

import pytest

from replay_cases import CASES, START, Case, Node
from umlab import Lab

from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_files as sf
from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import sysctl as sk
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_outcome as so
from ansible_collections.dbfleet.memory.plugins.module_utils._boot import sysctl_replay as sr

# A Debian 12 and a Debian 13 guest (conftest.GUESTS): the prediction uses each one's own tool versions.
GUESTS = ("plain", "trixie")
MODE, RATIO, KBYTES, RESERVE = sk.MODE, sk.RATIO, sk.KBYTES, sk.ADMIN_RESERVE
TOOL_TIMEOUT_S = 8


# ---------------------------------------------------------------------------------- guest side


def _sh_node(node: Node) -> str:
    p = shlex.quote(node.path)
    parent = shlex.quote(node.path.rsplit("/", 1)[0] or "/")
    if node.link is not None:
        return "mkdir -p %s && ln -sfn %s %s" % (parent, shlex.quote(node.link), p)
    if node.fifo:
        return "mkdir -p %s && mkfifo %s" % (parent, p)
    if node.directory:
        return "mkdir -p %s" % p
    return "mkdir -p %s && printf %%s %s | base64 -d > %s" % (parent, base64.b64encode(node.data or b"").decode(), p)


# tar keeps FIFOs, devices and links what they are; the read-back never opens them.
READ_BACK = (
    "cd / && tar -cf - $(for p in etc/sysctl.d run/sysctl.d usr/local/lib/sysctl.d usr/lib/sysctl.d lib/sysctl.d "
    "etc/sysctl.conf; do if [ -e $p ] || [ -L $p ]; then echo $p; fi; done) | base64 -w0"
)


def read_back(lab: Lab, name: str, tmp: str) -> Dict[str, sf.SysctlSource]:
    """The guest's sysctl files, as this module reads them on a host."""
    blob = base64.b64decode(lab.run(name, READ_BACK, timeout=60).stdout)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        try:
            tar.extractall(tmp, filter="fully_trusted")  # FIFOs and absolute links as they are
        except TypeError:  # Python without extraction filters
            tar.extractall(tmp)
    return sf.read_sysctl_sources(lambda p: tmp + p)


def read_vm(lab: Lab, name: str) -> Dict[str, str]:
    out = lab.run(name, "cd /proc/sys && for k in %s; do printf '%%s=%%s\\n' $k \"$(cat ${k//.//})\"; done"
                  % " ".join(sk.MANAGED_KEYS)).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def set_start(lab: Lab, name: str) -> None:
    # Mode first (leaving mode 2), then the reserve, then the ratio (which zeroes kbytes).
    lab.run(name, "sysctl -q -w vm.overcommit_memory=%s -w vm.admin_reserve_kbytes=%s -w vm.overcommit_ratio=%s"
            % (START[MODE], START[RESERVE], START[RATIO]))
    assert read_vm(lab, name) == START


def run_tool(lab: Lab, name: str, command: str) -> int:
    """Run a tool with a deadline; its exit status (124: it was still blocked and got killed)."""
    out = lab.run(name, "timeout %d %s >/dev/null 2>&1; echo rc=$?" % (TOOL_TIMEOUT_S, command),
                  timeout=TOOL_TIMEOUT_S + 60, check=False).stdout
    return int(out.strip().rsplit("rc=", 1)[1])


@pytest.fixture(scope="module", params=GUESTS)
def guest(lab: Lab, request):
    """The guest's tool versions and rule sets, and its original sysctl.conf to restore."""
    name = request.param
    systemd_version = lab.run(name, "systemctl --version").stdout.split()[1]
    procps_version = lab.run(name, "sysctl --version").stdout.split()[-1]
    systemd_rules = sr.RULES_BY_NAME.get("systemd-" + systemd_version)
    procps_rules = sr.RULES_BY_NAME.get("procps-" + procps_version)
    if systemd_rules is None or procps_rules is None:
        pytest.fail("no rule set for the guest's systemd %s / procps %s" % (systemd_version, procps_version))
    conf = lab.run(name, "base64 -w0 /etc/sysctl.conf 2>/dev/null || true").stdout.strip()
    link = lab.run(name, "readlink /etc/sysctl.d/99-sysctl.conf || true").stdout.strip()
    sysctl_bin = lab.run(name, "ls /usr/lib/systemd/systemd-sysctl /lib/systemd/systemd-sysctl 2>/dev/null"
                         " | head -1").stdout.strip()
    assert sysctl_bin, "no systemd-sysctl in the guest"
    return {"name": name, "systemd": systemd_rules, "procps": procps_rules, "conf": conf, "link": link,
            "bin": sysctl_bin}


def plant(lab: Lab, case: Case, guest) -> None:
    script = [_sh_node(node) for node in case.nodes]
    if case.sysctl_conf is not None:
        script.append("printf %%s %s | base64 -d > /etc/sysctl.conf" % base64.b64encode(case.sysctl_conf).decode())
    if case.drop_debian_link:
        script.append("rm -f /etc/sysctl.d/99-sysctl.conf")
    lab.run(guest["name"], " && ".join(script))


def unplant(lab: Lab, case: Case, guest) -> None:
    script = ["rm -rf " + " ".join(shlex.quote(n.path) for n in case.nodes)]
    script.append("printf %%s %s | base64 -d > /etc/sysctl.conf" % guest["conf"] if guest["conf"]
                  else "rm -f /etc/sysctl.conf")
    if guest["link"]:
        script.append("ln -sfn %s /etc/sysctl.d/99-sysctl.conf" % shlex.quote(guest["link"]))
    lab.run(guest["name"], " ; ".join(script))


def outcome(rc: int, end: Dict[str, str]) -> Tuple[bool, Dict[str, str]]:
    return rc == 124, end  # timeout(1) says 124 when it had to kill the tool


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_prediction_equals_the_real_tools(lab: Lab, guest, case: Case):
    """Every planted case: sysctl_replay's end state is exactly what the real tools leave."""
    host = guest["name"]
    plant(lab, case, guest)
    try:
        with tempfile.TemporaryDirectory(prefix="replay-lab-") as tmp:
            sources = read_back(lab, host, tmp)
        predicted = {name: sr.replay(sources, guest[name], START) for name in ("systemd", "procps")}

        set_start(lab, host)
        systemd_real = outcome(run_tool(lab, host, guest["bin"]), read_vm(lab, host))
        set_start(lab, host)
        procps_real = outcome(run_tool(lab, host, "sysctl --system"), read_vm(lab, host))
    finally:
        unplant(lab, case, guest)

    report = []
    for name, real in (("systemd", systemd_real), ("procps", procps_real)):
        p = predicted[name]
        print("%s %s %s: predicted %s%s, real %s%s" % (
            host, case.name, p.rules.name, p.end, " (hangs)" if p.hung_on else "", real[1], " (hung)" if real[0] else ""))
        for line in so.diff_end_state(p, dict(real[1].items())):
            report.append(line)
        if (p.hung_on is not None) != real[0]:
            report.append("%s: predicted hang=%s, real hang=%s" % (p.rules.name, p.hung_on, real[0]))
    assert report == [], "prediction differs from the real tool:\n" + "\n".join(report)


# ---------------------------------------------------------------------------------- the kernel alone

KERNEL_GUEST = "plain"  # the kernel is the same for every guest of the lab

# One write(2) of exactly these bytes (what a tool writes: the value and a newline). Mode is
# never set to 2 here: the guest must stay reachable whatever the ratio and kbytes become.
KERNEL_ROWS = [
    (RATIO, b"87\n"), (RATIO, b"  \t87  \n"), (RATIO, b"0 # default\n"), (RATIO, b"87 50\n"),
    (RATIO, b"010\n"), (RATIO, b"08\n"), (RATIO, b"0x1f\n"), (RATIO, b"+87\n"), (RATIO, b"-5\n"),
    (RATIO, b"2147483648\n"), (RATIO, b"0" * 20 + b"1\n"), (RATIO, b"87#x\n"), (RATIO, b"87\r\n"),
    (RATIO, b"\n"), (RATIO, b"87\xa0\n"), (RATIO, b"\xa087\n"),
    (KBYTES, b"0\n"), (KBYTES, b"-0\n"), (KBYTES, b"262144 kB\n"), (KBYTES, b"18446744073709551616\n"),
    (MODE, b"3\n"), (MODE, b"-1\n"), (MODE, b" 1 \n"), (RESERVE, b"0x10000\n"),
]


@pytest.mark.parametrize("key, raw", KERNEL_ROWS, ids=["%s=%r" % (k.split(".")[1], r) for k, r in KERNEL_ROWS])
def test_kernel_model_equals_the_kernel(lab: Lab, key: str, raw: bytes):
    """_kernel.sysctl.kernel_write against one real write(2) to /proc/sys/vm on Linux 6.1:
    whether it is accepted, and all four values afterwards (the pair side effect included)."""
    start = dict(START, **{KBYTES: "262144", RATIO: "0"})  # kbytes in effect: a ratio write visibly zeroes it
    lab.run(KERNEL_GUEST, "sysctl -q -w vm.overcommit_memory=0 -w vm.admin_reserve_kbytes=8192 "
                          "-w vm.overcommit_kbytes=262144")
    before = read_vm(lab, KERNEL_GUEST)
    assert before == start
    out = lab.run(KERNEL_GUEST, "echo %s | base64 -d > /proc/sys/%s; echo rc=$?"
                  % (base64.b64encode(raw).decode(), key.replace(".", "/")), check=False).stdout
    accepted = out.strip().rsplit("rc=", 1)[1] == "0"
    model = sk.kernel_write(before, key, raw)
    assert (model.accepted, model.state) == (accepted, read_vm(lab, KERNEL_GUEST))
