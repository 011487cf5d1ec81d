"""The traffic simulator splits deterministically by weight and applies behaviours exactly."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.traffic import Backend, RouteSplit, Simulator, splits_from_objects


def _count(sim: Simulator, version: str, code: str, ns: str = "ns", model: str = "m") -> float:
    value = sim.registry.get_sample_value(
        "model_requests_total",
        {"namespace": ns, "model": model, "version": version, "code": code},
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
    labels = {"namespace": "ns", "model": "m", "version": "1"}
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
    [split] = splits_from_objects([route], [_svc("stable", "7"), _svc("canary", "8")])
    assert split.model == "fraud"
    assert split.backends == (Backend("7", 80), Backend("8", 20))


def test_splits_fall_back_to_names_and_default_weight() -> None:
    route = {"metadata": {"name": "plain", "namespace": "ns"},
             "spec": {"rules": [{"backendRefs": [{"name": "a"}, {"name": "b", "weight": 3}]}]}}
    [split] = splits_from_objects([route], [_svc("a", None)])
    assert split.model == "plain"
    assert split.backends == (Backend("a", 1), Backend("b", 3))


def test_route_without_rules_is_ignored() -> None:
    route = {"metadata": {"name": "x", "namespace": "n"}, "spec": {}}
    assert splits_from_objects([route], []) == []
