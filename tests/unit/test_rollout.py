"""decide(): the stable path as scenarios — tick, then change the world."""

from __future__ import annotations

import pytest

from modeldeploy.api.status import Outcome, Phase
from tests.unit.fakeworld import (
    UNREACHABLE,
    World,
    condition,
    deleted,
    not_found,
    reasons,
    resolved,
)


def serving(version: str) -> World:
    """A world where ``version`` has been brought up and promoted."""
    w = World(registry=resolved(version))
    w.tick()
    w.available.add(version)
    w.tick()
    assert w.status.stable is not None and w.status.stable.version == version
    return w


def test_first_version_comes_up_then_is_promoted() -> None:
    w = World()
    plan = w.tick()
    assert {(m["kind"], m["metadata"]["name"]) for m in plan.apply} == {
        ("Deployment", "scorer-v1"), ("Service", "scorer-v1")}
    assert w.status.phase is Phase.PENDING
    assert w.status.canary is not None and w.status.canary.version == "1"
    assert w.status.stable is None
    assert condition(w.status, "Ready") == ("False", "NoVersionServing")
    assert condition(w.status, "Progressing") == ("True", "NewVersion")
    assert reasons(plan) == ["NewVersion"]
    assert plan.wake_at is not None

    w.tick()  # not Available yet: nothing new
    assert w.status.phase is Phase.PENDING and w.plans[-1].apply == ()

    w.available.add("1")
    plan = w.tick()
    assert [(m["kind"], m["metadata"]["name"]) for m in plan.apply] == [("Service", "scorer")]
    assert plan.apply[0]["spec"]["selector"]["modeldeploy.io/version"] == "1"
    assert w.status.phase is Phase.STABLE
    assert w.status.stable is not None
    assert (w.status.stable.version, w.status.stable.runId) == ("1", "run1")
    assert w.status.canary is None
    assert condition(w.status, "Ready") == ("True", "Serving")
    assert [(h.version, h.outcome) for h in w.status.history] == [("1", Outcome.PROMOTED)]
    assert reasons(plan) == ["Promoted"]


def test_steady_state_is_a_no_op() -> None:
    w = serving("1")
    before = w.status
    plan = w.tick(30)
    assert plan.apply == () and plan.delete == () and plan.events == ()
    assert plan.wake_at is None
    assert w.status == before, "an unchanged world must not change status (no patch)"


def test_alias_move_switches_only_after_the_new_version_is_available() -> None:
    w = serving("1")
    w.registry = resolved("2")
    plan = w.tick()
    assert w.versions() == {"1", "2"}
    assert plan.delete == ()
    assert w.status.phase is Phase.PROGRESSING
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert w.status.canary is not None and w.status.canary.version == "2"
    assert condition(w.status, "Ready") == ("True", "Serving"), "old version still serves"
    assert w.child("Service", "scorer").hash == w.plans[1].apply[0]["metadata"]["annotations"][
        "modeldeploy.io/hash"], "stable Service untouched while v2 is not Available"

    w.tick()
    assert w.versions() == {"1", "2"}, "nothing removed while waiting"

    w.available.add("2")
    plan = w.tick()
    svc = next(m for m in plan.apply if m["kind"] == "Service" and
               m["metadata"]["name"] == "scorer")
    assert svc["spec"]["selector"]["modeldeploy.io/version"] == "2"
    assert plan.delete == (), "the old version goes only after the new status is stored"
    assert w.status.stable is not None and w.status.stable.version == "2"
    plan = w.tick()
    assert deleted(plan) == {("Deployment", "scorer-v1"), ("Service", "scorer-v1")}
    assert w.versions() == {"2"}
    assert w.status.phase is Phase.STABLE
    assert w.status.stable is not None and w.status.stable.version == "2"
    assert [(h.version, h.outcome) for h in w.status.history[:2]] == [
        ("2", Outcome.PROMOTED), ("1", Outcome.REPLACED)]


def test_alias_moving_again_mid_switch_abandons_the_in_flight_version() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.registry = resolved("3")
    plan = w.tick()
    assert "Abandoned" in reasons(plan) and "NewVersion" in reasons(plan)
    assert deleted(plan) == {("Deployment", "scorer-v2"), ("Service", "scorer-v2")}
    assert w.versions() == {"1", "3"}
    assert w.status.canary is not None and w.status.canary.version == "3"
    assert w.status.history[0].outcome is Outcome.ABANDONED


def test_alias_moving_back_to_stable_cancels_the_switch() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.registry = resolved("1")
    plan = w.tick()
    assert w.status.canary is None and w.status.phase is Phase.STABLE
    assert w.versions() == {"1"}
    assert reasons(plan) == ["Abandoned"]


