"""Start and stop the stack's processes, and wait for them to be really ready.

Every process is started in its own session (so its process group id equals its pid) and its
pid is written to ``<state>/pids/<name>.pid``. Stopping signals exactly that group: MLflow's
server forks a job runner and huey consumers, which must go with it, and nothing that this
module did not start is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
import ssl


class StackError(RuntimeError):
    """A component did not come up; the message names it and points at its log."""


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    log: Path


def _pid_file(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


def start(
    name: str,
    argv: Sequence[str],
    *,
    state: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start ``argv`` in a new session, logging to ``<state>/logs/<name>.log``."""
    (state / "pids").mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log = state / "logs" / f"{name}.log"
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _pid_file(state, name).write_text(f"{proc.pid}\n")
    return Proc(name=name, pid=proc.pid, log=log)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def running(state: Path, name: str) -> int | None:
    """The pid recorded for ``name`` if that process is still alive."""
    path = _pid_file(state, name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    return pid if alive(pid) else None


def stop(state: Path, name: str, *, timeout: float = 15.0) -> bool:
    """SIGTERM the process group we started as ``name``; SIGKILL it after ``timeout``."""
    path = _pid_file(state, name)
    if not path.exists():
        return False
    pid = int(path.read_text().strip())
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Children of the group (MLflow's workers) may outlive the leader: sweep the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True


def log_tail(log: Path, lines: int = 25) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    proc: Proc | None = None,
    interval: float = 0.25,
) -> float:
    """Poll ``check`` until it is true; return the seconds it took.

    Raises :class:`StackError` naming ``what`` (with the process log's tail) on timeout or
    when ``proc`` died, so a failed start-up says which component failed and why.
    """
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - started
        if proc is not None and not alive(proc.pid):
            raise StackError(
                f"{what}: process {proc.name} (pid {proc.pid}) exited during start-up; "
                f"log {proc.log}:\n{log_tail(proc.log)}"
            )
        if time.monotonic() - started > timeout:
            tail = f"; log {proc.log}:\n{log_tail(proc.log)}" if proc else ""
            raise StackError(f"{what}: not ready after {timeout:.0f}s{tail}")
        time.sleep(interval)


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def http_ok(url: str, *, context: ssl.SSLContext | None = None, body: str | None = None) -> bool:
    """True when ``url`` answers 200 (and contains ``body`` if given)."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            text = resp.read().decode(errors="replace")
            return resp.status == 200 and (body is None or body in text)
    except (urllib.error.URLError, OSError):
        return False
