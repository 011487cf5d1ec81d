"""Every examples/*.yaml is applied to the real stack and must reach Stable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.seed import seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.support.mdep import serving, wait_status

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
pytestmark = pytest.mark.usefixtures("operator")


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_reaches_stable(
    path: Path, stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
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
