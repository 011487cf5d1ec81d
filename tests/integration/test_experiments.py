"""A/B tests and shadows on the real stack: the audience rule and the mirror as the live
HTTPRoute / VirtualService carries them, the traffic exporter simulating header-matched and
mirrored requests from that live route, and Prometheus telling what users saw."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from devstack.seed import mlflow_client
from devstack.stack import StackInfo
from devstack.stackclient import Prometheus, Traffic
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import ANALYSIS, GATEWAY, ISTIO, release, two_versions
from tests.integration.test_modeldeployment import spec
from tests.support.mdep import manifest, serving, wait_reasons, wait_status
from tests.support.routewatch import ROUTES
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")


def live_route(custom: client.CustomObjectsApi, namespace: str, kind: str) -> dict[str, Any]:
    group, version, plural = ROUTES[kind]
    return dict(custom.get_namespaced_custom_object(group, version, namespace, plural,
                                                    "scorer")["spec"])


def requests(prom: Prometheus, namespace: str, version: str, source: str) -> float:
    found = prom.query(f'sum(model_requests_total{{namespace="{namespace}", '
                       f'version="{version}", source="{source}"}})')
    return float(found[0]["value"][1]) if found else 0.0


@pytest.mark.parametrize(("traffic", "kind", "match"), [
    (GATEWAY, "HTTPRoute", {"header": "x-user-group", "value": "beta"}),
    (ISTIO, "VirtualService", {"cookie": "ab", "value": "b"})], ids=["gatewayAPI", "istio"])
def test_an_ab_test_routes_its_audience_on_the_live_route_then_promotes(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, prom: Prometheus, namespace: str, traffic: dict[str, Any],
    kind: str, match: dict[str, str],
) -> None:
    model, v2 = two_versions(stack, namespace)
    body = spec(model, replicas=1, traffic=traffic, rollout={
        "strategy": "abTest", "abTest": {"match": match, "duration": "8s"},
        "analysis": {**ANALYSIS, "interval": "2s"}})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", body))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("stepStartedAt") is not None, timeout=60,
                     what="the audience is routed")
    assert st["rollout"]["type"] == "AbTest"
    route = live_route(custom, namespace, kind)
    if kind == "HTTPRoute":
        first = route["rules"][0]
        assert first["matches"][0]["headers"] == [
            {"type": "Exact", "name": "x-user-group", "value": "beta"}]
        assert first["backendRefs"][0]["name"] == f"scorer-v{v2}"
        assert [b["name"] for b in route["rules"][-1]["backendRefs"]
                if b.get("weight", 1)] == ["scorer-v1"]
    else:
        first = route["http"][0]
        assert first["match"][0]["headers"]["cookie"]["regex"] == r"(^|;\s*)ab=b(;|$)"
        assert first["route"][0]["destination"]["host"] == f"scorer-v{v2}"
    # The exporter sends the audience (a share of users) to version 2, everyone else to 1.
    eventually(lambda: requests(prom, namespace, v2, "live") > 0, timeout=30,
               what="the audience's requests reach version 2")
    assert requests(prom, namespace, "1", "live") > requests(prom, namespace, v2, "live")
    st = wait_status(custom, namespace, "scorer", serving(v2), timeout=60,
                     what="promoted after the test")
    wait_reasons(core, namespace, "scorer", lambda r: "AudienceRouted" in r and "Promoted" in r)
    route = live_route(custom, namespace, kind)
    assert len(route.get("rules") or route.get("http") or []) == 1, "the audience rule is gone"


def test_a_shadow_with_mirrored_errors_is_rejected_and_users_never_saw_them(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    prom: Prometheus, traffic: Traffic, namespace: str,
) -> None:
    model, v2 = two_versions(stack, namespace)
    body = spec(model, replicas=1, traffic=GATEWAY, rollout={
        "strategy": "shadow", "shadow": {"percent": 50, "duration": "2m"},
        "analysis": {**ANALYSIS, "interval": "2s", "failureLimit": 1}})
    kubectl("apply", "-f", "-", stdin=manifest("scorer", body))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    traffic.behaviour(namespace=namespace, model=model, version=v2, error_rate=0.6)
    started = time.time()
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("stepStartedAt") is not None, timeout=60,
                     what="mirroring")
    assert st["rollout"]["type"] == "Shadow"
    route = live_route(custom, namespace, "HTTPRoute")
    (mirror,) = route["rules"][0]["filters"]
    assert mirror["type"] == "RequestMirror" and mirror["requestMirror"]["percent"] == 50
    assert mirror["requestMirror"]["backendRef"]["name"] == f"scorer-v{v2}"
    assert route["rules"][0]["backendRefs"][0]["name"] == "scorer-v1"

    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("state") == "Aborted", timeout=90,
                     what="rejected on its mirrored error rate")
    rel = release(st)
    assert rel["reason"] == "AnalysisFailed", rel
    assert st["stable"]["version"] == "1"
    assert requests(prom, namespace, v2, "mirror") > 0, "version 2 saw mirrored requests only"
    assert requests(prom, namespace, v2, "live") == 0, "no user ever reached version 2"
    window = f"{int(time.time() - started) + 5}s"
    users = prom.query(
        f'max_over_time((sum(rate(model_requests_total{{namespace="{namespace}", '
        f'source="live", code=~"5.."}}[10s])) or vector(0))[{window}:1s])')
    assert users and float(users[0]["value"][1]) == 0.0, users
    assert "filters" not in live_route(custom, namespace, "HTTPRoute")["rules"][0]
