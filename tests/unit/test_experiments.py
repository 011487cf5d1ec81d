"""A/B tests and shadows in the fake world: the audience rule or the mirror appears on the live
route only while the experiment runs, and the route object says exactly what the spec asks."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.status import ReleaseState, RolloutType
from modeldeploy.core.analysis import QueryResult
from tests.unit.fakeworld import World, reasons, resolved

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
ISTIO = {"router": "istio", "istio": {"hosts": ["scorer.example.com"]}}


def experiment_world(rollout: dict[str, Any], traffic: dict[str, Any] = GATEWAY,
                     analysis: dict[str, Any] | None = None) -> World:
    spec: dict[str, Any] = {"model": {"name": "fraud-scorer", "alias": "champion"},
                            "traffic": traffic, "rollout": rollout}
    if analysis is not None:
        spec["rollout"]["analysis"] = analysis
    w = World(spec=spec)
    for _ in range(3):
        w.tick()
        w.available.add("1")
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    return w


def route(w: World) -> dict[str, Any]:
    plan = next(p for p in reversed(w.plans) for m in p.apply
                if m["kind"] in ("HTTPRoute", "VirtualService"))
    return next(m for m in plan.apply if m["kind"] in ("HTTPRoute", "VirtualService"))["spec"]


def state(w: World) -> ReleaseState | None:
    rel = w.status.rollout.release if w.status.rollout else None
    return rel.state if rel else None


def test_an_ab_test_routes_its_header_audience_then_promotes() -> None:
    w = experiment_world({"strategy": "abTest", "abTest": {
        "match": {"header": "x-user-group", "value": "beta"}, "duration": "10s"}})
    for _ in range(3):
        w.tick()
    assert w.status.rollout.type is RolloutType.AB_TEST and state(w) is ReleaseState.STEPPING
    rules = route(w)["rules"]
    assert rules[0]["matches"] == [{"headers": [
        {"type": "Exact", "name": "x-user-group", "value": "beta"}]}]
    assert rules[0]["backendRefs"] == [{"name": "scorer-v2", "port": 80}]
    assert w.weights() == {"1": 100, "2": 0}, "everyone else stays on the stable version"
    assert "AudienceRouted" in [r for p in w.plans for r in reasons(p)]
    for _ in range(12):
        w.tick()
    assert w.status.stable.version == "2"
    assert len(route(w)["rules"]) == 1, "the audience rule goes with the experiment"


def test_an_ab_test_by_cookie_on_istio() -> None:
    w = experiment_world({"strategy": "abTest", "abTest": {
        "match": {"cookie": "ab", "value": "b"}, "duration": "1h"}}, traffic=ISTIO)
    for _ in range(3):
        w.tick()
    http = route(w)["http"]
    assert http[0]["match"] == [{"headers": {"cookie": {"regex": r"(^|;\s*)ab=b(;|$)"}}}]
    assert http[0]["route"][0]["destination"]["host"] == "scorer-v2"
    assert state(w) is ReleaseState.STEPPING and "A/B test until" in w.status.message


@pytest.mark.parametrize("traffic", [GATEWAY, ISTIO], ids=["gatewayAPI", "istio"])
def test_a_shadow_mirrors_a_percentage_and_rolls_back_on_mirrored_errors(
        traffic: dict[str, Any]) -> None:
    w = experiment_world({"strategy": "shadow", "shadow": {"percent": 40, "duration": "1m"}},
                         traffic=traffic, analysis={"interval": "2s", "metrics": [
                             {"name": "errors", "query": "sum(e)", "max": 0.05}]})
    w.answers["errors"] = QueryResult(value=0.0, series=1)
    for _ in range(4):
        w.tick()
    spec = route(w)
    if traffic is GATEWAY:
        mirror = spec["rules"][0]["filters"][0]
        assert mirror == {"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "scorer-v2", "port": 80}, "percent": 40}}
    else:
        assert spec["http"][0]["mirror"]["host"] == "scorer-v2"
        assert spec["http"][0]["mirrorPercentage"] == {"value": 40.0}
    assert w.weights() == {"1": 100, "2": 0}, "users see only the stable version"
    w.answers["errors"] = QueryResult(value=0.5, series=1)
    for _ in range(6):
        w.tick()
    assert state(w) is ReleaseState.ABORTED and w.status.stable.version == "1"
    last = route(w)
    assert "filters" not in last.get("rules", [{}])[0] and "mirror" not in last.get(
        "http", [{}])[0], "the mirror goes with the rollback"
