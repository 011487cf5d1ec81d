"""Canary and blue-green releases in the fake world: tick, then change the world. Each
scenario records every weight the live route ever had, as an independent watcher would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.status import Outcome, Phase, ReleaseState
from modeldeploy.core.analysis import QueryResult
from tests.unit.fakeworld import World, condition, reasons, resolved

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
ISTIO = {"router": "istio", "istio": {"hosts": ["scorer.example.com"]}}
STEPS = [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "30s"}]
ERROR_RATE = {"name": "errors", "template": "error-rate", "max": 0.05}


def canary_world(*, traffic: dict[str, Any] | None = GATEWAY, steps: list[Any] = STEPS,
                 analysis: dict[str, Any] | None = None, **rollout: Any) -> World:
    spec: dict[str, Any] = {"model": {"name": "fraud-scorer", "alias": "champion"},
                            "serving": {"replicas": 2},
                            "rollout": {"strategy": "canary", "steps": steps, **rollout}}
    if traffic is not None:
        spec["traffic"] = traffic
    if analysis is not None:
        spec["rollout"]["analysis"] = analysis
    w = World(spec=spec)
    w.tick()
    w.available.add("1")
    w.tick()
    assert w.status.phase is Phase.STABLE and w.status.stable
    return w


class Watcher:
    """Ticks the world and remembers each distinct live weight of the new version."""

    def __init__(self, w: World, version: str = "2") -> None:
        self.w, self.version, self.seen = w, version, [w.weights().get(version, 0)]

    def tick(self, seconds: float = 1.0) -> None:
        self.w.tick(seconds)
        weight = self.w.weights().get(self.version, 0)
        if weight != self.seen[-1]:
            self.seen.append(weight)

    def until(self, check: Callable[[World], bool], *, seconds: float = 1.0,
              limit: int = 400) -> None:
        for _ in range(limit):
            if check(self.w):
                return
            self.tick(seconds)
        raise AssertionError(f"never held; status: {self.w.status.message}")


def state(w: World) -> ReleaseState | None:
    rollout = w.status.rollout
    rel = rollout.release if rollout else None
    return rel.state if rel else None


def move_to_v2(w: World) -> Watcher:
    w.registry = resolved("2")
    watcher = Watcher(w)
    watcher.tick()
    assert state(w) is ReleaseState.STARTING
    return watcher


def test_a_good_canary_walks_its_steps_in_order_and_is_promoted() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    assert w.weights() == {"1": 100, "2": 0}, "the new version is listed at 0 until Ready"
    for _ in range(5):
        watch.tick()
    assert w.weights()["2"] == 0, "no traffic before its pods are Ready"
    w.available.add("2")
    watch.until(lambda w: w.status.stable is not None and w.status.stable.version == "2")
    assert watch.seen == [0, 10, 50, 100]
    watch.until(lambda w: w.versions() == {"2"})
    assert w.status.phase is Phase.STABLE and w.status.rollout is None
    assert [(h.version, h.outcome) for h in w.status.history[:2]] == [
        ("2", Outcome.PROMOTED), ("1", Outcome.REPLACED)]
    every = [r for p in w.plans[2:] for r in reasons(p)]
    assert every.count("StepStarted") == 2 and every.count("Promoted") == 1


def test_each_step_holds_its_pause_measured_from_when_its_weight_was_live() -> None:
    w = canary_world(steps=[{"weight": 20, "pause": "1m"}])
    move_to_v2(w)
    w.available.add("2")
    w.tick()  # Starting -> Stepping
    w.tick()  # weight 20 applied; the next tick confirms it
    w.tick()
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.stepStartedAt is not None and rel.stepEndsAt is not None
    started = w.now
    while state(w) is ReleaseState.STEPPING:
        w.tick(5)
    assert (w.now - started).total_seconds() >= 60
    assert state(w) is ReleaseState.PROMOTING or w.status.stable.version == "2"


def test_the_status_never_claims_a_weight_the_route_does_not_have() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    w.available.add("2")
    for _ in range(200):
        watch.tick()
        if w.status.canary is not None:
            assert w.status.canary.weight == w.weights().get("2", 0)
        if w.status.stable.version == "2":
            break


def test_an_empty_pause_waits_for_a_human_then_resume_moves_on() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": ""}, {"weight": 60}])
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: state(w) is ReleaseState.PAUSED)
    assert w.status.phase is Phase.PAUSED and w.weights()["2"] == 10
    for _ in range(30):
        watch.tick(10)
    assert state(w) is ReleaseState.PAUSED and w.weights()["2"] == 10
    w.request = "resume"
    watch.tick()
    assert w.status.lastRequest is not None and w.status.lastRequest.result == "resumed"
    watch.until(lambda w: w.status.stable.version == "2")
    assert watch.seen == [0, 10, 60, 100]


def test_a_request_is_handled_once_and_never_replayed() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": ""}, {"weight": 60, "pause": ""}])
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: state(w) is ReleaseState.PAUSED)
    w.request = "resume"
    watch.tick()
    watch.until(lambda w: state(w) is ReleaseState.PAUSED and w.weights()["2"] == 60)
    for _ in range(10):  # the same annotation value again and again: nothing happens
        watch.tick(5)
    assert state(w) is ReleaseState.PAUSED and w.weights()["2"] == 60
    w.request = "resume:2"  # a new value is a new request
    watch.until(lambda w: w.status.stable.version == "2")


def test_promote_skips_the_remaining_steps() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": "1h"}, {"weight": 50, "pause": "1h"}])
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.weights()["2"] == 10 and state(w) is ReleaseState.STEPPING)
    w.request = "promote"
    watch.until(lambda w: w.status.stable.version == "2", limit=10)
    assert watch.seen == [0, 10, 100]


def test_abort_sends_traffic_back_and_the_version_is_not_redeployed_until_retry() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.weights()["2"] == 50)
    w.request = "abort"
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    assert watch.seen[-1] == 0
    assert w.versions() == {"1"}, "the new version's pods are gone once its weight is 0"
    assert w.status.phase is Phase.DEGRADED
    assert condition(w.status, "Degraded") == ("True", "Aborted")
    assert condition(w.status, "Stalled")[0] == "True"
    assert w.status.history[0].outcome is Outcome.ROLLED_BACK
    for _ in range(20):  # the alias still points at version 2: it stays rejected
        watch.tick(5)
    assert w.versions() == {"1"} and state(w) is ReleaseState.ABORTED
    w.request = "retry"
    watch.tick()
    assert state(w) is ReleaseState.STARTING and "2" in w.versions()
    assert w.status.history[0].outcome is Outcome.RETRIED
    watch.until(lambda w: w.status.stable.version == "2")


def test_a_rejected_version_comes_back_when_the_selector_moves_away_and_back() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.weights().get("2") == 10)
    w.request = "abort"
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    w.registry = resolved("1")
    watch.tick()
    assert w.status.rollout is None and w.status.phase is Phase.STABLE
    w.registry = resolved("2")
    watch.tick()
    assert state(w) is ReleaseState.STARTING


def test_the_alias_moving_back_to_stable_mid_canary_ends_it_cleanly() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.weights().get("2") == 50)
    w.registry = resolved("1")
    watch.tick()
    assert w.weights() == {"1": 100}
    watch.until(lambda w: w.versions() == {"1"})
    assert w.status.canary is None and w.status.rollout is None
    assert w.status.history[0].outcome is Outcome.ABANDONED
    assert w.status.phase is Phase.STABLE


def test_a_third_version_mid_canary_drops_the_second_and_starts_at_step_zero() -> None:
    w = canary_world()
    watch = move_to_v2(w)
    w.available.update({"2", "3"})
    watch.until(lambda w: w.weights().get("2") == 50)
    w.registry = resolved("3")
    watch.tick()
    assert "2" not in w.weights() and w.weights().get("3") == 0
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.version == "3" and rel.step == 0
    third = Watcher(w, "3")
    third.until(lambda w: w.status.stable.version == "3")
    assert third.seen == [0, 10, 50, 100]


def test_steps_edited_mid_canary_never_leave_a_weight_above_the_current_step() -> None:
    w = canary_world(steps=[{"weight": 10, "pause": "1h"}, {"weight": 50, "pause": "1h"}])
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.weights().get("2") == 50, seconds=60)
    w.spec["rollout"]["steps"] = [{"weight": 5, "pause": "1h"}, {"weight": 20, "pause": "1h"}]
    w.generation += 1
    watch.tick()
    assert w.weights()["2"] == 20


def test_the_progress_deadline_rolls_back_a_version_whose_pods_never_become_ready() -> None:
    w = canary_world(progressDeadline="2m")
    watch = move_to_v2(w)
    watch.until(lambda w: state(w) is ReleaseState.ABORTED, seconds=5)
    assert watch.seen == [0], "no traffic ever"
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.reason == "ProgressDeadlineExceeded"
    assert w.versions() == {"1"}


ANALYSIS = {"interval": "10s", "failureLimit": 1, "inconclusiveLimit": 2,
            "consecutiveErrorLimit": 2, "metrics": [ERROR_RATE]}


def test_analysis_passes_each_step_before_it_advances() -> None:
    w = canary_world(steps=[{"weight": 10}, {"weight": 50}], analysis=ANALYSIS)
    w.answers["errors"] = QueryResult(value=0.01, series=1)
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.status.stable.version == "2")
    assert watch.seen == [0, 10, 50, 100]
    assert len(w.measured) >= 2
    assert 'version="2"' in w.measured[0].query and 'namespace="ml"' in w.measured[0].query


def test_failed_measurements_past_the_limit_roll_back_to_weight_zero() -> None:
    w = canary_world(steps=[{"weight": 10}, {"weight": 50}], analysis=ANALYSIS)
    w.answers["errors"] = QueryResult(value=0.2, series=1)
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    assert watch.seen == [0, 10, 0]
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.reason == "AnalysisFailed"
    assert rel.analysis is not None and rel.analysis.failed == 2
    last = rel.analysis.measurements[0]
    assert (last.verdict.value, last.value, last.threshold) == ("Failed", 0.2, "<= 0.05")
    assert "error-rate" not in last.query and "model_requests_total" in last.query
    assert condition(w.status, "Degraded") == ("True", "AnalysisFailed")
    every = [r for p in w.plans for r in reasons(p)]
    assert "AnalysisFailed" in every and "RolledBack" in every
    # The verdict was stored before the route moved, with the route's weight as it still was.
    decided = next(p for p in w.plans if "RollingBack" in reasons(p))
    assert decided.record_first is not None
    first = decided.record_first.rollout.release if decided.record_first.rollout else None
    assert first is not None and first.state is ReleaseState.ROLLING_BACK and first.weight == 10
    assert decided.record_first.stable.version == "1"


@pytest.mark.parametrize("crash", ["recorded", "applied"])
def test_a_rollback_interrupted_by_a_crash_is_carried_out_never_undone(crash: str) -> None:
    """Killed after storing the verdict (route not yet moved) or after moving the route
    (final status not stored), and the measurement does not repeat after the restart (no
    data now): the route goes to 0 once and stays there."""
    w = canary_world(steps=[{"weight": 10}, {"weight": 50}], analysis=ANALYSIS)
    w.answers["errors"] = QueryResult(value=0.2, series=1)
    watch = move_to_v2(w)
    w.available.add("2")
    w.crash = crash
    watch.until(lambda w: w.crash is None)
    w.answers["errors"] = QueryResult()  # the restarted operator sees no data
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    for _ in range(30):
        watch.tick()
    assert watch.seen == [0, 10, 0], watch.seen
    assert w.status.history[0].outcome is Outcome.ROLLED_BACK


def test_a_replicas_split_rollback_interrupted_by_a_crash_is_never_undone() -> None:
    """Without a router the split is the replicas behind one Service: the rollback scales the
    new version to 0, and that too is stored first."""
    w = canary_world(traffic=None, steps=[{"weight": 10}, {"weight": 50}], analysis=ANALYSIS)
    w.answers["errors"] = QueryResult(value=0.2, series=1)
    move_to_v2(w)
    w.available.add("2")
    w.crash_at_verdict("applied")
    assert w.plans[-1].record_first is not None
    w.answers["errors"] = QueryResult()  # the restarted operator sees no data
    replicas = []
    for _ in range(40):
        w.tick()
        dep = w.children.get(("Deployment", "scorer-v2"))
        replicas.append(dep.replicas if dep else None)
    assert set(replicas) <= {0, None}, f"the failed version was scaled up again: {replicas}"
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.reason == "AnalysisFailed", rel
    assert w.status.history[0].outcome is Outcome.ROLLED_BACK


def test_inconclusive_measurements_pause_and_never_promote_then_abort_at_the_limit() -> None:
    w = canary_world(steps=[{"weight": 10}], analysis=ANALYSIS)  # answers: empty vectors
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: state(w) is ReleaseState.PAUSED)
    assert w.status.phase is Phase.PAUSED
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.reason == "AnalysisInconclusive"
    assert w.status.stable.version == "1" and 100 not in watch.seen


def test_an_error_streak_rolls_back_with_the_providers_message() -> None:
    w = canary_world(steps=[{"weight": 10}], analysis=ANALYSIS)
    w.answers["errors"] = QueryResult(error="bad_data: 1:5: parse error: unexpected")
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: state(w) is ReleaseState.ABORTED)
    rel = w.status.rollout.release if w.status.rollout else None
    assert rel is not None and rel.reason == "AnalysisErrors"
    assert rel.analysis is not None and "parse error" in rel.analysis.measurements[0].message


def test_a_relative_threshold_compares_with_the_stable_version() -> None:
    metric = {"name": "errors", "template": "error-rate", "maxIncrease": 0.02}
    w = canary_world(steps=[{"weight": 10}], analysis={**ANALYSIS, "metrics": [metric]})
    w.answers["errors"] = QueryResult(value=0.05, series=1)
    w.stable_answers["errors"] = QueryResult(value=0.04, series=1)
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.status.stable.version == "2")
    assert any(m.stable_query and 'version="1"' in m.stable_query for m in w.measured)


@pytest.mark.parametrize("traffic", [ISTIO, GATEWAY], ids=["istio", "gatewayAPI"])
def test_weighted_routers_show_every_step_on_the_route(traffic: dict[str, Any]) -> None:
    w = canary_world(traffic=traffic)
    watch = move_to_v2(w)
    w.available.add("2")
    watch.until(lambda w: w.status.stable.version == "2")
    assert watch.seen == [0, 10, 50, 100]


def test_the_replicas_router_turns_weights_into_replica_counts() -> None:
    w = canary_world(traffic=None, steps=[{"weight": 50, "pause": "10s"}])
    move_to_v2(w)
    dep = w.child("Deployment", "scorer-v2")
    assert dep.replicas == 2  # 50 % next to two stable replicas
    svc = w.child("Service", "scorer")
    assert svc.kind == "Service"
    w.available.add("2")
    for _ in range(40):
        w.tick()
        if w.status.stable.version == "2":
            break
    assert w.status.stable.version == "2"


def blue_green_at_v2(delay: str, *, traffic: dict[str, Any] | None = None,
                     auto_promote: bool = True, **rollout: Any) -> World:
    """Version 1 stable under blue-green; version 2 resolved and starting."""
    spec_rollout = {"strategy": "blueGreen", **rollout,
                    "blueGreen": {"scaleDownDelay": delay, "autoPromote": auto_promote}}
    spec: dict[str, Any] = {"model": {"name": "fraud-scorer", "alias": "champion"},
                            "serving": {"replicas": 2}, "rollout": spec_rollout}
    if traffic is not None:
        spec["traffic"] = traffic
    w = World(spec=spec)
    w.tick()
    w.available.add("1")
    w.tick()
    w.registry = resolved("2")
    w.tick()
    return w


def test_blue_green_switches_at_once_and_keeps_the_old_version_for_the_window() -> None:
    w = blue_green_at_v2("1m")
    assert ("Service", "scorer-preview") in w.children
    assert state(w) is ReleaseState.STARTING
    w.available.add("2")
    for _ in range(5):
        w.tick()
        if w.status.stable.version == "2":
            break
    assert w.status.stable.version == "2" and state(w) is ReleaseState.SWITCHED
    switched = w.now
    assert w.versions() == {"1", "2"}
    while w.versions() != {"2"}:
        w.tick(5)
        assert (w.now - switched).total_seconds() < 120
    assert (w.now - switched).total_seconds() >= 60
    assert w.status.rollout is None


def test_blue_green_abort_within_the_window_switches_back_at_once() -> None:
    w = blue_green_at_v2("5m")
    w.available.add("2")
    for _ in range(5):
        w.tick()
    assert w.status.stable.version == "2" and state(w) is ReleaseState.SWITCHED
    w.request = "abort"
    w.tick()
    assert w.status.stable.version == "1", "the previous version serves again at once"
    entry = w.child("Service", "scorer")
    assert entry.fingerprint is not None
    assert w.status.history[0].outcome is Outcome.ROLLED_BACK
    assert state(w) is ReleaseState.ABORTED
    for _ in range(5):
        w.tick()
    assert w.versions() == {"1"}, "version 2 removed, not released again"
    assert w.status.lastRequest is not None and "switched back" in w.status.lastRequest.result
