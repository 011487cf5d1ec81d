"""The stable path, hardened, on the real stack: each defect's scenario as a user meets it.

Writes are counted from the apiserver's own /metrics and events from the apiserver's event
list, never only from the operator's counters.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from devstack import stack as devstack_stack
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from modeldeploy.api import GROUP
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import deploy_stable, deployments, spec
from tests.support import apiserver
from tests.support.mdep import condition, events, get, manifest, serving, wait_reasons, wait_status
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")


def _quiet(custom: client.CustomObjectsApi, namespace: str, name: str, *,
           settle: float = 3.0) -> str:
    """Wait until the object's resourceVersion has not moved for ``settle`` seconds."""
    last = [get(custom, namespace, name)["metadata"]["resourceVersion"], time.monotonic()]

    def still() -> bool:
        rv = get(custom, namespace, name)["metadata"]["resourceVersion"]
        if rv != last[0]:
            last[:] = [rv, time.monotonic()]
        return time.monotonic() - float(last[1]) >= settle

    eventually(still, timeout=60, interval=0.5, what=f"{name} quiet")
    return str(last[0])


def assert_settled(api: client.ApiClient, custom: client.CustomObjectsApi,
                   core: client.CoreV1Api, namespace: str, name: str, *,
                   window: float = 11.0) -> None:
    """Over ``window`` seconds (two 5 s polls at least): no status write anywhere in the cluster's
    ModelDeployments (apiserver /metrics), no new event, an unchanged resourceVersion."""
    rv = _quiet(custom, namespace, name)
    before = apiserver.metrics(api)
    seen = len(events(core, namespace, name))
    time.sleep(window)
    after = apiserver.metrics(api)
    status_writes = apiserver.writes(after, group=GROUP, resource="modeldeployments",
                                     subresource="status") - apiserver.writes(
        before, group=GROUP, resource="modeldeployments", subresource="status")
    assert status_writes == 0, f"{status_writes} status writes while settled"
    assert len(events(core, namespace, name)) == seen, events(core, namespace, name)[seen:]
    assert get(custom, namespace, name)["metadata"]["resourceVersion"] == rv


def _run_less_version(stack: StackInfo, *, name: str) -> None:
    """Version 1 of ``name`` registered without a run, from an object-store path (MLflow
    answers run_id "" for it)."""
    mlflow = mlflow_client(stack)
    mlflow.create_registered_model(name)
    mv = mlflow.create_model_version(name, source=f"s3://models/{name}", run_id=None)
    assert not mv.run_id and str(mv.version) == "1"
    mlflow.set_registered_model_alias(name, "champion", "1")


def test_run_less_versions_and_model_flips_settle(
    stack: StackInfo, kubectl: Kubectl, api: client.ApiClient,
    custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    with_run = seed_model(stack, name=f"a-{namespace}", alias="champion")
    _run_less_version(stack, name=f"b-{namespace}")
    for model, run in ((f"b-{namespace}", None), (f"a-{namespace}", with_run["run_id"]),
                       (f"b-{namespace}", None)):
        kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, replicas=1)))
        st = wait_status(custom, namespace, "scorer",
                         lambda s, m=model: serving("1")(s) and
                         s["stable"]["modelUri"] == f"models:/{m}/1",
                         what=f"version 1 of {model} Stable")
        assert st["stable"].get("runId") == run, st["stable"]
        assert_settled(api, custom, core, namespace, "scorer")
    wait_reasons(core, namespace, "scorer",
                 lambda r: r == ["NewVersion", "Promoted", "ModelChanged", "ModelChanged"])


