"""Factor tables for the release state machine and the routers: every state x event, each
with the one transition it must make (or not make), and every router's render read back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec, Rollout
from modeldeploy.api.status import (
    AnalysisStatus,
    Canary,
    Release,
    ReleaseState,
    Request,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.controller.index import child_of
from modeldeploy.core.analysis import QueryResult
from modeldeploy.core.conditions import timestamp
from modeldeploy.core.release import Facts, Working, advance, state_of
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Measurement, MeasurementRequest, Split
from modeldeploy.routing import GatewayAPIRouter, IstioRouter, ReplicasRouter

S = ReleaseState
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
EARLIER = "2026-12-03T11:59:00Z"
LATER = "2026-12-03T12:05:00Z"

CANARY = Rollout.model_validate({
    "strategy": "canary", "progressDeadline": "10m",
    "steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": ""}],
    "analysis": {"interval": "30s", "failureLimit": 0, "inconclusiveLimit": 1,
                 "consecutiveErrorLimit": 1,
                 "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]}})
PLAIN = Rollout.model_validate({"strategy": "canary", "steps": [{"weight": 10, "pause": "1m"},
                                                               {"weight": 50}]})

STATES: dict[str, dict[str, Any]] = {
    "starting": {"state": S.STARTING, "notReadySince": EARLIER},
    "stepping-unconfirmed": {"state": S.STEPPING, "step": 0},
    "stepping-in-pause": {"state": S.STEPPING, "step": 0, "stepStartedAt": EARLIER,
                          "stepEndsAt": LATER},
    "stepping-pause-over": {"state": S.STEPPING, "step": 0, "stepStartedAt": EARLIER,
                            "stepEndsAt": EARLIER},
    "paused-step": {"state": S.PAUSED, "step": 1, "stepStartedAt": EARLIER,
                    "pausedBy": "Step"},
    "paused-request": {"state": S.PAUSED, "step": 0, "stepStartedAt": EARLIER,
                       "stepEndsAt": LATER, "pausedBy": "Request"},
    "paused-analysis": {"state": S.PAUSED, "step": 0, "stepStartedAt": EARLIER,
                        "stepEndsAt": EARLIER, "pausedBy": "Analysis"},
    "promoting": {"state": S.PROMOTING, "step": 1},
    "promoting-not-ready-1h": {"state": S.PROMOTING, "step": 1,
                               "notReadySince": "2026-12-03T11:00:00Z"},
    "rolling-back": {"state": S.ROLLING_BACK, "reason": "AnalysisFailed"},
    "aborted": {"state": S.ABORTED, "reason": "AnalysisFailed"},
}

OK = QueryResult(value=0.01, series=1)
BAD = QueryResult(value=0.5, series=1)
EMPTY = QueryResult()
ERROR = QueryResult(error="bad_data: parse error")


def world(state: str, *, rollout: Rollout = PLAIN, successes: int = 0) -> Working:
    fields = dict(STATES[state])
    analysis = AnalysisStatus(stepSuccesses=successes, nextAt=EARLIER) \
        if rollout.analysis else None
    rel = Release(version="2", startedAt=EARLIER, analysis=analysis, **fields)
    canary = None if rel.state is S.ABORTED else Canary(version="2", weight=0)
    return Working(stable=Stable(version="1"), canary=canary,
                   rollout=state_of(RolloutType.CANARY, rel))


def facts(*, rollout: Rollout = PLAIN, ready: bool = True, live: int | None = None,
          stuck: bool = False, request: str | None = None, answer: QueryResult | None = None,
          now: dt.datetime = NOW) -> Facts:
    def in_place(weight: int) -> bool:
        return live is None or weight == live

    measurements = (Measurement(metric="errors", candidate=answer),) if answer else ()
    return Facts(rollout_spec=rollout, now=now, candidate_ready=ready, candidate_stuck=stuck,
                 in_place=in_place, resolved_version="2", request=request,
                 measurements=measurements,
                 requests=(MeasurementRequest(metric="errors", query="q"),))


def after(w: Working) -> str:
    rel = w.release
    if rel is None:
        return "promoted" if w.promoted else "none"
    return f"{rel.state.value}:{rel.step}"


MATRIX = [
    # state, event facts, expected "State:step" after one advance()
    ("starting", {"ready": False}, "Starting:0"),
    ("starting", {"ready": True}, "Stepping:0"),
    ("starting", {"ready": False, "stuck": True}, "RollingBack:0"),
    ("starting", {"ready": False, "now": NOW + dt.timedelta(minutes=11)}, "RollingBack:0"),
    ("starting", {"request": "promote", "ready": False}, "Starting:0"),
    ("starting", {"request": "abort", "ready": False}, "RollingBack:0"),
    ("starting", {"request": "pause", "ready": False}, "Starting:0"),  # not before it steps
    ("stepping-unconfirmed", {"live": 0}, "Stepping:0"),
    ("stepping-unconfirmed", {"live": 10}, "Stepping:0"),  # confirmed: stepStartedAt set
    ("stepping-in-pause", {}, "Stepping:0"),
    ("stepping-pause-over", {}, "Stepping:1"),
    ("stepping-in-pause", {"request": "pause"}, "Paused:0"),
    ("stepping-in-pause", {"request": "promote"}, "Promoting:0"),
    ("stepping-in-pause", {"request": "abort"}, "RollingBack:0"),
    ("stepping-in-pause", {"request": "resume"}, "Stepping:0"),
    ("stepping-in-pause", {"request": "retry"}, "Stepping:0"),
    ("stepping-in-pause", {"request": "dance"}, "Stepping:0"),
    ("paused-step", {}, "Paused:1"),
    ("paused-step", {"now": NOW + dt.timedelta(days=1)}, "Paused:1"),
    ("paused-step", {"request": "resume"}, "Promoting:1"),
    ("paused-request", {"request": "resume"}, "Stepping:0"),
    ("paused-request", {"request": "pause"}, "Paused:0"),
    ("promoting", {"live": 50}, "Promoting:1"),
    ("promoting", {"live": 100}, "promoted"),
    ("promoting", {"ready": False}, "Promoting:1"),  # a pod went away: the deadline starts
    ("promoting-not-ready-1h", {"ready": False}, "RollingBack:1"),  # ... and ran out
    ("promoting-not-ready-1h", {"ready": True}, "promoted"),
    ("promoting", {"request": "pause"}, "Promoting:1"),  # too late to pause
    ("rolling-back", {"live": 10}, "RollingBack:0"),
    ("rolling-back", {"live": 0}, "Aborted:0"),
    ("rolling-back", {"request": "promote"}, "RollingBack:0"),
    ("aborted", {}, "Aborted:0"),
    ("aborted", {"request": "retry"}, "none"),  # decide() starts it again from Starting
    ("aborted", {"request": "promote"}, "Aborted:0"),
]


@pytest.mark.parametrize(("state", "event", "expected"), MATRIX,
                         ids=[f"{s}-{'+'.join(f'{k}={v}' for k, v in e.items()) or 'tick'}"
                              for s, e, _ in MATRIX])
def test_one_transition_per_state_and_event(state: str, event: dict[str, Any],
                                            expected: str) -> None:
    w = world(state)
    advance(w, facts(**event))
    assert after(w) == expected


ANALYSIS_MATRIX = [
    # state, answer, expected, the verdicts' effect
    ("stepping-pause-over", OK, "Stepping:0", "a success lets the step end next time"),
    ("stepping-pause-over", BAD, "RollingBack:0", "failureLimit 0: the first Failed"),
    ("stepping-pause-over", EMPTY, "Paused:0", "no data: held"),
    ("stepping-pause-over", ERROR, "Paused:0", "an error: held"),
    ("paused-analysis", OK, "Stepping:0", "a success after a hold resumes"),
    ("paused-analysis", BAD, "RollingBack:0", "still rolls back while held"),
    ("paused-step", OK, "Paused:1", "a human pause is not resumed by a measurement"),
]


@pytest.mark.parametrize(("state", "answer", "expected", "why"), ANALYSIS_MATRIX,
                         ids=[f"{s}-{e}" for s, _, e, _ in ANALYSIS_MATRIX])
def test_each_measurement_verdict_moves_the_state(state: str, answer: QueryResult,
                                                  expected: str, why: str) -> None:
    w = world(state, rollout=CANARY)
    advance(w, facts(rollout=CANARY, answer=answer))
    assert after(w) == expected, why
    rel = w.release
    assert rel is not None and rel.analysis is not None
    assert rel.analysis.nextAt == "2026-12-03T12:00:30Z", "the next one an interval later"
    assert [m.metric for m in rel.analysis.measurements] == ["errors"]


def test_the_limits_count_across_intervals() -> None:
    w = world("stepping-pause-over", rollout=CANARY)
    advance(w, facts(rollout=CANARY, answer=EMPTY))
    advance(w, facts(rollout=CANARY, answer=EMPTY))  # inconclusiveLimit 1: the second aborts
    assert after(w) == "RollingBack:0"
    rel = w.release
    assert rel is not None and rel.reason == "AnalysisInconclusive"


def test_a_step_does_not_end_before_a_successful_measurement_at_its_weight() -> None:
    w = world("stepping-pause-over", rollout=CANARY)
    advance(w, facts(rollout=CANARY))
    assert after(w) == "Stepping:0"
    w = world("stepping-pause-over", rollout=CANARY, successes=1)
    advance(w, facts(rollout=CANARY))
    assert after(w) == "Stepping:1"


def test_a_pause_request_during_an_analysis_hold_outlasts_the_next_good_measurement() -> None:
    # Issue 17, item 9: it was answered "already paused" with pausedBy left at Analysis, so
    # the next Successful measurement resumed stepping against the person's wish.
    w = world("paused-analysis", rollout=CANARY)
    advance(w, facts(rollout=CANARY, request="pause"))
    rel = w.release
    assert rel is not None and rel.pausedBy == "Request"
    advance(w, facts(rollout=CANARY, answer=OK, now=NOW + dt.timedelta(minutes=1)))
    assert after(w) == "Paused:0"
    advance(w, facts(rollout=CANARY, request="resume", now=NOW + dt.timedelta(minutes=2)))
    assert after(w) == "Stepping:0"


BLUE_GREEN = Rollout.model_validate({"strategy": "blueGreen", "progressDeadline": "10m",
                                     "blueGreen": {"scaleDownDelay": "1m", "autoPromote": True}})


def test_blue_green_switches_only_to_a_version_that_is_ready() -> None:
    # Issue 17, item 6: the preview's end switched all traffic without asking whether the
    # new version was Ready (a promote request and a canary's promotion both ask).
    rel = Release(version="2", startedAt=EARLIER, state=S.STEPPING, step=0,
                  stepStartedAt=EARLIER, stepEndsAt=EARLIER)
    w = Working(stable=Stable(version="1"), canary=Canary(version="2", weight=0),
                rollout=state_of(RolloutType.BLUE_GREEN, rel))
    advance(w, facts(rollout=BLUE_GREEN, ready=False))
    assert after(w) == "Stepping:0" and w.stable is not None and w.stable.version == "1"
    assert w.wake, "looks again soon"
    advance(w, facts(rollout=BLUE_GREEN, ready=True, now=NOW + dt.timedelta(seconds=5)))
    assert after(w) == "Switched:0" and w.stable is not None and w.stable.version == "2"


def test_the_blue_green_window_is_never_shorter_than_scale_down_delay() -> None:
    # Issue 17, item 13: switchedAt is stored rounded down to the second, so a window counted
    # from it ended up to a second before scaleDownDelay had passed since the switch.
    switch = NOW + dt.timedelta(milliseconds=900)
    rel = Release(version="2", startedAt=EARLIER, state=S.SWITCHED, weight=100,
                  switchedAt=timestamp(switch), previous=VersionInfo(version="1"))
    w = Working(stable=Stable(version="2"), canary=None,
                rollout=state_of(RolloutType.BLUE_GREEN, rel))
    advance(w, facts(rollout=BLUE_GREEN, now=switch + dt.timedelta(seconds=59.6)))
    assert w.rollout is not None and "1" in w.keep, "version 1 removed 0.4 s early"
    advance(w, facts(rollout=BLUE_GREEN, now=switch + dt.timedelta(seconds=61)))
    assert w.rollout is None, "and removed once the delay has passed"


def test_the_progress_deadline_never_fires_before_it_has_passed() -> None:
    # Item 13 again: notReadySince is stored rounded down as well.
    went = NOW - dt.timedelta(minutes=10) + dt.timedelta(milliseconds=900)
    rel = Release(version="2", startedAt=EARLIER, state=S.PROMOTING, step=1,
                  notReadySince=timestamp(went))
    w = Working(stable=Stable(version="1"), canary=Canary(version="2", weight=50),
                rollout=state_of(RolloutType.CANARY, rel))
    advance(w, facts(rollout=CANARY, ready=False, now=went + dt.timedelta(minutes=10) -
                     dt.timedelta(milliseconds=400)))
    assert after(w) == "Promoting:1", "rolled back 0.4 s before progressDeadline"
    advance(w, facts(rollout=CANARY, ready=False, now=went + dt.timedelta(minutes=10, seconds=1)))
    assert after(w) == "RollingBack:1"


def test_a_handled_request_value_is_never_replayed() -> None:
    w = world("stepping-in-pause")
    w.last_request = Request(value="abort", action="abort")
    advance(w, facts(request="abort"))
    assert after(w) == "Stepping:0"


# --- routers ----------------------------------------------------------------------------------

OWNER = Owner("scorer", "ml", "uid-1")
SPEC = ModelDeploymentSpec.model_validate({
    "model": {"name": "m", "alias": "a"},
    "traffic": {"router": "istio", "istio": {"hosts": ["scorer.example.com"]},
                "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}})
SPLITS = [Split.of({"1": 100}), Split.of({"1": 90, "2": 10}), Split.of({"1": 0, "2": 100}),
          Split.of({"1": 100, "2": 0}), Split.of({"9": 50, "10": 50})]


def _services(*versions: str) -> tuple[Child, ...]:
    return tuple(Child(kind="Service", name=f"scorer-v{v}", version=v, hash=None)
                 for v in versions)


@pytest.mark.parametrize("router", [GatewayAPIRouter(), IstioRouter()],
                         ids=["gatewayAPI", "istio"])
@pytest.mark.parametrize("split", SPLITS, ids=[str(s.as_dict()) for s in SPLITS])
def test_a_weighted_router_reads_back_exactly_what_it_rendered(router: Any,
                                                              split: Split) -> None:
    [manifest] = router.render(OWNER, SPEC, split)
    children = (child_of(manifest["kind"], {**manifest, "metadata": {
        **manifest["metadata"], "uid": "r"}}), *_services(*split.as_dict()))
    assert router.live_split(OWNER, children) == split
    assert router.in_place(OWNER, children, split, stable="1")
    other = Split.of({v: (0 if w else 100) for v, w in split.weights}) \
        if len(split.weights) > 1 else Split.of({"1": 50, "2": 50})
    assert not router.in_place(OWNER, children, other, stable="1")


@pytest.mark.parametrize(("weight", "stable", "replicas"), [
    (0, 2, 0), (10, 2, 1), (25, 3, 1), (50, 2, 2), (75, 1, 3), (90, 2, 18), (100, 4, 4)])
def test_the_replicas_router_turns_a_weight_into_a_replica_count(weight: int, stable: int,
                                                                 replicas: int) -> None:
    assert ReplicasRouter().candidate_replicas(weight, stable) == replicas


@pytest.mark.parametrize(("ready", "weight", "in_place", "live"), [
    ({"1": 2, "2": 0}, 0, True, {"1": 100}),
    ({"1": 2, "2": 1}, 10, True, {"1": 67, "2": 33}),
    ({"1": 2, "2": 0}, 10, False, {"1": 100}),
    ({"1": 2, "2": 2}, 50, True, {"1": 50, "2": 50}),
    ({"1": 2, "2": 1}, 0, False, {"1": 67, "2": 33}),
])
def test_the_replicas_router_reads_the_split_from_ready_replicas(
        ready: dict[str, int], weight: int, in_place: bool, live: dict[str, int]) -> None:
    router = ReplicasRouter()
    want = router.candidate_replicas(weight, 2) or 0
    children = (Child(kind="Deployment", name="scorer-v1", version="1", hash=None,
                      replicas=2, ready=ready["1"], updated=2),
                Child(kind="Deployment", name="scorer-v2", version="2", hash=None,
                      replicas=max(want, ready["2"]), ready=ready["2"], updated=ready["2"]))
    split = Split.of({"1": 100 - weight, "2": weight})
    assert router.in_place(OWNER, children, split, stable="1") is in_place
    read = router.live_split(OWNER, children)
    assert read is not None and read.as_dict() == live
