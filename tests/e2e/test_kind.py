"""On a kind cluster with the real image (``make kind-e2e``): the chart's operator pods run the
image under Pod Security `restricted`, elect a leader, and answer a ModelDeployment whose
registry does not exist with a status and an event, while nothing else is touched.

Not run on the project's machines (no Docker engine there): see tests/e2e/README.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

pytestmark = pytest.mark.e2e

RELEASE_NAMESPACE = "modeldeploy-system"
DEADLINE = 180.0


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    config.load_kube_config()
    return client.ApiClient()


@pytest.fixture()
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    core.delete_namespace(name)


def _eventually(check: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(2)
    raise AssertionError(f"not within {DEADLINE:.0f}s: {what}")


def test_the_operator_pods_run_the_image_and_one_leads(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        RELEASE_NAMESPACE, label_selector="app.kubernetes.io/name=modeldeploy-operator").items
    assert len(pods) == 2
    for pod in pods:
        assert all(c.ready for c in pod.status.container_statuses), pod.metadata.name
    lease = client.CoordinationV1Api(api).read_namespaced_lease(
        "modeldeploy-operator", RELEASE_NAMESPACE)
    assert lease.spec.holder_identity in {p.metadata.name for p in pods} or any(
        lease.spec.holder_identity.startswith(p.metadata.name) for p in pods)


def test_a_missing_registry_is_a_condition_and_an_event(
    api: client.ApiClient, namespace: str,
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("modeldeploy.io", "v1alpha1", namespace,
                                           "modeldeployments", {
        "apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "scorer"},
        "spec": {"model": {"name": "fraud", "alias": "champion", "registry": {
            "trackingUri": "http://mlflow.nowhere.svc:5000"}}}})

    def degraded() -> dict[str, Any] | None:
        obj = custom.get_namespaced_custom_object("modeldeploy.io", "v1alpha1", namespace,
                                                  "modeldeployments", "scorer")
        st = obj.get("status") or {}
        return st if st.get("phase") in ("Degraded", "Pending") and st.get("conditions") \
            else None

    st = _eventually(degraded, "a status with conditions")
    assert st["observedGeneration"] == 1
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=scorer").items
    assert events, "the operator posted an event"
    assert not client.AppsV1Api(api).list_namespaced_deployment(namespace).items, (
        "nothing is deployed for a model that could not be resolved")
