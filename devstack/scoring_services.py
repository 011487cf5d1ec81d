"""Which managed Deployment answers for a Service: the service gateway's pure part.

:mod:`devstack.scoring` lists, in namespaces labelled ``modeldeploy.io/scoring: enabled``, the
Deployments the operator manages and every Service; :func:`snapshot` turns that raw JSON into
Workloads (what each Deployment's pods would serve: its server container's ``MODEL_URI`` and
``MLFLOW_*`` env) and Service selectors, and :func:`resolve` follows a Service's selector to the
Deployments whose pod template matches it, or says why none (a :class:`Refusal`: the gateway's
503). The labels mirror ``modeldeploy.core.render``; nothing of the operator is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MANAGED_SELECTOR", "MODEL_LABEL", "SCORING_ENABLED", "SCORING_LABEL",
           "VERSION_LABEL", "Refusal", "Snapshot", "Workload", "resolve", "snapshot",
           "workload"]

SCORING_LABEL = "modeldeploy.io/scoring"  # on a Namespace: "enabled" opts it in
SCORING_ENABLED = "enabled"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
VERSION_LABEL = "modeldeploy.io/version"
MODEL_LABEL = "modeldeploy.io/model"


@dataclass(frozen=True)
class Workload:
    """A managed Deployment in an opted-in namespace: what its pods would serve."""

    namespace: str
    name: str
    uid: str
    replicas: int
    pod_labels: Mapping[str, str]
    env: Mapping[str, str]  # the server container's literal env values

    @property
    def model_uri(self) -> str:
        return self.env.get("MODEL_URI", "")

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """A backend serves one identity; a change means a new process."""
        return (self.uid, self.model_uri, self.env.get("MLFLOW_TRACKING_URI", ""),
                self.env.get("MLFLOW_REGISTRY_URI", ""))


@dataclass(frozen=True)
class Snapshot:
    """What the gateway and the backends follow: opted-in namespaces, their managed Deployments
    and every Service selector in them."""

    namespaces: frozenset[str] = frozenset()
    workloads: Mapping[tuple[str, str], Workload] = field(default_factory=dict)
    selectors: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)


def workload(dep: Mapping[str, Any]) -> Workload:
    meta, spec = dep["metadata"], dep.get("spec") or {}
    pod = (spec.get("template") or {})
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    env = {e["name"]: e["value"] for e in containers[0].get("env") or []
           if isinstance(e.get("value"), str)}
    replicas = spec.get("replicas")
    return Workload(namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid", ""),
                    replicas=1 if replicas is None else int(replicas),
                    pod_labels=dict((pod.get("metadata") or {}).get("labels") or {}), env=env)


def snapshot(namespaces: list[str], deployments: list[dict[str, Any]],
             services: list[dict[str, Any]]) -> Snapshot:
    """Pure: the objects as listed (raw JSON) -> a Snapshot. Deployments being deleted count
    as gone."""
    works = [workload(d) for d in deployments if not d["metadata"].get("deletionTimestamp")]
    return Snapshot(
        namespaces=frozenset(namespaces),
        workloads={(w.namespace, w.name): w for w in works},
        selectors={(s["metadata"]["namespace"], s["metadata"]["name"]):
                   dict((s.get("spec") or {}).get("selector") or {}) for s in services},
    )


@dataclass(frozen=True)
class Refusal:
    """Why a request cannot reach a backend (the gateway's 503)."""

    reason: str
    message: str


def resolve(snap: Snapshot, namespace: str, service: str) -> list[Workload] | Refusal:
    """Pure: the managed Deployments behind Service ``namespace/service``, or why none."""
    if namespace not in snap.namespaces:
        return Refusal("NotOptedIn", f"namespace {namespace!r} does not exist or is not "
                       f"labelled {SCORING_LABEL}={SCORING_ENABLED}: no model servers run there")
    selector = snap.selectors.get((namespace, service))
    if selector is None:
        return Refusal("NoService", f"no Service {namespace}/{service}")
    if not selector:
        return Refusal("NoSelector", f"Service {namespace}/{service} has no selector")
    found = [w for (ns, _), w in sorted(snap.workloads.items()) if ns == namespace
             and all(w.pod_labels.get(k) == v for k, v in selector.items())]
    if not found:
        return Refusal("NoDeployment", f"no Deployment managed by modeldeploy matches the "
                       f"selector of Service {namespace}/{service}: {selector}")
    return found
