"""What the status says about a decision: phase, conditions, messages and the events that
mark their transitions. Pure, like :mod:`modeldeploy.core.rollout`, which decides *what*
happens; this module decides how it reads to ``kubectl``, kstatus (Flux, kpt) and Argo CD.

Conditions written (``Reconciling`` and ``Stalled`` are the pair kstatus reads)::

    Ready              True: the stable version serves with its desired replicas Ready
    Progressing        True: a new version comes up, or the stable version scales or rolls
    Degraded           True: the spec cannot be met right now (reason says why)
    RegistryReachable  True: the registry answered; Unknown: not asked (yet)
    Reconciling        True: still working towards the spec (kstatus: InProgress)
    Stalled            True: cannot get there without a human (kstatus: Failed)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import (
    HISTORY_LIMIT,
    Canary,
    Condition,
    ConditionType,
    Health,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    Previous,
    RegistryWrite,
    ReleaseState,
    Request,
    Resolved,
    RolloutState,
    Stable,
)
from modeldeploy.core import render
from modeldeploy.core.conditions import get, set_condition, timestamp
from modeldeploy.core.gating import GATE_REASONS
from modeldeploy.core.world import (
    Child,
    Event,
    Observed,
    Plan,
    RegistryOutcome,
    Resolution,
    ResolvedVersion,
)

#: Registry answers that need a human once they have lasted ``Observed.stall_after``.
_STALL_LATER = {"CredentialsUnavailable", "RegistryUnauthorized"}
#: Registry answers that need a human at once.
_STALL_NOW = {"InvalidSpec"}
MESSAGE_LIMIT = 1024


def selector_text(spec: ModelDeploymentSpec) -> str:
    kind, value = spec.model.selector()
    return {"alias": f"@{value}", "stage": f"stage:{value}", "version": f"v{value}",
            "latest": "latest"}[kind]


def health(obs: Observed, spec: ModelDeploymentSpec, version: str) -> str:
    """available: every desired replica Ready; partial: some Ready while the Deployment rolls
    or scales (the old pods keep serving); down: none Ready, or the rollout is stuck."""
    dep = obs.deployment(version)
    if dep is None:
        return "down"
    if dep.ready_for(render.desired_replicas(spec)):
        return "available"
    return "partial" if dep.ready > 0 and not dep.deadline_exceeded else "down"


class _Conditions:
    """The stored conditions, updated one type at a time (lastTransitionTime kept)."""

    def __init__(self, obs: Observed, now: dt.datetime) -> None:
        self.items, self.obs, self.now = list(obs.status.conditions), obs, now

    def set(self, type_: ConditionType, value: bool | None, reason: str, message: str) -> None:
        self.items = set_condition(self.items, type_=type_.value, status=value, reason=reason,
                                   message=message[:MESSAGE_LIMIT], now=self.now,
                                   generation=self.obs.generation)

    def ordered(self) -> list[Condition]:
        order = [t.value for t in ConditionType]
        return sorted(self.items, key=lambda c: order.index(c.type) if c.type in order else 99)


def status(obs: Observed, spec: ModelDeploymentSpec, now: dt.datetime, *,
           stable: Stable | None, canary: Canary | None, rollout: RolloutState | None,
           history: list[HistoryEntry], last_request: Request | None = None,
           traffic: str | None = None, last_probe: Health | None = None,
           previous: Previous | None = None,
           registry_writes: list[RegistryWrite] | None = None) -> ModelDeploymentStatus:
    res, failure = obs.registry, obs.apply_failure
    conds = _Conditions(obs, now)
    _registry_condition(conds, res)
    _serving_conditions(conds, spec, last_probe=last_probe, previous=previous)
    view = _release_view(rollout, spec, stable, traffic)

    canary_dep = obs.deployment(canary.version) if canary else None
    stable_dep = obs.deployment(stable.version) if stable else None
    stuck = canary_dep is not None and canary_dep.deadline_exceeded
    state = health(obs, spec, stable.version) if stable is not None else "down"
    stable_count = f"{_replicas(stable_dep)} ready"
    if failure is not None:
        conds.set(ConditionType.DEGRADED, True, failure.reason,
                  _keeps_serving(f"{failure.kind} {failure.name}: {failure.message}", stable))
    elif view is not None and view.degraded is not None:
        conds.set(ConditionType.DEGRADED, True, *view.degraded)
    elif res.outcome is RegistryOutcome.NOT_FOUND:
        conds.set(ConditionType.DEGRADED, True, res.reason, _keeps_serving(res.message, stable))
    elif stable is not None and state == "down":
        conds.set(ConditionType.DEGRADED, True, "ReplicasNotReady",
                  f"version {stable.version}: {stable_count}")
    elif stuck and canary is not None:
        conds.set(ConditionType.DEGRADED, True, "ProgressDeadlineExceeded",
                  _keeps_serving(f"version {canary.version} did not become Available in time "
                                 f"({_replicas(canary_dep)} ready)", stable))
    else:
        conds.set(ConditionType.DEGRADED, False, "AsExpected", "")

    progressing: tuple[str, str] | None = None
    if view is not None and view.progressing is not None:
        progressing = view.progressing
    elif canary is not None:
        progressing = ("NewVersion",
                       f"bringing up version {canary.version}: {_replicas(canary_dep)} ready")
    elif stable is not None and state == "partial":
        progressing = ("ReplicasUpdating", f"version {stable.version}: {stable_count}")
    if progressing:
        conds.set(ConditionType.PROGRESSING, True, *progressing)
    else:
        conds.set(ConditionType.PROGRESSING, False, "Idle" if stable else "NoVersion", "")


    if res.outcome is RegistryOutcome.NOT_FOUND:
        conds.set(ConditionType.READY, False, res.reason, _keeps_serving(res.message, stable))
    elif stable is not None and state != "down":
        conds.set(ConditionType.READY, True, "Serving",
                  f"version {stable.version} serving, {stable_count}")
    elif stable is not None:
        conds.set(ConditionType.READY, False, "ReplicasNotReady",
                  f"version {stable.version}: {stable_count}")
    else:
        conds.set(ConditionType.READY, False, "NoVersionServing",
                  ("waiting for the first version" if canary else
                   (res.message or "no version yet")))

    stalled = _stalled(obs, now, stuck=stuck or (stable_dep is not None and
                                                 stable_dep.deadline_exceeded))
    if stalled is None and view is not None:
        stalled = view.stalled
    _kstatus_conditions(conds, stalled, progressing=progressing, stable=stable, state=state,
                        res=res)

    phase = _phase(obs, stable=stable, canary=canary, state=state, stuck=stuck)
    failure_text = (f"{failure.kind} {failure.name}: {failure.reason}" if failure else None)
    message = _message(phase, stable, canary, res.message, failure_text=failure_text)
    if view is not None and failure is None and res.outcome is not RegistryOutcome.NOT_FOUND:
        phase = view.phase if stable is None or state != "down" else phase
        message = view.message
    return ModelDeploymentStatus(
        phase=phase, observedGeneration=obs.generation, selector=selector_text(spec),
        stable=stable, canary=canary, rollout=rollout,
        resolved=_resolved(obs.status.resolved, res.version, res.at),
        conditions=conds.ordered(), history=history[:HISTORY_LIMIT],
        lastRequest=last_request, health=last_probe, previous=previous,
        registryWrites=registry_writes or None, message=message[:MESSAGE_LIMIT],
    )


@dataclass(frozen=True)
class _ReleaseView:
    """How a canary or blue-green release reads in conditions, phase and message."""

    phase: Phase
    message: str
    progressing: tuple[str, str] | None = None
    degraded: tuple[str, str] | None = None
    stalled: tuple[str, str] | None = None


def _release_view(rollout: RolloutState | None, spec: ModelDeploymentSpec,
                  stable: Stable | None, traffic: str | None) -> _ReleaseView | None:
    rel = rollout.release if rollout is not None else None
    if rel is None or spec.rollout is None:
        return None
    v, live = rel.version, f" ({traffic})" if traffic else ""
    steps = spec.rollout.steps or []
    where = (f"step {min(rel.step, len(steps) - 1) + 1}/{len(steps)}, " if steps
             and rollout is not None and rollout.type.value == "Canary" else "")
    if rollout is not None and rollout.type.value in ("AbTest", "Shadow"):
        what = "A/B test" if rollout.type.value == "AbTest" else "shadow"
        where = f"{what} until {rel.stepEndsAt}, " if rel.stepEndsAt else f"{what}, "
    if rel.state is ReleaseState.ABORTED:
        how = "stopped by its gates" if rel.reason in GATE_REASONS else "rolled back"
        why = f"version {v} was {how} ({rel.reason}): {rel.message or ''}"
        text = _keeps_serving(why, stable)
        return _ReleaseView(Phase.DEGRADED if stable else Phase.FAILED, text,
                            degraded=(rel.reason or "RolledBack", text),
                            stalled=(rel.reason or "RolledBack", text + "; it is released "
                                     "again on a retry request or when the selector moves"))
    if rel.state is ReleaseState.ROLLING_BACK:
        text = _keeps_serving(f"rolling back version {v} ({rel.reason}): weight "
                              f"{rel.weight}%{live}", stable)
        return _ReleaseView(Phase.ROLLING_BACK, text, progressing=("RollingBack", text),
                            degraded=(rel.reason or "RollingBack", text))
    if rel.state is ReleaseState.BAKING:
        previous = rel.previous.version if rel.previous else "?"
        text = (f"version {v} serves all traffic and bakes until {rel.bakeEndsAt}; version "
                f"{previous} stays up to switch back to at once")
        return _ReleaseView(Phase.PROGRESSING, text, progressing=("Baking", text))
    if rel.state is ReleaseState.SWITCHED:
        previous = rel.previous.version if rel.previous else "?"
        text = (f"switched to version {v}; version {previous} stays up until "
                f"{spec.rollout.blueGreen.scaleDownDelay if spec.rollout.blueGreen else '30s'}"
                " after the switch")
        return _ReleaseView(Phase.STABLE, text)
    if rel.state is ReleaseState.PAUSED:
        then = ("the next successful measurement goes on" if rel.pausedBy == "Analysis"
                else "resume or promote to go on")
        text = f"paused ({rel.pausedBy}) at {where}version {v} at {rel.weight}%{live}; {then}"
        return _ReleaseView(Phase.PAUSED, text, progressing=("Paused", text))
    if rel.state is ReleaseState.GATING:
        waits = next((g for g in rel.gates or () if g.result.value == "Waiting"), None)
        if waits is not None and waits.reason == "ApprovalRequired":
            text = f"version {v} waits for approval: {waits.message}"
            return _ReleaseView(Phase.PAUSED, _keeps_serving(text, stable),
                                progressing=("WaitingForApproval", text))
        text = (f"version {v} waits for its registry gates: {waits.message}" if waits
                else f"checking version {v}'s registry gates (no pods, no traffic yet)")
        return _ReleaseView(Phase.PROGRESSING, _keeps_serving(text, stable),
                            progressing=("Gating", text))
    if rel.state is ReleaseState.STARTING:
        smoke = next((g for g in rel.gates or () if g.gate == "SmokeTest"), None)
        text = f"bringing up version {v} (no traffic yet)" + (
            f"; smoke test: {smoke.message}" if smoke is not None else "")
    elif rel.state is ReleaseState.PROMOTING:
        text = f"promoting version {v}: {rel.weight}%{live}"
    else:
        text = f"{where}version {v} at {rel.weight}%{live}"
    return _ReleaseView(Phase.PROGRESSING, _keeps_serving(text, stable) if stable else text,
                        progressing=(rel.state.value, text))


def _serving_conditions(conds: _Conditions, spec: ModelDeploymentSpec, *,
                        last_probe: Health | None, previous: Previous | None) -> None:
    """Healthy (only with spec.healthCheck) and RollbackReady."""
    conds.items = [c for c in conds.items
                   if c.type != ConditionType.HEALTHY.value or spec.healthCheck is not None]
    if spec.healthCheck is not None:
        if last_probe is None or last_probe.result == "Unknown":
            conds.set(ConditionType.HEALTHY, None, "NotProbedYet",
                      last_probe.message if last_probe is not None else "")
        else:
            ok = last_probe.result == "Healthy"
            conds.set(ConditionType.HEALTHY, ok, "ProbeSucceeded" if ok else "ProbeFailed",
                      f"version {last_probe.version}: {last_probe.message}")
    if previous is None:
        conds.set(ConditionType.ROLLBACK_READY, False, "NoPreviousVersion",
                  "no earlier version has served here: there is nothing to roll back to")
    elif previous.ready is None:
        conds.set(ConditionType.ROLLBACK_READY, None, "NotCheckedYet",
                  f"version {previous.version} is checked in the registry shortly")
    else:
        conds.set(ConditionType.ROLLBACK_READY, previous.ready, previous.reason or "",
                  previous.message or "")


def _registry_condition(conds: _Conditions, res: Resolution) -> None:
    if res.outcome is RegistryOutcome.UNKNOWN:
        if get(conds.items, ConditionType.REGISTRY_REACHABLE.value) is None:
            conds.set(ConditionType.REGISTRY_REACHABLE, None, "NotYetAsked", "")
        return
    reachable = res.outcome is not RegistryOutcome.UNREACHABLE
    # Messages carry no poll timestamps: an unchanged answer must not rewrite the status.
    conds.set(ConditionType.REGISTRY_REACHABLE, reachable,
              "Reachable" if reachable else (res.reason or "RegistryUnreachable"), res.message)


def _kstatus_conditions(conds: _Conditions, stalled: tuple[str, str] | None, *,
                        progressing: tuple[str, str] | None, stable: Stable | None, state: str,
                        res: Resolution) -> None:
    """Reconciling and Stalled, which generic tools (kstatus: Flux, kpt, cli-utils) read."""
    if stalled is not None:
        conds.set(ConditionType.STALLED, True, *stalled)
        conds.set(ConditionType.RECONCILING, False, "Stalled",
                  "waiting for a change to the spec or the registry")
        return
    conds.set(ConditionType.STALLED, False, "AsExpected", "")
    working: tuple[str, str] | None = progressing
    if working is None and res.outcome is RegistryOutcome.NOT_FOUND:
        working = (res.reason, res.message)
    elif working is None and stable is None:
        working = ("WaitingForFirstVersion", res.message or "asking the registry")
    elif working is None and state == "down":
        working = ("ReplicasNotReady", "waiting for the stable version's replicas")
    if working is not None:
        conds.set(ConditionType.RECONCILING, True, *working)
    else:
        conds.set(ConditionType.RECONCILING, False, "AsExpected", "")


def _stall_reason(res: Resolution) -> str | None:
    """The registry answer's reason if it is one that can stall the object."""
    if res.outcome is RegistryOutcome.NOT_FOUND or (
            res.outcome is RegistryOutcome.UNREACHABLE and res.reason in _STALL_LATER):
        return res.reason
    return None


