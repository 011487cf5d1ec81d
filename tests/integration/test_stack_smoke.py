"""The local stack does what the rest of the test suite relies on.

Each test checks real behaviour of a real component: the Deployment controller and kwok make
pods Ready, the garbage collector removes orphans, the MLflow server resolves aliases, and
Prometheus sees the per-version traffic split that each router asks for: an HTTPRoute's or a
VirtualService's weights, or the Ready endpoints behind a replicas Service.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from devstack import versions
from devstack.kwok_stages import FAIL_LABEL, FAIL_VALUE
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo, refresh
from devstack.stackclient import Prometheus, Traffic
from tests.integration.conftest import Kubectl, condition
from tests.support.wait import eventually

RESTRICTED_CONTAINER = {
    "name": "server",
    "image": "registry.invalid/model-server:1",  # never pulled: kwok fakes the kubelet
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def deployment(name: str, *, replicas: int = 2, labels: dict[str, str] | None = None,
               owner: dict[str, Any] | None = None) -> dict[str, Any]:
    pod_labels = {"app": name, **(labels or {})}
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [RESTRICTED_CONTAINER]},
            },
        },
    }


def pods_of(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def test_apiserver_reports_pinned_version(api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert info.git_version == versions.KUBERNETES
    assert info.major == "1"


def test_deployment_becomes_available_with_ready_pods(
    kubectl: Kubectl, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment("web", replicas=3)))

    dep = eventually(
        lambda: (d := apps.read_namespaced_deployment("web", namespace))
        and (d.status.available_replicas or 0) == 3 and d,
        timeout=60, what="Deployment web Available with 3 replicas",
    )
    assert condition(dep, "Available") == "True"
    pods = pods_of(core, namespace, "web")
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert condition(pod, "Ready") == "True"
        assert pod.spec.node_name.startswith("kwok-node-")
        assert pod.status.pod_ip, "kwok assigns a (fake, never contacted) pod IP"


def test_deleting_owner_garbage_collects_dependents(
    kubectl: Kubectl, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment("owned", replicas=1, owner=ref)))
    eventually(lambda: len(pods_of(core, namespace, "owned")) == 1, timeout=60,
               what="pod of the owned Deployment created")

    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        deps = apps.list_namespaced_deployment(namespace).items
        sets = apps.list_namespaced_replica_set(namespace).items
        return not deps and not sets and not pods_of(core, namespace, "owned")

    eventually(gone, timeout=60, what="Deployment, ReplicaSet and pods garbage-collected")


def test_pod_labelled_to_fail_is_not_ready(
    kubectl: Kubectl, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(
        deployment("broken", replicas=2, labels={FAIL_LABEL: FAIL_VALUE})))
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment("healthy", replicas=1)))

    def failing() -> list[client.V1Pod]:
        pods = pods_of(core, namespace, "broken")
        ok = len(pods) == 2 and all(
            p.status.phase == "Running" and condition(p, "Ready") == "False" for p in pods)
        return pods if ok else []

    pods = eventually(failing, timeout=60, what="labelled pods Running but not Ready")
    waiting = pods[0].status.container_statuses[0].state.waiting
    assert waiting.reason == "CrashLoopBackOff"
    eventually(lambda: (apps.read_namespaced_deployment("healthy", namespace)
                        .status.available_replicas or 0) == 1,
               timeout=60, what="unlabelled Deployment still becomes Available")
    broken = apps.read_namespaced_deployment("broken", namespace)
    assert not broken.status.available_replicas
    assert broken.status.unavailable_replicas == 2

    # A pod that was Ready and then gets the label loses readiness: this is how a test makes
    # an already-running version fail mid-rollout.
    healthy_pod = pods_of(core, namespace, "healthy")[0].metadata.name
    kubectl("label", "pod", healthy_pod, f"{FAIL_LABEL}={FAIL_VALUE}")
    eventually(lambda: condition(core.read_namespaced_pod(healthy_pod, namespace),
                                 "Ready") == "False",
               timeout=30, what="pod labelled after becoming Ready turns not Ready")


def test_mlflow_registered_model_resolves_by_alias(stack: StackInfo) -> None:
    first = seed_model(stack, name="smoke-scorer", alias="champion", metrics={"rmse": 0.4})
    second = seed_model(stack, name="smoke-scorer", metrics={"rmse": 0.3}, bias=1.0)

    # Resolve with mlflow-skinny's client, explicitly configured, as the operator will.
    mlflow = mlflow_client(stack)
    mv = mlflow.get_model_version_by_alias("smoke-scorer", "champion")
    assert mv.version == first["version"]
    assert mv.run_id == first["run_id"]
    assert mv.source.startswith("models:/"), mv.source
    assert mlflow.get_run(mv.run_id).data.metrics["rmse"] == pytest.approx(0.4)

    mlflow.set_registered_model_alias("smoke-scorer", "champion", second["version"])
    moved = mlflow.get_model_version_by_alias("smoke-scorer", "champion")
    assert moved.version == second["version"] != first["version"]


def _route(name: str, model: str, weights: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": {"modeldeploy.io/model": model}},
        "spec": {"rules": [{"backendRefs": [
            {"name": svc, "port": 8080, "weight": w} for svc, w in weights.items()]}]},
    }


def _service(name: str, model: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {
            "modeldeploy.io/model": model, "modeldeploy.io/version": version}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8080}]},
    }


def _shares(prom: Prometheus, namespace: str, window: str = "10s") -> dict[str, float]:
    rates = prom.by_label(
        f'sum by (version) (rate(model_requests_total{{namespace="{namespace}"}}[{window}]))',
        "version",
    )
    total = sum(rates.values())
    return {v: r / total for v, r in rates.items()} if total else {}


def test_prometheus_rate_follows_httproute_weights(
    kubectl: Kubectl, prom: Prometheus, traffic: Traffic, namespace: str
) -> None:
    objects = [_service("scorer-v1", "scorer", "1"), _service("scorer-v2", "scorer", "2"),
               _route("scorer", "scorer", {"scorer-v1": 90, "scorer-v2": 10})]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))

    def near(target: dict[str, float], tol: float) -> dict[str, float] | None:
        shares = _shares(prom, namespace)
        ok = set(shares) == set(target) and all(
            abs(shares[v] - t) <= tol for v, t in target.items())
        return shares if ok else None

    eventually(lambda: near({"1": 0.9, "2": 0.1}, 0.03), timeout=45, interval=1,
               what="Prometheus shows a 90/10 split")

    kubectl("apply", "-f", "-", stdin=json.dumps(
        _route("scorer", "scorer", {"scorer-v1": 50, "scorer-v2": 50})))
    eventually(lambda: near({"1": 0.5, "2": 0.5}, 0.03), timeout=45, interval=1,
               what="Prometheus follows the route to a 50/50 split")

    kubectl("apply", "-f", "-", stdin=json.dumps(
        _route("scorer", "scorer", {"scorer-v1": 0, "scorer-v2": 100})))
    eventually(lambda: (s := _shares(prom, namespace, "5s")).get("2", 0) > 0.99 and s,
               timeout=45, interval=1, what="all traffic on v2 after weight 0/100")


def test_per_version_error_rate_and_latency_are_controllable(
    kubectl: Kubectl, prom: Prometheus, traffic: Traffic, namespace: str
) -> None:
    objects = [_service("m-v1", "m", "1"), _service("m-v2", "m", "2"),
               _route("m", "m", {"m-v1": 50, "m-v2": 50})]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))
    traffic.behaviour(namespace=namespace, model="m", version="2", error_rate=0.25, latency=0.4)
    try:
        def error_ratio() -> dict[str, float] | None:
            rows = prom.by_label(
                f'sum by (version) (rate(model_requests_total{{namespace="{namespace}",'
                f'code="500"}}[10s])) / sum by (version) '
                f'(rate(model_requests_total{{namespace="{namespace}"}}[10s]))',
                "version",
            )
            return rows if rows.get("2", 0) == pytest.approx(0.25, abs=0.03) else None

        ratios = eventually(error_ratio, timeout=45, interval=1,
                            what="v2 error ratio near 0.25 in Prometheus")
        assert ratios.get("1", 0.0) == 0.0

        p50 = eventually(
            lambda: (r := prom.by_label(
                "histogram_quantile(0.5, sum by (version, le) (rate("
                f'model_request_duration_seconds_bucket{{namespace="{namespace}"}}[10s])))',
                "version")) and len(r) == 2 and r,
            timeout=30, interval=1, what="latency quantiles for both versions")
        assert p50["2"] > 0.3 > 0.1 > p50["1"], p50
    finally:
        traffic.reset(namespace)


@pytest.fixture(scope="module")
def current(stack: StackInfo) -> StackInfo:
    """The stack with this checkout's bring-up applied: the ``stack`` fixture reuses a running
    stack as it is, and one started before Istio's CRDs (or with an older traffic exporter)
    would fail these tests for the wrong reason."""
    return refresh(stack)


def _virtualservice(name: str, model: str, weights: dict[str, int]) -> dict[str, Any]:
    """What the operator's istio router writes (labels: the ModelDeployment and its model)."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "labels": {"modeldeploy.io/name": name,
                                              "modeldeploy.io/model": model}},
        "spec": {"hosts": [f"{name}.example.com"], "http": [{"route": [
            {"destination": {"host": host, "port": {"number": 80}}, "weight": w}
            for host, w in weights.items()]}]},
    }