@pytest.mark.parametrize("reason", ["ModelNotFound", "AliasNotFound", "VersionNotFound"])
def test_missing_model_degrades_but_the_current_version_keeps_serving(reason: str) -> None:
    w = serving("1")
    w.registry = not_found(reason, f"{reason}: nothing there")
    plan = w.tick()
    assert plan.apply == () and plan.delete == ()
    assert w.versions() == {"1"}
    assert w.status.phase is Phase.DEGRADED
    assert condition(w.status, "Ready") == ("False", reason)
    assert condition(w.status, "Degraded") == ("True", reason)
    assert condition(w.status, "RegistryReachable") == ("True", "Reachable")
    assert "version 1 keeps serving" in (w.status.message or "")
    assert reasons(plan) == [reason]
    assert w.tick().events == (), "the warning is posted once, not every tick"

    w.registry = resolved("1")
    plan = w.tick()
    assert w.status.phase is Phase.STABLE and reasons(plan) == ["Recovered"]


def test_missing_model_with_nothing_serving_fails() -> None:
    w = World(registry=not_found("ModelNotFound", "no registered model fraud-scorer"))
    plan = w.tick()
    assert plan.apply == () and w.status.phase is Phase.FAILED
    assert condition(w.status, "Ready") == ("False", "ModelNotFound")


def test_unreachable_registry_touches_nothing_and_recovers() -> None:
    w = serving("1")
    w.registry = UNREACHABLE
    plan = w.tick()
    assert plan.apply == () and plan.delete == ()
    assert condition(w.status, "RegistryReachable") == ("False", "RegistryUnreachable")
    assert w.status.phase is Phase.STABLE, "serving is unaffected"
    assert condition(w.status, "Ready") == ("True", "Serving")
    assert reasons(plan) == ["RegistryUnreachable"]
    assert w.tick().events == ()

    w.registry = resolved("1")
    plan = w.tick()
    assert condition(w.status, "RegistryReachable") == ("True", "Reachable")
    assert reasons(plan) == ["RegistryReachable"]


def test_unreachable_registry_mid_switch_finishes_the_switch_it_started() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.registry = UNREACHABLE
    w.available.add("2")
    w.tick()
    w.tick()
    assert w.status.stable is not None and w.status.stable.version == "2"
    assert w.versions() == {"2"}


def test_invalid_spec_keeps_everything_and_says_why() -> None:
    w = serving("1")
    w.spec_error = "spec.serving.replicas: Input should be greater than or equal to 0"
    w.generation = 2
    plan = w.tick()
    assert plan.apply == () and plan.delete == ()
    assert w.status.phase is Phase.DEGRADED and w.status.observedGeneration == 2
    assert condition(w.status, "Degraded") == ("True", "InvalidSpec")
    assert reasons(plan) == ["InvalidSpec"]


def test_nothing_is_deleted_while_the_stable_version_is_not_ready() -> None:
    w = serving("1")
    w.available.discard("1")  # pods of the serving version crashed
    w.children[("Deployment", "scorer-v9")] = w.child("Deployment", "scorer-v1").__class__(
        kind="Deployment", name="scorer-v9", version="9", hash="x")  # a stray child
    plan = w.tick()
    assert plan.delete == ()
    assert w.status.phase is Phase.DEGRADED
    assert condition(w.status, "Ready") == ("False", "ReplicasNotReady")


def test_spec_change_rolls_the_deployment_in_place() -> None:
    w = serving("1")
    old = w.child("Deployment", "scorer-v1").hash
    w.spec["serving"]["replicas"] = 3
    w.generation = 2
    plan = w.tick()
    assert [m["metadata"]["name"] for m in plan.apply] == ["scorer-v1"]
    assert plan.apply[0]["spec"]["replicas"] == 3
    assert w.child("Deployment", "scorer-v1").hash != old
    assert w.status.observedGeneration == 2


def test_lost_status_adopts_existing_children_without_deleting() -> None:
    w = serving("1")
    w.status = w.status.__class__()  # status wiped (e.g. restored from a backup)
    plan = w.tick()
    assert plan.delete == () and plan.apply == ()
    w.tick()
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert w.versions() == {"1"}


def test_stuck_rollout_degrades_and_keeps_the_old_version() -> None:
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.stuck.add("2")
    plan = w.tick()
    assert w.status.phase is Phase.DEGRADED
    assert condition(w.status, "Degraded") == ("True", "ProgressDeadlineExceeded")
    assert plan.delete == () and w.versions() == {"1", "2"}