def _stalled(obs: Observed, now: dt.datetime, *, stuck: bool) -> tuple[str, str] | None:
    failure, res = obs.apply_failure, obs.registry
    if failure is not None:
        return failure.reason, f"{failure.kind} {failure.name}: {failure.message}"
    if stuck:
        return "ProgressDeadlineExceeded", "a Deployment did not become Available in time"
    reason = _stall_reason(res)
    if reason is None:
        return None
    old = get(obs.status.conditions, ConditionType.STALLED.value)
    if reason in _STALL_NOW or (old is not None and old.status == "True" and
                                old.reason == reason):
        return reason, res.message  # a restarted operator keeps what it had concluded
    due = stall_due(obs, now)
    return (reason, res.message) if due is not None and due <= now else None


def stall_due(obs: Observed, now: dt.datetime) -> dt.datetime | None:
    """When the current registry answer, if it lasts, makes the object Stalled."""
    res = obs.registry
    if _stall_reason(res) is None or res.at is None:
        return None
    return res.at + dt.timedelta(seconds=obs.stall_after)


def _resolved(known: Resolved | None, v: ResolvedVersion | None,
              at: dt.datetime | None) -> Resolved | None:
    """The registry's latest answer; ``at`` is when that answer first appeared."""
    if v is None:
        return known
    if known is not None and (known.version, known.modelUri, known.runId, known.source) == (
            v.version, v.model_uri, v.run_id, v.source):
        return known
    return Resolved(version=v.version, runId=v.run_id, source=v.source, modelUri=v.model_uri,
                    at=timestamp(at) if at else None)


