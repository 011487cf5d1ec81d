"""The Debian packages the stack runs: installed in one apt transaction, one installer at a time.

apt and dpkg lock the whole machine, so two ``apt-get`` at once fail ("Could not get lock
/var/lib/dpkg/lock-frontend"). That is how ``make test`` failed on a fresh machine when the
build's threads installed Prometheus and redis each on their own (issue 16). So every package
the stack needs is listed here; the missing ones are installed together, with one
``apt-get update`` and one ``apt-get install``, under a lock that the build's threads and other
processes (two test workers, ``make demo`` beside ``make test``) share. A package lock held by
someone else (unattended upgrades, another terminal) is waited for, for a bounded time, and
the message names who holds it.

The packages' own services are never what we run: the stack starts its own processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack import locks
from devstack.paths import cache_dir


@dataclass(frozen=True)
class Package:
    """A command the stack runs and the Debian package that provides it."""

    command: str
    package: str
    why: str


PACKAGES = (
    Package("prometheus", "prometheus", "the metrics canary analysis reads (one per stack)"),
    Package("redis-server", "redis-server", "Argo CD's cache, in the Argo CD tests"),
    # Debian images often carry it, but nothing promises that: the live view's test needs it.
    Package("tmux", "tmux", "a real terminal for the live view's test (status -w)"),
)

#: The locks apt and dpkg take: ``apt-get update`` the lists lock, ``install`` the other three.
SYSTEM_LOCKS = (
    Path("/var/lib/dpkg/lock-frontend"),
    Path("/var/lib/dpkg/lock"),
    Path("/var/lib/apt/lists/lock"),
    Path("/var/cache/apt/archives/lock"),
)

#: How long a package lock held by someone else is waited for (unattended upgrades can take
#: minutes); ``MODELDEPLOY_APT_LOCK_TIMEOUT`` overrides it.
DEFAULT_TIMEOUT = 600.0

Run = Callable[..., "subprocess.CompletedProcess[str]"]
Which = Callable[[str], "str | None"]


def lock_file() -> Path:
    """Our own lock around installing: kept in the cache, which every build of this user shares."""
    return cache_dir() / "locks" / "apt.lock"


def timeout() -> float:
    return float(os.environ.get("MODELDEPLOY_APT_LOCK_TIMEOUT", DEFAULT_TIMEOUT))


def missing(packages: Sequence[Package], *, which: Which) -> list[Package]:
    """The packages whose command ``which`` does not find."""
    return [p for p in packages if which(p.command) is None]


def ensure(
    packages: Sequence[Package] = PACKAGES,
    *,
    say: Callable[[str], None],
    lock: Path | None = None,
    system_locks: Sequence[Path] = SYSTEM_LOCKS,
    wait: float | None = None,
    run: Run | None = None,
    which: Which | None = None,
) -> dict[str, Path]:
    """Every command of ``packages``, installing the missing packages first, all in one go.

    Checked again under the lock: whoever waited for another installer finds its packages
    there and installs nothing. ``run`` and ``which`` default to ``subprocess.run`` and
    ``shutil.which`` as they are at the time of the call.
    """
    run = run or subprocess.run
    which = which or shutil.which
    if missing(packages, which=which):
        budget = timeout() if wait is None else wait
        with locks.exclusive(lock or lock_file(), what="the Debian package install",
                             timeout=budget, say=say):
            todo = missing(packages, which=which)
            if todo:
                _install(todo, say=say, system_locks=system_locks, budget=budget, run=run)
    found: dict[str, Path] = {}
    for p in packages:
        path = which(p.command)
        if path is None:
            raise SystemExit(f"Debian's {p.package} was installed but `{p.command}` is not on "
                             "PATH")
        found[p.command] = Path(path)
    return found


def command(name: str, *, say: Callable[[str], None]) -> Path:
    """Where the stack's command ``name`` is, installing its package first when missing."""
    package = next((p for p in PACKAGES if p.command == name), None)
    if package is None:
        raise ValueError(f"{name} is not one of the stack's Debian commands")
    return ensure((package,), say=say)[name]


def _install(
    todo: Sequence[Package],
    *,
    say: Callable[[str], None],
    system_locks: Sequence[Path],
    budget: float,
    run: Run,
) -> None:
    names = [p.package for p in todo]
    if os.geteuid() != 0:
        raise SystemExit(
            "the local stack needs Debian packages that are not installed: "
            + "; ".join(f"{p.package} ({p.why})" for p in todo)
            + f". Install them as root: apt-get install --no-install-recommends {' '.join(names)}")
    started = time.monotonic()
    say(f"installing Debian packages {' '.join(names)} (one apt-get update, one apt-get install)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # --no-install-recommends keeps node-exporter & co. out of prometheus.
    for args in (["update"], ["install", "-y", "--no-install-recommends", *names]):
        left = max(budget - (time.monotonic() - started), 1.0)
        locks.wait_until_free(system_locks, what="Debian's package manager", timeout=left,
                              say=say)
        # apt waits for its own lock too, should someone take it between our look and its start;
        # a download that fails once (a mirror's hiccup) is tried again, not the whole build.
        argv = ["apt-get", "-qq", "-o", f"DPkg::Lock::Timeout={left:.0f}",
                "-o", "Acquire::Retries=3", *args]
        done = run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(_failure(argv, done, system_locks))
    say(f"installed {' '.join(names)} in {time.monotonic() - started:.0f} s")


def _failure(argv: Sequence[str], done: subprocess.CompletedProcess[str],
             system_locks: Sequence[Path]) -> str:
    """What went wrong, in words: apt's last lines and, when a package lock is the cause, who
    holds it."""
    tail = "\n".join((done.stdout or "").strip().splitlines()[-15:])
    message = f"`{' '.join(argv)}` failed (exit {done.returncode})"
    held = [f"{p} is held by {h}" for p in system_locks if (h := locks.holder(p)) is not None]
    if held:
        message += "; " + "; ".join(held) + " (let it finish, then run `make deps` again)"
    return message + (f":\n{tail}" if tail else "")
