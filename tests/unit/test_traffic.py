"""The traffic simulator splits deterministically by weight and applies behaviours exactly.

How splits are read from HTTPRoutes, VirtualServices and replicas Services:
test_traffic_routes.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.traffic import Backend, RouteSplit, Simulator
from devstack.traffic_routes import ISTIO, REPLICAS, Mirror, httproute_splits


def _count(sim: Simulator, version: str, code: str, ns: str = "ns", model: str = "m",
           source: str = "live") -> float:
    value = sim.registry.get_sample_value(
        "model_requests_total",
        {"namespace": ns, "model": model, "version": version, "code": code, "source": source},
    )
    return value or 0.0


def _route(*weights: tuple[str, int]) -> RouteSplit:
    return RouteSplit(namespace="ns", model="m", route="m",
                      backends=tuple(Backend(v, w) for v, w in weights))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((("1", 90), ("2", 10)), {"1": 900, "2": 100}),
        ((("1", 50), ("2", 50)), {"1": 500, "2": 500}),
        ((("1", 0), ("2", 100)), {"1": 0, "2": 1000}),
        ((("1", 1), ("2", 1), ("3", 2)), {"1": 250, "2": 250, "3": 500}),
    ],
)
def test_split_follows_weights_exactly(
    weights: tuple[tuple[str, int], ...], expected: dict[str, int]
) -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([_route(*weights)])
    for _ in range(100):
        sim.tick(0.1)  # 10 s at 100 rps
    assert {v: _count(sim, v, "200") for v in expected} == pytest.approx(expected, abs=1)


def test_route_with_all_weights_zero_sends_nothing() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([_route(("1", 0), ("2", 0))])
    sim.tick(1.0)
    assert _count(sim, "1", "200") == _count(sim, "2", "200") == 0


def test_error_rate_turns_exact_fraction_into_500s() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([_route(("1", 50), ("2", 50))])
    sim.set_behaviour("ns", "m", "2", error_rate=0.25)
    for _ in range(40):
        sim.tick(0.1)
    assert _count(sim, "2", "500") == pytest.approx(50, abs=1)
    assert _count(sim, "2", "200") == pytest.approx(150, abs=1)
    assert _count(sim, "1", "500") == 0


def test_latency_is_centred_on_the_configured_value() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([_route(("1", 100))])
    sim.set_behaviour("ns", "m", "1", latency_seconds=0.2)
    sim.tick(2.1)
    labels = {"namespace": "ns", "model": "m", "version": "1", "source": "live"}
    total = sim.registry.get_sample_value("model_request_duration_seconds_sum", labels)
    count = sim.registry.get_sample_value("model_request_duration_seconds_count", labels)
    assert count == 210
    assert total is not None and total / count == pytest.approx(0.2, rel=0.01)


def test_rate_override_and_reset() -> None:
    sim = Simulator(default_rps=10.0)
    sim.set_routes([_route(("1", 100))])
    sim.set_rate("ns", "m", 50.0)
    sim.tick(1.0)
    assert _count(sim, "1", "200") == 50
    sim.reset("ns")
    sim.tick(1.0)
    assert _count(sim, "1", "200") == 60


@pytest.mark.parametrize(
    "changes",
    [{"error_rate": 1.5}, {"error_rate": -0.1}, {"latency_seconds": -1.0}],
)
def test_invalid_behaviour_is_rejected(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Simulator().set_behaviour("ns", "m", "1", **changes)


def _svc(name: str, version: str | None, ns: str = "ns") -> dict[str, Any]:
    labels = {"modeldeploy.io/version": version} if version else {}
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}}


def test_splits_read_versions_from_service_labels_and_default_rule() -> None:
    route = {
        "metadata": {"name": "r", "namespace": "ns", "labels": {"modeldeploy.io/model": "fraud"}},
        "spec": {"rules": [
            {"matches": [{"headers": [{"name": "x-user", "value": "beta"}]}],
             "backendRefs": [{"name": "canary", "weight": 1}]},
            {"backendRefs": [{"name": "stable", "weight": 80}, {"name": "canary", "weight": 20},
                             {"name": "other", "kind": "ServiceImport"}]},
        ]},
    }
    [split] = httproute_splits([route], [_svc("stable", "7"), _svc("canary", "8")])
    assert split.model == "fraud"
    assert split.backends == (Backend("7", 80), Backend("8", 20))


def test_splits_fall_back_to_names_and_default_weight() -> None:
    route = {"metadata": {"name": "plain", "namespace": "ns"},
             "spec": {"rules": [{"backendRefs": [{"name": "a"}, {"name": "b", "weight": 3}]}]}}
    [split] = httproute_splits([route], [_svc("a", None)])
    assert split.model == "plain"
    assert split.backends == (Backend("a", 1), Backend("b", 3))


def test_route_without_rules_is_ignored() -> None:
    route = {"metadata": {"name": "x", "namespace": "n"}, "spec": {}}
    assert httproute_splits([route], []) == []


def _istio(sim: Simulator, metric: str, version: str, **extra: str) -> float:
    labels = {"reporter": "destination", "destination_workload_namespace": "ns",
              "destination_app": "fraud-dep", "destination_version": version, **extra}
    return sim.registry.get_sample_value(metric, labels) or 0.0


def test_virtualservice_traffic_is_also_reported_as_istio_metrics() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([RouteSplit(namespace="ns", model="m", route="fraud-dep", app="fraud-dep",
                               router=ISTIO, backends=(Backend("1", 80), Backend("2", 20)))])
    sim.set_behaviour("ns", "m", "2", error_rate=0.25, latency_seconds=0.2)
    for _ in range(10):
        sim.tick(0.1)
    assert {(v, code): _istio(sim, "istio_requests_total", v, response_code=code)
            for v, code in (("1", "200"), ("2", "200"), ("2", "500"))} == pytest.approx(
        {("1", "200"): 80, ("2", "200"): 15, ("2", "500"): 5}, abs=1)
    # Istio's histogram is in milliseconds, with Istio's own bucket bounds.
    count = _istio(sim, "istio_request_duration_milliseconds_count", "2")
    assert count == _count(sim, "2", "200") + _count(sim, "2", "500") > 0
    total_ms = _istio(sim, "istio_request_duration_milliseconds_sum", "2")
    assert total_ms / count == pytest.approx(200, rel=0.05)
    assert _istio(sim, "istio_request_duration_milliseconds_bucket", "2", le="10000.0") == count
    assert _istio(sim, "istio_request_duration_milliseconds_bucket", "2", le="50.0") == 0
    # ... and the exporter's own metrics carry the same requests.
    assert _count(sim, "2", "500") == _istio(sim, "istio_requests_total", "2",
                                             response_code="500")


@pytest.mark.parametrize("router", ["gatewayAPI", REPLICAS])
def test_other_routers_export_no_istio_metrics(router: str) -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([RouteSplit(namespace="ns", model="m", route="m", app="fraud-dep",
                               router=router, backends=(Backend("1", 1),))])
    sim.tick(1.0)
    assert _count(sim, "1", "200") == 100
    assert _istio(sim, "istio_requests_total", "1", response_code="200") == 0


def test_state_names_the_router_of_each_split() -> None:
    sim = Simulator()
    sim.set_routes([RouteSplit(namespace="ns", model="m", route="m", router=REPLICAS,
                               app="m", backends=(Backend("1", 3),))])
    [route] = json.loads(json.dumps(sim.state()))["routes"]  # as GET /state answers
    assert route["router"] == "replicas"
    assert route["backends"] == [{"version": "1", "weight": 3}]


def test_an_ab_audience_goes_to_the_matched_rule_and_everyone_else_to_the_default() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([RouteSplit(namespace="ns", model="m", route="m",
                               backends=(Backend("1", 1),), audience=(Backend("2", 1),))])
    sim.tick(10.0)
    assert (_count(sim, "1", "200"), _count(sim, "2", "200")) == (750, 250)
    sim.set_audience("ns", "m", 0.1)
    sim.tick(10.0)
    assert (_count(sim, "1", "200"), _count(sim, "2", "200")) == (750 + 900, 250 + 100)
    with pytest.raises(ValueError, match="share"):
        sim.set_audience("ns", "m", 1.5)


def test_a_mirror_copies_a_percentage_and_users_see_only_the_stable_answers() -> None:
    sim = Simulator(default_rps=100.0)
    sim.set_routes([RouteSplit(namespace="ns", model="m", route="m",
                               backends=(Backend("1", 100), Backend("2", 0)),
                               mirror=Mirror("2", 20.0))])
    sim.set_behaviour("ns", "m", "2", error_rate=0.5)
    sim.tick(10.0)
    assert _count(sim, "1", "200") == 1000 and _count(sim, "1", "500") == 0
    assert (_count(sim, "2", "200", source="mirror"),
            _count(sim, "2", "500", source="mirror")) == (100, 100)
    assert _count(sim, "2", "500") == 0, "no user ever got the candidate's errors"