def _phase(obs: Observed, *, stable: Stable | None, canary: Canary | None, state: str,
           stuck: bool) -> Phase:
    """Degraded while a version keeps serving despite a problem; Failed when nothing serves
    and the problem is not one of waiting (a registry that does not answer is waited for)."""
    if obs.apply_failure is not None or obs.registry.outcome is RegistryOutcome.NOT_FOUND:
        return Phase.DEGRADED if stable else Phase.FAILED
    if canary is not None:
        if stuck:
            return Phase.DEGRADED if stable else Phase.FAILED
        return Phase.PROGRESSING if stable else Phase.PENDING
    if stable is None:
        return Phase.PENDING
    return {"available": Phase.STABLE, "partial": Phase.PROGRESSING}.get(state, Phase.DEGRADED)


def _message(phase: Phase, stable: Stable | None, canary: Canary | None, registry: str, *,
             failure_text: str | None) -> str:
    if failure_text is not None:
        return _keeps_serving(failure_text, stable)
    if phase is Phase.STABLE and stable:
        return f"serving version {stable.version}" + (f" (run {stable.runId})"
                                                      if stable.runId else "")
    if canary is not None:
        return f"bringing up version {canary.version}" + (
            f"; version {stable.version} keeps serving" if stable else "")
    return _keeps_serving(registry or phase.value, stable)


