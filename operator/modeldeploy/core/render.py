"""Pure builders for the children of a ModelDeployment: plain dicts, no I/O.

Per model version ``V`` of ModelDeployment ``md``:

* ``Deployment md-vV`` — the model server (runtime ``mlflow`` or ``custom``), pods meeting the
  Pod Security "restricted" profile;
* ``Service md-vV`` — that version alone (what routes point at);
* ``HorizontalPodAutoscaler md-vV`` — when ``serving.autoscaling`` is set.

Per ModelDeployment:

* ``Service md`` — the entry point; its selector names the stable version (every version
  with the replicas router);
* ``Service md-preview`` — blue-green only: the new version before the switch;
* route objects of the traffic router (:mod:`modeldeploy.routing`), e.g. ``HTTPRoute md``.

Every child carries ``ownerReferences`` to the ModelDeployment (garbage collection removes
them with it; no finalizer is needed) and a ``modeldeploy.io/hash`` annotation over its own
rendered content, which lets the reconciler skip children that are already as desired, and
:func:`fingerprint` digests the fields we own as the apiserver returns them, so a change made
by someone else (``kubectl scale``, ``kubectl set image``) is seen and reverted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from modeldeploy.api import API_VERSION, GROUP, KIND
from modeldeploy.api.spec import ModelDeploymentSpec, Probe, Runtime
from modeldeploy.core.world import RegistryTarget

MANAGED_BY = "modeldeploy"

LABEL_NAME = f"{GROUP}/name"  # the ModelDeployment's name
LABEL_VERSION = f"{GROUP}/version"  # the model version a child serves
LABEL_MODEL = f"{GROUP}/model"  # registered model name (label-safe form)
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_ROUTER = f"{GROUP}/router"  # on the entry Service of the replicas router
LABEL_PREVIEW = f"{GROUP}/preview"  # on a blue-green preview Service
ANNOTATION_HASH = f"{GROUP}/hash"
ANNOTATION_MODEL = f"{GROUP}/model-name"  # the exact registered model name

RUNTIME_USER = 1000  # uid/gid the serving container runs as (restricted profile: non-root)


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, "name": self.name,
                "uid": self.uid, "controller": True, "blockOwnerDeletion": True}


@dataclass(frozen=True)
class ServedVersion:
    """What a version's server needs to know."""

    version: str
    model_uri: str  # e.g. models:/fraud-scorer/8
    registry: RegistryTarget


def _ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def label_value(text: str) -> str:
    """A label-safe form of ``text`` (<= 63 chars of ASCII [A-Za-z0-9-_.], alphanumeric at both
    ends). Text that had to change gets a digest of the original, so two texts never share a
    value."""
    safe = "".join(c if _ascii_alnum(c) or c in "-_." else "-" for c in text).strip("-_.")
    if safe == text and len(safe) <= 63:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{safe[:54].rstrip('-_.')}-{digest}".lstrip("-_.")


def child_name(owner: str, version: str | None = None, *, role: str | None = None) -> str:
    """``owner`` or ``owner-vV`` as a DNS-1035 label (what a Service name must be: <= 63
    chars, lowercase alphanumerics and '-', starting with a letter).

    A ModelDeployment's name is a DNS-1123 subdomain: up to 253 chars, dots allowed, digits
    first allowed. Such a name is made valid (dots become '-', a leading digit gets an ``m``
    prefix, the rest is shortened) and then carries a digest of the original name, so two
    ModelDeployments never derive the same base. A valid short name is used as it is.
    """
    suffix = f"-v{version}" if version is not None else (f"-{role}" if role else "")
    base = owner.replace(".", "-")
    if not base[:1].isalpha():
        base = "m" + base
    if base == owner and len(owner) + len(suffix) <= 63:
        return owner + suffix
    digest = hashlib.sha256(owner.encode()).hexdigest()[:6]
    keep = 63 - len(suffix) - len(digest) - 1
    return f"{base[:keep].rstrip('-')}-{digest}{suffix}"