def _istio_shares(prom: Prometheus, namespace: str, app: str) -> dict[str, float]:
    rates = prom.by_label(
        'sum by (destination_version) (rate(istio_requests_total{reporter="destination", '
        f'destination_workload_namespace="{namespace}", destination_app="{app}"}}[10s]))',
        "destination_version",
    )
    total = sum(rates.values())
    return {v: r / total for v, r in rates.items()} if total else {}


def _near(shares: dict[str, float], target: dict[str, float],
          tol: float = 0.03) -> dict[str, float] | None:
    ok = set(shares) == set(target) and all(abs(shares[v] - t) <= tol for v, t in target.items())
    return shares if ok else None


def test_prometheus_rates_follow_virtualservice_weights(
    current: StackInfo, kubectl: Kubectl, prom: Prometheus, traffic: Traffic, namespace: str
) -> None:
    # One short host and one fully qualified: the operator writes the first, people the second.
    fqdn = f"scorer-v2.{namespace}.svc.cluster.local"
    objects = [_service("scorer-v1", "scorer", "1"), _service("scorer-v2", "scorer", "2"),
               _virtualservice("scorer", "scorer", {"scorer-v1": 80, fqdn: 20})]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))
    traffic.behaviour(namespace=namespace, model="scorer", version="2", error_rate=0.5)
    try:
        eventually(lambda: _near(_shares(prom, namespace), {"1": 0.8, "2": 0.2}), timeout=45,
                   interval=1, what="model_requests_total shows the VirtualService's 80/20")
        eventually(lambda: _near(_istio_shares(prom, namespace, "scorer"),
                                 {"1": 0.8, "2": 0.2}),
                   timeout=30, interval=1, what="istio_requests_total shows the same 80/20")
        [split] = [r for r in traffic.state()["routes"] if r["namespace"] == namespace]
        assert (split["router"], split["route"], split["app"]) == ("istio", "scorer", "scorer")

        # Istio's error-rate shape: 5xx share per destination_version, as templates ask it.
        errors = eventually(lambda: (r := prom.by_label(
            'sum by (destination_version) (rate(istio_requests_total{reporter="destination", '
            f'destination_workload_namespace="{namespace}", response_code=~"5.."}}[10s])) '
            "/ sum by (destination_version) (rate(istio_requests_total{"
            f'destination_workload_namespace="{namespace}"}}[10s]))', "destination_version"))
            and r.get("2", 0) == pytest.approx(0.5, abs=0.05) and r,
            timeout=30, interval=1, what="v2's Istio 5xx ratio near 0.5")
        assert "1" not in errors  # no 500 series for v1 at all
        p50 = eventually(lambda: (r := prom.by_label(
            "histogram_quantile(0.5, sum by (destination_version, le) (rate("
            f'istio_request_duration_milliseconds_bucket{{destination_workload_namespace='
            f'"{namespace}"}}[10s])))', "destination_version")) and len(r) == 2 and r,
            timeout=30, interval=1, what="Istio latency quantiles (ms) for both versions")
        assert 25 <= p50["1"] <= 100, p50  # 50 ms by default, in milliseconds

        kubectl("apply", "-f", "-", stdin=json.dumps(
            _virtualservice("scorer", "scorer", {"scorer-v1": 30, fqdn: 70})))
        eventually(lambda: _near(_istio_shares(prom, namespace, "scorer"),
                                 {"1": 0.3, "2": 0.7}),
                   timeout=45, interval=1, what="Istio metrics follow the VirtualService to 30/70")
    finally:
        traffic.reset(namespace)


