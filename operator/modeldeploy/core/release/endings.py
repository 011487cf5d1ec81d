"""How releases end: promotion (and its bake window), rollback, a blue-green switch and the
switch back to a previous version that is still up."""

from __future__ import annotations

import datetime as dt

from modeldeploy.api.status import (
    AnalysisStatus,
    HistoryEntry,
    Outcome,
    Previous,
    Release,
    RolloutState,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.core import durations, gating, report
from modeldeploy.core.release.base import (
    CONFIRM_REQUEUE,
    KINDS,
    ROLLING_BACK_EVENT,
    Facts,
    S,
    Working,
    _at,
    _later,
    _since,
    state_of,
    summary,
)
from modeldeploy.core.world import (
    Event,
)


def promote(w: Working, ts: str, *, baking: bool = False) -> None:
    """The new version becomes stable (history Promoted / Replaced); the old version's
    children go in the next plan, once this status is stored. ``baking``: a bake window
    follows, so the registry learns "Baking" now and "Promoted" (with the alias moves) when
    the window has passed."""
    canary = w.canary
    assert canary is not None
    if w.stable is not None:
        w.history.insert(0, HistoryEntry(version=w.stable.version, outcome=Outcome.REPLACED,
                                         reason=f"replaced by version {canary.version}", at=ts))
    w.history.insert(0, HistoryEntry(version=canary.version, outcome=Outcome.PROMOTED, at=ts))
    w.events.append(Event("Normal", "Promoted", report.promoted_message(canary, w.stable)))
    rel = w.release
    kind = w.rollout.type if w.rollout is not None else RolloutType.ROLLING
    how = {RolloutType.CANARY: "every canary step passed",
           RolloutType.BLUE_GREEN: "the preview passed; switched",
           RolloutType.AB_TEST: "the A/B test passed",
           RolloutType.SHADOW: "the shadow passed"}.get(kind, "Ready: switched")
    if rel is not None and rel.fastTrack:
        how = "fast-tracked return to a version that served recently"
    elif w.stable is None:
        how = "the first version: Ready and serving"
    w.owe(w.outcome(canary.version, promoted=True, at=ts, reason=how,
                    previous=w.stable.version if w.stable is not None else None,
                    summary=summary(rel), baking=baking and w.stable is not None))
    info = canary.model_dump(include={"version", "runId", "source", "modelUri"})
    if w.stable is not None:
        w.previous = Previous(**w.stable.model_dump(include=set(VersionInfo.model_fields)),
                              replacedAt=ts)
    w.stable = Stable(**info, since=ts)
    w.canary, w.rollout, w.promoted = None, None, True


def _roll_back(w: Working, f: Facts, release: Release, reason: str, message: str) -> None:
    w.set_release(release.model_copy(update={
        "state": S.ROLLING_BACK, "reason": reason, "message": message[:512],
        "pausedBy": None, "stepEndsAt": None}))
    w.record_first = True
    what = ("stopping version {v} before any traffic" if reason in gating.GATE_REASONS
            else "rolling back version {v}").format(v=release.version)
    w.events.append(Event("Warning", ROLLING_BACK_EVENT, f"{what} ({reason}): {message}"))
    w.wake.append(f.now + dt.timedelta(seconds=CONFIRM_REQUEUE))


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


def _switch(w: Working, f: Facts, release: Release) -> None:
    """Blue-green: all traffic to the new version at once; the previous one stays up for
    scaleDownDelay."""
    previous = w.stable
    promote(w, f.ts, baking=bool(f.rollout.bakeWindow))
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
    w.record_first = True
    # Its pods go in the next plan, once the status naming the switch is stored: a crash
    # in between must find them still there.
    w.keep.add(rejected)
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
    kind = w.rollout.type if w.rollout is not None else KINDS[f.rollout.strategy]
    w.rollout = state_of(kind, release.model_copy(update={
        "state": S.BAKING, "switchedAt": f.ts, "weight": 100, "previous": info,
        "bakeEndsAt": _later(f.now, durations.parse(window)), "stepStartedAt": f.ts,
        "stepEndsAt": None, "pausedBy": None, "analysis": fresh}))
    w.keep.add(previous.version)
    w.events.append(Event("Normal", "Baking", f"version {release.version} bakes for {window}; "
                                              f"version {previous.version} stays up to switch "
                                              "back to at once"))
    return True


def _window_open(w: Working, f: Facts, release: Release, ends: dt.datetime) -> bool:
    """Within a blue-green or bake window: the previous version stays up until ``ends``."""
    if f.now >= ends:
        return False
    if release.previous is not None:
        w.keep.add(release.previous.version)
    w.wake.append(ends)
    return True


def _baking(w: Working, f: Facts, release: Release) -> None:
    if _window_open(w, f, release, _at(release.bakeEndsAt) or f.now):
        return
    w.owe(w.outcome(release.version, promoted=True, at=f.ts,
                    reason=f"passed its bake window ({f.rollout.bakeWindow or 'removed'})",
                    previous=release.previous.version if release.previous else None,
                    summary=summary(release)))
    w.rollout = None  # the previous version's children go with this plan
    w.events.append(Event("Normal", "Baked", f"version {release.version} passed its bake "
                                             f"window ({f.rollout.bakeWindow or 'removed'})"))


def _switched(w: Working, f: Facts, release: Release) -> None:
    bg = f.rollout.blueGreen
    delay = durations.parse(bg.scaleDownDelay if bg else "30s")
    switched = _since(release.switchedAt) or f.now
    if _window_open(w, f, release, switched + dt.timedelta(seconds=delay)):
        return
    w.rollout = None  # the previous version's children go with this plan
