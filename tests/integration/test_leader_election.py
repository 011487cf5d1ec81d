"""Two real operator processes on one stack: exactly one acts; a killed leader is replaced
within 20 s, a stopped one within 5 s. Checked through the Lease in the apiserver, the
objects and their events, the standby's webhook answer and both processes' /metrics."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.operator_process import WEBHOOK_SECRET, OperatorProcess
from devstack.seed import mlflow_client
from devstack.stack import StackInfo
from modeldeploy.webhook import sign
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import deploy_stable
from tests.support.mdep import events, serving, wait_status
from tests.support.scrape import scrape, total
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

LEASE = ("default", "modeldeploy-operator")


def lease(api: client.ApiClient) -> dict[str, Any]:
    found = client.CoordinationV1Api(api).read_namespaced_lease(LEASE[1], LEASE[0])
    return dict(api.sanitize_for_serialization(found)["spec"])


def leading(proc: OperatorProcess) -> bool:
    return total(scrape(proc.metrics_url), "modeldeploy_leader") == 1


def writes(proc: OperatorProcess) -> dict[str, float]:
    m = scrape(proc.metrics_url)
    return {"kube_writes": total(m, "modeldeploy_kube_writes_total"),
            "reconciles": total(m, "modeldeploy_reconcile_total"),
            "registry_polls": total(m, "modeldeploy_registry_polls_total"),
            "objects_reported": total(m, "modeldeploy_model_deployment_info")}


def replica(stack: StackInfo, root: Path, name: str) -> OperatorProcess:
    proc = OperatorProcess.create(stack, root / name)
    proc.extra_env["MODELDEPLOY_LEASE_IDENTITY"] = f"replica-{name}-{uuid.uuid4().hex[:4]}"
    return proc


def identity(proc: OperatorProcess) -> str:
    return proc.extra_env["MODELDEPLOY_LEASE_IDENTITY"]


def post_webhook(proc: OperatorProcess, model: str) -> tuple[int, str | None]:
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "data": {"name": model, "alias": "champion", "version": "2"}})
    delivery, ts = uuid.uuid4().hex, str(int(time.time()))
    request = urllib.request.Request(proc.webhook_url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sign(WEBHOOK_SECRET, delivery, ts, body)})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers.get("Retry-After")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Retry-After")


@pytest.fixture()
def replicas(stack: StackInfo, operator: OperatorProcess,
             tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """The session's operator steps aside (a graceful stop releases the Lease) for two
    replicas of the test's own; it comes back afterwards."""
    operator.stop()
    procs: list[OperatorProcess] = []
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()
        operator.start()


def test_one_replica_acts_and_hands_over_when_killed_or_stopped(
    stack: StackInfo, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
    replicas: list[OperatorProcess], tmp_path: Path,
) -> None:
    a, b = replica(stack, tmp_path, "a"), replica(stack, tmp_path, "b")
    replicas += [a, b]
    a.start()
    eventually(lambda: leading(a), timeout=30, what="replica a takes the free Lease")
    b.start()
    assert lease(api)["holderIdentity"] == identity(a)

    model, (_, v2) = deploy_stable(stack, kubectl, custom, namespace, versions=2)
    assert not leading(b)
    assert writes(b) == {"kube_writes": 0, "reconciles": 0, "registry_polls": 0,
                         "objects_reported": 0}, "the standby must not act or report"
    assert writes(a)["kube_writes"] > 0
    # MLflow retries a 503 (honouring Retry-After): through a Service it reaches the leader.
    assert post_webhook(b, model) == (503, "1")
    assert post_webhook(a, model)[0] == 202

    # Killed: the standby takes over once the Lease expires, and carries on the work.
    transitions = lease(api).get("leaseTransitions") or 0
    a.kill9()
    killed = time.monotonic()
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2["version"])
    eventually(lambda: lease(api)["holderIdentity"] == identity(b), timeout=30, interval=0.2,
               what="replica b holds the Lease")
    took_over = time.monotonic() - killed
    wait_status(custom, namespace, "scorer", serving("2"), timeout=60,
                what="the new leader rolls out version 2")
    assert leading(b)
    assert lease(api)["leaseTransitions"] == transitions + 1
    print(f"\nhand-over after kill -9: {took_over:.1f}s")
    assert took_over <= 20.0, f"a killed leader was replaced after {took_over:.1f}s"
    # One Promoted event for version 2: two replicas acting would have posted it twice.
    promoted = [e for e in events(core, namespace, "scorer")
                if e[1] == "Promoted" and e[2].startswith("version 2 ")]
    assert len(promoted) == 1, promoted

    # Stopped (a rolling update): the Lease is released and the standby takes it at once.
    a2 = replica(stack, tmp_path, "a2")
    replicas.append(a2)
    a2.start()
    assert not leading(a2)
    stopping = time.monotonic()
    b.stop()  # SIGTERM; returns once the process is gone
    eventually(lambda: lease(api)["holderIdentity"] == identity(a2), timeout=15, interval=0.1,
               what="replica a2 holds the Lease")
    handed = time.monotonic() - stopping
    print(f"hand-over after SIGTERM: {handed:.1f}s")
    assert handed <= 5.0, f"a stopped leader was replaced after {handed:.1f}s"
    eventually(lambda: leading(a2), timeout=5, what="a2 reports itself leader")
    mlflow_client(stack).set_registered_model_alias(model, "champion", "1")
    wait_status(custom, namespace, "scorer", serving("1"), timeout=60,
                what="the third leader rolls back to version 1")
    assert writes(a2)["objects_reported"] >= 1
