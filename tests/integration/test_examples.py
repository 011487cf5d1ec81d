"""Every examples/*.yaml is applied to the real stack and must reach Stable; an example with a
release strategy then releases a second version through it, end to end (its pauses and
analysis interval shortened to seconds, so the test takes seconds, not minutes)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.seed import seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from modeldeploy.core.render import label_value
from tests.integration.conftest import Kubectl
from tests.support.mdep import serving, status, wait_status

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
pytestmark = pytest.mark.usefixtures("operator")


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_reaches_stable(
    path: Path, stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str, traffic: Traffic,
) -> None:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    mdeps = [d for d in docs if d["kind"] == "ModelDeployment"]
    assert mdeps, f"{path.name} has no ModelDeployment"
    for doc in mdeps:
        model = doc["spec"]["model"]
        registry = model.get("registry")
        if registry and "trackingUri" in registry:
            registry["trackingUri"] = stack.mlflow_tracking_uri  # the local MLflow
        # Unique registered-model names per test, so examples never share MLflow state.
        model["name"] = f"{model['name']}-{namespace}"
        seeded = seed_model(stack, name=model["name"], alias=model.get("alias"),
                            stage=model.get("stage"))
        doc["_expect"] = seeded["version"]

    for doc in mdeps:
        _shorten(doc["spec"].get("rollout"))
    for doc in docs:
        expect = doc.pop("_expect", None)
        kubectl("apply", "-f", "-", stdin=json.dumps(doc))
        if expect is not None:
            doc["_expect"] = expect
    for doc in mdeps:
        name = doc["metadata"]["name"]
        st = wait_status(custom, namespace, name, serving(doc["_expect"]), timeout=90,
                         what=f"{path.name}: {name} Stable")
        assert st["observedGeneration"] == 1
        assert apps.read_namespaced_deployment(f"{name}-v{doc['_expect']}", namespace)
        rollout = doc["spec"].get("rollout")
        if rollout is None or rollout.get("strategy") not in ("canary", "blueGreen"):
            continue
        model = doc["spec"]["model"]
        # Enough simulated requests for a 2 s window at a 5 % step to count.
        traffic.rate(namespace=namespace, model=label_value(model["name"]), rps=200)
        v2 = seed_model(stack, name=model["name"], alias=model.get("alias"), bias=1.0)
        _release(kubectl, custom, namespace, name, str(v2["version"]), path.name)


def _shorten(rollout: dict[str, Any] | None) -> None:
    if not rollout:
        return
    for step in rollout.get("steps") or []:
        if step.get("pause"):
            step["pause"] = "1s"
    if rollout.get("analysis"):
        # The window must hold several 1 s scrapes even on a loaded machine: a 2 s window
        # sometimes held one, and increase() over one sample is empty (0 requests seen).
        rollout["analysis"]["interval"] = "4s"
        rollout["analysis"]["minRequests"] = min(rollout["analysis"].get("minRequests", 0), 5)
        rollout["analysis"]["inconclusiveLimit"] = 10
    if rollout.get("blueGreen"):
        rollout["blueGreen"]["scaleDownDelay"] = "2s"


def _release(kubectl: Kubectl, custom: client.CustomObjectsApi, namespace: str, name: str,
             version: str, example: str) -> None:
    """Follow the release to the end, resuming each step that waits for a human."""
    deadline = time.monotonic() + 240
    resumes = 0
    while time.monotonic() < deadline:
        st = status(custom, namespace, name)
        if serving(version)(st):
            assert [h["outcome"] for h in st["history"][:2]] == ["Promoted", "Replaced"]
            return
        rel = ((st.get("rollout") or {}).get("canary") or
               (st.get("rollout") or {}).get("blueGreen") or {})
        assert rel.get("state") not in ("Aborted", "RollingBack"), (example, st)
        if rel.get("state") == "Paused" and rel.get("pausedBy") == "Step":
            resumes += 1
            kubectl("annotate", "mdep", name, f"modeldeploy.io/request=resume:{resumes}",
                    "--overwrite")
        time.sleep(0.5)
    raise AssertionError(f"{example}: version {version} not released: "
                         f"{status(custom, namespace, name)}")
