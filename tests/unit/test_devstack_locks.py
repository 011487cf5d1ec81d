"""Locks the build takes: one installer at a time across processes, bounded waits that name
the holder of a lock (issue 16).

Real processes hold real POSIX locks here, as apt and dpkg do on their lock files; the
``apt-get`` is a fake on PATH, so nothing is installed on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import locks

REPO = Path(__file__).resolve().parents[2]


#: A fake apt-get on PATH for real processes: logs its start and end, and "installs" fakecmd.
FAKE_APT_GET = """#!/bin/sh
echo "start $$ $*" >> "{log}"
sleep 0.5
case " $* " in *" install "*)
  printf '#!/bin/sh\\n' > "{bin}/fakecmd"; chmod +x "{bin}/fakecmd";;
esac
echo "end $$" >> "{log}"
"""

#: One process that wants fakecmd, through the real debian.ensure and the real locks.
WANTS_FAKECMD = """
import os, sys
sys.path.insert(0, {repo!r})
os.geteuid = lambda: 0
from pathlib import Path
from devstack import debian
found = debian.ensure([debian.Package("fakecmd", "fakepkg", "a test")], say=print,
                      lock=Path({lock!r}), system_locks=[], wait=30)
print("FOUND", found["fakecmd"])
"""


def test_two_processes_install_once_one_after_the_other(tmp_path: Path) -> None:
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET.format(log=log, bin=bin_dir))
    apt_get.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    script = WANTS_FAKECMD.format(repo=str(REPO), lock=str(tmp_path / "apt.lock"))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(f"FOUND {bin_dir / 'fakecmd'}" in out for out in outputs), outputs
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "end", "start", "end"], lines
    assert "update" in lines[0] and "install" in lines[2] and "fakepkg" in lines[2], lines


#: A process that holds a POSIX lock on a file (as apt and dpkg do on theirs) until killed.
HOLDS_LOCK = """
import fcntl, sys, time
f = open(sys.argv[1], "a+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    path = tmp_path / "lock-frontend"
    proc = subprocess.Popen([sys.executable, "-c", HOLDS_LOCK, str(path)], text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield path, proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_holder_names_the_process_that_holds_a_lock(
        held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, proc = held
    who = locks.holder(path)
    assert who is not None and who.pid == proc.pid
    assert who.name == Path(sys.executable).name[:15]
    proc.kill()
    proc.wait()
    assert locks.holder(path) is None


def test_waiting_for_a_held_lock_is_bounded_and_names_the_holder(
        held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, proc = held
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(SystemExit) as timed_out:
        locks.wait_until_free([path], what="Debian's package manager", timeout=0.5,
                              say=said.append, poll=0.05)
    assert time.monotonic() - started < 5
    assert f"process {proc.pid}" in str(timed_out.value) and str(path) in str(timed_out.value)
    assert said and f"process {proc.pid}" in said[0]


def test_a_lock_freed_while_waiting_lets_the_install_go_on(
        held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, proc = held
    threading.Timer(0.3, proc.kill).start()
    locks.wait_until_free([path], what="x", timeout=10, say=lambda _: None, poll=0.05)
    assert locks.holder(path) is None


def test_our_own_lock_names_the_other_process_and_gives_up_in_time(
        held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, proc = held
    with pytest.raises(SystemExit) as timed_out, locks.exclusive(
            path, what="the build", timeout=0.3, say=lambda _: None, poll=0.05):
        pass
    assert f"process {proc.pid}" in str(timed_out.value)