def test_a_name_held_by_another_model_deployment_is_a_conflict_never_a_takeover(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, namespace: str,
) -> None:
    fraud = f"fraud-{namespace}"
    seed_model(stack, name=fraud)
    seed_model(stack, name=fraud, alias="champion", bias=1.0)  # version 2: Service fraud-v2
    kubectl("apply", "-f", "-", stdin=manifest("fraud", spec(fraud, replicas=1)))
    wait_status(custom, namespace, "fraud", serving("2"), what="fraud serves version 2")
    theirs = core.read_namespaced_service("fraud-v2", namespace)

    other = f"other-{namespace}"
    seed_model(stack, name=other, alias="champion")
    kubectl("apply", "-f", "-", stdin=manifest("fraud-v2", spec(other, replicas=1)))
    st = wait_status(custom, namespace, "fraud-v2",
                     lambda s: condition(s, "Degraded").get("reason") == "Conflict",
                     what="fraud-v2 reports the conflict")
    assert "Service fraud-v2" in condition(st, "Degraded")["message"]
    assert condition(st, "Stalled")["status"] == "True" and st["phase"] == "Failed"
    svc = core.read_namespaced_service("fraud-v2", namespace)
    assert svc.spec.selector == theirs.spec.selector, "selector not rewritten"
    assert [r.uid for r in svc.metadata.owner_references] == [
        r.uid for r in theirs.metadata.owner_references], "ownerReference not taken"
    assert svc.metadata.resource_version == theirs.metadata.resource_version
    assert wait_status(custom, namespace, "fraud", serving("2"), what="fraud untouched")
    def conflicts() -> list[str]:
        return [r for _, r, _ in events(core, namespace, "fraud-v2") if r == "Conflict"]

    # The event follows the status write (never the other way round): wait for it, then
    # make sure the retries (5 s, 10 s, ...) did not add more.
    eventually(conflicts, timeout=10, what="the Conflict event")
    time.sleep(6)
    assert conflicts() == ["Conflict"], "one warning, not one per retry"


def test_turning_on_autoscaling_keeps_the_current_replica_count(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    model = f"auto-{namespace}"
    seed_model(stack, name=model, alias="champion")
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, replicas=3)))
    wait_status(custom, namespace, "scorer", serving("1"), what="3 replicas Stable")
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, replicas=3, serving={
        "autoscaling": {"minReplicas": 1, "maxReplicas": 5}})))
    hpa = client.AutoscalingV2Api(apps.api_client)
    eventually(lambda: hpa.read_namespaced_horizontal_pod_autoscaler("scorer-v1", namespace),
               timeout=30, what="the HPA exists")
    observed = []
    for _ in range(10):  # over ~5 s: never reset to 1 on the way
        observed.append(apps.read_namespaced_deployment("scorer-v1", namespace).spec.replicas)
        time.sleep(0.5)
    assert set(observed) == {3}, observed
    st = wait_status(custom, namespace, "scorer", serving("1"), what="still Stable")
    assert st["observedGeneration"] == 2


def test_a_child_the_apiserver_refuses_becomes_apply_failed_then_recovers(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str,
) -> None:
    model = f"refused-{namespace}"
    seed_model(stack, name=model, alias="champion")
    bad = {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, serving=bad)))
    st = wait_status(custom, namespace, "scorer",
                     lambda s: condition(s, "Degraded").get("reason") == "ApplyFailed",
                     what="ApplyFailed with the apiserver's message")
    message = condition(st, "Degraded")["message"]
    assert "Deployment scorer-v1" in message and "422" in message
    assert "must be less than or equal to cpu limit" in message, message
    assert st["phase"] == "Failed" and condition(st, "Stalled")["status"] == "True"
    assert deployments(apps, namespace) == {}
    time.sleep(6)  # backoff: the same refusal does not turn into a stream of events
    assert [r for _, r, _ in events(core, namespace, "scorer")].count("ApplyFailed") == 1

    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model)))
    st = wait_status(custom, namespace, "scorer", serving("1"), timeout=90,
                     what="Stable once the spec is fixed")
    assert condition(st, "Stalled")["status"] == "False"


