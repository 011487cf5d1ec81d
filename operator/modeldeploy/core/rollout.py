"""``decide(observed, now) -> Plan``: the whole release logic, as a pure function.

No kopf, kubernetes, mlflow or network here. One call advances at most one transition; the
caller applies the plan and calls again when the world changes (or ``requeue_after`` passes).

The stable path (until progressive delivery lands) is a rolling switch:

1. the registry resolves a version that is not the stable one → it becomes ``status.canary``
   and its Deployment/Service are applied next to the stable ones (phase Progressing, or
   Pending for the very first version);
2. once the canary's Deployment is Available with the current spec, one plan moves traffic to
   it (stable Service selector, HTTPRoute weights) and names it stable (history: Promoted /
   Replaced); the next plan deletes the old version's children, so the stored status never
   names a version that is already gone;
3. if the tracked version moves again mid-switch, the in-flight version is abandoned.

Faults never remove what serves: with an invalid spec, an unknown model or an unreachable
registry the plan keeps the stable version's children exactly as they are, and nothing is
deleted unless a Ready stable version exists.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import (
    HISTORY_LIMIT,
    Canary,
    Condition,
    ConditionType,
    HistoryEntry,
    ModelDeploymentStatus,
    Outcome,
    Phase,
    Resolved,
    Stable,
    VersionInfo,
)
from modeldeploy.core import render
from modeldeploy.core.conditions import get, set_condition, timestamp
from modeldeploy.core.world import (
    Child,
    Event,
    Observed,
    Plan,
    RegistryOutcome,
    ResolvedVersion,
)

#: How long to look again while a version comes up, in case no child event wakes us.
WAIT_REQUEUE = 15.0
#: After a promotion, the next reconcile removes the old version (the status patch's own
#: watch event usually triggers it sooner).
PROMOTED_REQUEUE = 1.0


def selector_text(spec: ModelDeploymentSpec) -> str:
    kind, value = spec.model.selector()
    return {"alias": f"@{value}", "stage": f"stage:{value}", "version": f"v{value}",
            "latest": "latest"}[kind]


def decide(obs: Observed, now: dt.datetime) -> Plan:
    if obs.spec is None:
        return _invalid_spec(obs, now)
    spec = obs.spec
    ts = timestamp(now)
    status = obs.status
    stable, canary = status.stable, status.canary
    history = list(status.history)
    events: list[Event] = []
    res = obs.registry
    desired = res.version if res.outcome is RegistryOutcome.OK else None

    # 1. Follow the registry. Without an answer, hold whatever is in flight.
    if desired is not None:
        if stable is not None and stable.version == desired.version and \
                not _same(stable, desired):
            # Same number, different model (spec renamed it, or moved registries): children
            # are named by number, so the stable Deployment rolls in place (maxUnavailable 0).
            events.append(Event("Normal", "ModelChanged",
                                f"version {desired.version} now means {desired.model_uri} "
                                f"(run {desired.run_id}); updating in place"))
            stable = Stable(**_fields(desired), since=ts)
        if canary is not None and not _same(canary, desired):
            history.insert(0, HistoryEntry(version=canary.version, outcome=Outcome.ABANDONED,
                                           reason=f"tracked version moved to {desired.version}",
                                           at=ts))
            events.append(Event("Normal", "Abandoned",
                                f"version {canary.version} abandoned before promotion: "
                                f"{selector_text(spec)} now resolves to {desired.version}"))
            canary = None
        if canary is None and (stable is None or stable.version != desired.version):
            canary = _canary(desired, ts)
            events.append(Event("Normal", "NewVersion", _new_version_message(
                spec, desired, stable)))

    # 2. Promote an Available canary: this plan moves traffic and records the new stable
    #    version; the old version's children go in the *next* plan, once that status is
    #    stored. So there is no moment at which the status names a version already deleted.
    owner = render.Owner(obs.name, obs.namespace, obs.uid)
    desired_children = _children(obs, spec, owner, stable, canary)
    promoted = False
    if canary is not None and _serving(obs, canary.version, desired_children):
        if stable is not None:
            history.insert(0, HistoryEntry(version=stable.version, outcome=Outcome.REPLACED,
                                           reason=f"replaced by version {canary.version}", at=ts))
        history.insert(0, HistoryEntry(version=canary.version, outcome=Outcome.PROMOTED, at=ts))
        events.append(Event("Normal", "Promoted", _promoted_message(canary, stable)))
        stable = Stable(**_info(canary), since=ts)
        canary = None
        promoted = True
        desired_children = _children(obs, spec, owner, stable, canary)

    apply = tuple(m for m in desired_children if not _up_to_date(obs, m))
    delete = () if promoted else _deletions(obs, stable, desired_children)

    next_status = _status(obs, spec, now, stable=stable, canary=canary, history=history)
    events += _transition_events(status.conditions, next_status.conditions)
    waiting = canary is not None or (
        stable is not None and _health(obs, stable.version) != "available")
    requeue = PROMOTED_REQUEUE if promoted else (WAIT_REQUEUE if waiting else None)
    return Plan(status=next_status, apply=apply, delete=delete, events=tuple(events),
                requeue_after=requeue)


# --- the version state machine's pieces ----------------------------------------------------


def _same(known: VersionInfo, v: ResolvedVersion) -> bool:
    """The same model version: number, URI and run all match."""
    return (known.version, known.modelUri, known.runId) == (v.version, v.model_uri, v.run_id)


def _fields(v: ResolvedVersion) -> dict[str, Any]:
    """A registry answer as status fields (VersionInfo)."""
    return {"version": v.version, "runId": v.run_id, "source": v.source, "modelUri": v.model_uri}


def _canary(v: ResolvedVersion, ts: str) -> Canary:
    return Canary(**_fields(v), weight=0, step=0, startedAt=ts)


def _info(v: VersionInfo) -> dict[str, Any]:
    """The VersionInfo part of a Stable or Canary."""
    return v.model_dump(include=set(VersionInfo.model_fields))


def _served(obs: Observed, v: VersionInfo) -> render.ServedVersion:
    return render.ServedVersion(version=v.version, model_uri=v.modelUri or "",
                                registry=obs.target)


def _children(obs: Observed, spec: ModelDeploymentSpec, owner: render.Owner,
              stable: Stable | None, canary: Canary | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in (stable, canary):
        if v is not None:
            out += render.render_version(owner, spec, _served(obs, v),
                                         default_image=obs.default_image)
    if stable is not None:
        out.append(render.render_stable_service(owner, spec, stable.version))
        route = render.render_route(owner, spec, {stable.version: 100})
        if route is not None:
            out.append(route)
    return out


def _key(manifest: dict[str, Any]) -> tuple[str, str]:
    return (manifest["kind"], manifest["metadata"]["name"])


def _observed(obs: Observed, kind: str, name: str) -> Child | None:
    return next((c for c in obs.children if c.kind == kind and c.name == name), None)


def _up_to_date(obs: Observed, manifest: dict[str, Any]) -> bool:
    child = _observed(obs, *_key(manifest))
    return child is not None and child.hash == manifest["metadata"]["annotations"][
        render.ANNOTATION_HASH]


def _serving(obs: Observed, version: str, desired: list[dict[str, Any]]) -> bool:
    """The version's Deployment runs the current spec and is Available."""
    dep = obs.deployment(version)
    manifest = next((m for m in desired if m["kind"] == "Deployment"
                     and m["metadata"]["labels"].get(render.LABEL_VERSION) == version), None)
    return dep is not None and manifest is not None and _up_to_date(obs, manifest) \
        and dep.available


