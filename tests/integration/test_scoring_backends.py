"""Real model servers behind simulated pods: the stack's scoring path (devstack/scoring.py).

In a namespace labelled ``modeldeploy.io/scoring: enabled`` every Deployment the operator
manages gets a real ``mlflow models serve`` on loopback, reached through the service gateway
at ``SERVICE_URL_TEMPLATE`` (``http://127.0.0.1:<port>/{namespace}/{service}``), the way the
operator reaches a Service in a cluster through ``http://{service}.{namespace}.svc:{port}``.
The request sent is the version's own serving input example, read from the tracking server's
REST API as the operator reads it (mlflow-skinny, no artifact store access).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.scoring import SCORING_ENABLED, SCORING_LABEL
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Scoring
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import spec
from tests.support.mdep import manifest, serving, wait_status
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

SLOW_SECONDS = 1.0


@pytest.fixture()
def scoring(stack: StackInfo) -> Scoring:
    assert stack.scoring_url, "the stack has no service gateway (devstack/scoring.py)"
    return Scoring(stack.scoring_url)


@pytest.fixture()
def scored(core: client.CoreV1Api, namespace: str) -> Iterator[str]:
    """The test's namespace, opted in to real model servers."""
    core.patch_namespace(namespace, {"metadata": {"labels": {SCORING_LABEL: SCORING_ENABLED}}})
    yield namespace


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def serving_input_example(stack: StackInfo, model: str, version: str) -> Any:
    """The version's ``serving_input_example.json``, through the tracking server's REST API:
    the version's artifact root (``mlflow-artifacts:/<exp>/models/<model id>/artifacts``),
    then the file from the server's artifact proxy."""
    uri = stack.mlflow_tracking_uri
    root = _get(f"{uri}/api/2.0/mlflow/model-versions/get-download-uri?name={model}"
                f"&version={version}")["artifact_uri"]
    assert root.startswith("mlflow-artifacts:/"), root
    path = root.removeprefix("mlflow-artifacts:/")
    return _get(f"{uri}/api/2.0/mlflow-artifacts/artifacts/{path}/serving_input_example.json")


def pids_gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_versions_answer_through_the_service_gateway(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    scoring: Scoring, scored: str,
) -> None:
    namespace, model = scored, f"fraud-{scored}"
    t0 = time.monotonic()

    def phase(what: str) -> None:
        print(f"[scoring] {time.monotonic() - t0:5.1f}s {what}")
    seed_model(stack, name=model, alias="champion", bias=1.0)
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, replicas=1)))
    with ThreadPoolExecutor(1) as pool:  # register the next versions while v1's server starts
        later = pool.submit(lambda: [seed_model(stack, name=model, kind="error"),
                                     seed_model(stack, name=model, kind="slow",
                                                delay=SLOW_SECONDS)])
        wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
        started = time.monotonic()
        first = scoring.wait_ready(namespace, "scorer-v1")
        phase(f"v1 server ready {time.monotonic() - started:.1f}s after Stable "
              f"(server start {first['readySeconds']}s)")
        example = serving_input_example(stack, model, "1")
        assert example == {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}

        # The version's Service and the stable entry Service: real predictions, 2x + 1.
        for service in ("scorer-v1", "scorer"):
            answer = scoring.post(namespace, service, example)
            assert (answer.status, answer.json()) == (200, {"predictions": [3.0, 5.0]}), answer
            assert answer.headers["content-type"] == "application/json"
        refused = scoring.post(namespace, "no-such-service", example)
        assert refused.status == 503 and refused.json()["reason"] == "NoService"
        error, slow = later.result()
        phase("v1 answered; error and slow versions registered")

    # The alias moves to a version whose predict fails: its server answers 500, as it would.
    mlflow_client(stack).set_registered_model_alias(model, "champion", error["version"])
    wait_status(custom, namespace, "scorer", serving("2"), what="version 2 Stable")
    second = scoring.wait_ready(namespace, "scorer-v2")
    phase(f"v2 Stable, its server ready (start {second['readySeconds']}s)")
    answer = scoring.post(namespace, "scorer-v2", example)
    assert answer.status == 500, answer
    assert answer.json()["error_code"] == "INTERNAL_ERROR"
    # v1's Deployment went with the release: its server (both processes) with it.
    scoring.wait_gone(namespace, "scorer-v1")
    eventually(lambda: pids_gone(first["pids"]), timeout=10, what="v1 server processes gone")

    # A slow version answers, after its delay.
    mlflow_client(stack).set_registered_model_alias(model, "champion", slow["version"])
    wait_status(custom, namespace, "scorer", serving("3"), what="version 3 Stable")
    third = scoring.wait_ready(namespace, "scorer-v3")
    phase(f"v3 Stable, its server ready (start {third['readySeconds']}s)")
    answer = scoring.post(namespace, "scorer", example)
    assert (answer.status, answer.json()) == (200, {"predictions": [2.0, 4.0]}), answer
    assert answer.seconds >= SLOW_SECONDS, answer.seconds

    # The ModelDeployment goes: garbage collection removes its Deployments, and the servers.
    kubectl("delete", "mdep", "scorer", "--wait=false")
    scoring.wait_gone(namespace, "scorer-v3")
    eventually(lambda: pids_gone(third["pids"]), timeout=10, what="v3 server processes gone")
    assert scoring.backends(namespace) == []
    phase("ModelDeployment deleted, servers stopped")
    gone = scoring.post(namespace, "scorer-v3", example)
    assert gone.status == 503 and gone.json()["reason"] in ("NoService", "NoDeployment")


def test_namespaces_that_do_not_opt_in_run_no_server(
    kubectl: Kubectl, scoring: Scoring, namespace: str,
) -> None:
    # What the operator renders, reduced to what the gateway reads (no registry involved).
    labels = {"modeldeploy.io/name": "scorer", "modeldeploy.io/version": "1"}
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": "scorer-v1", "labels": {"app.kubernetes.io/managed-by": "modeldeploy"}},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {"containers": [{
                 "name": "server", "image": "model-server",
                 "env": [{"name": "MODEL_URI", "value": "models:/fraud/1"}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "scorer-v1"},
         "spec": {"selector": labels, "ports": [{"port": 80}]}},
    ]}))
    time.sleep(1.2)  # two reads of the gateway's watcher
    assert scoring.backends(namespace) == []
    answer = scoring.post(namespace, "scorer-v1", {"dataframe_split": {}})
    assert answer.status == 503
    assert answer.json()["reason"] == "NotOptedIn"
    assert SCORING_LABEL in answer.json()["error"]