def content_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "metadata"}
    meta = {k: v for k, v in manifest["metadata"].items() if k != "annotations"}
    annotations = {k: v for k, v in (manifest["metadata"].get("annotations") or {}).items()
                   if k != ANNOTATION_HASH}
    blob = json.dumps([body, meta, annotations], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def finish(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = content_hash(manifest)
    return manifest


def _labels(owner: Owner, spec: ModelDeploymentSpec, version: str | None) -> dict[str, str]:
    labels = {
        LABEL_MANAGED: MANAGED_BY,
        "app.kubernetes.io/name": "model-server",
        "app.kubernetes.io/instance": label_value(owner.name),
        LABEL_NAME: label_value(owner.name),
        LABEL_MODEL: label_value(spec.model.name),
    }
    if version is not None:
        labels[LABEL_VERSION] = version
    return labels


def meta(owner: Owner, spec: ModelDeploymentSpec, name: str,
          version: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": _labels(owner, spec, version),
        "annotations": {ANNOTATION_MODEL: spec.model.name},
        "ownerReferences": [owner.reference()],
    }


def selector(owner: Owner, version: str) -> dict[str, str]:
    return {LABEL_NAME: label_value(owner.name), LABEL_VERSION: version}


def template(text: str, served: ServedVersion, model_name: str) -> str:
    """Substitute ``{{ modelUri }}``, ``{{ modelName }}`` and ``{{ version }}``."""
    out = text
    for key, value in (("modelUri", served.model_uri), ("modelName", model_name),
                       ("version", served.version)):
        out = out.replace("{{ " + key + " }}", value).replace("{{" + key + "}}", value)
    return out


def _env(spec: ModelDeploymentSpec, served: ServedVersion) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "MODEL_URI", "value": served.model_uri},
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "MODEL_VERSION", "value": served.version},
        {"name": "MLFLOW_TRACKING_URI", "value": served.registry.tracking_uri},
        {"name": "MLFLOW_REGISTRY_URI", "value": served.registry.registry_uri},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        # Read-only root filesystem: everything MLflow downloads goes to the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 - a private emptyDir
    ]
    creds = served.registry.credentials
    if creds is not None:
        for var, key in (("MLFLOW_TRACKING_TOKEN", creds.token_key),
                         ("MLFLOW_TRACKING_USERNAME", creds.username_key),
                         ("MLFLOW_TRACKING_PASSWORD", creds.password_key)):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {
                "name": creds.name, "key": key, "optional": True}}})
    for item in spec.serving.env or []:
        entry: dict[str, Any] = {"name": item.name}
        if item.value is not None:
            entry["value"] = template(item.value, served, spec.model.name)
        if item.valueFrom is not None:
            entry["valueFrom"] = item.valueFrom
        env.append(entry)
    return env


def _probe(probe: Probe, port: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": probe.path, "port": port},
        "initialDelaySeconds": probe.initialDelaySeconds,
        "periodSeconds": probe.periodSeconds,
        "timeoutSeconds": probe.timeoutSeconds,
        "failureThreshold": probe.failureThreshold,
    }


