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

from modeldeploy.api.spec import Rollout, Strategy, WriteBack
from modeldeploy.api.status import (
    AnalysisStatus,
    Canary,
    GateResult,
    GateStatus,
    HistoryEntry,
    MeasurementStatus,
    Outcome,
    Previous,
    RegistryWrite,
    Release,
    ReleaseState,
    Request,
    RolloutState,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.core import analysis, durations, gating, report, writeback
from modeldeploy.core.conditions import timestamp
from modeldeploy.core.world import (
    Event,
    GateAnswers,
    GateRequest,
    Measurement,
    MeasurementRequest,
    ResolvedVersion,
    SmokeRequest,
)

REQUEST_ANNOTATION = "modeldeploy.io/request"
ACTIONS = ("promote", "abort", "retry", "pause", "resume")
#: How soon to look again while waiting for a weight to show on the live route.
CONFIRM_REQUEUE = 1.0
#: The event a rollback posts (its message names the reason).
ROLLING_BACK_EVENT = "RollingBack"
#: How soon to ask a scoring server that is still starting again.
SMOKE_REQUEUE = 2.0

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
    #: Registry details or a smoke test the gates need before the next decision.
    gates: GateRequest | None = None
    #: Registry write-backs owed (status.registryWrites), and what to write them for.
    writes: list[RegistryWrite] = field(default_factory=list)
    write_spec: WriteBack | None = None
    #: The version the stable one replaced (what a rollback returns to).
    previous: Previous | None = None
    #: (namespace, name, cluster) written with each outcome, and the registered model.
    origin: tuple[str, str, str] = ("", "", "")
    model: str = ""

    def owe(self, outcome: writeback.Outcome) -> None:
        """Record what the registry should learn of ``outcome`` (spec.model.writeBack)."""
        if self.write_spec is None:
            return
        for write in writeback.plan(self.write_spec, outcome):
            entry = RegistryWrite(model=self.model, version=write.version, tags=write.tags,
                                  aliases=list(write.aliases))
            if entry not in self.writes:
                self.writes.append(entry)

    def outcome(self, version: str, *, promoted: bool, reason: str, at: str,
                previous: str | None = None, summary: str = "") -> writeback.Outcome:
        namespace, name, cluster = self.origin
        return writeback.Outcome(version=version, promoted=promoted, reason=reason, at=at,
                                 namespace=namespace, name=name, cluster=cluster,
                                 previous=previous, analysis=summary)

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


def start(w: Working, rollout: Rollout, *, version: str, ts: str,
          fast_track: bool = False) -> None:
    """A new release of ``version`` (already w.canary): Gating or Starting, no traffic. A
    fast-tracked one (it served as stable here recently) will skip the steps."""
    kind = RolloutType.CANARY if rollout.strategy is Strategy.CANARY else RolloutType.BLUE_GREEN
    gated = bool(gating.registry_gates(rollout.gates))
    w.rollout = state_of(kind, Release(version=version, state=S.GATING if gated else S.STARTING,
                                       startedAt=ts, notReadySince=None if gated else ts,
                                       fastTrack=fast_track or None,
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
    #: The release's version and the stable one as the registry knows them (gate requests).
    candidate: ResolvedVersion | None = None
    stable: ResolvedVersion | None = None
    #: The new version's Service (smoke test) and the port it listens on.
    candidate_service: str = ""
    candidate_port: int = 80
    #: How often missing required registry marks are looked for again (spec.model.pollInterval).
    recheck_after: float = 30.0
    gate_answers: GateAnswers | None = None

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
    if release is not None and release.previous is not None and \
            release.state in (S.SWITCHED, S.BAKING):
        w.keep.add(release.previous.version)  # whatever else happens in this call
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
    handler = {S.GATING: _gating, S.STARTING: _starting, S.STEPPING: _stepping,
               S.PROMOTING: _promoting, S.ROLLING_BACK: _rolling_back,
               S.SWITCHED: _switched, S.BAKING: _baking}.get(release.state)
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


def _gating(w: Working, f: Facts, release: Release) -> None:
    """Registry gates, before the new version has any pods: judged once (a missing required
    mark is looked for again every ``recheck_after``; a breaking change may wait for a
    promote request)."""
    spec = f.rollout.gates
    configured = gating.registry_gates(spec)
    if spec is None or not configured:
        _to_starting(w, f, release)  # the gates were removed from the spec meanwhile
        return
    judged = {g.gate: g for g in release.gates or ()}
    if all(judged.get(g) is not None and judged[g].result in gating.THROUGH
           for g in configured):
        _to_starting(w, f, release)
        return
    answers = f.gate_answers
    if answers is None:
        due = _recheck_due(f, release, configured)
        if due is not None and due > f.now:
            w.wake.append(due)
        elif f.candidate is not None:
            w.gates = GateRequest(version=f.candidate, stable=f.stable)
        return
    if answers.error is not None or answers.candidate is None:
        entries = [GateStatus(gate=g, result=GateResult.PENDING, reason="RegistryUnreadable",
                              message=(answers.error or "no answer")[:500], at=f.ts,
                              startedAt=f.ts) for g in configured
                   if judged.get(g) is None or judged[g].result is GateResult.PENDING]
        w.set_release(release.model_copy(update={"gates": gating.merge(release.gates,
                                                                       entries)}))
        w.wake.append(f.now + dt.timedelta(seconds=min(f.recheck_after, 10.0)))
        return
    new = gating.judge_registry(spec, answers.candidate, answers.stable,
                                stable_version=f.stable.version if f.stable else None, ts=f.ts)
    new = [_keep_approval(judged.get(g.gate), g) for g in new]
    if release.fastTrack or f.rollout.fixForward:
        new = [gating.not_blocking(g, "FixForward" if f.rollout.fixForward else "FastTrack")
               for g in new]
    for g in new:
        old = judged.get(g.gate)
        if old is None or (old.result, old.reason) != (g.result, g.reason):
            w.events.append(Event(*gating.event_for(g, release.version)))
    entries = gating.merge(release.gates, new)
    failed, waits = gating.blocking(entries), gating.waiting(entries)
    approval = waits is not None and waits.reason == "ApprovalRequired"
    release = release.model_copy(update={"gates": entries,
                                         "pausedBy": "Approval" if approval else None})
    w.set_release(release)
    if failed is not None:
        _abort(w, f, release.model_copy(update={
            "reason": failed.reason, "message": f"{failed.gate}: {failed.message}"[:512]}))
    elif waits is None:
        _to_starting(w, f, release)
    elif not approval or gating.find(entries, gating.REQUIRED) is waits:
        w.wake.append(f.now + dt.timedelta(seconds=f.recheck_after))


def _keep_approval(old: GateStatus | None, new: GateStatus) -> GateStatus:
    """A breaking change a human approved stays approved while it is the same change."""
    if old is not None and old.result is GateResult.APPROVED and \
            new.result is GateResult.WAITING and new.reason == "ApprovalRequired" and \
            old.checks == new.checks:
        return old
    return new


def _recheck_due(f: Facts, release: Release, configured: Sequence[str]) -> dt.datetime | None:
    """When the registry gates should be judged again (None: now; they never were)."""
    entries = {g.gate: g for g in release.gates or ()}
    if any(g not in entries or entries[g].result is GateResult.PENDING for g in configured):
        return None
    required = entries.get(gating.REQUIRED)
    if required is not None and required.result is GateResult.WAITING:
        at = _at(required.at)
        return at + dt.timedelta(seconds=f.recheck_after) if at else None
    return f.now + dt.timedelta(days=1)  # waits for a promote request (approval)


def _to_starting(w: Working, f: Facts, release: Release) -> None:
    w.set_release(release.model_copy(update={"state": S.STARTING, "pausedBy": None,
                                             "notReadySince": f.ts}))


def _approve(w: Working, f: Facts, release: Release) -> str:
    """A promote request while Gating approves a breaking change that waits for one."""
    entries = list(release.gates or ())
    waits = gating.waiting(entries)
    if waits is None or waits.reason != "ApprovalRequired":
        pending = waits.message if waits is not None else "the registry gates are being checked"
        return f"nothing to approve: {pending}"
    approved = waits.model_copy(update={"result": GateResult.APPROVED, "reason": "Approved",
                                        "message": waits.message.replace(
                                            " (a promote request approves it)", "")
                                        + "; approved by a promote request", "at": f.ts})
    entries = gating.merge(entries, [approved])
    release = release.model_copy(update={"gates": entries, "pausedBy": None})
    w.set_release(release)
    w.events.append(Event(*gating.event_for(approved, release.version)))
    if gating.waiting(entries) is None and gating.blocking(entries) is None:
        _to_starting(w, f, release)
        return f"approved version {release.version}'s {waits.gate.lower()} change; starting it"
    return f"approved {waits.gate}; still waiting: {gating.waiting(entries) or ''}"


def _starting(w: Working, f: Facts, release: Release) -> None:
    if not f.candidate_ready:
        return
    smoke = f.rollout.gates.smokeTest if f.rollout.gates is not None else None
    entry = gating.find(release.gates, gating.SMOKE_TEST)
    if smoke is not None and (entry is None or entry.result is GateResult.PENDING):
        entry = _smoke(w, f, release, entry)
        if entry is None:
            return
        release = w.release or release
        if entry.result is GateResult.FAILED:
            _roll_back(w, f, release, entry.reason, f"{entry.gate}: {entry.message}")
            return
    if w.stable is None:
        promote(w, f.ts)  # a first version: nothing to shift traffic from
        return
    if release.fastTrack:
        # It served as stable here recently: no steps, all traffic once it is Ready.
        if f.rollout.strategy is Strategy.BLUE_GREEN:
            _switch(w, f, release)
            return
        w.set_release(release.model_copy(update={"state": S.PROMOTING, "stepStartedAt": None,
                                                 "stepEndsAt": None}))
        w.events.append(Event("Normal", "Promoting", f"version {release.version} served as "
                              f"stable within {f.rollout.fastTrackWindow}: fast-tracked, no "
                              "steps"))
        return
    w.set_release(release.model_copy(update={"state": S.STEPPING, "step": 0,
                                             "stepStartedAt": None, "stepEndsAt": None}))


def _smoke(w: Working, f: Facts, release: Release,
           entry: GateStatus | None) -> GateStatus | None:
    """Ask for the smoke test, or judge its answer; the judged entry (None: not yet)."""
    assert f.rollout.gates is not None and f.rollout.gates.smokeTest is not None
    spec = f.rollout.gates.smokeTest
    answers = f.gate_answers
    if answers is None:
        if f.candidate is not None:
            w.gates = GateRequest(version=f.candidate, smoke=SmokeRequest(
                service=f.candidate_service, port=f.candidate_port, attempts=spec.attempts,
                timeout=durations.parse(spec.timeout),
                max_latency=durations.parse(spec.maxLatency)))
        return None
    started = _at(entry.startedAt) if entry is not None else None
    if answers.candidate is not None and answers.candidate.serving_example is None:
        new = gating.smoke_missing_example(spec, f.ts)
    elif answers.smoke is None or answers.smoke.not_ready is not None or \
            answers.candidate is None:
        why = answers.error or (answers.smoke.message if answers.smoke else "no answer")
        deadline = durations.parse(f.rollout.progressDeadline)
        if started is not None and f.now >= started + dt.timedelta(seconds=deadline):
            new = GateStatus(gate=gating.SMOKE_TEST, result=GateResult.FAILED,
                             reason="SmokeTestFailed", at=f.ts,
                             message=f"not judged within progressDeadline "
                                     f"{f.rollout.progressDeadline}: {why}"[:1000])
        else:
            pending = gating.smoke_pending(why, entry.startedAt if entry and entry.startedAt
                                           else f.ts)
            w.set_release(release.model_copy(update={
                "gates": gating.merge(release.gates, [pending])}))
            w.wake.append(f.now + dt.timedelta(seconds=SMOKE_REQUEUE))
            return None
    else:
        new = gating.judge_smoke(answers.smoke, f.ts)
    if entry is not None and entry.startedAt:
        new = new.model_copy(update={"startedAt": entry.startedAt})
    elif not new.startedAt:
        new = new.model_copy(update={"startedAt": f.ts})
    w.set_release(release.model_copy(update={"gates": gating.merge(release.gates, [new])}))
    w.events.append(Event(*gating.event_for(new, release.version)))
    return new


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
    previous = w.stable
    promote(w, f.ts)
    _bake(w, f, release, previous)


def _bake(w: Working, f: Facts, release: Release, previous: Stable | None) -> bool:
    """After a promotion with spec.rollout.bakeWindow: keep analysing the new stable version,
    with the previous one still up. False when there is no window (or nothing to go back to)."""
    window = f.rollout.bakeWindow
    if not window or previous is None:
        return False
    info = VersionInfo(**previous.model_dump(include=set(VersionInfo.model_fields)))
    fresh = None
    if f.rollout.analysis is not None and f.rollout.analysis.metrics:
        fresh = AnalysisStatus(nextAt=_later(f.now, durations.parse(
            f.rollout.analysis.interval)))
    kind = w.rollout.type if w.rollout is not None else (
        RolloutType.CANARY if f.rollout.strategy is Strategy.CANARY else RolloutType.BLUE_GREEN)
    w.rollout = state_of(kind, release.model_copy(update={
        "state": S.BAKING, "switchedAt": f.ts, "weight": 100, "previous": info,
        "bakeEndsAt": _later(f.now, durations.parse(window)), "stepStartedAt": f.ts,
        "stepEndsAt": None, "pausedBy": None, "analysis": fresh}))
    w.keep.add(previous.version)
    w.events.append(Event("Normal", "Baking", f"version {release.version} bakes for {window}; "
                                              f"version {previous.version} stays up to switch "
                                              "back to at once"))
    return True


def _baking(w: Working, f: Facts, release: Release) -> None:
    ends = _at(release.bakeEndsAt) or f.now
    if f.now < ends:
        if release.previous is not None:
            w.keep.add(release.previous.version)
        w.wake.append(ends)
        return
    w.rollout = None  # the previous version's children go with this plan
    w.events.append(Event("Normal", "Baked", f"version {release.version} passed its bake "
                                             f"window ({f.rollout.bakeWindow or 'removed'})"))


def _rolling_back(w: Working, f: Facts, release: Release) -> None:
    if not f.in_place(0):
        w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
        return
    # Weight 0 is live: now the new version's children may go (it leaves status.canary).
    _abort(w, f, release)


def _abort(w: Working, f: Facts, release: Release) -> None:
    """The release ends rejected (it never had traffic) or rolled back (weight 0 is live)."""
    w.set_release(release.model_copy(update={"state": S.ABORTED, "weight": 0,
                                             "stepStartedAt": None, "stepEndsAt": None}))
    w.canary = None
    rejected = release.reason in gating.GATE_REASONS
    w.history.insert(0, HistoryEntry(version=release.version,
                                     outcome=Outcome.REJECTED if rejected else Outcome.ROLLED_BACK,
                                     reason=release.message or release.reason, at=f.ts))
    if rejected:
        w.events.append(Event("Warning", "Rejected",
                              f"version {release.version} stopped by its gates before any "
                              f"traffic ({release.reason}): {release.message or ''}"))
    else:
        w.events.append(Event("Warning", "RolledBack",
                              f"version {release.version} rolled back ({release.reason}): "
                              f"{release.message or ''}; weight 0, its pods are removed"))
    w.owe(w.outcome(release.version, promoted=False, at=f.ts,
                    reason=f"{release.reason}: {release.message or ''}",
                    summary=summary(release)))


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
    rel = w.release
    how = ("every canary step passed" if rel is not None and w.rollout is not None and
           w.rollout.type is RolloutType.CANARY else "promoted")
    w.owe(w.outcome(canary.version, promoted=True, at=ts, reason=how,
                    previous=w.stable.version if w.stable is not None else None,
                    summary=summary(rel)))
    info = canary.model_dump(include={"version", "runId", "source", "modelUri"})
    if w.stable is not None:
        w.previous = Previous(**w.stable.model_dump(include=set(VersionInfo.model_fields)),
                              replacedAt=ts)
    w.stable = Stable(**info, since=ts)
    w.canary, w.rollout, w.promoted = None, None, True


def _switch(w: Working, f: Facts, release: Release) -> None:
    """Blue-green: all traffic to the new version at once; the previous one stays up for
    scaleDownDelay."""
    previous = w.stable
    promote(w, f.ts)
    w.promoted = previous is None
    if previous is None or _bake(w, f, release, previous):
        return
    info = VersionInfo(**previous.model_dump(include=set(VersionInfo.model_fields)))
    w.rollout = RolloutState(type=RolloutType.BLUE_GREEN, blueGreen=release.model_copy(update={
        "state": S.SWITCHED, "switchedAt": f.ts, "weight": 100, "previous": info,
        "stepStartedAt": None, "stepEndsAt": None, "pausedBy": None}))
    w.keep.add(previous.version)


def _switch_back(w: Working, f: Facts, release: Release, *, reason: str = "Aborted",
                 why: str = "abort request after the switch") -> str:
    """Within the blue-green window or the bake window: the previous version, still up,
    serves again at once (no new pods); the switched-to version is rejected like a
    rolled-back canary."""
    previous = release.previous
    if previous is None or w.stable is None:
        return "nothing to switch back to"
    rejected = w.stable.version
    w.history.insert(0, HistoryEntry(version=rejected, outcome=Outcome.ROLLED_BACK,
                                     reason=why, at=f.ts))
    w.stable = Stable(**previous.model_dump(), since=f.ts)
    w.previous = None  # the rejected version is no rollback target
    w.canary = None
    w.set_release(release.model_copy(update={
        "version": rejected, "state": S.ABORTED, "reason": reason, "weight": 0,
        "switchedAt": None, "bakeEndsAt": None,
        "message": f"{why}; switched back to version {previous.version}"[:512],
        "previous": None}))
    w.events.append(Event("Warning", "RolledBack", f"switched back from version {rejected} to "
                                                   f"version {previous.version}: {why}"[:1000]))
    w.owe(w.outcome(rejected, promoted=False, at=f.ts,
                    reason=f"{reason}: {why}; switched back to version {previous.version}",
                    summary=summary(release)))
    return f"switched back to version {previous.version}"


def _roll_back(w: Working, f: Facts, release: Release, reason: str, message: str) -> None:
    w.set_release(release.model_copy(update={
        "state": S.ROLLING_BACK, "reason": reason, "message": message[:512],
        "pausedBy": None, "stepEndsAt": None}))
    what = ("stopping version {v} before any traffic" if reason in gating.GATE_REASONS
            else "rolling back version {v}").format(v=release.version)
    w.events.append(Event("Warning", ROLLING_BACK_EVENT, f"{what} ({reason}): {message}"))
    w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))


def summary(rel: Release | None) -> str:
    """One line about a release's gates and analysis, for the registry's outcome tag."""
    if rel is None:
        return ""
    parts = [f"{g.gate} {g.result.value}" + (f" ({g.latencyMs:.0f} ms)" if g.latencyMs else "")
             for g in rel.gates or ()]
    a = rel.analysis
    if a is not None and (a.successful or a.failed or a.inconclusive):
        parts.append(f"analysis: {a.successful} successful, {a.failed} failed, "
                     f"{a.inconclusive} inconclusive")
        parts += [m.message for m in a.measurements if m.message]
    return "; ".join(parts)


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
    if due is not None and release.state in (S.STEPPING, S.PAUSED, S.BAKING):
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
    if action == "abort" and release is not None and state in (S.SWITCHED, S.BAKING):
        return _switch_back(w, f, release)
    if release is None or state in (S.ABORTED, S.ROLLING_BACK, S.SWITCHED, S.BAKING):
        return f"no release in progress to {action}"
    if action == "abort" and state is S.GATING:
        _abort(w, f, release.model_copy(update={"reason": "Aborted",
                                                "message": "abort request while gating"}))
        return f"version {release.version} will not be released"
    if action == "abort":
        _roll_back(w, f, release, "Aborted", "abort request")
        return f"rolling back version {release.version}"
    if action == "promote" and state is S.GATING:
        return _approve(w, f, release)
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