def _keeps_serving(message: str, stable: Stable | None) -> str:
    return f"{message}; version {stable.version} keeps serving" if stable else message


def _replicas(dep: Child | None) -> str:
    return "0/?" if dep is None else f"{dep.ready}/{dep.replicas}"


def transition_events(old: list[Condition], new: list[Condition]) -> list[Event]:
    """Warnings when things go wrong and a note when they recover; quiet otherwise."""
    out: list[Event] = []
    o_reach, n_reach = get(old, "RegistryReachable"), get(new, "RegistryReachable")
    if n_reach and n_reach.status == "False" and (o_reach is None or o_reach.status != "False"):
        out.append(Event("Warning", n_reach.reason, n_reach.message))
    if n_reach and n_reach.status == "True" and o_reach and o_reach.status == "False":
        out.append(Event("Normal", "RegistryReachable", "the registry answers again"))
    o_deg, n_deg = get(old, "Degraded"), get(new, "Degraded")
    if n_deg and n_deg.status == "True" and (
            o_deg is None or o_deg.status != "True" or o_deg.reason != n_deg.reason):
        out.append(Event("Warning", n_deg.reason, n_deg.message))
    if n_deg and n_deg.status == "False" and o_deg and o_deg.status == "True":
        out.append(Event("Normal", "Recovered", f"no longer degraded ({o_deg.reason})"))
    return out