def _container(spec: ModelDeploymentSpec, served: ServedVersion,
               default_image: str) -> dict[str, Any]:
    serving = spec.serving
    port = serving.port
    command: list[str] | None
    args: list[str] | None
    image: str | None
    if serving.runtime is Runtime.MLFLOW:
        command = serving.command or ["mlflow", "models", "serve"]
        args = serving.args or ["--model-uri", "{{ modelUri }}", "--env-manager", "local",
                                "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104 - in-pod
        image = serving.image or default_image
    else:
        command, args, image = serving.command, serving.args, serving.image
    probes = serving.probes
    readiness = (probes.readiness if probes else None) or Probe()
    liveness = (probes.liveness if probes else None) or Probe(initialDelaySeconds=30,
                                                              periodSeconds=20)
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(spec, served),
        "readinessProbe": _probe(readiness, port),
        "livenessProbe": _probe(liveness, port),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_USER,
            "runAsGroup": RUNTIME_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    if probes and probes.startup:
        container["startupProbe"] = _probe(probes.startup, port)
    if command:
        container["command"] = [template(c, served, spec.model.name) for c in command]
    if args:
        container["args"] = [template(a, served, spec.model.name) for a in args]
    if serving.resources:
        container["resources"] = serving.resources.model_dump(exclude_none=True)
    return container


def render_deployment(owner: Owner, spec: ModelDeploymentSpec, served: ServedVersion, *,
                      default_image: str) -> dict[str, Any]:
    serving = spec.serving
    name = child_name(owner.name, served.version)
    labels = _labels(owner, spec, served.version)
    # Istio's telemetry names workloads by the pods' app and version labels
    # (destination_app, destination_version): the istio-* analysis templates rely on them.
    istio = {"app": label_value(owner.name), "version": served.version}
    pod_labels = {**istio, **(serving.podLabels or {}), **labels}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_USER,
            "runAsGroup": RUNTIME_USER,
            "fsGroup": RUNTIME_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, served, default_image)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if serving.nodeSelector:
        pod_spec["nodeSelector"] = dict(serving.nodeSelector)
    if serving.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in serving.tolerations]
    if serving.serviceAccountName:
        pod_spec["serviceAccountName"] = serving.serviceAccountName
    dep_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(owner, served.version)},
        "revisionHistoryLimit": 2,
        "progressDeadlineSeconds": 600,
        # Never drop below the desired capacity while pods are replaced.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "template": {
            "metadata": {"labels": pod_labels,
                         "annotations": dict(serving.podAnnotations or {})},
            "spec": pod_spec,
        },
    }
    if serving.autoscaling is None:
        # With autoscaling the HPA owns replicas: leaving the field out of our apply keeps
        # server-side apply from fighting it (the apply step hands the current count over
        # first, so the field is never reset to 1 on the way).
        dep_spec["replicas"] = serving.replicas
    return finish({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": meta(owner, spec, name, served.version), "spec": dep_spec})


def _service(owner: Owner, spec: ModelDeploymentSpec, name: str, label_version: str | None,
             target_version: str) -> dict[str, Any]:
    return finish({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(owner, spec, name, label_version),
        "spec": {"type": "ClusterIP", "selector": selector(owner, target_version),
                 "ports": [{"name": "http", "port": 80, "targetPort": "http",
                            "protocol": "TCP"}]},
    })


def render_version_service(owner: Owner, spec: ModelDeploymentSpec,
                           version: str) -> dict[str, Any]:
    """That version alone: what routes point at."""
    return _service(owner, spec, child_name(owner.name, version), version, version)


def render_stable_service(owner: Owner, spec: ModelDeploymentSpec,
                          stable_version: str) -> dict[str, Any]:
    """The stable entry point; switching versions is switching this selector."""
    return _service(owner, spec, child_name(owner.name), None, stable_version)


def render_shared_service(owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The entry point of the replicas router: every version's pods, so traffic follows the
    Ready replicas of each."""
    svc = _service(owner, spec, child_name(owner.name), None, "")
    svc["spec"]["selector"] = {LABEL_NAME: label_value(owner.name)}
    svc["metadata"]["labels"][LABEL_ROUTER] = "replicas"
    svc["metadata"]["annotations"].pop(ANNOTATION_HASH, None)
    return finish(svc)


def render_preview_service(owner: Owner, spec: ModelDeploymentSpec,
                           version: str) -> dict[str, Any]:
    """Blue-green: the new version alone, before the switch (``<name>-preview``)."""
    svc = _service(owner, spec, child_name(owner.name, role="preview"), None, version)
    svc["metadata"]["labels"][LABEL_PREVIEW] = "true"
    svc["metadata"]["annotations"].pop(ANNOTATION_HASH, None)
    return finish(svc)


def render_hpa(owner: Owner, spec: ModelDeploymentSpec, version: str) -> dict[str, Any] | None:
    auto = spec.serving.autoscaling
    if auto is None:
        return None
    name = child_name(owner.name, version)
    return finish({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(owner, spec, name, version),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": auto.minReplicas,
            "maxReplicas": auto.maxReplicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization",
                "averageUtilization": auto.targetCPUUtilizationPercentage}}}],
        },
    })


def render_version(owner: Owner, spec: ModelDeploymentSpec, served: ServedVersion, *,
                   default_image: str) -> list[dict[str, Any]]:
    """Everything one version needs: Deployment, Service, and the HPA when autoscaling."""
    out = [render_deployment(owner, spec, served, default_image=default_image),
           render_version_service(owner, spec, served.version)]
    hpa = render_hpa(owner, spec, served.version)
    if hpa is not None:
        out.append(hpa)
    return out


def desired_replicas(spec: ModelDeploymentSpec) -> int:
    """Replicas a version must have Ready to count as serving (the floor with autoscaling)."""
    auto = spec.serving.autoscaling
    return auto.minReplicas if auto is not None else spec.serving.replicas


# --- drift -----------------------------------------------------------------------------------


def _container_view(c: dict[str, Any]) -> list[Any]:
    return [c.get("name"), c.get("image"), c.get("command") or [], c.get("args") or [],
            [[e.get("name"), e.get("value") or ""] for e in c.get("env") or []],
            [[p.get("name"), p.get("containerPort")] for p in c.get("ports") or []]]


def _view(kind: str, obj: dict[str, Any]) -> Any:
    """The fields the operator owns and others are likely to change, normalised so that the
    apiserver's defaulting and omitempty never read as a change (``value: ""`` is dropped,
    ``fieldRef`` gains an apiVersion, quantities are re-spelt: so env sources and resources
    are left out). ``spec.replicas`` is compared separately (autoscaling owns it)."""
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        tmpl = spec.get("template") or {}
        pod = tmpl.get("spec") or {}
        return [(spec.get("selector") or {}).get("matchLabels") or {},
                (tmpl.get("metadata") or {}).get("labels") or {},
                pod.get("nodeSelector") or {},
                [_container_view(c) for c in pod.get("containers") or []]]
    if kind == "Service":
        return [spec.get("type") or "ClusterIP", spec.get("selector") or {},
                [[p.get("name"), p.get("port"), p.get("targetPort")]
                 for p in spec.get("ports") or []]]
    if kind == "HorizontalPodAutoscaler":
        return [(spec.get("scaleTargetRef") or {}).get("name"), spec.get("minReplicas") or 1,
                spec.get("maxReplicas")]
    if kind == "HTTPRoute":
        return [[[p.get("name"), p.get("namespace"), p.get("sectionName")]
                 for p in spec.get("parentRefs") or []],
                spec.get("hostnames") or [],
                [[[b.get("name"), b.get("port"), b.get("weight", 1)]
                  for b in r.get("backendRefs") or []] for r in spec.get("rules") or []]]
    if kind == "VirtualService":
        return [spec.get("hosts") or [], spec.get("gateways") or [],
                [[[(d.get("destination") or {}).get("host"), d.get("weight")]
                  for d in r.get("route") or []] for r in spec.get("http") or []]]
    return None


def fingerprint(kind: str, obj: dict[str, Any]) -> str:
    """Digest of :func:`_view`: equal for our manifest and the live object it became, until
    someone else changes one of those fields."""
    blob = json.dumps(_view(kind, obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
