"""The release states before any traffic: registry gates while ``Gating`` (no pods yet),
approval of a breaking change, and the smoke test once the new version is Ready. What the
gates find is judged in :mod:`modeldeploy.core.gating`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from modeldeploy.api.status import (
    GateResult,
    GateStatus,
    Release,
)
from modeldeploy.core import durations, gating
from modeldeploy.core.release.base import SMOKE_REQUEUE, Facts, S, Working, _at
from modeldeploy.core.release.endings import _abort
from modeldeploy.core.world import (
    Event,
    GateRequest,
    SmokeRequest,
)


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
    if answers.candidate is not None and not answers.candidate.exists:
        new = GateStatus(gate=gating.SMOKE_TEST, result=GateResult.FAILED, reason="VersionGone",
                         message="the version no longer exists in the registry", at=f.ts)
    elif answers.candidate is not None and answers.candidate.serving_example is None:
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
