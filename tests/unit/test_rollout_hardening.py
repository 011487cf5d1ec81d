"""decide() after the hardening: exact status, refused applies, drift, zero replicas,
kstatus conditions, the rollout state and the seams (router, split, wake-up time)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from modeldeploy.api.status import Phase, RolloutType
from modeldeploy.core import render
from modeldeploy.core.world import (
    ApplyFailure,
    RegistryOutcome,
    Resolution,
    ResolvedVersion,
    Split,
)
from modeldeploy.routing import GatewayAPIRouter, NullRouter, router_for
from tests.unit.fakeworld import (
    T0,
    World,
    condition,
    deleted,
    not_found,
    reasons,
    resolved,
)
from tests.unit.test_rollout import serving


def run_less(version: str, model: str) -> Resolution:
    """A version registered without a run (MLflow answers run_id ""; the adapter says None)."""
    return Resolution(outcome=RegistryOutcome.OK, reason="Resolved", at=T0,
                      version=ResolvedVersion(version=version, run_id=None, source=None,
                                              model_uri=f"models:/{model}/{version}"))


def test_a_field_that_becomes_none_is_gone_from_the_stored_status_and_the_object_settles() -> None:
    w = serving("1")
    assert w.stored["stable"]["runId"] == "run1"
    w.spec["model"]["name"] = "other-model"  # version 1 of another model, registered run-less
    w.registry = run_less("1", "other-model")
    plan = w.tick()
    assert reasons(plan) == ["ModelChanged"]
    assert "runId" not in w.stored["stable"] and "source" not in w.stored["stable"]
    assert w.status.stable is not None and w.status.stable.runId is None
    writes = w.status_writes
    for _ in range(3):  # settled: no events, no status writes
        plan = w.tick(5)
        assert plan.events == () and plan.apply == ()
    assert w.status_writes == writes


def test_flipping_between_two_models_with_the_same_version_number_settles_each_time() -> None:
    w = serving("1")
    for model, answer in (("other", run_less("1", "other")), ("fraud-scorer", resolved("1")),
                          ("other", run_less("1", "other"))):
        w.spec["model"]["name"] = model
        w.registry = answer
        assert reasons(w.tick()) == ["ModelChanged"]
        writes = w.status_writes
        assert [w.tick(5).events for _ in range(3)] == [(), (), ()]
        assert w.status_writes == writes


def test_the_rollout_state_is_a_tagged_union_and_disappears_when_idle() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    assert w.stored["rollout"] == {"type": "Rolling", "rolling": {
        "version": "2", "startedAt": w.stored["rollout"]["rolling"]["startedAt"]}}
    assert w.status.rollout is not None and w.status.rollout.type is RolloutType.ROLLING
    w.available.add("2")
    w.tick()
    assert "rollout" not in w.stored and "canary" not in w.stored


def test_a_refused_child_degrades_and_stalls_and_nothing_is_promoted_or_deleted() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    w.apply_failure = ApplyFailure("Deployment", "scorer-v2", "ApplyFailed",
                                   "the apiserver refused it (422 Invalid): spec.template...")
    plan = w.tick()
    assert plan.apply == () and plan.delete == ()
    assert w.status.stable is not None and w.status.stable.version == "1", "no promotion"
    assert condition(w.status, "Degraded") == ("True", "ApplyFailed")
    assert condition(w.status, "Stalled") == ("True", "ApplyFailed")
    assert condition(w.status, "Reconciling")[0] == "False"
    assert w.status.phase is Phase.DEGRADED
    assert "scorer-v2" in (w.status.message or "") and "keeps serving" in (w.status.message or "")
    assert reasons(plan) == ["ApplyFailed"]
    assert w.tick().events == (), "the same refusal again is quiet"

    w.apply_failure = None
    plan = w.tick()
    assert "Recovered" in reasons(plan) and "Promoted" in reasons(plan)
    assert condition(w.status, "Stalled")[0] == "False"


def test_a_conflict_with_nothing_serving_fails_and_names_the_object() -> None:
    w = World()
    w.apply_failure = ApplyFailure("Service", "scorer-v1", "Conflict",
                                   "Service scorer-v1 already exists and is controlled by ...")
    w.tick()
    assert w.status.phase is Phase.FAILED
    assert condition(w.status, "Degraded") == ("True", "Conflict")
    assert "Service scorer-v1" in next(c.message for c in w.status.conditions
                                       if c.type == "Stalled")


def test_drift_in_fields_we_own_is_reverted() -> None:
    w = serving("1")
    dep = w.child("Deployment", "scorer-v1")
    w.children[("Deployment", "scorer-v1")] = dataclasses.replace(dep, fingerprint="set-image")
    plan = w.tick()
    assert [m["metadata"]["name"] for m in plan.apply] == ["scorer-v1"]
    assert w.child("Deployment", "scorer-v1").fingerprint == dep.fingerprint
    w.children[("Deployment", "scorer-v1")] = dataclasses.replace(dep, replicas=7)  # kubectl scale
    assert [m["spec"]["replicas"] for m in w.tick().apply] == [2]
    assert w.tick().apply == ()


def test_replicas_are_left_to_the_autoscaler() -> None:
    w = serving("1")
    w.spec["serving"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 5}
    plan = w.tick()
    dep = next(m for m in plan.apply if m["kind"] == "Deployment")
    assert "replicas" not in dep["spec"]
    assert w.child("Deployment", "scorer-v1").replicas == 2, "kept (the apply step hands it over)"
    w.children[("Deployment", "scorer-v1")] = dataclasses.replace(
        w.child("Deployment", "scorer-v1"), replicas=4)  # the HPA scaled up
    w.ready_count["1"] = 4
    assert w.tick().apply == (), "an autoscaled count is not drift"


def test_a_canary_scaled_to_zero_out_of_band_is_not_promoted() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    canary = w.child("Deployment", "scorer-v2")
    w.children[("Deployment", "scorer-v2")] = dataclasses.replace(canary, replicas=0)
    plan = w.tick()
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert [(m["metadata"]["name"], m["spec"]["replicas"]) for m in plan.apply
            if m["kind"] == "Deployment"] == [("scorer-v2", 2)], "scaled back up"
    assert deleted(plan) == set()


def test_not_found_stalls_only_after_the_threshold_and_says_when_to_look() -> None:
    w = World(registry=not_found("ModelNotFound", "no registered model"))
    plan = w.tick()
    assert condition(w.status, "Stalled")[0] == "False"
    assert condition(w.status, "Reconciling") == ("True", "ModelNotFound")
    assert plan.wake_at == T0 + dt.timedelta(seconds=120)
    w.now = T0 + dt.timedelta(seconds=119)
    w.tick(2)
    assert condition(w.status, "Stalled") == ("True", "ModelNotFound")
    assert condition(w.status, "Reconciling") == ("False", "Stalled")
    # A restarted operator sees the answer appear anew; what it had concluded stays.
    w.registry = dataclasses.replace(w.registry, at=w.now)
    writes = w.status_writes
    w.tick()
    assert condition(w.status, "Stalled")[0] == "True" and w.status_writes == writes


def test_kstatus_conditions_follow_the_release() -> None:
    w = World()
    w.tick()
    assert condition(w.status, "Reconciling") == ("True", "NewVersion")
    w.available.add("1")
    w.tick()
    assert condition(w.status, "Reconciling") == ("False", "AsExpected")
    assert condition(w.status, "Stalled") == ("False", "AsExpected")


def test_an_invalid_spec_stalls_and_clears_an_old_unreachable_registry() -> None:
    w = serving("1")
    w.registry = Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable",
                            message="down", at=T0)
    w.tick()
    assert condition(w.status, "RegistryReachable")[0] == "False"
    w.spec_error = "spec.model.registry.trackingUri: not allowed"
    w.tick()
    assert condition(w.status, "RegistryReachable") == ("Unknown", "NotAsked")
    assert condition(w.status, "Stalled") == ("True", "InvalidSpec")


def test_the_plan_carries_the_split_and_the_router_reads_it_back() -> None:
    w = World(spec={"model": {"name": "m", "alias": "a"}, "traffic": {
        "router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}})
    w.tick()
    w.available.add("1")
    plan = w.tick()
    assert plan.traffic is not None and plan.traffic.as_dict() == {"1": 100}
    router = router_for(w.observed().spec)  # type: ignore[arg-type]
    assert isinstance(router, GatewayAPIRouter)
    owner = render.Owner("scorer", "ml", "uid-1")
    live = router.live_split(owner, tuple(w.children.values()))
    assert live is not None and live.as_dict() == {"1": 100}


def test_the_null_router_renders_nothing() -> None:
    spec = World().observed().spec
    assert spec is not None
    router = router_for(spec)
    assert isinstance(router, NullRouter)
    split = Split.all_to("1")
    assert router.render(render.Owner("a", "b", "c"), spec, split) == []
    assert router.live_split(render.Owner("a", "b", "c"), ()) is None
    assert router.describe(split) == "version 1: 100%"
