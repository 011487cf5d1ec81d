"""What the operator reads back from a live route: the default rule's weights, the A/B rule's
backend and the mirror, as the apiserver stores them (CRD defaults filled in)."""

from __future__ import annotations

from typing import Any

from modeldeploy.controller.index import child_of
from modeldeploy.metrics import Metrics, StateView
from tests.support.scrape import parse, total

CATCH_ALL = [{"path": {"type": "PathPrefix", "value": "/"}}]


def httproute(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "scorer", "uid": "u"}, "spec": {"rules": rules}}


def test_an_httproute_as_stored_names_its_audience_and_mirror() -> None:
    body = httproute([
        {"matches": [{"headers": [{"type": "Exact", "name": "x-group", "value": "beta"}],
                      "path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "scorer-v2", "port": 80,
                          "weight": 1}]},
        {"matches": CATCH_ALL,
         "backendRefs": [{"name": "scorer-v1", "port": 80, "weight": 100},
                         {"name": "scorer-v2", "port": 80, "weight": 0}],
         "filters": [{"type": "RequestMirror", "requestMirror": {
             "backendRef": {"group": "", "kind": "Service", "name": "scorer-v2", "port": 80},
             "fraction": {"numerator": 1, "denominator": 4}}}]}])
    child = child_of("HTTPRoute", body)
    assert child.backends == (("scorer-v1", 100), ("scorer-v2", 0))
    assert child.audience == "scorer-v2" and child.mirror == ("scorer-v2", 25)


def test_a_virtualservice_names_its_audience_and_mirror() -> None:
    body = {"metadata": {"name": "scorer"}, "spec": {"http": [
        {"match": [{"headers": {"cookie": {"regex": "ab=b"}}}],
         "route": [{"destination": {"host": "scorer-v2.ml.svc.cluster.local"}}]},
        {"route": [{"destination": {"host": "scorer-v1"}}],
         "mirror": {"host": "scorer-v2"}, "mirrorPercentage": {"value": 12.5}}]}}
    child = child_of("VirtualService", body)
    assert child.backends == (("scorer-v1", 100),)
    assert child.audience == "scorer-v2" and child.mirror == ("scorer-v2", 12)


def test_a_plain_route_has_neither() -> None:
    child = child_of("HTTPRoute", httproute([{"matches": CATCH_ALL, "backendRefs": [
        {"name": "scorer-v1", "weight": 100}]}]))
    assert child.audience is None and child.mirror is None


def test_gate_health_and_rollback_series_come_from_status() -> None:
    body = {"metadata": {"namespace": "ml", "name": "scorer"}, "status": {
        "rollout": {"type": "Shadow", "shadow": {"version": "2", "state": "Starting", "gates": [
            {"gate": "SmokeTest", "result": "Passed", "reason": "SmokeTestPassed",
             "latencyMs": 15.0}]}},
        "health": {"version": "1", "result": "Healthy", "lastProbeAt": "t", "latencyMs": 8.0,
                   "consecutiveFailures": 0},
        "previous": {"version": "0", "ready": False, "reason": "PreviousVersionDeleted"}}}
    metrics = Metrics()
    metrics.watch_state(StateView(objects=lambda: [body], queue_depth=lambda: 0,
                                  registry_stats=dict))
    samples = parse(metrics.exposition().decode())
    assert total(samples, "modeldeploy_gate_result", gate="SmokeTest", result="Passed") == 1
    assert total(samples, "modeldeploy_smoke_test_latency_seconds", version="2") == 0.015
    assert total(samples, "modeldeploy_health_probe_success", version="1") == 1
    assert total(samples, "modeldeploy_rollback_ready", reason="PreviousVersionDeleted") == 0
    assert ("modeldeploy_rollback_ready", frozenset({
        ("name", "scorer"), ("namespace", "ml"), ("previous_version", "0"),
        ("reason", "PreviousVersionDeleted")})) in samples, "0 is a sample, not an absence"
