"""Run a module's main() in-process the way Ansible would, and return its result."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dbfleet.memory.plugins.module_utils._kernel import live
from ansible_collections.dbfleet.memory.plugins.module_utils._host import files
from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_kernel import BOOT, DEBIAN_SYSCTL_CONF, USER_RESERVE_KB, FakeKernel, plant_systemd_host


# Result keys ansible-core's exit_json/fail_json act on: it stats the file a "path" or "dest" names
# (add_path_info) after our host lock is released, when another run may be changing it.
KEYS_ANSIBLE_READS_FROM_THE_HOST = {"path", "dest"}


@pytest.fixture
def run_module(capsys):
    """run_module(main, args) -> (failed, result_dict)."""

    def run(main, args):
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exited:
                main()
        result = json.loads(capsys.readouterr().out)
        failed = exited.value.code != 0
        assert failed == bool(result.get("failed")), "exit code and 'failed' disagree"
        assert not KEYS_ANSIBLE_READS_FROM_THE_HOST & set(result), sorted(result)
        return failed, result

    return run


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path, real_write_live=live.write_live)
    k.vm.mkdir(parents=True)
    for name, value in BOOT.items():
        k.set(name, value)
    k.set("user_reserve_kbytes", USER_RESERVE_KB)
    k.update_meminfo()
    for d in ("etc/sysctl.d", "usr/lib/sysctl.d", "run"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc" / "sysctl.conf").write_text(DEBIAN_SYSCTL_CONF)
    # A kernel of its own: PID 2 is kthreadd, as in the init PID namespace of a real host.
    for pid, status in (("1", "Name:\tsystemd\nPPid:\t0\nVmSize:\t  22000 kB\n"),
                        ("2", "Name:\tkthreadd\nPPid:\t0\nKthread:\t1\n")):
        (tmp_path / "proc" / pid).mkdir(parents=True)
        (tmp_path / "proc" / pid / "status").write_text(status)
    os.symlink("../sysctl.conf", tmp_path / "etc" / "sysctl.d" / "99-sysctl.conf")
    # A Debian host booted by systemd: its swap file is in /etc/fstab, so the next boot brings back
    # all the swap meminfo shows (fake_kernel.SWAP_KB), and the boot is told to be systemd-sysctl's.
    plant_systemd_host(tmp_path)
    (tmp_path / "usr/lib/sysctl.d/50-pid-max.conf").write_text("kernel.pid_max = 4194304\n")
    monkeypatch.setattr(files, "_ROOT", str(tmp_path))
    monkeypatch.setattr(live, "write_live", k.write)
    monkeypatch.setattr(live, "page_size_kb", lambda: 4)
    # Importing controller code (other tests do) flips warnings to the controller's
    # display; a module run on a target always returns them in its result.
    monkeypatch.setattr(_internal, "is_controller", False)
    # The fake host has no systemd unless the systemd fixture adds one: no test may run a real
    # command on this machine. A module that asks gets what a host without systemctl answers.
    from ansible.module_utils import basic
    monkeypatch.setattr(basic.AnsibleModule, "run_command",
                        lambda self, args, **_kw: (127, "", "systemctl: command not found (fake host)"))
    return k


@pytest.fixture
def systemd(kernel, monkeypatch):
    """A fake systemd and /proc/PID tree in the kernel fixture's root; the module's
    run_command reaches it, and nothing but systemctl show and daemon-reload is ever run."""
    from ansible.module_utils import basic
    from ansible_collections.dbfleet.memory.tests.unit.plugins.modules.fake_systemd import FakeSystemd

    from ansible.module_utils.common import warnings

    # Warnings are process-global in module_utils: one test's must not show in the next one's result.
    monkeypatch.setattr(warnings, "_global_warnings", {})
    fake = FakeSystemd(kernel.root)
    # The databases' clients are not systemd's: they get what a host without them answers.
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **_kw: fake.run(args) if args[0] ==
                        "systemctl" else (127, "", "%s: command not found (fake host)" % args[0]))
    yield fake
    assert set(fake.verbs()) <= {"show", "daemon-reload"}, fake.commands
