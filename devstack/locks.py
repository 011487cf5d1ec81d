"""Locks the build takes, and who holds a lock it is waiting for.

Two things on one machine can build at once: the threads of one ``make deps``, and two
processes (two test workers, or ``make demo`` beside ``make test``). They share the cache and
the machine's package manager, so every step that writes a shared place runs under a lock
that both threads and processes respect. Waiting is bounded and says who holds the lock,
because a build that hangs in silence, or dies with a traceback about a lock, tells a new user
nothing.

POSIX record locks (``fcntl``) are used, not ``flock``: they are what apt and dpkg take on
their own lock files, so one ``holder()`` names the process behind either kind, as apt does
("held by process 3343 (apt-get)").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: ``struct flock`` on Linux: l_type, l_whence, l_start, l_len, l_pid (and padding).
_FLOCK = "hhqqi4x"


@dataclass(frozen=True)
class Holder:
    """A process that holds a lock."""

    pid: int
    name: str

    def __str__(self) -> str:
        return f"process {self.pid} ({self.name})" if self.pid > 0 else "another process"


def holder(path: Path) -> Holder | None:
    """Who holds a write lock on ``path`` right now, as the kernel sees it (None: nobody, or no
    such file). A lock held by this very process is not seen: POSIX locks do not conflict with
    their owner. Never ask about a file this process holds a POSIX lock on: closing the extra
    descriptor opened here would release that lock (POSIX semantics)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    if l_type == fcntl.F_UNLCK:
        return None
    return Holder(pid=pid, name=_process_name(pid))


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "gone"


class LockTimeout(SystemExit):
    """A lock stayed held for longer than we wait; the message names the holder."""


#: One attempt: None when the lock is free (or now ours), else the lock file and its holder.
Attempt = Callable[[], "tuple[Path, Holder | None] | None"]


def _wait(attempt: Attempt, *, what: str, timeout: float, say: Callable[[str], None],
          poll: float, every: float, started: float) -> None:
    """Repeat ``attempt`` until it succeeds; say who is in the way every ``every`` seconds and
    give up after ``timeout`` (counted from ``started``) naming the holder."""
    said = -every
    while (blocked := attempt()) is not None:
        path, who = blocked
        waited = time.monotonic() - started
        if waited >= timeout:
            raise LockTimeout(
                f"{what}: {path} is still held by {who or 'another process'} after "
                f"{timeout:.0f} s. Let it finish (or stop it), then run the command again.")
        if waited - said >= every:
            say(f"waiting for {what}: {path} is held by {who or 'another process'} "
                f"({waited:.0f} s of at most {timeout:.0f} s)")
            said = waited
        time.sleep(poll)


def wait_until_free(
    paths: Sequence[Path],
    *,
    what: str,
    timeout: float,
    say: Callable[[str], None],
    poll: float = 1.0,
    every: float = 10.0,
) -> None:
    """Return once nobody holds any of ``paths`` (locks of other programs, which we only
    watch); say who does every ``every`` seconds; give up after ``timeout``."""

    def attempt() -> tuple[Path, Holder | None] | None:
        return next(((p, h) for p in paths if (h := holder(p)) is not None), None)

    _wait(attempt, what=what, timeout=timeout, say=say, poll=poll, every=every,
          started=time.monotonic())


_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def exclusive(
    path: Path,
    *,
    what: str,
    timeout: float,
    say: Callable[[str], None],
    poll: float = 0.5,
    every: float = 10.0,
) -> Iterator[None]:
    """Hold ``path`` against every other thread of this process and every other process.

    POSIX locks belong to a process, so threads are kept apart by a ``threading.Lock`` per
    path first; then the file lock keeps other processes out. Waiting longer than ``timeout``
    raises ``LockTimeout`` naming the holder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_locks_guard:
        local = _thread_locks.setdefault(path.resolve(), threading.Lock())
    started = time.monotonic()
    if not local.acquire(timeout=timeout):
        raise LockTimeout(f"{what}: another thread of this process held {path} for "
                          f"{timeout:.0f} s")
    try:
        with open(path, "a+") as file:

            def attempt() -> tuple[Path, Holder | None] | None:
                try:
                    fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise  # e.g. ENOLCK (NFS without a lock daemon): not someone's lock
                    return path, holder(path)
                return None

            _wait(attempt, what=what, timeout=timeout, say=say, poll=poll, every=every,
                  started=started)
            try:
                yield
            finally:
                fcntl.lockf(file, fcntl.LOCK_UN)
    finally:
        local.release()
