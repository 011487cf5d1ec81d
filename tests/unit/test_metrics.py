"""The operator's metrics, in memory: what the exposition says about state and activity."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from modeldeploy.metrics import Metrics, StateView
from tests.support.scrape import parse, total
from tests.unit.fakeresolver import KEY, Clock, FakeRegistry, make_resolver


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse(metrics.exposition().decode())


def _md(name: str, phase: str | None, stable: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"selector": "@champion"}
    if phase:
        status["phase"] = phase
    if stable:
        status["stable"] = {"version": stable}
    return {"metadata": {"namespace": "team", "name": name},
            "spec": {"model": {"name": "fraud", "alias": "champion"}}, "status": status}


def test_state_is_read_at_scrape_time() -> None:
    objects = [_md("a", "Stable", "3"), _md("b", "Stable", "3"), _md("c", None)]
    metrics = Metrics()
    metrics.watch_state(StateView(objects=lambda: objects, queue_depth=lambda: 4,
                                  registry_stats=lambda: {"keys": 2}))
    got = samples(metrics)
    assert total(got, "modeldeploy_model_deployments", phase="Stable") == 2
    assert total(got, "modeldeploy_model_deployments", phase="Pending") == 1
    assert got[("modeldeploy_model_deployment_info", frozenset({
        "model": "fraud", "name": "a", "namespace": "team", "phase": "Stable",
        "selector": "@champion", "stable_version": "3"}.items()))] == 1
    assert (total(got, "modeldeploy_workqueue_depth"), total(got, "modeldeploy_registry_keys")) \
        == (4, 2)

    # A hand-edited status of the wrong shape is shown as empty, not a failed scrape.
    objects.append({"metadata": {"namespace": "team", "name": "odd"},
                    "spec": {"model": "fraud"}, "status": {"stable": "3", "phase": ["x"]}})
    odd = samples(metrics)
    assert total(odd, "modeldeploy_model_deployment_info", name="odd", stable_version="",
                 model="", phase="Pending") == 1
    objects.pop()

    objects.pop()  # the object is gone: so is its series, with no stale value left behind
    after = samples(metrics)
    assert total(after, "modeldeploy_model_deployments") == 2
    assert total(after, "modeldeploy_model_deployment_info", name="c") == 0
    assert total(after, "modeldeploy_model_deployment_info", name="b") == 1


def test_registry_polls_are_counted_by_outcome_and_reason() -> None:
    metrics, registry = Metrics(), FakeRegistry()

    async def scenario() -> None:
        resolver = make_resolver(registry, [], Clock(), metrics=metrics)
        await resolver.ensure(KEY)
        registry.down = True
        await resolver.ensure(replace(KEY, value="challenger"))
        await resolver.ensure(replace(KEY, value="shadow"))

    asyncio.run(scenario())
    got = samples(metrics)
    polls = "modeldeploy_registry_polls_total"
    assert total(got, polls, outcome="ok", reason="Resolved") == 1
    assert total(got, polls, outcome="unreachable", reason="RegistryUnreachable") == 2
    assert total(got, "modeldeploy_registry_poll_duration_seconds_count") == 3


def test_a_standby_replica_reports_no_object_state() -> None:
    leading = False
    metrics = Metrics()
    metrics.watch_state(StateView(objects=lambda: [_md("a", "Stable", "3")],
                                  queue_depth=lambda: 0, registry_stats=lambda: {"keys": 0},
                                  leading=lambda: leading))
    standby = samples(metrics)
    assert total(standby, "modeldeploy_leader") == 0
    assert total(standby, "modeldeploy_model_deployments") == 0
    assert total(standby, "modeldeploy_model_deployment_info") == 0
    leading = True
    leader = samples(metrics)
    assert total(leader, "modeldeploy_leader") == 1
    assert total(leader, "modeldeploy_model_deployment_info", name="a") == 1