def test_drift_in_owned_fields_is_reverted(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    deploy_stable(stack, kubectl, custom, namespace)
    kubectl("scale", "deployment/scorer-v1", "--replicas=5")
    eventually(lambda: apps.read_namespaced_deployment("scorer-v1", namespace)
               .spec.replicas == 2, timeout=30, what="kubectl scale reverted")
    kubectl("set", "image", "deployment/scorer-v1", "server=example.com/evil:1")
    eventually(lambda: apps.read_namespaced_deployment("scorer-v1", namespace)
               .spec.template.spec.containers[0].image != "example.com/evil:1",
               timeout=30, what="kubectl set image reverted")
    wait_status(custom, namespace, "scorer", serving("1"), what="Stable again")


def test_a_canary_scaled_to_zero_out_of_band_is_not_promoted(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    model, (_, v2) = deploy_stable(stack, kubectl, custom, namespace, versions=2)
    # From now on no new pod becomes Ready: version 1's old pods keep serving.
    failing = spec(model, serving={"podLabels": {"modeldeploy.io/simulate": "fail"}})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", failing))
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2["version"])
    wait_status(custom, namespace, "scorer",
                lambda s: (s.get("canary") or {}).get("version") == "2",
                what="version 2 coming up")
    eventually(lambda: "scorer-v2" in deployments(apps, namespace), timeout=30,
               what="version 2's Deployment")
    kubectl("scale", "deployment/scorer-v2", "--replicas=0")
    eventually(lambda: apps.read_namespaced_deployment("scorer-v2", namespace)
               .spec.replicas == 2, timeout=30, what="the scale-down reverted")
    time.sleep(3)
    st = get(custom, namespace, "scorer")["status"]
    assert st["stable"]["version"] == "1" and st["canary"]["version"] == "2"
    assert "scorer-v1" in deployments(apps, namespace), "the serving version is kept"


@pytest.mark.parametrize("name", [
    "fraud.scorer.eu-west-1", "7eleven-scorer",
    "a-model-deployment-name-that-is-much-longer-than-sixty-three-characters-in-total"])
def test_every_name_the_apiserver_accepts_works_end_to_end(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, name: str,
) -> None:
    model = f"name-{namespace}"
    seed_model(stack, name=model, alias="champion")
    kubectl("apply", "-f", "-", stdin=manifest(name, spec(model, replicas=1)))
    wait_status(custom, namespace, name, serving("1"), what=f"{name} Stable")
    [dep] = deployments(apps, namespace).values()
    assert dep.status.ready_replicas == 1
    services = {s.metadata.name: s for s in core.list_namespaced_service(namespace).items}
    assert len(services) == 2 and all(len(n) <= 63 for n in services)
    entry = next(s for s in services.values() if "modeldeploy.io/version" not in
                 (s.metadata.labels or {}))
    pods = core.list_namespaced_pod(namespace, label_selector=",".join(
        f"{k}={v}" for k, v in entry.spec.selector.items())).items
    assert len(pods) == 1, "the entry Service selects the serving pod"


def test_a_unicode_model_name_works_end_to_end(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    model = f"modèle-de-fraude-{namespace}"
    seed_model(stack, name=model, alias="champion")
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, replicas=1)))
    st = wait_status(custom, namespace, "scorer", serving("1"), what="Stable")
    assert st["stable"]["modelUri"] == f"models:/{model}/1"
    dep = apps.read_namespaced_deployment("scorer-v1", namespace)
    assert dep.metadata.annotations["modeldeploy.io/model-name"] == model
    assert dep.metadata.labels["modeldeploy.io/model"].isascii()


def test_a_model_name_mlflow_refuses_is_a_spec_problem_not_an_outage(
    kubectl: Kubectl, custom: client.CustomObjectsApi, namespace: str,
) -> None:
    # MLflow refuses ".." (a name that resolves to another path); "/" and ":" are refused
    # at admission already, since MLflow never accepts them.
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec("..")))
    st = wait_status(custom, namespace, "scorer",
                     lambda s: condition(s, "Ready").get("reason") == "InvalidSpec",
                     what="InvalidSpec from the registry's refusal")
    assert condition(st, "RegistryReachable")["status"] == "True"
    assert condition(st, "Stalled")["status"] == "True" and st["phase"] == "Failed"


@pytest.mark.parametrize(("body", "field", "message"), [
    (spec("m", serving={"env": [{"name": "MODEL_URI", "value": "s3://elsewhere"}]}),
     "spec.serving.env", "MODEL_URI"),
    (spec("m", poll="1s"), "spec.model.pollInterval", "at least 5s"),
    (spec("team/fraud"), "spec.model.name", "contain '/' or ':'"),
])
def test_specs_that_could_never_work_are_refused_at_admission(
    kubectl: Kubectl, body: dict[str, Any], field: str, message: str,
) -> None:
    with pytest.raises(AssertionError) as err:
        kubectl("apply", "-f", "-", stdin=manifest("bad", body))
    assert field in str(err.value) and message in str(err.value), str(err.value)


