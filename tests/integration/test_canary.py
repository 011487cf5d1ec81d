"""Canary releases on the real stack: the real apiserver holds the route, the traffic exporter
simulates requests by its weights, the real Prometheus scrapes them and the operator's
analysis queries it. Every assertion about traffic is about what an independent watcher saw
on the live route."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack import procs
from devstack import stack as devstack_stack
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from modeldeploy.api.status import release_of
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import deployments, spec
from tests.support.mdep import (
    condition,
    get,
    manifest,
    serving,
    status,
    wait_reasons,
    wait_status,
)
from tests.support.routewatch import RouteWatch
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def canary_spec(model: str, *, steps: list[dict[str, Any]], analysis: dict[str, Any] | None,
                traffic: dict[str, Any] | None = GATEWAY, **rollout: Any) -> dict[str, Any]:
    out = spec(model, replicas=1, rollout={"strategy": "canary", "steps": steps, **rollout})
    if traffic is not None:
        out["traffic"] = traffic
    if analysis is not None:
        out["rollout"]["analysis"] = analysis
    return out


def release(st: dict[str, Any]) -> dict[str, Any]:
    rollout = st.get("rollout") or {}
    return dict(release_of(rollout) or {})


@pytest.fixture()
def route(api: client.ApiClient, namespace: str) -> Iterator[RouteWatch]:
    watcher = RouteWatch(api, namespace, "HTTPRoute", "scorer").start()
    yield watcher
    watcher.stop()


def two_versions(stack: StackInfo, namespace: str) -> tuple[str, str]:
    model = f"canary-{namespace}"
    seed_model(stack, name=model, alias="champion")
    v2 = seed_model(stack, name=model, bias=1.0)
    return model, str(v2["version"])


ANALYSIS = {"interval": "3s", "failureLimit": 1, "minRequests": 5,
            "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]}


ISTIO = {"router": "istio", "istio": {"hosts": ["scorer.example.com"]}}
ISTIO_ANALYSIS = {**ANALYSIS, "metrics": [
    {"name": "errors", "template": "istio-error-rate", "max": 0.05},
    {"name": "p99", "template": "istio-latency-p99", "max": 1000}]}


@pytest.mark.parametrize(("router", "kind", "analysis"), [
    (GATEWAY, "HTTPRoute", ANALYSIS), (ISTIO, "VirtualService", ISTIO_ANALYSIS)],
    ids=["gatewayAPI", "istio"])
def test_a_good_canary_shows_each_step_on_the_live_route_and_is_promoted(
    stack: StackInfo, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
    namespace: str, router: dict[str, Any], kind: str, analysis: dict[str, Any],
) -> None:
    route = RouteWatch(api, namespace, kind, "scorer").start()
    try:
        _good_canary(stack, kubectl, custom, apps, core, namespace, route, router, analysis)
    finally:
        route.stop()


def _good_canary(stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
                 apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str,
                 route: RouteWatch, traffic: dict[str, Any], analysis: dict[str, Any]) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 20, "pause": "3s"}, {"weight": 60, "pause": "3s"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=analysis, traffic=traffic)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer",
                lambda s: release(s).get("state") == "Stepping", what="canary stepping")
    st = wait_status(custom, namespace, "scorer", serving(v2), timeout=120,
                     what="version 2 promoted through its steps")
    eventually(lambda: set(deployments(apps, namespace)) == {"scorer-v2"}, timeout=30,
               what="version 1 removed")
    weights = route.weights_of("scorer-v2")
    assert weights == [0, 20, 60, 100] or weights == [20, 60, 100], weights
    assert all(w in (0, 20, 60, 100) for w in weights)
    history = [(h["version"], h["outcome"]) for h in st["history"][:2]]
    assert history == [(v2, "Promoted"), ("1", "Replaced")]
    wait_reasons(core, namespace, "scorer",
                 lambda r: r.count("StepStarted") == 2 and "AnalysisSuccessful" in r)


def test_a_failing_canary_is_rolled_back_to_weight_zero_within_the_bound(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, route: RouteWatch,
    traffic: Traffic,
) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 30, "pause": "60s"}, {"weight": 60, "pause": "60s"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=ANALYSIS)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    stable_rv = apps.read_namespaced_deployment("scorer-v1", namespace).metadata.resource_version
    traffic.behaviour(namespace=namespace, model=model, version=v2, error_rate=0.2)
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)

    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("state") == "Aborted", timeout=120,
                     what="rolled back")
    rel = release(st)
    assert rel["reason"] == "AnalysisFailed"
    last = rel["analysis"]["measurements"][0]
    assert last["verdict"] == "Failed" and last["value"] > 0.05, last
    assert "model_requests_total" in last["query"] and f'version="{v2}"' in last["query"]
    assert st["phase"] == "Degraded" and condition(st, "Degraded")["reason"] == "AnalysisFailed"
    assert st["stable"]["version"] == "1" and st.get("canary") is None
    assert route.weights_of("scorer-v2")[-1] == 0 and 30 in route.weights_of("scorer-v2")
    assert 60 not in route.weights_of("scorer-v2"), "never past the failing step"
    eventually(lambda: set(deployments(apps, namespace)) == {"scorer-v1"}, timeout=30,
               what="the candidate scaled down")
    assert apps.read_namespaced_deployment(
        "scorer-v1", namespace).metadata.resource_version == stable_rv

    # Time from the first failing measurement to weight 0 on the live route.
    failed = [e for e in core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=scorer").items
        if e.reason == "AnalysisFailed"]
    first = min(e.event_time or e.metadata.creation_timestamp for e in failed)
    thirty_at = route.first_time("scorer-v2", 30)
    assert thirty_at is not None
    zero_at = route.first_time("scorer-v2", 0, after=thirty_at)
    assert zero_at is not None
    lag = time.monotonic() - zero_at
    latency = (dt.datetime.now(dt.UTC) - first).total_seconds() - lag
    bound = 3 * (1 + 1) + 5
    print(f"\nfirst failing measurement -> weight 0: {latency:.1f}s (bound {bound}s)")
    assert 0 < latency <= bound

    # Rejected: the alias still points at version 2, and it is not deployed again.
    time.sleep(16)  # three 5 s poll intervals
    assert set(deployments(apps, namespace)) == {"scorer-v1"}
    assert release(get(custom, namespace, "scorer")["status"])["state"] == "Aborted"

    # Retry (the version is fixed meanwhile): it runs once more, and is promoted.
    traffic.behaviour(namespace=namespace, model=model, version=v2, error_rate=0.0)
    kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=retry", "--overwrite")
    st = wait_status(custom, namespace, "scorer", serving(v2), timeout=180,
                     what="retried version promoted")
    assert st["lastRequest"]["action"] == "retry"
    assert [h["outcome"] for h in st["history"][:3]] == ["Promoted", "Replaced", "Retried"]


def test_requests_pause_resume_promote_and_abort_through_kubectl(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str, route: RouteWatch,
) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 10, "pause": ""}, {"weight": 40, "pause": "1h"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=None)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    generation = get(custom, namespace, "scorer")["metadata"]["generation"]
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer", lambda s: s.get("phase") == "Paused",
                timeout=60, what="paused at the empty-pause step")
    kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=resume", "--overwrite")
    wait_status(custom, namespace, "scorer",
                lambda s: (s.get("canary") or {}).get("weight") == 40, what="step 2")
    kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=pause", "--overwrite")
    wait_status(custom, namespace, "scorer", lambda s: s.get("phase") == "Paused",
                what="paused by request")
    kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=promote", "--overwrite")
    st = wait_status(custom, namespace, "scorer", serving(v2), timeout=60,
                     what="promoted on request")
    assert route.weights_of("scorer-v2")[-3:] == [10, 40, 100] or \
        route.weights_of("scorer-v2")[-2:] == [40, 100]
    assert st["lastRequest"]["value"] == "promote"
    body = get(custom, namespace, "scorer")
    assert body["metadata"]["generation"] == generation, "requests never change the spec"


def _analysis(**overrides: Any) -> dict[str, Any]:
    return {**ANALYSIS, **overrides}


def test_prometheus_stopped_mid_release_pauses_then_rolls_back_never_promotes(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    namespace: str, route: RouteWatch,
) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 30}, {"weight": 60}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=_analysis(consecutiveErrorLimit=2))))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    procs.stop(Path(stack.state), "prometheus")
    try:
        mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
        wait_status(custom, namespace, "scorer", lambda s: s.get("phase") == "Paused",
                    timeout=60, what="held while Prometheus does not answer")
        st = wait_status(custom, namespace, "scorer",
                         lambda s: release(s).get("state") == "Aborted", timeout=60,
                         what="rolled back at the error limit")
    finally:
        devstack_stack.up(quiet=True)  # Prometheus back, on its port, with its data
    rel = release(st)
    assert rel["reason"] == "AnalysisErrors"
    message = rel["analysis"]["measurements"][0]["message"]
    assert "Prometheus error" in message, message
    assert st["stable"]["version"] == "1"
    assert 100 not in route.weights_of("scorer-v2") and route.weights_of("scorer-v2")[-1] == 0


def test_a_promql_syntax_error_is_an_error_verdict_with_prometheus_own_words(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi, namespace: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    broken = {"name": "broken", "query": 'sum(rate(model_requests_total{version="{{ version }}"}'
                                         "[{{ interval }}]", "max": 1}
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=[{"weight": 30}], analysis=_analysis(
            consecutiveErrorLimit=0, minRequests=0, metrics=[broken]))))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("state") == "Aborted", timeout=60,
                     what="rolled back on the first error")
    m = release(st)["analysis"]["measurements"][0]
    assert m["verdict"] == "Error" and "parse error" in m["message"], m


def test_a_version_whose_pods_never_come_up_gets_no_traffic_and_is_rolled_back(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, route: RouteWatch,
) -> None:
    model, v2 = two_versions(stack, namespace)
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=[{"weight": 30}], analysis=None, progressDeadline="8s")))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    # A quota leaves no room for another pod: version 2's ReplicaSet cannot create one.
    core.create_namespaced_resource_quota(namespace, {
        "metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("state") == "Aborted", timeout=60,
                     what="ProgressDeadlineExceeded")
    assert release(st)["reason"] == "ProgressDeadlineExceeded"
    assert condition(st, "Stalled")["status"] == "True"
    assert max(route.weights_of("scorer-v2")) == 0, "no traffic ever"
    eventually(lambda: set(deployments(apps, namespace)) == {"scorer-v1"}, timeout=30,
               what="version 2 removed")


def test_deleting_the_object_mid_canary_leaves_no_stray_children(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=[{"weight": 30, "pause": "1h"}], analysis=None)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer",
                lambda s: (s.get("canary") or {}).get("weight") == 30, what="at 30 %")
    kubectl("delete", "mdep", "scorer", "--wait=true")

    def leftovers() -> list[str]:
        routes = custom.list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes")["items"]
        return ([d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
                + [s.metadata.name for s in core.list_namespaced_service(namespace).items]
                + [r["metadata"]["name"] for r in routes])

    eventually(lambda: leftovers() == [], timeout=60, what="every child collected")


def test_the_replicas_router_steps_by_replica_counts_and_keeps_the_stable_count(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 25, "pause": "2s"}, {"weight": 50, "pause": "2s"}]
    out = canary_spec(model, steps=steps, analysis=None, traffic=None)
    out["serving"]["replicas"] = 3
    kubectl("apply", "-f", "-", stdin=manifest("scorer", out))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    seen: list[tuple[int, int, int | None]] = []
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deps = deployments(apps, namespace)
        st = status(custom, namespace, "scorer")
        old, new = deps.get("scorer-v1"), deps.get(f"scorer-v{v2}")
        row = (old.spec.replicas if old else 0, new.spec.replicas if new else 0,
               (st.get("canary") or {}).get("weight"))
        if not seen or seen[-1] != row:
            seen.append(row)
        if serving(v2)(st):
            break
        time.sleep(0.2)
    assert serving(v2)(status(custom, namespace, "scorer")), seen
    print(f"\n(stable replicas, new replicas, status weight): {seen}")
    # 25 %: 1 new replica next to 3 (1/4); 50 %: 3 next to 3; promoted: the full 3.
    assert _distinct(n for _, n, _ in seen if n) == [1, 3], seen
    assert all(o == 3 for o, _, w in seen if w is not None), f"stable scaled down: {seen}"
    # Status tells the real ratio of Ready replicas, never ahead of it: 1 of 4 (25 %), then
    # as the new replicas for 50 % come up, 2 of 5 (40 %) and 3 of 6 (50 %).
    weights = _distinct(w for _, _, w in seen if w)
    assert weights[0] == 25 and weights[-1] == 50 and weights == sorted(weights), seen
    assert set(weights) <= {25, 40, 50}, seen
    svc = client.CoreV1Api(apps.api_client).read_namespaced_service("scorer", namespace)
    assert "modeldeploy.io/version" not in svc.spec.selector, "one Service over all versions"
    eventually(lambda: set(deployments(apps, namespace)) == {f"scorer-v{v2}"}, timeout=30,
               what="version 1 removed")


def _distinct(values: Iterable[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_blue_green_previews_then_switches_at_once_and_keeps_the_old_version_a_while(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    out = spec(model, replicas=1, rollout={
        "strategy": "blueGreen", "blueGreen": {"autoPromote": False, "scaleDownDelay": "8s"}})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", out))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer", lambda s: s.get("phase") == "Paused",
                timeout=60, what="preview Ready, waiting for promote")
    preview = core.read_namespaced_service("scorer-preview", namespace)
    assert preview.spec.selector["modeldeploy.io/version"] == v2
    entry = core.read_namespaced_service("scorer", namespace)
    assert entry.spec.selector["modeldeploy.io/version"] == "1", "no traffic before the switch"
    kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=promote", "--overwrite")
    st = wait_status(custom, namespace, "scorer", serving(v2), timeout=30,
                     what="switched on promote")
    switched = time.monotonic()
    entry = core.read_namespaced_service("scorer", namespace)
    assert entry.spec.selector["modeldeploy.io/version"] == v2
    assert release(st).get("state") == "Switched"
    assert "scorer-v1" in deployments(apps, namespace), "the old version stays up"
    eventually(lambda: "scorer-v1" not in deployments(apps, namespace), timeout=60,
               what="old version removed after the window")
    assert time.monotonic() - switched >= 6, "removed before scaleDownDelay"


@pytest.mark.parametrize("move", ["back-to-stable", "third-version", "steps-edited", "abort"])
def test_changes_mid_canary_end_as_specified(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, route: RouteWatch,
    move: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    v3 = str(seed_model(stack, name=model, bias=2.0)["version"])
    steps = [{"weight": 20, "pause": "1h"}, {"weight": 60, "pause": "1h"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=None)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer",
                lambda s: (s.get("canary") or {}).get("weight") == 20, what="at 20 %")
    if move == "back-to-stable":
        mlflow_client(stack).set_registered_model_alias(model, "champion", "1")
        st = wait_status(custom, namespace, "scorer",
                         lambda s: s.get("canary") is None and s.get("phase") == "Stable",
                         what="release ended, version 1 keeps serving")
        assert st["history"][0]["outcome"] == "Abandoned"
        eventually(lambda: set(deployments(apps, namespace)) == {"scorer-v1"}, timeout=30,
                   what="no stray version 2")
        assert route.weights_of(f"scorer-v{v2}")[-1] == 0
    elif move == "third-version":
        mlflow_client(stack).set_registered_model_alias(model, "champion", v3)
        wait_status(custom, namespace, "scorer",
                    lambda s: (s.get("canary") or {}).get("version") == v3 and
                    (s.get("canary") or {}).get("weight") == 20, timeout=60,
                    what="version 3 starts at step 0")
        eventually(lambda: f"scorer-v{v2}" not in deployments(apps, namespace), timeout=30,
                   what="version 2 dropped")
        assert route.weights_of(f"scorer-v{v2}")[-1] == 0
        assert route.weights_of(f"scorer-v{v3}") in ([0, 20], [20])
    elif move == "abort":
        kubectl("annotate", "mdep", "scorer", "modeldeploy.io/request=abort", "--overwrite")
        st = wait_status(custom, namespace, "scorer",
                         lambda s: release(s).get("state") == "Aborted", timeout=30,
                         what="aborted on request")
        assert release(st)["reason"] == "Aborted" and st["lastRequest"]["action"] == "abort"
        assert route.weights_of(f"scorer-v{v2}")[-1] == 0
        eventually(lambda: set(deployments(apps, namespace)) == {"scorer-v1"}, timeout=30,
                   what="version 2 scaled down")
    else:
        edited = canary_spec(model, steps=[{"weight": 5, "pause": "1h"},
                                           {"weight": 10, "pause": "1h"}], analysis=None)
        kubectl("apply", "-f", "-", stdin=manifest("scorer", edited))
        wait_status(custom, namespace, "scorer",
                    lambda s: (s.get("canary") or {}).get("weight") == 5, timeout=30,
                    what="the weight follows the edited step")
        assert max(route.weights_of(f"scorer-v{v2}")[-1:]) <= 5
    services = {s.metadata.name for s in core.list_namespaced_service(namespace).items}
    assert len(services) == len(set(services))
