"""While a version serves: health probes against its real model server, on their interval, and
RollbackReady following the previous version in the real MLflow registry."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from devstack.scoring import SCORING_ENABLED, SCORING_LABEL
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Scoring
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import spec
from tests.support.mdep import condition, manifest, serving, wait_reasons, wait_status
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

INTERVAL = 2.0


def probes(gateway: Scoring, namespace: str, deployment: str) -> int:
    backend = gateway.backend(namespace, deployment) or {}
    return int((backend.get("requests") or {}).get("POST /invocations", 0))


def test_health_probes_run_on_their_interval_and_rollback_ready_follows_the_registry(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, namespace: str,
) -> None:
    assert stack.scoring_url, "the stack has no service gateway: nothing to probe"
    core.patch_namespace(namespace, {"metadata": {"labels": {SCORING_LABEL: SCORING_ENABLED}}})
    model = f"health-{namespace}"
    seed_model(stack, name=model, alias="champion")
    body: dict[str, Any] = spec(model, replicas=1, healthCheck={
        "interval": f"{INTERVAL:g}s", "timeout": "5s", "maxLatency": "2s",
        "failureThreshold": 2})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", body))
    st = wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    assert condition(st, "RollbackReady")["reason"] == "NoPreviousVersion"
    gateway = Scoring(stack.scoring_url)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: (s.get("health") or {}).get("result") == "Healthy",
                     timeout=90, what="version 1 probed Healthy (its server started)")
    assert condition(st, "Healthy")["status"] == "True"
    assert 0 < st["health"]["latencyMs"] < 2000

    # On their interval: the real model server counts the probes it answered.
    first = probes(gateway, namespace, "scorer-v1")
    time.sleep(5 * INTERVAL)
    counted = probes(gateway, namespace, "scorer-v1") - first
    assert 3 <= counted <= 7, f"{counted} probes in {5 * INTERVAL:g}s at a {INTERVAL:g}s interval"

    # A second version: the first becomes the rollback target, checked in the registry.
    mlflow = mlflow_client(stack)
    v2 = str(seed_model(stack, name=model, bias=1.0)["version"])
    mlflow.set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: serving(v2)(s) and condition(s, "RollbackReady").get("status")
                     == "True", timeout=90, what="v2 serving, v1 ready to roll back to")
    assert st["previous"]["version"] == "1"
    assert condition(st, "RollbackReady")["reason"] == "PreviousVersionAvailable"
    eventually(lambda: probes(gateway, namespace, f"scorer-v{v2}") >= 2, timeout=60,
               what="the new serving version is the one probed")

    mlflow.delete_model_version(model, "1")
    st = wait_status(custom, namespace, "scorer",
                     lambda s: condition(s, "RollbackReady").get("status") == "False",
                     timeout=30, what="RollbackReady False after version 1 was deleted")
    ready = condition(st, "RollbackReady")
    assert ready["reason"] == "PreviousVersionDeleted" and "version 1" in ready["message"]
    assert serving(v2)(st), "a lost rollback target changes nothing that serves"
    wait_reasons(core, namespace, "scorer", lambda r: "RollbackNotReady" in r)
