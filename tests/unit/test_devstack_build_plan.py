"""The build plan never runs two package installs at once.

Issue 16: on a fresh machine ``make deps`` installed Prometheus and redis from two threads, and
the second ``apt-get`` died on dpkg's lock. These tests drive the real build plan (every step
that is not a Debian install stubbed) with a fake ``apt-get``: nothing is installed. They touch
only ``devstack.build``, so they ran, and failed, against the plan that had the race.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import build

#: The commands the stack takes from Debian, and their packages (issue 16 found the first two;
#: tmux, which the live view's test drives, was only there by luck of the image).
DEBIAN = {"prometheus": "prometheus", "redis-server": "redis-server", "tmux": "tmux"}
_which = shutil.which
#: Steps that install nothing from Debian: stubbed, so only the Debian part of the plan runs.
NOT_DEBIAN = ("kube", "etcd", "kwok", "kstatus", "gateway-api", "istio-api",
              "prometheus-operator-crds", "kubectl-helm", "mlflow", "argocd", "argocd-files")


class FakeApt:
    """``subprocess.run`` for apt-get only: records each call, how many ran at once, and makes
    an installed package's command appear on the fake PATH."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.installed: set[str] = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def which(self, command: str) -> str | None:
        if command in DEBIAN:
            return f"/fake/bin/{command}" if DEBIAN[command] in self.installed else None
        return _which(command)

    def run(self, argv: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if Path(argv[0]).name != "apt-get":
            raise AssertionError(f"the Debian steps ran something other than apt-get: {argv}")
        with self._lock:
            self.calls.append(list(argv))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.3)  # a real apt takes seconds: long enough for a second one to overlap
        with self._lock:
            if "install" in argv:
                self.installed |= {a for a in argv if a in DEBIAN.values()}
            self.active -= 1
        return subprocess.CompletedProcess(argv, 0, stdout="", stderr="")

    def count(self, verb: str) -> int:
        return sum(verb in c for c in self.calls)


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApt]:
    fake = FakeApt()
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(subprocess, "run", fake.run)
    monkeypatch.setattr(shutil, "which", fake.which)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    # Asks `go env` (not apt): the Go toolchain is not what this test is about.
    monkeypatch.setattr(build, "check_go", lambda: None, raising=False)
    for name in NOT_DEBIAN:
        if name in build.STEPS:
            monkeypatch.setitem(build.STEPS, name, lambda: tmp_path)
    yield fake


def test_the_build_plan_installs_every_debian_package_in_one_apt_transaction(
        apt: FakeApt) -> None:
    build.build_all()
    assert apt.installed == set(DEBIAN.values()), apt.calls
    assert apt.count("update") <= 1, f"more than one apt-get update: {apt.calls}"
    assert apt.count("install") == 1, f"not one apt-get install for all: {apt.calls}"
    assert apt.max_active == 1, f"{apt.max_active} apt-get ran at once: {apt.calls}"


def test_a_second_build_installs_nothing(apt: FakeApt) -> None:
    build.build_all()
    calls = len(apt.calls)
    build.build_all()
    assert len(apt.calls) == calls


def test_the_stack_asking_for_each_command_from_threads_installs_each_once(apt: FakeApt) -> None:
    threads = [threading.Thread(target=f) for f in (build.prometheus, build.redis_server) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert apt.installed == {"prometheus", "redis-server"}
    assert apt.max_active == 1, apt.calls
    assert apt.count("install") == 2, apt.calls


def test_a_failed_apt_get_is_a_message_not_a_traceback(
        apt: FakeApt, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 100, stdout="E: Unable to locate package x\n")

    monkeypatch.setattr(subprocess, "run", refuse)
    with pytest.raises(SystemExit) as failed:
        build.build_all(["debian"])
    assert "apt-get" in str(failed.value) and "Unable to locate package" in str(failed.value)




def test_a_cached_step_is_built_once_when_two_threads_ask_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    builds: list[float] = []

    @build.cached("unit-test", "v1", expect=("tool",))
    def step(out: Path) -> None:
        builds.append(time.monotonic())
        time.sleep(0.3)
        (out / "tool").write_text("built")

    threads = [threading.Thread(target=step) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert (build.bin_dir("unit-test", "v1") / "tool").read_text() == "built"


def test_a_failed_step_ends_the_go_build_instead_of_waiting_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 16's failure surfaced only after twelve minutes of compiling: the futures were
    # joined in order, the Go chain first. A long "compile" here is a real process.
    monkeypatch.setattr(build, "check_go", lambda: None)

    def compile_for_a_minute() -> Path:
        build._run_go("kube", ["sleep", "60"], cwd=tmp_path, env=dict(os.environ))
        return tmp_path

    def fail() -> Path:
        time.sleep(0.5)  # the compile is running by now
        raise SystemExit("apt-get install failed")

    for name in build.STEPS:
        monkeypatch.setitem(build.STEPS, name, lambda: tmp_path)
    monkeypatch.setitem(build.STEPS, "kube", compile_for_a_minute)
    monkeypatch.setitem(build.STEPS, "debian", fail)
    started = time.monotonic()
    with pytest.raises(SystemExit, match="apt-get install failed"):
        build.build_all()
    assert time.monotonic() - started < 30, "waited for the compile to finish"
