"""Progressive releases — canary and blue-green — as a state machine kept in ``.status``.

Pure, like the rest of ``core``. :func:`advance` makes at most one transition per call, and
everything it needs is in the stored status (absolute times, counters, the step index), so a
restarted operator carries on where the last one stopped and waits out only the rest of a
pause. The stable version serves throughout; traffic moves only after the previous weight is
confirmed on the live route. Status shape (``status.rollout``)::

    type: Canary                  # or BlueGreen
    canary:
      version: "8"
      state: Stepping             # Starting, Stepping, Paused, Promoting, RollingBack,
                                  # Aborted, Switched (blue-green)
      step: 1                     # index into spec.rollout.steps
      weight: 50                  # read back from the live route, never the requested one
      startedAt / stepStartedAt / stepEndsAt / switchedAt: absolute times
      pausedBy: Step | Request | Analysis
      reason / message            # why it rolled back (AnalysisFailed, ...)
      analysis: {successful, failed, inconclusive, consecutiveErrors, stepSuccesses, nextAt,
                 measurements: [{metric, verdict, value, stableValue, threshold, query, ...}]}

Canary: Starting (the new version comes up with weight 0) → Stepping through each step's
weight (held for its pause; with analysis, until a successful measurement at that weight) →
Promoting (weight 100) → promoted. Blue-green: Starting (up in full behind the preview
Service) → Stepping (analysis) → switched at once → Switched (the previous version stays up
for ``scaleDownDelay``). A Failed verdict past ``failureLimit``, an Error streak, too many
Inconclusive verdicts, the progress deadline or an abort request: RollingBack (weight 0
first) → Aborted, which keeps the version from being released again while the selector
still points at it (until a retry request).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modeldeploy.api.spec import Rollout, Strategy
from modeldeploy.api.status import (
    AnalysisStatus,
    Canary,
    HistoryEntry,
    MeasurementStatus,
    Outcome,
    Release,
    ReleaseState,
    Request,
    RolloutState,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.core import analysis, durations, report
from modeldeploy.core.conditions import timestamp
from modeldeploy.core.world import Event, Measurement, MeasurementRequest

REQUEST_ANNOTATION = "modeldeploy.io/request"
ACTIONS = ("promote", "abort", "retry", "pause", "resume")
#: How soon to look again while waiting for a weight to show on the live route.
CONFIRM_REQUEUE = 1.0
#: The event a rollback posts (its message names the reason).
ROLLING_BACK_EVENT = "RollingBack"

S = ReleaseState


@dataclass
class Working:
    """The version state machine's working copy during one decide()."""

    stable: Stable | None
    canary: Canary | None
    rollout: RolloutState | None
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    promoted: bool = False
    measure: list[MeasurementRequest] = field(default_factory=list)
    last_request: Request | None = None
    #: Versions whose children stay although neither stable nor canary (blue-green window).
    keep: set[str] = field(default_factory=set)
    wake: list[dt.datetime] = field(default_factory=list)

    @property
    def release(self) -> Release | None:
        return self.rollout.release if self.rollout is not None else None

    def set_release(self, release: Release) -> None:
        assert self.rollout is not None
        self.rollout = state_of(self.rollout.type, release)


def state_of(kind: RolloutType, release: Release) -> RolloutState:
    if kind is RolloutType.CANARY:
        return RolloutState(type=kind, canary=release)
    return RolloutState(type=kind, blueGreen=release)


def progressive(rollout: Rollout | None) -> bool:
    return rollout is not None and rollout.strategy in (Strategy.CANARY, Strategy.BLUE_GREEN)


def start(w: Working, rollout: Rollout, *, version: str, ts: str) -> None:
    """A new release of ``version`` (already w.canary): Starting, no traffic."""
    kind = RolloutType.CANARY if rollout.strategy is Strategy.CANARY else RolloutType.BLUE_GREEN
    w.rollout = state_of(kind, Release(version=version, state=S.STARTING, startedAt=ts,
                                       notReadySince=ts,
                                       analysis=AnalysisStatus() if rollout.analysis else None))


