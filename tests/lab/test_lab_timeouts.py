"""Every call into a guest ends within its deadline, with an error that names the
guest, the command and the time: a stalled connection fails a test, it never hangs
the suite (one `make test` once waited ~5 minutes on a role run)."""

from __future__ import annotations

import time

import pytest

from umlab import Lab, LabError, pid_alive, run_bounded


def test_a_hung_command_is_killed_with_its_children_and_named(tmp_path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(LabError) as failure:
        run_bounded(["sh", "-c", f"sleep 60 & echo $! >{pid_file}; echo partial; wait"],
                    timeout_s=1, what="host: a stuck pipeline")
    assert time.monotonic() - started < 5
    assert "host: a stuck pipeline" in str(failure.value) and "1 s" in str(failure.value)
    assert "partial" in str(failure.value)   # what it printed before it hung
    time.sleep(0.2)
    assert not pid_alive(int(pid_file.read_text())), "the background child outlived the timeout"


def test_a_hung_ssh_command_becomes_a_lab_error_and_the_guest_stays_usable(lab: Lab) -> None:
    started = time.monotonic()
    with pytest.raises(LabError) as failure:
        lab.run("plain", "sleep 60", timeout=3)
    seconds = time.monotonic() - started
    print(f"after {seconds:.1f} s: {str(failure.value).splitlines()[0]}")
    assert seconds < 10
    assert "plain" in str(failure.value) and "sleep 60" in str(failure.value) and "3 s" in str(failure.value)
    assert lab.run("plain", "echo still-here; pkill -x sleep || true", timeout=30).stdout.strip() == "still-here"


def test_a_hung_line_in_a_guest_shell_becomes_a_lab_error(lab: Lab) -> None:
    with lab.open_shell("plain") as shell:
        started = time.monotonic()
        with pytest.raises(LabError) as failure:
            shell.run("sleep 60", timeout=2)
        assert time.monotonic() - started < 6
    assert "plain" in str(failure.value) and "sleep 60" in str(failure.value) and "2 s" in str(failure.value)


HANGING_PLAY = """\
- hosts: plain
  gather_facts: false
  tasks:
    - name: A module run that does not come back
      ansible.builtin.command: sleep 120
"""


def test_a_hung_module_run_fails_by_ansibles_task_timeout(lab: Lab) -> None:
    playbook = lab.dir / "hang.yml"
    playbook.write_text(HANGING_PLAY)
    started = time.monotonic()
    proc = lab.ansible_playbook(playbook, env={"ANSIBLE_TASK_TIMEOUT": "5"}, timeout=90)
    seconds = time.monotonic() - started
    print(f"ansible-playbook ended after {seconds:.1f} s with rc {proc.returncode}")
    lab.run("plain", "pkill -x sleep || true")
    assert proc.returncode != 0 and seconds < 60
    assert "Timed out after 5 second" in proc.stdout, proc.stdout


def test_a_hung_playbook_is_killed_at_its_deadline(lab: Lab) -> None:
    playbook = lab.dir / "hang.yml"
    playbook.write_text(HANGING_PLAY)
    started = time.monotonic()
    try:
        with pytest.raises(LabError) as failure:
            lab.ansible_playbook(playbook, timeout=10)
        seconds = time.monotonic() - started
        print(f"after {seconds:.1f} s: {str(failure.value).splitlines()[0]}")
        assert seconds < 25
        assert "ansible-playbook hang.yml" in str(failure.value) and "10 s" in str(failure.value)
    finally:
        lab.run("plain", "pkill -x sleep || true")   # the guest side of the killed connection