@pytest.mark.parametrize(
    ("http", "complaint"),
    [
        pytest.param([{"route": [{"destination": {"host": "a"}, "weight": "abc"}]}],
                     "spec.http[0].route[0].weight in body must be of type integer",
                     id="weight not an integer"),
        pytest.param("all of it", "spec.http in body must be of type array", id="http not a list"),
        pytest.param([{"route": [{"weight": 100}]}],
                     "spec.http[0].route[0].destination: Required value", id="no destination"),
    ],
)
def test_apiserver_validates_virtualservices_against_istios_schema(
    current: StackInfo, kubectl: Kubectl, http: Any, complaint: str
) -> None:
    vs = _virtualservice("bad", "bad", {})
    vs["spec"]["http"] = http
    with pytest.raises(AssertionError) as refused:
        kubectl("apply", "-f", "-", stdin=json.dumps(vs))
    assert complaint in str(refused.value)
    assert "VirtualService" in str(refused.value)


def _version_deployment(name: str, version: str, replicas: int) -> dict[str, Any]:
    return deployment(f"{name}-v{version}", replicas=replicas, labels={
        "modeldeploy.io/name": name, "modeldeploy.io/version": version})


def _replicas_service(name: str, model: str) -> dict[str, Any]:
    """The entry Service of the replicas router: every version's pods behind one name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {
            "modeldeploy.io/name": name, "modeldeploy.io/model": model,
            "app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.io/router": "replicas"}},
        "spec": {"selector": {"modeldeploy.io/name": name}, "ports": [{"port": 80}]},
    }


def test_replicas_router_splits_by_ready_endpoints(
    current: StackInfo, kubectl: Kubectl, core: client.CoreV1Api, prom: Prometheus,
    traffic: Traffic, namespace: str
) -> None:
    objects = [_version_deployment("ranker", "1", 3), _version_deployment("ranker", "2", 1),
               _replicas_service("ranker", "ranker")]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))

    eventually(lambda: _near(_shares(prom, namespace), {"1": 0.75, "2": 0.25}), timeout=60,
               interval=1, what="Prometheus shows 3:1 Ready endpoints as 75/25")
    [split] = [r for r in traffic.state()["routes"] if r["namespace"] == namespace]
    assert split["router"] == "replicas"
    assert {b["version"]: b["weight"] for b in split["backends"]} == {"1": 3, "2": 1}

    # A v1 pod that stops being Ready leaves the EndpointSlice's Ready set, and its traffic.
    pod = pods_of(core, namespace, "ranker-v1")[0].metadata.name
    kubectl("label", "pod", pod, f"{FAIL_LABEL}={FAIL_VALUE}")
    eventually(lambda: _near(_shares(prom, namespace, "5s"), {"1": 2 / 3, "2": 1 / 3}, 0.04),
               timeout=45, interval=1, what="2:1 Ready endpoints after a v1 pod fails")


def test_an_ab_route_and_a_mirror_are_simulated_from_the_live_httproute(
    kubectl: Kubectl, prom: Prometheus, traffic: Traffic, namespace: str
) -> None:
    """The A/B audience (25% of users by default) reaches the header-matched rule's version;
    everyone else the default rule's, of whose requests 50% are mirrored: copies counted with
    source="mirror", whose errors no user sees."""
    route = _route("ab", "ab", {"ab-v1": 100})
    route["spec"]["rules"] = [
        {"matches": [{"headers": [{"name": "x-cohort", "value": "b"}]}],
         "backendRefs": [{"name": "ab-v2", "port": 8080}]},
        {"backendRefs": [{"name": "ab-v1", "port": 8080, "weight": 100}],
         "filters": [{"type": "RequestMirror", "requestMirror": {
             "backendRef": {"name": "ab-v3", "port": 8080}, "percent": 50}}]},
    ]
    objects = [_service("ab-v1", "ab", "1"), _service("ab-v2", "ab", "2"),
               _service("ab-v3", "ab", "3"), route]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))
    traffic.behaviour(namespace=namespace, model="ab", version="3", error_rate=1.0)

    def by(source: str) -> dict[str, float]:
        return prom.by_label(
            f'sum by (version) (rate(model_requests_total{{namespace="{namespace}",'
            f'source="{source}"}}[10s]))', "version")

    def split() -> tuple[dict[str, float], dict[str, float]] | None:
        live, mirrored = by("live"), by("mirror")
        total = sum(live.values())
        if not total or set(live) != {"1", "2"} or set(mirrored) != {"3"}:
            return None
        ok = (abs(live["2"] / total - 0.25) < 0.03
              and abs(mirrored["3"] / live["1"] - 0.5) < 0.05)
        return (live, mirrored) if ok else None

    eventually(split, timeout=45, interval=1, what="a 75/25 live split and a 50% mirror")
    users_errors = prom.by_label(
        f'sum by (version) (rate(model_requests_total{{namespace="{namespace}",'
        f'source="live",code="500"}}[10s]))', "version")
    assert not any(users_errors.values()), f"users saw errors: {users_errors}"
