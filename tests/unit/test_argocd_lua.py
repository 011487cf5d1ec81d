"""Argo CD's own test files for the ModelDeployment customization, run as Argo CD runs them:
Lua 5.1 (lupa.lua51; gopher-lua is Lua 5.1), ``health_test.yaml`` and
``actions/action_test.yaml``, against testdata captured from live objects
(``tests/integration/test_argocd_lua.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import argocd_lua
from tests.support.argocd_lua import CUSTOMIZATION, load

HEALTH = load(CUSTOMIZATION / "health_test.yaml")["tests"]
ACTIONS = load(CUSTOMIZATION / "actions" / "action_test.yaml")


def test_the_runtime_is_lua_5_1_as_in_argo_cd() -> None:
    lua = argocd_lua.runtime(argocd_lua.FIXED_TIME)
    assert lua.eval("_VERSION") == "Lua 5.1"
    assert lua.eval("type(table.getn)") == "function", "Lua 5.1 has table.getn"
    assert lua.eval("io") is None and lua.eval("os") is None, "no io, os only via require"


@pytest.mark.parametrize("case", HEALTH, ids=[c["inputPath"] for c in HEALTH])
def test_health(case: dict[str, Any]) -> None:
    obj = load(CUSTOMIZATION / case["inputPath"])
    assert argocd_lua.health(obj) == case["healthStatus"]


DISCOVERY = ACTIONS["discoveryTests"]


@pytest.mark.parametrize("case", DISCOVERY, ids=[c["inputPath"] for c in DISCOVERY])
def test_action_discovery(case: dict[str, Any]) -> None:
    obj = load(CUSTOMIZATION / "actions" / case["inputPath"])
    want = {a["name"]: a["disabled"] for a in case["result"]}
    assert argocd_lua.discover(obj) == want


RUNS = ACTIONS["actionTests"]


@pytest.mark.parametrize("case", RUNS, ids=[f"{c['action']}-{c['inputPath']}" for c in RUNS])
def test_action(case: dict[str, Any]) -> None:
    obj = load(CUSTOMIZATION / "actions" / case["inputPath"])
    expected = load(CUSTOMIZATION / "actions" / case["expectedOutputPath"])
    assert argocd_lua.act(case["action"], obj) == expected


def test_no_release_enables_no_action_and_a_missing_status_is_progressing() -> None:
    obj = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "scorer", "generation": 1}, "spec": {}}
    assert argocd_lua.health(obj)["status"] == "Progressing"
    assert not any(not disabled for disabled in argocd_lua.discover(obj).values())


def test_every_state_a_release_can_be_in_has_a_health_and_actions() -> None:
    """Beyond the captured objects: each release state and pause reason, blue-green too."""
    def obj(phase: str, state: str, kind: str = "canary",
            paused_by: str | None = None) -> dict[str, Any]:
        rel = {"version": "2", "state": state, "pausedBy": paused_by}
        return {"metadata": {"name": "s", "generation": 3},
                "status": {"phase": phase, "observedGeneration": 3, "message": "m",
                           "rollout": {"type": kind, kind: rel}}}

    cases = [
        (obj("Progressing", "Promoting"), "Progressing", {"abort"}),
        (obj("RollingBack", "RollingBack"), "Degraded", set()),
        (obj("Stable", "Switched", "blueGreen"), "Healthy", {"abort"}),
        (obj("Paused", "Paused", "blueGreen", "Step"), "Suspended", {"promote", "abort"}),
        (obj("Paused", "Paused", "blueGreen", "Request"), "Suspended",
         {"promote", "abort", "resume"}),
        (obj("Failed", "Aborted"), "Degraded", {"retry"}),
    ]
    for body, health, enabled in cases:
        assert argocd_lua.health(body)["status"] == health, body
        actions = argocd_lua.discover(body)
        assert {a for a, disabled in actions.items() if not disabled} == enabled, body


def test_the_argocd_cm_snippet_is_rendered_from_the_files() -> None:
    committed = (argocd_lua.REPO / "argocd" / "argocd-cm.yaml").read_text()
    assert committed == argocd_lua.argocd_cm(), (
        "argocd/argocd-cm.yaml is stale: run `python -m tests.support.argocd_lua > "
        "argocd/argocd-cm.yaml`")
