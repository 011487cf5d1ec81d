"""One transition per call: :func:`advance` dispatches on the release state; the states
that move traffic step by step, and the manual requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from modeldeploy.api.spec import Rollout, Strategy
from modeldeploy.api.status import (
    AnalysisStatus,
    GateResult,
    HistoryEntry,
    Outcome,
    Release,
    Request,
)
from modeldeploy.core import durations, gating
from modeldeploy.core.release.base import (
    ACTIONS,
    CONFIRM_REQUEUE,
    EXPERIMENTS,
    KINDS,
    REQUEST_ANNOTATION,
    Facts,
    S,
    Working,
    _at,
    _later,
    _since,
    state_of,
    wanted_weight,
)
from modeldeploy.core.release.endings import (
    _abort,
    _bake,
    _baking,
    _roll_back,
    _rolling_back,
    _switch,
    _switch_back,
    _switched,
    promote,
)
from modeldeploy.core.release.gates import _approve, _gating, _smoke
from modeldeploy.core.release.measuring import _fresh_window, _record, _schedule_measurements
from modeldeploy.core.world import (
    Event,
)


def start(w: Working, rollout: Rollout, *, version: str, ts: str,
          fast_track: bool = False) -> None:
    """A new release of ``version`` (already w.canary): Gating or Starting, no traffic. A
    fast-tracked one (it served as stable here recently) will skip the steps."""
    kind = KINDS[rollout.strategy]
    gated = bool(gating.registry_gates(rollout.gates))
    w.rollout = state_of(kind, Release(version=version, state=S.GATING if gated else S.STARTING,
                                       startedAt=ts, notReadySince=None if gated else ts,
                                       fastTrack=fast_track or None,
                                       analysis=AnalysisStatus() if rollout.analysis else None))


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
        w.wake.append((_since(since) or f.now) + dt.timedelta(
            seconds=durations.parse(f.rollout.progressDeadline)))
    return release


def _deadline_passed(f: Facts, release: Release) -> bool:
    if f.candidate_ready:
        return False
    if f.candidate_stuck:
        return True
    since = _since(release.notReadySince) or f.now
    return f.now >= since + dt.timedelta(seconds=durations.parse(f.rollout.progressDeadline))


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
    experiment = f.rollout.strategy in EXPERIMENTS
    step = steps[min(release.step, len(steps) - 1)] \
        if steps and not strategy_bg and not experiment else None
    update: dict[str, object] = {"stepStartedAt": f.ts, "weight": weight}
    hold = step.pause_seconds() if step is not None else (
        durations.parse(_experiment_duration(f)) if experiment else 0.0)
    if hold:
        ends = _later(f.now, hold)
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
    elif f.rollout.strategy is Strategy.AB_TEST and f.rollout.abTest is not None:
        m = f.rollout.abTest.match
        who = f"header {m.header}" if m.header else f"cookie {m.cookie}"
        w.events.append(Event("Normal", "AudienceRouted",
                              f"requests with {who}={m.value} go to version {release.version} "
                              f"for {f.rollout.abTest.duration}"))
    elif experiment:
        pct = f.rollout.shadow.percent if f.rollout.shadow else 100
        w.events.append(Event("Normal", "Mirroring",
                              f"{pct}% of requests are mirrored to version {release.version} "
                              f"for {_experiment_duration(f)}; users see only version "
                              f"{w.stable.version if w.stable else '?'}"))
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
        if not f.candidate_ready:
            # All traffic at once: only to a version Ready at its size (as a promote request
            # and a canary's promotion ask); the progress deadline runs meanwhile.
            w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
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
        what = {Strategy.AB_TEST: "the A/B test passed", Strategy.SHADOW:
                "the shadow passed"}.get(f.rollout.strategy, "every step passed")
        w.events.append(Event("Normal", "Promoting",
                              f"{what}: moving all traffic to version {release.version}"))


def _experiment_duration(f: Facts) -> str:
    if f.rollout.strategy is Strategy.AB_TEST and f.rollout.abTest is not None:
        return f.rollout.abTest.duration
    return f.rollout.shadow.duration if f.rollout.shadow is not None else "10m"


def _promoting(w: Working, f: Facts, release: Release) -> None:
    if not f.candidate_ready or not f.in_place(100):
        w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))
        return
    previous = w.stable
    promote(w, f.ts, baking=bool(f.rollout.bakeWindow))
    _bake(w, f, release, previous)


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
        if state is S.PAUSED and release.pausedBy == "Analysis":
            # The person's hold replaces the analysis's: a good measurement no longer resumes
            # stepping, only a resume request does.
            w.set_release(release.model_copy(update={"pausedBy": "Request"}))
            return (f"paused at step {release.step + 1} (it was held by the analysis; now only "
                    "a resume request goes on)")
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
