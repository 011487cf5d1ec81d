"""The service gateway's pure part: which managed Deployment answers for a Service."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.scoring_services import Refusal, resolve, snapshot

NS = "ml"


def deployment(name: str, version: str, *, replicas: int | None = 1, uri: str | None = None,
               deleting: bool = False, ns: str = NS) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    env = [{"name": "MODEL_URI", "value": uri or f"models:/fraud/{version}"},
           {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s"}}}]
    labels = {"modeldeploy.io/name": "scorer", "modeldeploy.io/version": version}
    spec: dict[str, Any] = {"template": {"metadata": {"labels": labels}, "spec": {
        "containers": [{"name": "server", "env": env}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": meta, "spec": spec}


def service(name: str, selector: dict[str, str] | None, ns: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector} if selector is not None else {}}


SNAP = snapshot(
    [NS],
    [deployment("scorer-v1", "1"), deployment("scorer-v2", "2", replicas=None),
     deployment("scorer-v3", "3", deleting=True)],
    [service("scorer-v1", {"modeldeploy.io/name": "scorer", "modeldeploy.io/version": "1"}),
     service("scorer", {"modeldeploy.io/name": "scorer", "modeldeploy.io/version": "2"}),
     service("shared", {"modeldeploy.io/name": "scorer"}),
     service("scorer-v3", {"modeldeploy.io/name": "scorer", "modeldeploy.io/version": "3"}),
     service("external", None)],
)


@pytest.mark.parametrize(("namespace", "svc", "expected"), [
    (NS, "scorer-v1", ["scorer-v1"]),
    (NS, "scorer", ["scorer-v2"]),  # the stable entry Service follows its selector
    (NS, "shared", ["scorer-v1", "scorer-v2"]),  # the replicas router's: every version
    (NS, "scorer-v3", "NoDeployment"),  # a Deployment being deleted is gone
    (NS, "external", "NoSelector"),
    (NS, "nope", "NoService"),
    ("other", "scorer-v1", "NotOptedIn"),
])
def test_resolve(namespace: str, svc: str, expected: list[str] | str) -> None:
    found = resolve(SNAP, namespace, svc)
    if isinstance(expected, str):
        assert isinstance(found, Refusal) and found.reason == expected
    else:
        assert isinstance(found, list) and [w.name for w in found] == expected


def test_workload_reads_the_literal_env_and_defaults_replicas_to_one() -> None:
    v2 = SNAP.workloads[(NS, "scorer-v2")]
    assert v2.replicas == 1  # left to an HPA: the Deployment's default
    assert v2.model_uri == "models:/fraud/2"
    assert "MLFLOW_TRACKING_TOKEN" not in v2.env  # from a Secret: not ours to read


def test_a_new_model_or_object_is_a_new_identity() -> None:
    old = SNAP.workloads[(NS, "scorer-v1")]
    other = snapshot([NS], [deployment("scorer-v1", "1", uri="models:/fraud/9")], [])
    assert other.workloads[(NS, "scorer-v1")].identity != old.identity
    assert snapshot([NS], [deployment("scorer-v1", "1")], []).workloads[
        (NS, "scorer-v1")].identity == old.identity
