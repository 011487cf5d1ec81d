"""Release edge cases in the fake world: a late pod restart, pause and resume in every
state, measurements credited only to the weight they measured, analysis added mid-release,
a refused switch, a switch back, and how many events a rollback posts."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import Release, ReleaseState
from modeldeploy.core.analysis import QueryResult
from modeldeploy.core.world import ApplyFailure
from tests.unit.fakeworld import World, reasons
from tests.unit.test_canary import (
    ERROR_RATE,
    GATEWAY,
    blue_green_at_v2,
    canary_world,
    move_to_v2,
    state,
)

S = ReleaseState
GOOD = QueryResult(value=0.0, series=1)
BAD = QueryResult(value=0.9, series=1)


def release_of(w: World) -> Release:
    rollout = w.status.rollout
    assert rollout is not None and rollout.release is not None
    return rollout.release


@pytest.mark.parametrize("traffic", [GATEWAY, None], ids=["gatewayAPI", "replicas"])
def test_a_pod_restarting_late_in_a_long_release_is_not_a_missed_deadline(
        traffic: dict[str, object] | None) -> None:
    w = canary_world(traffic=traffic, steps=[{"weight": 10, "pause": "11m"}, {"weight": 50}],
                     progressDeadline="10m")
    move_to_v2(w)
    w.available.add("2")
    for _ in range(3):
        w.tick()
    w.tick(700)  # past the 11m pause, and the deadline counted from the start: 50 % next
    w.ready_count["2"] = 1  # a pod restarts (replicas router: 50 % needs a second one)
    for _ in range(3):
        w.tick()
    assert state(w) is not S.ROLLING_BACK and release_of(w).notReadySince is not None
    del w.ready_count["2"]
    w.tick()
    assert release_of(w).notReadySince is None, "Ready again: the deadline is off"


def test_a_version_not_ready_for_the_whole_deadline_mid_release_is_rolled_back() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": ""}, {"weight": 50}],
                     progressDeadline="1m")
    move_to_v2(w)
    w.available.add("2")
    for _ in range(3):
        w.tick()
    assert state(w) is S.PAUSED
    w.tick(3600)
    w.available.discard("2")
    w.tick()
    assert state(w) is S.PAUSED, "the deadline starts when it stops being Ready"
    w.tick(61)
    assert state(w) is S.ROLLING_BACK and release_of(w).reason == "ProgressDeadlineExceeded"


def test_pause_is_refused_before_the_release_steps_and_no_traffic_moves() -> None:
    w = canary_world()
    move_to_v2(w)
    w.request = "pause:1"
    w.tick()
    assert state(w) is S.STARTING and w.weights().get("2") == 0
    assert w.status.lastRequest is not None and "not pausable" in w.status.lastRequest.result


def test_blue_green_resume_after_a_pause_still_needs_the_preview_analysis() -> None:
    w = blue_green_at_v2("1m", traffic=GATEWAY,
                         analysis={"interval": "1m", "metrics": [ERROR_RATE]})
    w.answers["errors"] = BAD
    w.available.add("2")
    w.tick()
    w.tick()
    assert state(w) is S.STEPPING and release_of(w).stepStartedAt is not None
    w.request = "pause:1"
    w.tick()
    assert state(w) is S.PAUSED
    w.request = "resume:2"
    w.tick()
    assert state(w) is S.STEPPING and w.status.stable is not None
    assert w.status.stable.version == "1", "resume is not a promote: the analysis decides"
    for _ in range(70):
        w.tick()
    assert w.measured and state(w) in (S.ROLLING_BACK, S.ABORTED)
    assert w.status.stable.version == "1"


def test_blue_green_resume_without_auto_promote_says_promote_is_what_switches() -> None:
    w = blue_green_at_v2("1m", auto_promote=False)
    w.available.add("2")
    for _ in range(4):
        w.tick()
    assert state(w) is S.PAUSED and release_of(w).pausedBy == "Step"
    w.request = "resume:1"
    plan = w.tick()
    assert state(w) is S.PAUSED and "Paused" not in reasons(plan)
    assert w.status.lastRequest is not None and "promote" in w.status.lastRequest.result


def test_every_step_advances_on_a_measurement_taken_at_its_own_weight() -> None:
    """The replicas router takes a while to bring up a step's replicas: a measurement due
    meanwhile must not count for the step that is not live yet."""
    w = canary_world(traffic=None, steps=[{"weight": 10}, {"weight": 50}],
                     analysis={"interval": "10s", "metrics": [ERROR_RATE]})
    w.answers["errors"] = GOOD
    move_to_v2(w)
    w.available.add("2")
    for _ in range(30):
        w.tick()
        if release_of(w).step == 1:
            break
    w.ready_count["2"] = 1  # 50 % needs two replicas next to two: one is still starting
    for _ in range(30):
        w.tick()
    assert release_of(w).stepStartedAt is None, "50 % is not live yet"
    del w.ready_count["2"]
    at_fifty = 0  # measurements taken once 50 % was live (the tick after its confirmation)
    while w.status.rollout is not None:
        live = release_of(w).stepStartedAt is not None
        count = len(w.measured)
        w.tick()
        at_fifty += live and len(w.measured) > count
    assert at_fifty >= 1, "promoted without a measurement at 50 %"


def test_analysis_added_mid_release_starts_measuring_instead_of_waiting_forever() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": "5s"}, {"weight": 50}])
    move_to_v2(w)
    w.available.add("2")
    w.tick()
    w.tick()
    assert state(w) is S.STEPPING and release_of(w).analysis is None
    w.spec = copy.deepcopy(w.spec)
    w.spec["rollout"]["analysis"] = {"interval": "10s", "metrics": [ERROR_RATE]}
    w.answers["errors"] = GOOD
    for _ in range(100):
        w.tick()
        if w.status.rollout is None:
            break
    assert w.status.stable is not None and w.status.stable.version == "2"
    assert w.measured


def test_an_analysis_interval_below_a_second_is_refused() -> None:
    with pytest.raises(ValidationError, match="analysis interval must be at least 1s"):
        Analysis.model_validate({"interval": "0s", "metrics": [ERROR_RATE]})


def test_a_blue_green_switch_waits_while_the_apiserver_refuses_the_route() -> None:
    w = blue_green_at_v2("1m", traffic=GATEWAY)
    w.available.add("2")
    w.tick()
    assert state(w) is S.STEPPING
    w.apply_failure = ApplyFailure("HTTPRoute", "scorer", "ApplyFailed", "denied by policy")
    for _ in range(3):
        plan = w.tick()
        assert "Promoted" not in reasons(plan)
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert w.weights() == {"1": 100}
    w.apply_failure = None
    w.tick()
    assert w.status.stable.version == "2" and w.weights() == {"2": 100}


def test_a_switch_back_leaves_no_weight_or_switch_time_on_the_rejected_version() -> None:
    w = blue_green_at_v2("5m")
    w.available.add("2")
    for _ in range(5):
        w.tick()
    assert state(w) is S.SWITCHED
    w.request = "abort:1"
    w.tick()
    r = release_of(w)
    assert r.state is S.ABORTED and r.weight == 0 and r.switchedAt is None
    assert w.status.stable is not None and w.status.stable.version == "1"


def test_a_rollback_posts_each_reason_once() -> None:
    w = canary_world(analysis={"interval": "10s", "metrics": [ERROR_RATE]})
    move_to_v2(w)
    w.available.add("2")
    w.answers["errors"] = BAD
    posted: list[str] = []
    for _ in range(40):
        posted += reasons(w.tick())
    counts = Counter(posted)
    assert counts["AnalysisFailed"] == 1, posted  # the measurement
    assert counts["RollingBack"] == 1 and counts["RolledBack"] == 1, posted
