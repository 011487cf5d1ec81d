"""Argo CD's view of live ModelDeployments: the health check and the resource actions in
``argocd/resource_customizations/modeldeploy.io/ModelDeployment`` run (in Lua 5.1, as Argo CD
runs them) against objects the real operator wrote, in each state a release passes through;
and each action's output, applied to the live object, makes the operator do what it says.

With ``MODELDEPLOY_CAPTURE_ARGOCD=1`` the objects are written to the customization's
``testdata/`` (the files ``health_test.yaml`` and ``actions/action_test.yaml`` name), so the
testdata is always captured from live objects."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import GATEWAY, canary_spec, release
from tests.support import argocd_lua
from tests.support.hold import pods_hold
from tests.support.mdep import get, manifest, serving, wait_status

pytestmark = pytest.mark.usefixtures("operator")

CAPTURE = os.environ.get("MODELDEPLOY_CAPTURE_ARGOCD") == "1"
HEALTH_DATA = argocd_lua.CUSTOMIZATION / "testdata"
ACTION_DATA = argocd_lua.CUSTOMIZATION / "actions" / "testdata"
ACTIONS = ("promote", "abort", "retry", "pause", "resume")


def _clean(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """The object as testdata: no server bookkeeping, stable names."""
    meta = obj["metadata"]
    keep = {k: meta[k] for k in ("name", "namespace", "generation", "annotations",
                                 "deletionTimestamp") if meta.get(k) is not None}
    keep["namespace"] = "ml"
    annotations = {k: v for k, v in (keep.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if annotations:
        keep["annotations"] = annotations
    else:
        keep.pop("annotations", None)
    out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": keep,
           "spec": obj["spec"], "status": obj.get("status") or {}}
    return dict(json.loads(json.dumps(out).replace(model, "fraud-scorer")))


class Scene:
    """Reads the live object, checks what Argo CD would make of it, and (capturing) keeps it
    as testdata."""

    def __init__(self, custom: client.CustomObjectsApi, kubectl: Kubectl,
                 namespace: str, model: str) -> None:
        self.custom, self.kubectl, self.namespace = custom, kubectl, namespace
        self.model = model
        self.clock = itertools.count(int(time.time()))

    def live(self) -> dict[str, Any]:
        return get(self.custom, self.namespace, "scorer")

    def check(self, name: str, health: str, enabled: set[str],
              folder: Path = HEALTH_DATA) -> dict[str, Any]:
        obj = self.live()
        got = argocd_lua.health(obj)
        assert got["status"] == health, (name, got, obj.get("status"))
        assert got["message"], got
        actions = argocd_lua.discover(obj)
        assert set(actions) == set(ACTIONS)
        assert {a for a, disabled in actions.items() if not disabled} == enabled, \
            (name, actions, release(obj.get("status") or {}))
        if CAPTURE:
            self._capture(HEALTH_DATA, name, obj, set())
            if folder == ACTION_DATA:
                self._capture(folder, name, obj, enabled)
        return obj

    def _capture(self, folder: Path, name: str, obj: dict[str, Any],
                 actions: set[str]) -> None:
        """The object, and for each action it enables the output Argo CD must produce (the
        object with the request annotation at the test clock), written by hand here, not
        by the Lua under test."""
        folder.mkdir(parents=True, exist_ok=True)
        clean = _clean(obj, self.model)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(clean, sort_keys=False))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(argocd_lua.FIXED_TIME))
        for action in sorted(actions):
            out = json.loads(json.dumps(clean))
            out["metadata"].setdefault("annotations", {})[
                "modeldeploy.io/request"] = f"{action}:{stamp}"
            (folder / f"{name}_{action}.yaml").write_text(yaml.safe_dump(out, sort_keys=False))

    def act(self, action: str) -> str:
        """Run the action's Lua on the live object and apply its result's annotation, as Argo
        CD would patch it; returns the request value."""
        out = argocd_lua.act(action, self.live(), clock=next(self.clock))
        value = str(out["metadata"]["annotations"]["modeldeploy.io/request"])
        assert value.startswith(f"{action}:"), value
        assert out["spec"] == self.live()["spec"], "an action never touches the spec"
        self.kubectl("annotate", "mdep", "scorer", f"modeldeploy.io/request={value}",
                     "--overwrite")
        return value

    def wait_release(self, check: Any, what: str) -> dict[str, Any]:
        return wait_status(self.custom, self.namespace, "scorer",
                           lambda s: check(release(s)), timeout=60, what=what)


def test_argo_cd_health_and_actions_on_live_objects_in_every_state(
    stack: StackInfo, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    model = f"argocd-{namespace}"
    seed_model(stack, name=model, alias="champion")
    v2, v3, v4 = (str(seed_model(stack, name=model, bias=float(i))["version"])
                  for i in range(1, 4))
    steps = [{"weight": 20, "pause": ""}, {"weight": 50, "pause": "1h"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=None, traffic=GATEWAY)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    scene = Scene(custom, kubectl, namespace, model)
    registry = mlflow_client(stack)
    stable = scene.check("healthy_stable", "Healthy", set())
    if CAPTURE:  # the same object with a spec edit the operator has not seen yet
        edited = _clean(stable, model)
        edited["metadata"]["generation"] += 1
        (HEALTH_DATA / "progressing_newGeneration.yaml").write_text(
            yaml.safe_dump(edited, sort_keys=False))

    with pods_hold(api, namespace, v2):
        registry.set_registered_model_alias(model, "champion", v2)
        scene.wait_release(lambda r: r.get("state") == "Starting", "version 2 Starting")
        scene.check("progressing_starting", "Progressing", {"abort"})
    scene.wait_release(lambda r: r.get("state") == "Paused", "paused at the human step")
    scene.check("suspended_pausedStep", "Suspended", {"promote", "abort", "resume"},
                folder=ACTION_DATA)
    scene.act("resume")
    scene.wait_release(lambda r: r.get("state") == "Stepping" and r.get("step") == 1
                       and r.get("stepStartedAt"), "step 2 (1h pause)")
    scene.check("progressing_stepping", "Progressing", {"promote", "abort", "pause"},
                folder=ACTION_DATA)
    scene.act("pause")
    scene.wait_release(lambda r: r.get("pausedBy") == "Request", "paused by request")
    scene.check("suspended_pauseRequest", "Suspended", {"promote", "abort", "resume"})
    scene.act("promote")
    wait_status(custom, namespace, "scorer", serving(v2), what="promoted by the action")
    scene.check("healthy_promoted", "Healthy", set())

    registry.set_registered_model_alias(model, "champion", v3)
    scene.wait_release(lambda r: r.get("version") == v3 and r.get("state") == "Paused",
                       "version 3 paused at the human step")
    scene.act("abort")
    scene.wait_release(lambda r: r.get("state") == "Aborted", "version 3 rolled back")
    scene.check("degraded_rolledBack", "Degraded", {"retry"}, folder=ACTION_DATA)
    scene.act("retry")
    scene.wait_release(lambda r: r.get("version") == v3 and r.get("state") == "Paused",
                       "version 3 released again")
    scene.act("promote")
    wait_status(custom, namespace, "scorer", serving(v3), what="retried version promoted")

    # A measurement that cannot count (too few requests) holds the step: Argo CD waits.
    held = canary_spec(model, steps=[{"weight": 20}], traffic=GATEWAY, analysis={
        "interval": "2s", "minRequests": 1000000, "inconclusiveLimit": 100,
        "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", held))
    registry.set_registered_model_alias(model, "champion", v4)
    scene.wait_release(lambda r: r.get("pausedBy") == "Analysis", "held by analysis")
    scene.check("progressing_analysisPause", "Progressing", {"promote", "abort", "resume"})
    scene.act("abort")
    scene.wait_release(lambda r: r.get("state") == "Aborted", "version 4 rolled back")
    obj = scene.live()
    assert obj["status"]["stable"]["version"] == v3