def test_kubectl_get_is_narrow_and_wide_shows_the_rest(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi, namespace: str,
) -> None:
    deploy_stable(stack, kubectl, custom, namespace)
    header = kubectl("get", "mdep").splitlines()[0].split()
    assert header == ["NAME", "MODEL", "STABLE", "PHASE", "AGE"]
    wide = kubectl("get", "mdep", "-o", "wide").splitlines()[0].split()
    assert wide == ["NAME", "MODEL", "SELECTOR", "STABLE", "CANARY", "WEIGHT", "STEP", "PHASE",
                    "AGE"]
    assert json.loads(kubectl("get", "mdep", "scorer", "-o", "json"))["status"]["phase"] == \
        "Stable"


def test_kstatus_reads_the_phases_as_flux_and_kpt_would(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi, namespace: str,
) -> None:
    """sigs.k8s.io/cli-utils' own status.Compute, built from its Go module, on live objects."""
    def kstatus(name: str) -> str:
        return devstack_stack.kstatus(stack, get(custom, namespace, name))["status"]

    model, _ = deploy_stable(stack, kubectl, custom, namespace)
    assert kstatus("scorer") == "Current"
    # A spec change whose new pods never become Ready: the rollout is still under way.
    kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, serving={
        "podLabels": {"modeldeploy.io/simulate": "fail"}})))
    eventually(lambda: kstatus("scorer") == "InProgress", timeout=30,
               what="a changed spec reads InProgress")
    # A model that does not exist, past the operator's stall threshold (3 s in tests).
    kubectl("apply", "-f", "-", stdin=manifest("ghost", spec(f"no-such-{namespace}")))
    eventually(lambda: kstatus("ghost") == "Failed", timeout=60,
               what="a missing model reads Failed once Stalled")
    # A name the registry refuses: a spec problem, Failed at once.
    kubectl("apply", "-f", "-", stdin=manifest("refused", spec("..")))
    eventually(lambda: kstatus("refused") == "Failed", timeout=60,
               what="a refused model name reads Failed")


ROUTES_CRD = "httproutes.gateway.networking.k8s.io"


def test_a_route_kind_the_apiserver_does_not_serve_is_apply_failed_until_it_is_installed(
    stack: StackInfo, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    """The Gateway API CRDs are missing (a cluster without them): the HTTPRoute write answers
    404, which is ApplyFailed with the apiserver's words, not a retry loop; installing the CRD
    later is picked up without touching the ModelDeployment."""
    ext = client.ApiextensionsV1Api(api)
    saved = api.sanitize_for_serialization(ext.read_custom_resource_definition(ROUTES_CRD))
    saved.pop("status", None)
    saved["metadata"] = {k: v for k, v in saved["metadata"].items()
                         if k in ("name", "labels", "annotations")}
    ext.delete_custom_resource_definition(ROUTES_CRD)

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(ROUTES_CRD)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    restored = False
    try:
        eventually(gone, timeout=60, what="the HTTPRoute CRD deleted")
        model = f"routed-{namespace}"
        seed_model(stack, name=model, alias="champion")
        traffic = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
        kubectl("apply", "-f", "-", stdin=manifest("scorer", spec(model, traffic=traffic)))
        st = wait_status(custom, namespace, "scorer",
                         lambda s: condition(s, "Degraded").get("reason") == "ApplyFailed",
                         what="ApplyFailed for the unserved HTTPRoute kind")
        message = condition(st, "Degraded")["message"]
        assert "HTTPRoute scorer" in message and "404" in message, message
        assert "does not serve HTTPRoute (gateway.networking.k8s.io/v1" in message, message
        assert condition(st, "Stalled")["status"] == "True"
        time.sleep(6)  # backoff: one event, not one per retry
        assert [r for _, r, _ in events(core, namespace, "scorer")].count("ApplyFailed") == 1

        ext.create_custom_resource_definition(saved)
        restored = True
        st = wait_status(custom, namespace, "scorer", serving("1"), timeout=120,
                         what="Stable once the CRD is installed (the backoff retries)")
        assert condition(st, "Degraded")["status"] == "False"
        route = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1",
                                                    namespace, "httproutes", "scorer")
        refs = route["spec"]["rules"][-1]["backendRefs"]
        assert [(r["name"], r.get("weight")) for r in refs] == [("scorer-v1", 100)], refs
    finally:
        if not restored:
            eventually(gone, timeout=60, what="the HTTPRoute CRD deleted")
            ext.create_custom_resource_definition(saved)
        eventually(lambda: any(c.type == "Established" and c.status == "True" for c in
                               ext.read_custom_resource_definition(ROUTES_CRD).status
                               .conditions or []), timeout=60, what="HTTPRoute CRD Established")