def _health(obs: Observed, version: str) -> str:
    """available: every replica Ready; partial: some Ready while the Deployment rolls or
    scales (the old pods keep serving); down: none Ready, or the rollout is stuck."""
    dep = obs.deployment(version)
    if dep is None:
        return "down"
    if dep.available:
        return "available"
    return "partial" if dep.ready > 0 and not dep.deadline_exceeded else "down"


def _deletions(obs: Observed, stable: Stable | None,
               desired: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Children nobody wants any more, but only once a Ready stable version exists."""
    if stable is None or _health(obs, stable.version) != "available":
        return ()
    keep = {_key(m) for m in desired}
    return tuple(sorted((c.kind, c.name) for c in obs.children if (c.kind, c.name) not in keep))


# --- status ---------------------------------------------------------------------------------


def _status(obs: Observed, spec: ModelDeploymentSpec, now: dt.datetime, *,
            stable: Stable | None, canary: Canary | None,
            history: list[HistoryEntry]) -> ModelDeploymentStatus:
    res = obs.registry
    conds = list(obs.status.conditions)

    def cond(type_: ConditionType, value: bool | None, reason: str, message: str) -> None:
        nonlocal conds
        conds = set_condition(conds, type_=type_.value, status=value, reason=reason,
                              message=message, now=now, generation=obs.generation)

    reachable = {RegistryOutcome.OK: True, RegistryOutcome.NOT_FOUND: True,
                 RegistryOutcome.UNREACHABLE: False}.get(res.outcome)
    # Messages carry no poll timestamps: an unchanged answer must not rewrite the status.
    cond(ConditionType.REGISTRY_REACHABLE, reachable,
         "Reachable" if reachable else (res.reason or "NotYetAsked"), res.message)

    canary_dep = obs.deployment(canary.version) if canary else None
    stuck = canary_dep is not None and canary_dep.deadline_exceeded
    health = _health(obs, stable.version) if stable is not None else "down"
    stable_count = f"{_replicas(obs.deployment(stable.version))} ready" if stable else ""
    if res.outcome is RegistryOutcome.NOT_FOUND:
        cond(ConditionType.DEGRADED, True, res.reason, _keeps_serving(res.message, stable))
    elif stable is not None and health == "down":
        cond(ConditionType.DEGRADED, True, "ReplicasNotReady",
             f"version {stable.version}: {stable_count}")
    elif stuck and canary is not None:
        cond(ConditionType.DEGRADED, True, "ProgressDeadlineExceeded",
             _keeps_serving(f"version {canary.version} did not become Available in time "
                            f"({_replicas(canary_dep)} ready)", stable))
    else:
        cond(ConditionType.DEGRADED, False, "AsExpected", "")

    if canary is not None:
        cond(ConditionType.PROGRESSING, True, "NewVersion",
             f"bringing up version {canary.version}: {_replicas(canary_dep)} ready")
    elif stable is not None and health == "partial":
        cond(ConditionType.PROGRESSING, True, "ReplicasUpdating",
             f"version {stable.version}: {stable_count}")
    else:
        cond(ConditionType.PROGRESSING, False, "Idle" if stable else "NoVersion", "")

    if res.outcome is RegistryOutcome.NOT_FOUND:
        cond(ConditionType.READY, False, res.reason, _keeps_serving(res.message, stable))
    elif stable is not None and health != "down":
        cond(ConditionType.READY, True, "Serving",
             f"version {stable.version} serving, {stable_count}")
    elif stable is not None:
        cond(ConditionType.READY, False, "ReplicasNotReady",
             f"version {stable.version}: {stable_count}")
    else:
        cond(ConditionType.READY, False, "NoVersionServing",
             "waiting for the first version" if canary else (res.message or "no version yet"))

    phase = _phase(res.outcome, stable=stable, canary=canary, health=health, stuck=stuck)
    return ModelDeploymentStatus(
        phase=phase, observedGeneration=obs.generation, selector=selector_text(spec),
        stable=stable, canary=canary,
        resolved=_resolved(obs.status.resolved, res.version, res.at),
        conditions=_ordered(conds), history=history[:HISTORY_LIMIT],
        message=_message(phase, stable, canary, res.message),
    )


def _resolved(known: Resolved | None, v: ResolvedVersion | None,
              at: dt.datetime | None) -> Resolved | None:
    """The registry's latest answer; ``at`` is when that answer first appeared."""
    if v is None:
        return known
    if known is not None and _same(known, v) and known.source == v.source:
        return known
    return Resolved(**_fields(v), at=timestamp(at) if at else None)


def _phase(outcome: RegistryOutcome, *, stable: Stable | None, canary: Canary | None,
           health: str, stuck: bool) -> Phase:
    if outcome is RegistryOutcome.NOT_FOUND:
        return Phase.DEGRADED if stable else Phase.FAILED
    if canary is not None:
        if stuck:
            return Phase.DEGRADED if stable else Phase.FAILED
        return Phase.PROGRESSING if stable else Phase.PENDING
    if stable is None:
        return Phase.PENDING
    return {"available": Phase.STABLE, "partial": Phase.PROGRESSING}.get(health, Phase.DEGRADED)


def _message(phase: Phase, stable: Stable | None, canary: Canary | None, registry: str) -> str:
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


_ORDER = [t.value for t in ConditionType]


def _ordered(conds: list[Condition]) -> list[Condition]:
    return sorted(conds, key=lambda c: _ORDER.index(c.type) if c.type in _ORDER else 99)


def _transition_events(old: list[Condition], new: list[Condition]) -> list[Event]:
    """Warnings when things go wrong and a note when they recover; quiet otherwise."""
    out: list[Event] = []
    o_reach, n_reach = get(old, "RegistryReachable"), get(new, "RegistryReachable")
    if n_reach and n_reach.status == "False" and (o_reach is None or o_reach.status != "False"):
        out.append(Event("Warning", "RegistryUnreachable", n_reach.message))
    if n_reach and n_reach.status == "True" and o_reach and o_reach.status == "False":
        out.append(Event("Normal", "RegistryReachable", "the registry answers again"))
    o_deg, n_deg = get(old, "Degraded"), get(new, "Degraded")
    if n_deg and n_deg.status == "True" and (
            o_deg is None or o_deg.status != "True" or o_deg.reason != n_deg.reason):
        out.append(Event("Warning", n_deg.reason, n_deg.message))
    if n_deg and n_deg.status == "False" and o_deg and o_deg.status == "True":
        out.append(Event("Normal", "Recovered", f"no longer degraded ({o_deg.reason})"))
    return out


def _new_version_message(spec: ModelDeploymentSpec, v: ResolvedVersion,
                         stable: Stable | None) -> str:
    run = f" (run {v.run_id})" if v.run_id else ""
    if stable is None:
        return f"{selector_text(spec)} resolves to version {v.version}{run}; bringing it up"
    return (f"{selector_text(spec)} moved from version {stable.version} to {v.version}{run}; "
            f"bringing up version {v.version} next to {stable.version}")


def _promoted_message(canary: Canary, stable: Stable | None) -> str:
    if stable is None:
        return f"version {canary.version} is Available and serves all traffic"
    return (f"version {canary.version} is Available and serves all traffic; "
            f"removing version {stable.version}")


def _invalid_spec(obs: Observed, now: dt.datetime) -> Plan:
    st = obs.status
    conds = set_condition(list(st.conditions), type_=ConditionType.DEGRADED.value, status=True,
                          reason="InvalidSpec", message=obs.spec_error or "invalid spec",
                          now=now, generation=obs.generation)
    message = _keeps_serving(f"invalid spec: {obs.spec_error}", st.stable)
    status = st.model_copy(update={
        "phase": Phase.DEGRADED if st.stable else Phase.FAILED,
        "observedGeneration": obs.generation, "conditions": _ordered(conds), "message": message})
    return Plan(status=status, events=tuple(_transition_events(st.conditions, conds)))


__all__ = ["decide", "selector_text"]