def new_version_message(spec: ModelDeploymentSpec, v: ResolvedVersion,
                        stable: Stable | None) -> str:
    run = f" (run {v.run_id})" if v.run_id else ""
    if stable is None:
        return f"{selector_text(spec)} resolves to version {v.version}{run}; bringing it up"
    return (f"{selector_text(spec)} moved from version {stable.version} to {v.version}{run}; "
            f"bringing up version {v.version} next to {stable.version}")


def promoted_message(canary: Canary, stable: Stable | None) -> str:
    if stable is None:
        return f"version {canary.version} is Available and serves all traffic"
    return (f"version {canary.version} is Available and serves all traffic; "
            f"removing version {stable.version}")


def invalid_spec_plan(obs: Observed, now: dt.datetime) -> Plan:
    """An invalid spec (stored before a rule existed, or an allow-list refusal): say so,
    stall, and keep every child exactly as it is."""
    st = obs.status
    conds = _Conditions(obs, now)
    error = obs.spec_error or "invalid spec"
    conds.set(ConditionType.DEGRADED, True, "InvalidSpec", error)
    conds.set(ConditionType.STALLED, True, "InvalidSpec", error)
    conds.set(ConditionType.RECONCILING, False, "Stalled", "waiting for a valid spec")
    # Not asked while the spec is invalid: an old "unreachable" must not linger.
    conds.set(ConditionType.REGISTRY_REACHABLE, None, "NotAsked",
              "the registry is not asked while the spec is invalid")
    status = st.model_copy(update={
        "phase": Phase.DEGRADED if st.stable else Phase.FAILED,
        "observedGeneration": obs.generation, "conditions": conds.ordered(),
        "message": _keeps_serving(f"invalid spec: {error}", st.stable)[:MESSAGE_LIMIT]})
    return Plan(status=status, events=tuple(transition_events(st.conditions, status.conditions)))
