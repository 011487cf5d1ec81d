"""Pure renderers: names, labels, pod security, runtimes, autoscaling."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.world import RegistryTarget, SecretRef

OWNER = render.Owner(name="scorer", namespace="ml", uid="uid-1")
TARGET = RegistryTarget(tracking_uri="http://mlflow:5000", registry_uri="http://mlflow:5000",
                        credentials=SecretRef(namespace="ml", name="mlflow-token"))
SERVED = render.ServedVersion(version="8", model_uri="models:/fraud-scorer/8", registry=TARGET)


def deployment(**serving: Any) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"name": "fraud-scorer", "alias": "champion"}, "serving": serving})
    return render.render_deployment(OWNER, spec, SERVED, default_image="mlflow:test")


def container(**serving: Any) -> dict[str, Any]:
    return dict(deployment(**serving)["spec"]["template"]["spec"]["containers"][0])


def test_pods_meet_the_restricted_pod_security_profile() -> None:
    dep = deployment()
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False


def test_children_carry_owner_version_labels_and_a_content_hash() -> None:
    dep = deployment()
    meta = dep["metadata"]
    assert meta["name"] == "scorer-v8"
    assert meta["ownerReferences"] == [OWNER.reference()]
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"][render.LABEL_VERSION] == "8"
    assert meta["labels"][render.LABEL_MANAGED] == "modeldeploy"
    assert dep["spec"]["selector"]["matchLabels"] == {render.LABEL_NAME: "scorer",
                                                      render.LABEL_VERSION: "8"}
    assert meta["annotations"][render.ANNOTATION_HASH] == render.content_hash(dep)
    assert deployment()["metadata"]["annotations"] == meta["annotations"], "deterministic"
    assert deployment(replicas=3)["metadata"]["annotations"][render.ANNOTATION_HASH] != \
        meta["annotations"][render.ANNOTATION_HASH]


def test_mlflow_runtime_serves_the_resolved_version() -> None:
    c = container()
    assert c["image"] == "mlflow:test"
    assert c["command"] == ["mlflow", "models", "serve"]
    assert c["args"][:2] == ["--model-uri", "models:/fraud-scorer/8"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-token", "key": "token", "optional": True}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 8080}


def test_custom_runtime_templates_command_args_and_env() -> None:
    c = container(runtime="custom", image="me/server:1", port=9000,
                  args=["--model={{ modelUri }}", "--name={{modelName}}", "--v={{ version }}"],
                  env=[{"name": "WHERE", "value": "{{ modelUri }}"}])
    assert c["image"] == "me/server:1"
    assert "command" not in c
    assert c["args"] == ["--model=models:/fraud-scorer/8", "--name=fraud-scorer", "--v=8"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["WHERE"] == "models:/fraud-scorer/8" and env["MODEL_URI"] == env["WHERE"]
    assert c["ports"][0]["containerPort"] == 9000


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"name": "m", "alias": "a"}, "serving": {"autoscaling": {"minReplicas": 2,
                                                              "maxReplicas": 5}}})
    out = render.render_version(OWNER, spec, SERVED, default_image="x")
    dep = next(m for m in out if m["kind"] == "Deployment")
    hpa = next(m for m in out if m["kind"] == "HorizontalPodAutoscaler")
    assert "replicas" not in dep["spec"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_scheduling_fields_pass_through() -> None:
    pod = deployment(nodeSelector={"gpu": "yes"}, serviceAccountName="sa",
                     tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                     podLabels={"team": "risk"}, resources={"requests": {"cpu": "500m"}})[
        "spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"gpu": "yes"}
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}]
    assert pod["metadata"]["labels"]["team"] == "risk"
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "500m"}}


def test_pod_labels_cannot_override_the_selector_labels() -> None:
    pod = deployment(podLabels={render.LABEL_VERSION: "evil"})["spec"]["template"]
    assert pod["metadata"]["labels"][render.LABEL_VERSION] == "8"


@pytest.mark.parametrize(
    ("owner", "version"),
    [("a" * 63, "12"), ("model-deployment-with-a-really-long-name-for-no-good-reason", "123")],
)
def test_child_names_fit_in_63_characters(owner: str, version: str) -> None:
    name = render.child_name(owner, version)
    assert len(name) <= 63 and name.endswith(f"-v{version}")
    assert render.child_name(owner, version) == name
    assert render.child_name(owner + "x", version) != name


@pytest.mark.parametrize(
    ("text", "ok"),
    [("fraud-scorer", "fraud-scorer"), ("Fraud Scorer (v2)", None), ("x" * 80, None)],
)
def test_label_values_are_valid(text: str, ok: str | None) -> None:
    value = render.label_value(text)
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
    if ok:
        assert value == ok


@pytest.mark.parametrize("owner", [
    "fraud.scorer", "7-eleven", "0", "a" * 63, "a.b." + "c" * 200, "x" * 253, "m-" + "1" * 60])
@pytest.mark.parametrize("version", [None, "1", "12345678901234567890"])
def test_every_name_the_apiserver_accepts_gives_dns_1035_child_names(
    owner: str, version: str | None,
) -> None:
    name = render.child_name(owner, version)
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
    assert name.endswith(f"-v{version}" if version else name[-1])


@pytest.mark.parametrize(("a", "b"), [("a.b", "a-b"), ("1abc", "m1abc"), ("x" * 70, "x" * 71)])
def test_names_that_had_to_change_never_collide_with_the_names_they_look_like(
    a: str, b: str,
) -> None:
    assert render.child_name(a) != render.child_name(b)
    assert render.child_name(a, "2") != render.child_name(b, "2")


def test_valid_short_names_are_used_as_they_are() -> None:
    assert render.child_name("fraud", "2") == "fraud-v2"
    assert render.child_name("fraud-v2") == "fraud-v2", "a collision the operator checks for"


@pytest.mark.parametrize("text", ["modèle-fraude", "模型", "Ünïcode Model", "ok" + "é" * 70])
def test_label_values_are_ascii_for_unicode_model_names(text: str) -> None:
    value = render.label_value(text)
    assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value), value
    assert len(value) <= 63 and value.isascii()
    assert render.label_value(text) != render.label_value(text + "x")


def _as_returned_by_the_apiserver(manifest: dict[str, Any]) -> dict[str, Any]:
    """What defaulting and omitempty do to our Deployment on the way back."""
    live = copy.deepcopy(manifest)
    pod = live["spec"]["template"]["spec"]
    pod["serviceAccountName"] = pod.get("serviceAccountName", "default")
    pod["dnsPolicy"] = "ClusterFirst"
    c = pod["containers"][0]
    c["terminationMessagePath"] = "/dev/termination-log"
    c["imagePullPolicy"] = "IfNotPresent"
    c["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
    c["readinessProbe"]["successThreshold"] = 1
    for env in c["env"]:
        if env.get("value") == "":
            del env["value"]
        if "fieldRef" in (env.get("valueFrom") or {}):
            env["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    c["resources"] = {"requests": {"cpu": "500m"}}  # "0.5" re-spelt
    live["metadata"]["uid"] = "abc"
    live["status"] = {"readyReplicas": 2}
    return live


def test_the_fingerprint_survives_defaulting_but_not_a_changed_image() -> None:
    manifest = deployment(env=[{"name": "EMPTY", "value": ""},
                               {"name": "NODE", "valueFrom": {"fieldRef": {
                                   "fieldPath": "spec.nodeName"}}}],
                          resources={"requests": {"cpu": "0.5"}})
    live = _as_returned_by_the_apiserver(manifest)
    assert render.fingerprint("Deployment", live) == render.fingerprint("Deployment", manifest)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert render.fingerprint("Deployment", live) != render.fingerprint("Deployment", manifest)


def test_the_fingerprint_sees_a_changed_service_selector() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m", "alias": "a"}})
    svc = render.render_stable_service(OWNER, spec, "1")
    live = copy.deepcopy(svc)
    live["spec"]["clusterIP"] = "10.0.0.7"
    live["spec"]["ports"][0]["targetPort"] = "http"
    assert render.fingerprint("Service", live) == render.fingerprint("Service", svc)
    live["spec"]["selector"][render.LABEL_VERSION] = "9"
    assert render.fingerprint("Service", live) != render.fingerprint("Service", svc)


def test_pods_carry_the_app_and_version_labels_istio_telemetry_reads() -> None:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == render.label_value(OWNER.name)
    assert labels["version"] == deployment()["metadata"]["labels"][render.LABEL_VERSION]