def test_condition_transition_time_only_moves_when_status_flips() -> None:
    w = serving("1")
    ready = next(c for c in w.status.conditions if c.type == "Ready")
    w.tick(60)
    again = next(c for c in w.status.conditions if c.type == "Ready")
    assert again.lastTransitionTime == ready.lastTransitionTime
    w.registry = not_found()
    w.tick(60)
    flipped = next(c for c in w.status.conditions if c.type == "Ready")
    assert flipped.lastTransitionTime != ready.lastTransitionTime


def test_history_is_bounded() -> None:
    w = serving("1")
    for v in range(2, 20):
        w.registry = resolved(str(v))
        w.tick()
        w.available.add(str(v))
        w.tick()
    assert len(w.status.history) == 10
    assert w.status.history[0].version == "19"


def test_gateway_route_points_all_traffic_at_the_stable_version() -> None:
    w = World(spec={"model": {"name": "fraud-scorer", "alias": "champion"},
                    "traffic": {"router": "gatewayAPI",
                                "gatewayAPI": {"parentRefs": [{"name": "gw"}],
                                               "hostnames": ["fraud.example.com"]}}})
    w.tick()
    w.available.add("1")
    plan = w.tick()
    route = next(m for m in plan.apply if m["kind"] == "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "scorer-v1", "port": 80, "weight": 100}]
    assert route["spec"]["hostnames"] == ["fraud.example.com"]


def test_re_polling_the_same_answer_does_not_rewrite_status() -> None:
    w = serving("1")
    before = w.status
    later = resolved("1")
    w.registry = type(later)(outcome=later.outcome, version=later.version, reason=later.reason,
                             message=later.message, at=later.at.replace(hour=23))
    plan = w.tick(600)
    assert w.status == before and plan.events == () and plan.apply == ()


def test_scaling_the_stable_version_is_progress_not_degradation() -> None:
    w = serving("1")
    w.spec["serving"]["replicas"] = 3
    w.generation = 2
    w.ready_count["1"] = 2  # the third pod is starting; the first two keep serving
    assert [m["spec"]["replicas"] for m in w.tick().apply] == [3]
    plan = w.tick()  # now the world shows 2/3 ready
    assert w.status.phase is Phase.PROGRESSING
    assert condition(w.status, "Ready") == ("True", "Serving")
    assert condition(w.status, "Progressing") == ("True", "ReplicasUpdating")
    assert condition(w.status, "Degraded") == ("False", "AsExpected")
    assert plan.events == () and plan.wake_at is not None
    del w.ready_count["1"]
    w.tick()
    assert w.status.phase is Phase.STABLE
    assert condition(w.status, "Progressing") == ("False", "Idle")


def test_stable_version_with_no_ready_pod_is_degraded_with_a_warning() -> None:
    w = serving("1")
    w.ready_count["1"] = 0
    plan = w.tick()
    assert w.status.phase is Phase.DEGRADED
    assert condition(w.status, "Ready") == ("False", "ReplicasNotReady")
    assert condition(w.status, "Degraded") == ("True", "ReplicasNotReady")
    assert reasons(plan) == ["ReplicasNotReady"]
    del w.ready_count["1"]
    assert reasons(w.tick()) == ["Recovered"]


def test_rollback_right_after_a_promotion_never_points_traffic_at_a_deleted_version() -> None:
    """The alias moves back to the old version just after the new one was promoted."""
    w = serving("1")
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    w.tick()  # promoted: traffic on 2, status says stable 2, version 1 still exists
    assert w.versions() == {"1", "2"}
    w.registry = resolved("1")  # rolled back in MLflow before the old version was removed
    plan = w.tick()
    # Version 1 still runs and is Available: it is promoted back at once, deleting nothing.
    assert plan.delete == ()
    svc = next(m for m in plan.apply if m["metadata"]["name"] == "scorer")
    assert svc["spec"]["selector"]["modeldeploy.io/version"] == "1"
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert w.versions() == {"1", "2"}
    plan = w.tick()
    assert deleted(plan) == {("Deployment", "scorer-v2"), ("Service", "scorer-v2")}
    assert w.versions() == {"1"}


def test_renaming_the_model_with_the_same_version_number_rolls_in_place() -> None:
    w = serving("1")
    old = w.child("Deployment", "scorer-v1").hash
    w.spec["model"]["name"] = "fraud-scorer-v2-team"
    w.generation = 2
    w.registry = resolved("1", model="fraud-scorer-v2-team")
    plan = w.tick()
    assert reasons(plan) == ["ModelChanged"]
    assert w.status.stable is not None
    assert w.status.stable.modelUri == "models:/fraud-scorer-v2-team/1"
    dep = next(m for m in plan.apply if m["kind"] == "Deployment")
    assert "models:/fraud-scorer-v2-team/1" in dep["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert w.child("Deployment", "scorer-v1").hash != old and plan.delete == ()
    assert w.tick().events == ()
