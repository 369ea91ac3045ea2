"""The classic mistake, on a real kernel: a database already commits more than the
new limit allows, then `overcommit_memory=2` with the default ratio 50 is applied
live. CommitLimit drops below Committed_AS and no new process can start: no shell,
no SSH login. Only a root shell opened before (builtins need no fork) can recover."""

from __future__ import annotations

from helpers import MIB_KB, expected_commit_limit_kb, start_holder
from umlab import Lab


def test_mode2_with_ratio_50_locks_out_new_processes(lab: Lab) -> None:
    name = "plain"   # 512 MiB, no swap
    meminfo = lab.meminfo(name)
    holder_mb = meminfo["MemTotal"] * 6 // 10 // MIB_KB      # the "database": 60 % of RAM
    holder = start_holder(lab, name, holder_mb, tag="db")
    committed_kb = lab.meminfo(name)["Committed_AS"]
    limit_at_50_kb = expected_commit_limit_kb(meminfo, ratio=50, kbytes=0)
    print(f"{name}: database stand-in pid {holder.pid} holds {holder_mb} MiB; "
          f"Committed_AS {committed_kb} kB > CommitLimit at ratio 50 {limit_at_50_kb} kB")
    assert committed_kb > limit_at_50_kb, "precondition: the database commits more than ratio 50 allows"

    with lab.open_shell(name) as shell:   # the operator's already-open root shell
        status, out = shell.run("echo 50 >/proc/sys/vm/overcommit_ratio; echo 2 >/proc/sys/vm/overcommit_memory")
        assert status == 0, out

        # 1. Starting any program needs fork(), which must commit memory: refused.
        fork_status, fork_out = shell.run("bash -c true", timeout=120)
        # 2. A new SSH login: sshd cannot fork a session for it.
        login = lab.run(name, "true", new_connection=True, check=False, timeout=60)

        # Recover with builtins only: kill(1) and echo into /proc need no new process.
        status, out = shell.run(f"kill -9 {holder.pid}; echo 0 >/proc/sys/vm/overcommit_memory")
        assert status == 0, out

    print(f"{name}: mode 2 / ratio 50 applied live -> `bash -c true`: status {fork_status}, "
          f"{fork_out.strip()!r}; new SSH login: exit {login.returncode} {login.stderr.strip()!r}")
    assert fork_status != 0 and "Cannot allocate memory" in fork_out
    assert login.returncode != 0, "a new SSH login must fail while Committed_AS > CommitLimit"

    # After recovery the guest works again and the database is gone.
    after = lab.run(name, "echo ok", new_connection=True, timeout=60)
    assert after.stdout.strip() == "ok"
    assert not holder.alive(lab)
    print(f"{name}: recovered from the pre-opened root shell (kill -9 {holder.pid}; mode 0); new logins work")
