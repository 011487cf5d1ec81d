"""Pure pieces of the dev stack: the wrapper go.mod, version ldflags, the failure Stage."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import build, versions
from devstack.kwok_stages import FAIL_LABEL, FAIL_VALUE, failure_stage

REPO = Path(__file__).resolve().parents[2]


def test_wrapper_gomod_replaces_every_staging_module_with_the_pinned_version() -> None:
    gomod = build.kube_wrapper_gomod()
    assert f"require k8s.io/kubernetes {versions.KUBERNETES}" in gomod
    replaced = re.findall(r"k8s\.io/(\S+) => k8s\.io/(\S+) (v\S+)", gomod)
    assert {m for m, _, _ in replaced} == set(build.KUBE_STAGING_MODULES)
    assert all(a == b and v == versions.KUBERNETES_STAGING for a, b, v in replaced)


def test_staging_version_matches_the_kubernetes_minor() -> None:
    kube = versions.KUBERNETES.lstrip("v").split(".")
    staging = versions.KUBERNETES_STAGING.lstrip("v").split(".")
    assert staging == ["0", kube[1], kube[2]]


def test_ldflags_stamp_the_release_into_both_version_packages() -> None:
    flags = " ".join(build.kube_ldflags("2026-01-01T00:00:00Z"))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion={versions.KUBERNETES}" in flags
        assert f"-X {pkg}.gitMinor={versions.KUBERNETES.split('.')[1]}" in flags


def test_failure_stage_selects_only_labelled_live_pods() -> None:
    stage = failure_stage()
    exprs = {e["key"]: e for e in stage["spec"]["selector"]["matchExpressions"]}
    label = exprs[f'.metadata.labels["{FAIL_LABEL}"]']
    assert (label["operator"], label["values"]) == ("In", [FAIL_VALUE])
    assert exprs[".metadata.deletionTimestamp"]["operator"] == "DoesNotExist"
    template = stage["spec"]["next"]["statusTemplate"]
    assert "CrashLoopBackOff" in template and "type: Ready" in template


def test_go_versions_compare_as_numbers() -> None:
    assert build._go_version("go1.26.8") == (1, 26, 8)
    assert build._go_version("1.26.3") == (1, 26, 3)
    assert build._go_version("go1.27rc1") == (1, 27)
    assert build._go_version("go1.26.10") > build._go_version("go1.26.9")
    assert build.go_required() >= (1, 26, 3)  # argo-cd v3.5's module says so


@pytest.mark.parametrize(("prints", "refused"), [("go1.26.2", True), ("go1.26.3", False),
                                                 ("go1.27.0", False)])
def test_a_go_too_old_for_the_newest_module_is_refused_before_any_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prints: str, refused: bool) -> None:
    fake = tmp_path / "go"
    fake.write_text(f"#!/bin/sh\necho {prints}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    build.check_go.cache_clear()  # asked once per process: ask again for this machine
    if not refused:
        build.check_go()
        return
    with pytest.raises(SystemExit) as failed:
        build.check_go()
    assert "1.26.3" in str(failed.value) and prints in str(failed.value)


def test_no_go_at_all_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    build.check_go.cache_clear()
    with pytest.raises(SystemExit) as failed:
        build.check_go()
    assert "Go >=" in str(failed.value)


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        match = re.match(r'\s*"?([A-Za-z0-9_.\-]+)==([^"\s,]+)', line)
        if match and not line.lstrip().startswith("#"):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_the_constraints_agree_with_every_pin_in_pyproject() -> None:
    # A pin bumped in pyproject.toml but not re-resolved (make constraints) would make pip
    # refuse to install: say which one here, in seconds, rather than in CI's venv step.
    pyproject = _pins((REPO / "pyproject.toml").read_text())
    constraints = _pins((REPO / "constraints" / "dev.txt").read_text())
    assert pyproject, "no pins read from pyproject.toml"
    stale = {n: (v, constraints.get(n)) for n, v in pyproject.items() if constraints.get(n) != v}
    assert not stale, f"pyproject pin vs constraints/dev.txt (run make constraints): {stale}"


def test_the_mlflow_server_constraints_are_for_the_pinned_server() -> None:
    pins = _pins(build.MLFLOW_CONSTRAINTS.read_text())
    assert pins.get("mlflow") == versions.MLFLOW_SERVER
    assert len(pins) > 50  # every transitive package, not only the top one


@pytest.fixture(autouse=True)
def _forget_the_go_check() -> Iterator[None]:
    yield
    build.check_go.cache_clear()  # the fake go of a test must not answer for later ones
