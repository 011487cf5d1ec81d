"""The stack's process control stops exactly what it started, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from devstack import procs
from tests.support.wait import eventually


def test_stop_ends_the_whole_group_it_started(tmp_path: Path) -> None:
    proc = procs.start("sleeper", ["bash", "-c", "sleep 300 & sleep 300 & wait"], state=tmp_path)
    eventually(lambda: len(procs.group_members(proc.pid, since=0)) == 3, timeout=5,
               what="leader and two children running")
    assert procs.running(tmp_path, "sleeper") == proc.pid

    assert procs.stop(tmp_path, "sleeper")
    eventually(lambda: not procs.group_members(proc.pid, since=0), timeout=10,
               what="every member of the group gone")
    assert procs.running(tmp_path, "sleeper") is None


def test_orphaned_children_of_a_dead_leader_are_swept(tmp_path: Path) -> None:
    proc = procs.start("sleeper", ["bash", "-c", "sleep 300 & sleep 300 & wait"], state=tmp_path)
    eventually(lambda: len(procs.group_members(proc.pid, since=0)) == 3, timeout=5,
               what="leader and two children running")
    os.kill(proc.pid, signal.SIGKILL)
    eventually(lambda: procs.running(tmp_path, "sleeper") is None, timeout=5,
               what="leader dead")

    procs.stop(tmp_path, "sleeper")
    eventually(lambda: not [p for p in procs.group_members(proc.pid, since=0)
                            if procs.alive(p) and not _zombie(p)],
               timeout=10, what="children swept")


def test_a_pidfile_naming_someone_elses_process_is_never_signalled(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (tmp_path / "pids").mkdir()
        # Same pid, but a start time that is not the stranger's: a stale file from the past.
        (tmp_path / "pids" / "old.pid").write_text(f"{stranger.pid} 1\n")
        assert procs.running(tmp_path, "old") is None
        assert procs.stop(tmp_path, "old") is False
        assert stranger.poll() is None, "the unrelated process must still be running"
    finally:
        stranger.kill()
        stranger.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_component_that_dies_during_start_up_is_named_with_its_log(tmp_path: Path) -> None:
    proc = procs.start("fake-apiserver", ["bash", "-c", "echo 'bind: address in use' >&2; exit 3"],
                       state=tmp_path)
    try:
        procs.wait_until("fake-apiserver /readyz", lambda: False, timeout=10, proc=proc)
    except procs.StackError as exc:
        message = str(exc)
    else:
        raise AssertionError("wait_until returned for a dead process")
    assert "fake-apiserver /readyz" in message
    assert "exited during start-up" in message
    assert "bind: address in use" in message


def test_a_component_that_never_gets_ready_times_out_with_its_name(tmp_path: Path) -> None:
    proc = procs.start("slow", ["sleep", "30"], state=tmp_path)
    try:
        try:
            procs.wait_until("slow /health", lambda: False, timeout=1, proc=proc)
        except procs.StackError as exc:
            assert "slow /health: not ready after 1s" in str(exc)
        else:
            raise AssertionError("wait_until returned although the check never held")
    finally:
        procs.stop(tmp_path, "slow")
