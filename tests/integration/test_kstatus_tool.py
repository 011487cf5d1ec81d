"""The kstatus tool (sigs.k8s.io/cli-utils' status.Compute, built by devstack) reads objects
the way Flux and kpt do.

The live tests run it on objects the real control plane wrote; the table below feeds it
hand-written custom objects (no cluster needed, only the binary), pinning down the contract
our CR's status has to meet: Stalled=True is Failed, Reconciling=True is InProgress, and an
observedGeneration behind metadata.generation is InProgress whatever the conditions say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack import build
from devstack import stack as devstack
from devstack.kwok_stages import FAIL_LABEL, FAIL_VALUE
from devstack.procs import StackError
from devstack.stack import StackInfo
from tests.integration.test_stack_smoke import deployment
from tests.support.wait import eventually


@pytest.fixture(scope="session")
def kstatus_binary() -> Path:
    """The tool from the build cache (built here if `make deps` has not built it yet)."""
    return build.build_kstatus() / "kstatus"


def _get(stack: StackInfo, *args: str) -> dict[str, Any]:
    return dict(json.loads(devstack.kubectl(stack, "get", *args, "-o", "json")))


def test_deployment_is_current_once_available(
    stack: StackInfo, namespace: str, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))

    def current() -> dict[str, Any] | None:
        obj = _get(stack, "-n", namespace, "deployment", "web")
        return obj if devstack.kstatus(stack, obj)["status"] == "Current" else None

    obj = eventually(current, timeout=60, what="kstatus Current for Deployment web")
    # Current is kstatus' Deployment rule, not the generic one: all replicas available.
    assert obj["status"]["availableReplicas"] == 2
    assert devstack.kstatus(stack, obj) == {
        "status": "Current", "message": "Deployment is available. Replicas: 2"}


def test_deployment_past_its_progress_deadline_is_failed(
    stack: StackInfo, namespace: str, apps: client.AppsV1Api
) -> None:
    never_ready = deployment("broken", replicas=1, labels={FAIL_LABEL: FAIL_VALUE})
    never_ready["spec"]["progressDeadlineSeconds"] = 1
    apps.create_namespaced_deployment(namespace, never_ready)

    def failed() -> dict[str, str] | None:
        result = devstack.kstatus(stack, _get(stack, "-n", namespace, "deployment", "broken"))
        return result if result["status"] == "Failed" else None

    result = eventually(failed, timeout=60, what="kstatus Failed for Deployment broken")
    assert "Progress deadline exceeded" in result["message"]


def test_established_crd_is_current(stack: StackInfo) -> None:
    crd = _get(stack, "crd", "httproutes.gateway.networking.k8s.io")
    assert devstack.kstatus(stack, crd) == {"status": "Current", "message": "CRD is established"}


def custom(*conditions: dict[str, str], generation: int = 3,
           observed: int | None = 3) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "example.modeldeploy.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "generation": generation},
        "status": status,
    }


STALLED = {"type": "Stalled", "status": "True", "reason": "ModelNotFound",
           "message": "model fraud not found"}
RECONCILING = {"type": "Reconciling", "status": "True", "reason": "Progressing",
               "message": "rolling out version 8"}


@pytest.mark.parametrize(("obj", "expected"), [
    (custom(STALLED), {"status": "Failed", "message": "model fraud not found"}),
    (custom(RECONCILING), {"status": "InProgress", "message": "rolling out version 8"}),
    (custom({"type": "Ready", "status": "True"}),
     {"status": "Current", "message": "Resource is Ready"}),
    (custom({**STALLED, "status": "False"}, {**RECONCILING, "status": "False"}),
     {"status": "Current", "message": "Resource is current"}),
    # A status written for an older spec says nothing about the current one.
    (custom(STALLED, observed=2),
     {"status": "InProgress",
      "message": "Widget generation is 3, but latest observed generation is 2"}),
    # No observedGeneration at all: kstatus trusts the conditions.
    (custom(STALLED, observed=None), {"status": "Failed", "message": "model fraud not found"}),
], ids=["stalled", "reconciling", "ready", "both-false", "stale-generation",
        "no-observed-generation"])
def test_custom_object_status(kstatus_binary: Path, obj: dict[str, Any],
                              expected: dict[str, str]) -> None:
    assert devstack.run_kstatus(kstatus_binary, obj) == expected


@pytest.mark.parametrize("obj", [
    {"kind": "List", "apiVersion": "v1", "items": []},
    {**custom(), "status": {"observedGeneration": "3"}},
], ids=["a-list", "string-generation"])
def test_bad_input_is_refused(kstatus_binary: Path, obj: dict[str, Any]) -> None:
    with pytest.raises(StackError, match="kstatus failed: kstatus: "):
        devstack.run_kstatus(kstatus_binary, obj)
