"""Health probes of the serving version and RollbackReady, in the fake world."""

from __future__ import annotations

from modeldeploy.core.world import Attempt, SmokeResult, VersionDetails
from tests.unit.fakeworld import World, condition, reasons, resolved

FAILING = SmokeResult(False, "http://svc", (Attempt(500, 0.01, "HTTP 500: boom"),))


def serving_world(health_check: dict[str, object] | None = None) -> World:
    spec: dict[str, object] = {"model": {"name": "fraud-scorer", "alias": "champion"}}
    if health_check is not None:
        spec["healthCheck"] = health_check
    w = World(spec=spec)
    w.tick()
    w.available.add("1")
    w.tick()
    assert w.status.stable is not None and w.status.stable.version == "1"
    return w


def test_probes_run_on_their_interval_and_repeated_failures_make_the_version_unhealthy() -> None:
    w = serving_world({"interval": "10s", "failureThreshold": 2})
    w.tick()
    assert w.status.health is not None and w.status.health.result == "Healthy"
    assert w.status.health.latencyMs == 12.0
    assert condition(w.status, "Healthy") == ("True", "ProbeSucceeded")
    probes = len(w.probes)
    for _ in range(8):
        w.tick()
    assert len(w.probes) == probes, "not probed again within the interval"
    w.smoke["1"] = FAILING
    w.tick(1)
    assert w.status.health.consecutiveFailures == 1 and w.status.health.result == "Healthy"
    w.tick(10)
    assert w.status.health.result == "Unhealthy"
    assert condition(w.status, "Healthy") == ("False", "ProbeFailed")
    assert "Unhealthy" in reasons(w.plans[-1]) and "HTTP 500" in w.status.health.message
    assert w.status.stable.version == "1", "a probe never changes what serves"
    del w.smoke["1"]
    w.tick(10)
    assert condition(w.status, "Healthy") == ("True", "ProbeSucceeded")
    assert "Healthy" in reasons(w.plans[-1])


def test_without_a_health_check_there_is_no_probe_and_no_healthy_condition() -> None:
    w = serving_world()
    for _ in range(3):
        w.tick(30)
    assert w.status.health is None and not any(c.type == "Healthy"
                                               for c in w.status.conditions)
    assert condition(w.status, "RollbackReady") == ("False", "NoPreviousVersion")
    assert not w.probes, "nothing to probe or check"


def test_rollback_ready_follows_the_previous_version_in_the_registry() -> None:
    w = serving_world({"interval": "10s"})
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    for _ in range(3):
        w.tick()
    assert w.status.stable.version == "2" and w.status.previous is not None
    assert w.status.previous.version == "1"
    assert condition(w.status, "RollbackReady") == ("True", "PreviousVersionAvailable")
    writes = w.status_writes
    for _ in range(5):
        w.tick(10)
    assert w.status_writes - writes <= 5, "an unchanged check costs no extra status write"
    w.details["1"] = VersionDetails(metrics={}, signature=None, input_example=None,
                                    exists=False)
    w.tick(10)
    assert condition(w.status, "RollbackReady") == ("False", "PreviousVersionDeleted")
    assert "RollbackNotReady" in reasons(w.plans[-1])
    w.details["1"] = VersionDetails(metrics={}, signature=None, input_example=None,
                                    stage="Archived")
    w.tick(10)
    assert condition(w.status, "RollbackReady") == ("False", "PreviousVersionArchived")
    w.details["1"] = VersionDetails(metrics={}, signature=None, input_example=None,
                                    artifacts_found=False)
    w.tick(10)
    assert condition(w.status, "RollbackReady") == ("False", "ArtifactsMissing")
