"""Analysis during a release: when measurements are due, and what their verdicts do (hold,
roll back, or, in the bake window, switch back)."""

from __future__ import annotations

import datetime as dt

from modeldeploy.api.status import (
    AnalysisStatus,
    MeasurementStatus,
    Release,
)
from modeldeploy.core import analysis, durations
from modeldeploy.core.release.base import CONFIRM_REQUEUE, Facts, S, Working, _at, _later
from modeldeploy.core.release.endings import _roll_back, _switch_back
from modeldeploy.core.world import (
    Event,
)


def _fresh_window(f: Facts, release: Release) -> AnalysisStatus:
    """The release's analysis counters with the next measurement one interval from now."""
    spec = f.rollout.analysis
    assert spec is not None
    return (release.analysis or AnalysisStatus()).model_copy(update={
        "nextAt": _later(f.now, durations.parse(spec.interval))})


def _measurements_due(w: Working, f: Facts) -> bool:
    release = w.release
    spec = f.rollout.analysis
    if release is None or spec is None or not spec.metrics or release.analysis is None:
        return False
    if release.state not in (S.STEPPING, S.PAUSED, S.BAKING) or release.stepStartedAt is None:
        return False
    due = _at(release.analysis.nextAt)
    return due is not None and f.now >= due


def _schedule_measurements(w: Working, f: Facts, *, now_allowed: bool) -> None:
    release = w.release
    if release is None or release.analysis is None:
        return
    if now_allowed and _measurements_due(w, f):
        w.measure = list(f.requests)
        return
    due = _at(release.analysis.nextAt)
    measured = f.rollout_spec is not None and f.rollout_spec.analysis is not None and \
        bool(f.rollout_spec.analysis.metrics)
    if due is not None and measured and release.state in (S.STEPPING, S.PAUSED, S.BAKING):
        w.wake.append(max(due, f.now + dt.timedelta(seconds=CONFIRM_REQUEUE)))


def _record(w: Working, f: Facts, release: Release) -> None:
    """One interval's measurements: verdicts into status, an event, limits judged."""
    spec = f.rollout.analysis
    assert spec is not None and release.analysis is not None
    queries = {r.metric: r for r in f.requests}
    results: list[analysis.Measurement] = []
    for m in f.measurements:
        metric = next((x for x in spec.metrics if x.name == m.metric), None)
        request = queries.get(m.metric)
        if metric is None or request is None:
            continue
        results.append(analysis.evaluate(
            metric=m.metric, candidate=m.candidate, stable=m.stable, requests=m.requests,
            min=metric.min, max=metric.max,
            # No stable query (fixForward, a bake window): the relative bound is not judged.
            max_increase=metric.maxIncrease if request.stable_query is not None else None,
            min_requests=float(spec.minRequests), query=request.query))
    state = release.analysis
    counters = analysis.Counters(successful=state.successful, failed=state.failed,
                                 inconclusive=state.inconclusive,
                                 consecutive_errors=state.consecutiveErrors)
    counters = counters.add(r.verdict for r in results)
    outcome = analysis.judge(counters, failure_limit=spec.failureLimit,
                             inconclusive_limit=spec.inconclusiveLimit,
                             consecutive_error_limit=spec.consecutiveErrorLimit)
    measured = {m.metric: m for m in state.measurements}
    for r in results:
        measured[r.metric] = MeasurementStatus(
            metric=r.metric, verdict=r.verdict, value=_finite(r.value),
            stableValue=_finite(r.stable), threshold=r.threshold, message=r.message,
            query=r.query[:1024], at=f.ts)
    successes = state.stepSuccesses + (1 if outcome is analysis.Outcome.CONTINUE else 0)
    new_state = state.model_copy(update={
        "successful": counters.successful, "failed": counters.failed,
        "inconclusive": counters.inconclusive, "consecutiveErrors": counters.consecutive_errors,
        "stepSuccesses": successes,
        "nextAt": _later(f.now, durations.parse(spec.interval)),
        "measurements": [measured[m.name] for m in spec.metrics if m.name in measured]})
    release = release.model_copy(update={"analysis": new_state})
    w.set_release(release)
    worst = counters.latest.value if counters.latest else "Successful"
    summary = "; ".join(f"{r.message} [{r.query}]" for r in results)
    w.events.append(Event("Normal" if worst == "Successful" else "Warning",
                          f"Analysis{worst}", summary[:1000]))
    values = "; ".join(r.message for r in results)
    if release.state is S.BAKING:
        # A promoted version goes back on evidence of harm only, never on missing data.
        if outcome is analysis.Outcome.ABORT_FAILED:
            _switch_back(w, f, release, reason="BakeFailed",
                         why=f"failed in its bake window: {values}")
        return
    if outcome is analysis.Outcome.ABORT_FAILED:
        _roll_back(w, f, release, "AnalysisFailed", values)
    elif outcome is analysis.Outcome.ABORT_ERRORS:
        _roll_back(w, f, release, "AnalysisErrors",
                   f"{counters.consecutive_errors} measurements in a row failed: {values}")
    elif outcome is analysis.Outcome.ABORT_INCONCLUSIVE:
        _roll_back(w, f, release, "AnalysisInconclusive",
                   f"{counters.inconclusive} inconclusive measurements: {values}")
    elif outcome is analysis.Outcome.HOLD and release.state is S.STEPPING:
        w.set_release(release.model_copy(update={"state": S.PAUSED,
                                                 "pausedBy": "Analysis"}))
    elif outcome is analysis.Outcome.CONTINUE and release.state is S.PAUSED and \
            release.pausedBy == "Analysis":
        w.set_release(release.model_copy(update={"state": S.STEPPING, "pausedBy": None}))


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value and abs(value) != float("inf") \
        else None
