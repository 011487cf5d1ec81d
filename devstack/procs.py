"""Start and stop the stack's processes, and wait for them to be really ready.

Every process is started in its own session (so its process group id equals its pid) and its
pid is written to ``<state>/pids/<name>.pid``. Stopping signals exactly that group: MLflow's
server forks a job runner and huey consumers, which must go with it, and nothing that this
module did not start is ever touched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A component did not come up; the message names it and points at its log."""


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    log: Path


#: Handles of the processes this interpreter started, kept so they are reaped properly.
_children: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _release_children() -> None:
    """Stack processes outlive the interpreter that started them (`make cluster-up` exits at
    once); tell their handles so, instead of warning about a still-running child."""
    for child in _children.values():
        if child.poll() is None:
            child.returncode = 0


def host_env(*, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment for a stack process, without what would point it elsewhere:
    ``KUBERNETES_SERVICE_*`` (on a CI runner that is itself a pod, Kubernetes clients prefer
    the in-cluster config to KUBECONFIG and would talk to the runner's cluster) and any
    variable starting with one of ``drop``."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("KUBERNETES_SERVICE_", *drop))}


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
    _children[proc.pid] = proc
    _pid_file(state, name).write_text(f"{proc.pid} {_start_ticks(proc.pid)}\n")
    return Proc(name=name, pid=proc.pid, log=log)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22).

    Stored next to the pid so that a pidfile left by an earlier session can never make us
    signal an unrelated process that happens to have been given the same pid since.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def group_members(pgid: int, *, since: int) -> list[int]:
    """Pids in process group ``pgid`` that started at or after tick ``since``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and int(fields[19]) >= since:
            members.append(int(entry.name))
    return members


def _read_pidfile(path: Path) -> tuple[int, int | None] | None:
    """(pid, start ticks) as recorded, or None without a pidfile."""
    if not path.exists():
        return None
    fields = path.read_text().split()
    return int(fields[0]), int(fields[1]) if len(fields) > 1 and fields[1] != "None" else None


def _same_process(recorded: tuple[int, int | None] | None) -> int | None:
    """The recorded pid if that very process (same start time) still exists."""
    if recorded is None:
        return None
    pid, ticks = recorded
    return pid if ticks is not None and alive(pid) and _start_ticks(pid) == ticks else None


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
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
    return _same_process(_read_pidfile(_pid_file(state, name)))


def stop(state: Path, name: str, *, timeout: float = 15.0) -> bool:
    """SIGTERM the process group we started as ``name``; SIGKILL it after ``timeout``."""
    path = _pid_file(state, name)
    recorded = _read_pidfile(path)
    if recorded is None:
        return False
    pid = _same_process(recorded)
    path.unlink()
    if pid is None:
        # The leader is gone. Its children may live on in its group: if no process owns the
        # pid at all, a group with that id can only be the one our leader created (Linux does
        # not hand out a pid that is still in use as a process-group id). If the pid is alive
        # with another start time, it belongs to a stranger and nothing is signalled.
        leader, ticks = recorded
        if ticks is not None and not alive(leader):
            for member in group_members(leader, since=ticks):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Children of the group (MLflow's uvicorn worker) may outlive the leader: sweep the
    # group, which is ours because the leader was started with its own session.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
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