@dataclass(frozen=True)
class Facts:
    """What advance() may look at besides the working copy."""

    #: spec.rollout (None only when no release is in flight: a request then does nothing).
    rollout_spec: Rollout | None
    now: dt.datetime
    #: The new version runs the current spec with its replicas Ready (and is not stuck).
    candidate_ready: bool
    candidate_stuck: bool
    #: Whether a weight for the new version is what the live objects do now.
    in_place: Callable[[int], bool]
    #: The registry's current answer is the release's version (retry needs that).
    resolved_version: str | None
    request: str | None = None
    #: The apiserver refused one of the children this observation asked for: nothing that
    #: assumes the plan is live (a blue-green switch) may happen.
    apply_refused: bool = False
    measurements: tuple[Measurement, ...] = ()
    requests: tuple[MeasurementRequest, ...] = ()

    @property
    def ts(self) -> str:
        return timestamp(self.now)

    @property
    def rollout(self) -> Rollout:
        assert self.rollout_spec is not None, "a release in flight has a spec.rollout"
        return self.rollout_spec


def _at(text: str | None) -> dt.datetime | None:
    """A status time; None when absent or unreadable (a hand-edited status is not a crash)."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _later(now: dt.datetime, seconds: float) -> str:
    """``now + seconds`` as a status time, rounded *up* to the whole second status times
    have: a pause is never shorter than configured."""
    when = now + dt.timedelta(seconds=seconds)
    if when.microsecond:
        when += dt.timedelta(microseconds=1_000_000 - when.microsecond)
    return timestamp(when)


def wanted_weight(rollout: Rollout, release: Release, *, candidate_ready: bool) -> int:
    """The new version's weight in the state ``release`` is in (what the route is asked
    for). Blue-green never splits: its switch is the promotion."""
    if rollout.strategy is Strategy.BLUE_GREEN:
        return 0
    steps = rollout.steps or []
    if release.state in (S.STEPPING, S.PAUSED) and steps:
        return steps[min(release.step, len(steps) - 1)].weight
    if release.state is S.PROMOTING:
        return 100 if candidate_ready else (steps[-1].weight if steps else 0)
    return 0


def advance(w: Working, f: Facts) -> None:
    """At most one transition of the release in ``w``."""
    release = w.release
    if f.request is not None and (w.last_request is None or w.last_request.value != f.request):
        _handle_request(w, f, f.request)
        return
    if release is None:
        return
    if f.measurements:
        _record(w, f, release)
        return
    if release.state in (S.STARTING, S.STEPPING, S.PAUSED, S.PROMOTING):
        release = _track_readiness(w, f, release)
        if _deadline_passed(f, release):
            _roll_back(w, f, release, "ProgressDeadlineExceeded",
                       f"version {release.version} was not Ready at its size within "
                       f"{f.rollout.progressDeadline}")
            return
    before = w.rollout
    handler = {S.STARTING: _starting, S.STEPPING: _stepping, S.PROMOTING: _promoting,
               S.ROLLING_BACK: _rolling_back, S.SWITCHED: _switched}.get(release.state)
    if handler is not None:
        handler(w, f, release)
    # Measure only a release that stays where it is: a transition's new weight or state is
    # not live yet, and a measurement now would be credited to it.
    _schedule_measurements(w, f, now_allowed=w.rollout == before)


def _track_readiness(w: Working, f: Facts, release: Release) -> Release:
    """Keep ``notReadySince``: the progress deadline counts from when the new version last
    stopped being Ready at its current size (or from the start), not from the start of the
    release, so a pod restarting late in a long release is not a missed deadline."""
    since = None if f.candidate_ready else (
        release.notReadySince if _at(release.notReadySince) else f.ts)
    if since != release.notReadySince:
        release = release.model_copy(update={"notReadySince": since})
        w.set_release(release)
    if since is not None:
        w.wake.append((_at(since) or f.now) + dt.timedelta(
            seconds=durations.parse(f.rollout.progressDeadline)))
    return release


def _deadline_passed(f: Facts, release: Release) -> bool:
    if f.candidate_ready:
        return False
    if f.candidate_stuck:
        return True
    since = _at(release.notReadySince) or f.now
    return f.now >= since + dt.timedelta(seconds=durations.parse(f.rollout.progressDeadline))


# --- states ---------------------------------------------------------------------------------


def _starting(w: Working, f: Facts, release: Release) -> None:
    if not f.candidate_ready:
        return
    w.set_release(release.model_copy(update={"state": S.STEPPING, "step": 0,
                                             "stepStartedAt": None, "stepEndsAt": None}))


def _stepping(w: Working, f: Facts, release: Release) -> None:
    steps = f.rollout.steps or []
    if release.stepStartedAt is None:
        weight = wanted_weight(f.rollout, release, candidate_ready=f.candidate_ready)
        if not f.in_place(weight):
            w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
            return
        _confirm_step(w, f, release, weight)
        return
    spec = f.rollout.analysis
    if spec is not None and spec.metrics and \
            (release.analysis is None or release.analysis.nextAt is None):
        # Analysis was added to the spec mid-release: the first window starts now.
        w.set_release(release.model_copy(update={"analysis": _fresh_window(f, release)}))
        return
    ends = _at(release.stepEndsAt)
    if ends is not None and f.now < ends:
        w.wake.append(ends)
        return
    if spec is not None and spec.metrics and \
            (release.analysis is None or release.analysis.stepSuccesses < 1):
        return  # wait for a successful measurement at this weight
    _next_step(w, f, release, steps)


def _confirm_step(w: Working, f: Facts, release: Release, weight: int) -> None:
    steps = f.rollout.steps or []
    strategy_bg = f.rollout.strategy is Strategy.BLUE_GREEN
    step = steps[min(release.step, len(steps) - 1)] if steps and not strategy_bg else None
    update: dict[str, object] = {"stepStartedAt": f.ts, "weight": weight}
    if step is not None and step.pause_seconds():
        ends = _later(f.now, step.pause_seconds())
        update["stepEndsAt"] = ends
        w.wake.append(_at(ends) or f.now)
    if step is not None and step.waits_for_human():
        update.update(state=S.PAUSED, pausedBy="Step")
    spec = f.rollout.analysis
    if spec is not None and spec.metrics:
        # A fresh window at the new weight: the first measurement of this step covers
        # nothing but this step's traffic.
        update["analysis"] = _fresh_window(f, release).model_copy(update={"stepSuccesses": 0})
    w.set_release(release.model_copy(update=update))
    if strategy_bg:
        w.events.append(Event("Normal", "PreviewReady",
                              f"version {release.version} is Ready behind the preview Service"))
    else:
        w.events.append(Event("Normal", "StepStarted",
                              f"step {release.step + 1}/{len(steps)}: version "
                              f"{release.version} has {weight}% of the traffic"))
    if step is not None and step.waits_for_human():
        w.events.append(Event("Normal", "Paused", f"step {release.step + 1} waits for a "
                                                  "resume or promote request"))


def _next_step(w: Working, f: Facts, release: Release, steps: Sequence[object]) -> None:
    reset = (release.analysis.model_copy(update={"stepSuccesses": 0})
             if release.analysis is not None else None)
    if f.rollout.strategy is Strategy.BLUE_GREEN:
        bg = f.rollout.blueGreen
        if f.apply_refused:
            return  # the switch is a change of route: not while the apiserver refuses one
        if bg is not None and not bg.autoPromote:
            if release.state is not S.PAUSED:
                w.set_release(release.model_copy(update={"state": S.PAUSED,
                                                         "pausedBy": "Step"}))
                w.events.append(Event("Normal", "Paused",
                                      f"version {release.version} waits for a promote "
                                      "request (autoPromote is off)"))
            return
        _switch(w, f, release)
        return
    if release.step + 1 < len(steps):
        w.set_release(release.model_copy(update={
            "state": S.STEPPING, "step": release.step + 1, "stepStartedAt": None,
            "stepEndsAt": None, "pausedBy": None, "analysis": reset}))
    else:
        w.set_release(release.model_copy(update={
            "state": S.PROMOTING, "stepStartedAt": None, "stepEndsAt": None,
            "pausedBy": None, "analysis": reset}))
        w.events.append(Event("Normal", "Promoting",
                              f"every step passed: moving all traffic to version "
                              f"{release.version}"))


def _promoting(w: Working, f: Facts, release: Release) -> None:
    if not f.candidate_ready or not f.in_place(100):
        w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
        return
    promote(w, f.ts)


def _rolling_back(w: Working, f: Facts, release: Release) -> None:
    if not f.in_place(0):
        w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
        return
    # Weight 0 is live: now the new version's children may go (it leaves status.canary).
    w.set_release(release.model_copy(update={"state": S.ABORTED, "weight": 0,
                                             "stepStartedAt": None, "stepEndsAt": None}))
    w.canary = None
    w.history.insert(0, HistoryEntry(version=release.version, outcome=Outcome.ROLLED_BACK,
                                     reason=release.message or release.reason, at=f.ts))
    w.events.append(Event("Warning", "RolledBack",
                          f"version {release.version} rolled back ({release.reason}): "
                          f"{release.message or ''}; weight 0, its pods are removed"))


def _switched(w: Working, f: Facts, release: Release) -> None:
    bg = f.rollout.blueGreen
    delay = durations.parse(bg.scaleDownDelay if bg else "30s")
    switched = _at(release.switchedAt) or f.now
    ends = switched + dt.timedelta(seconds=delay)
    if f.now < ends:
        if release.previous is not None:
            w.keep.add(release.previous.version)
        w.wake.append(ends)
        return
    w.rollout = None  # the previous version's children go with this plan


def promote(w: Working, ts: str) -> None:
    """The new version becomes stable (history Promoted / Replaced); the old version's
    children go in the next plan, once this status is stored."""
    canary = w.canary
    assert canary is not None
    if w.stable is not None:
        w.history.insert(0, HistoryEntry(version=w.stable.version, outcome=Outcome.REPLACED,
                                         reason=f"replaced by version {canary.version}", at=ts))
    w.history.insert(0, HistoryEntry(version=canary.version, outcome=Outcome.PROMOTED, at=ts))
    w.events.append(Event("Normal", "Promoted", report.promoted_message(canary, w.stable)))
    info = canary.model_dump(include={"version", "runId", "source", "modelUri"})
    w.stable = Stable(**info, since=ts)
    w.canary, w.rollout, w.promoted = None, None, True


def _switch(w: Working, f: Facts, release: Release) -> None:
    """Blue-green: all traffic to the new version at once; the previous one stays up for
    scaleDownDelay."""
    previous = w.stable
    promote(w, f.ts)
    w.promoted = previous is None
    if previous is None:
        return
    info = VersionInfo(**previous.model_dump(include=set(VersionInfo.model_fields)))
    w.rollout = RolloutState(type=RolloutType.BLUE_GREEN, blueGreen=release.model_copy(update={
        "state": S.SWITCHED, "switchedAt": f.ts, "weight": 100, "previous": info,
        "stepStartedAt": None, "stepEndsAt": None, "pausedBy": None}))
    w.keep.add(previous.version)


def _switch_back(w: Working, f: Facts, release: Release) -> str:
    """Blue-green abort within the window: the previous version, still up, serves again at
    once; the switched-to version is rejected like a rolled-back canary."""
    previous = release.previous
    if previous is None or w.stable is None:
        return "nothing to switch back to"
    rejected = w.stable.version
    w.history.insert(0, HistoryEntry(version=rejected, outcome=Outcome.ROLLED_BACK,
                                     reason="abort request after the switch", at=f.ts))
    w.stable = Stable(**previous.model_dump(), since=f.ts)
    w.canary = None
    w.set_release(release.model_copy(update={
        "version": rejected, "state": S.ABORTED, "reason": "Aborted", "weight": 0,
        "switchedAt": None, "message": f"switched back to version {previous.version}",
        "previous": None}))
    w.events.append(Event("Warning", "RolledBack", f"switched back from version {rejected} to "
                                                   f"version {previous.version}"))
    return f"switched back to version {previous.version}"


def _roll_back(w: Working, f: Facts, release: Release, reason: str, message: str) -> None:
    w.set_release(release.model_copy(update={
        "state": S.ROLLING_BACK, "reason": reason, "message": message[:512],
        "pausedBy": None, "stepEndsAt": None}))
    w.events.append(Event("Warning", ROLLING_BACK_EVENT,
                          f"rolling back version {release.version} ({reason}): {message}"))
    w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))


# --- analysis -------------------------------------------------------------------------------


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
    if release.state not in (S.STEPPING, S.PAUSED) or release.stepStartedAt is None:
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
    if due is not None and release.state in (S.STEPPING, S.PAUSED):
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
            min=metric.min, max=metric.max, max_increase=metric.maxIncrease,
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


# --- requests -------------------------------------------------------------------------------


def _handle_request(w: Working, f: Facts, value: str) -> None:
    action = value.split(":", 1)[0].strip().lower()
    release = w.release
    result = _apply_request(w, f, action, release)
    w.last_request = Request(value=value, action=action, result=result, at=f.ts)
    known = action in ACTIONS
    w.events.append(Event("Normal" if known else "Warning", "Request",
                          f"{REQUEST_ANNOTATION}={value}: {result}"))


def _apply_request(w: Working, f: Facts, action: str, release: Release | None) -> str:
    if action not in ACTIONS:
        return f"unknown request {action!r}: use one of {', '.join(ACTIONS)}"
    state = release.state if release is not None else None
    if action == "retry":
        if release is None or state is not S.ABORTED:
            return "nothing to retry: no release was rolled back"
        if f.resolved_version != release.version:
            return (f"nothing to retry: the selector now resolves to "
                    f"{f.resolved_version or 'nothing'}, not version {release.version}")
        w.history.insert(0, HistoryEntry(version=release.version, outcome=Outcome.RETRIED,
                                         reason="retry request", at=f.ts))
        w.rollout = None  # decide() starts the version again from Starting
        return f"version {release.version} is released again"
    if action == "abort" and release is not None and state is S.SWITCHED:
        return _switch_back(w, f, release)
    if release is None or state in (S.ABORTED, S.ROLLING_BACK, S.SWITCHED):
        return f"no release in progress to {action}"
    if action == "abort":
        _roll_back(w, f, release, "Aborted", "abort request")
        return f"rolling back version {release.version}"
    if action == "pause":
        if state is S.PAUSED:
            return "already paused"
        if state is not S.STEPPING:
            return (f"not pausable while {state.value if state else 'idle'}: a release pauses "
                    "while it steps (or, blue-green, while its preview is analysed)")
        w.set_release(release.model_copy(update={"state": S.PAUSED, "pausedBy": "Request"}))
        return f"paused at step {release.step + 1}"
    if action == "resume":
        if state is not S.PAUSED:
            return f"not paused ({state.value if state else 'idle'})"
        if release.pausedBy == "Step" and f.rollout.strategy is Strategy.BLUE_GREEN:
            return "the preview passed; with autoPromote off, a promote request switches"
        if release.pausedBy == "Step":
            _next_step(w, f, release.model_copy(update={"state": S.STEPPING}),
                       list(f.rollout.steps or []))
        else:
            w.set_release(release.model_copy(update={"state": S.STEPPING, "pausedBy": None}))
        return "resumed"
    # promote: skip the remaining steps and analysis.
    if not f.candidate_ready:
        return f"version {release.version} is not Ready yet; promote again once it is"
    if f.rollout.strategy is Strategy.BLUE_GREEN:
        if f.apply_refused:
            return "the apiserver refuses a change this release needs; promote again later"
        _switch(w, f, release)
        return f"switched to version {release.version}"
    w.set_release(release.model_copy(update={"state": S.PROMOTING, "pausedBy": None,
                                             "stepStartedAt": None, "stepEndsAt": None}))
    return f"promoting version {release.version}: all traffic moves to it"
