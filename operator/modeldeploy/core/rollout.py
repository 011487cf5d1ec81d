"""``decide(observed, now) -> Plan``: the whole release logic, as a pure function.

No kopf, kubernetes, mlflow or network here. One call advances at most one transition; the
caller applies the plan and calls again when the world changes (or ``plan.wake_at`` passes).

Today's release is a rolling switch (``status.rollout.type: Rolling``):

1. the registry resolves a version that is not the stable one → it becomes ``status.canary``
   with a Rolling rollout state, and its Deployment/Service are applied next to the stable
   ones (phase Progressing, or Pending for the very first version);
2. once every desired replica of it is Ready with the current spec, one plan moves traffic to
   it (the entry Service's selector and the router's split) and names it stable (history:
   Promoted / Replaced); the next plan deletes the old version's children, so the stored
   status never names a version that is already gone;
3. if the tracked version moves again mid-switch, the in-flight version is abandoned.

Faults never remove what serves: with an invalid spec, an unknown model, an unreachable
registry or a child the apiserver refuses, the plan keeps the stable version's children as
they are, and nothing is deleted unless a Ready stable version exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import (
    Canary,
    HistoryEntry,
    ModelDeploymentStatus,
    Outcome,
    Rolling,
    RolloutState,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.core import render, report
from modeldeploy.core.conditions import timestamp
from modeldeploy.core.world import (
    ChildRef,
    Event,
    Observed,
    Plan,
    RegistryOutcome,
    ResolvedVersion,
    Split,
)
from modeldeploy.routing import Router, router_for

#: How long to look again while a version comes up, in case no child event wakes us.
WAIT_REQUEUE = 15.0
#: After a promotion, the next reconcile removes the old version (the status write's own
#: watch event usually triggers it sooner).
PROMOTED_REQUEUE = 1.0

selector_text = report.selector_text


@dataclass
class _Release:
    """The version state machine's working copy during one decide()."""

    stable: Stable | None
    canary: Canary | None
    rollout: RolloutState | None
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    promoted: bool = False


def decide(obs: Observed, now: dt.datetime) -> Plan:
    if obs.spec is None:
        return report.invalid_spec_plan(obs, now)
    spec = obs.spec
    ts = timestamp(now)
    st = obs.status
    rel = _Release(stable=st.stable, canary=st.canary,
                   rollout=_rollout_of(st) if st.canary else None, history=list(st.history))
    router, note = router_for(spec)
    owner = render.Owner(obs.name, obs.namespace, obs.uid)

    res = obs.registry
    if res.outcome is RegistryOutcome.OK and res.version is not None:
        _follow(rel, spec, res.version, ts)

    # Promote a canary whose every desired replica is Ready: this plan moves traffic and
    # records the new stable version; the old version's children go in the *next* plan,
    # once that status is stored. A refused apply holds everything where it is.
    desired = _children(obs, spec, owner, router, rel)
    if rel.canary is not None and obs.apply_failure is None and \
            _serving(obs, spec, rel.canary.version, desired):
        _promote(rel, ts)
        desired = _children(obs, spec, owner, router, rel)

    failed = obs.apply_failure is not None
    apply = () if failed else tuple(m for m in desired if not _up_to_date(obs, m))
    delete = () if failed or rel.promoted else _deletions(obs, spec, rel.stable, desired)
    split = _split(rel)
    next_status = report.status(obs, spec, now, stable=rel.stable, canary=rel.canary,
                                rollout=rel.rollout, history=rel.history, note=note)
    events = rel.events + report.transition_events(st.conditions, next_status.conditions)
    return Plan(status=next_status, apply=apply, delete=delete,
                traffic=split,
                events=tuple(events), wake_at=_wake_at(obs, spec, rel, now))


# --- the version state machine's pieces ----------------------------------------------------


def _rollout_of(st: ModelDeploymentStatus) -> RolloutState | None:
    """The stored rollout state; one written before rollout states existed (a canary with no
    rollout) is read as a Rolling switch of that canary."""
    if st.canary is None:
        return None
    if st.rollout is not None and st.rollout.rolling is not None and \
            st.rollout.rolling.version == st.canary.version:
        return st.rollout
    return _rolling(st.canary.version, None)


def _rolling(version: str, ts: str | None) -> RolloutState:
    return RolloutState(type=RolloutType.ROLLING, rolling=Rolling(version=version, startedAt=ts))


def _follow(rel: _Release, spec: ModelDeploymentSpec, desired: ResolvedVersion,
            ts: str) -> None:
    """Follow the registry's answer: update in place, abandon, or start bringing up."""
    if rel.stable is not None and rel.stable.version == desired.version and \
            not _same(rel.stable, desired):
        # Same number, different model (spec renamed it, or moved registries): children
        # are named by number, so the stable Deployment rolls in place (maxUnavailable 0).
        rel.events.append(Event("Normal", "ModelChanged",
                                f"version {desired.version} now means {desired.model_uri}"
                                + (f" (run {desired.run_id})" if desired.run_id else "")
                                + "; updating in place"))
        rel.stable = Stable(**_fields(desired), since=ts)
    if rel.canary is not None and not _same(rel.canary, desired):
        rel.history.insert(0, HistoryEntry(version=rel.canary.version,
                                           outcome=Outcome.ABANDONED,
                                           reason=f"tracked version moved to {desired.version}",
                                           at=ts))
        rel.events.append(Event("Normal", "Abandoned",
                                f"version {rel.canary.version} abandoned before promotion: "
                                f"{selector_text(spec)} now resolves to {desired.version}"))
        rel.canary, rel.rollout = None, None
    if rel.canary is None and (rel.stable is None or rel.stable.version != desired.version):
        rel.canary = Canary(**_fields(desired), weight=0)
        rel.rollout = _rolling(desired.version, ts)
        rel.events.append(Event("Normal", "NewVersion",
                                report.new_version_message(spec, desired, rel.stable)))


def _promote(rel: _Release, ts: str) -> None:
    canary = rel.canary
    assert canary is not None
    if rel.stable is not None:
        rel.history.insert(0, HistoryEntry(version=rel.stable.version, outcome=Outcome.REPLACED,
                                           reason=f"replaced by version {canary.version}",
                                           at=ts))
    rel.history.insert(0, HistoryEntry(version=canary.version, outcome=Outcome.PROMOTED, at=ts))
    rel.events.append(Event("Normal", "Promoted", report.promoted_message(canary, rel.stable)))
    rel.stable = Stable(**_info(canary), since=ts)
    rel.canary, rel.rollout, rel.promoted = None, None, True


def _same(known: VersionInfo, v: ResolvedVersion) -> bool:
    """The same model version: number, URI and run all match."""
    return (known.version, known.modelUri, known.runId) == (v.version, v.model_uri, v.run_id)


def _fields(v: ResolvedVersion) -> dict[str, Any]:
    """A registry answer as status fields (VersionInfo)."""
    return {"version": v.version, "runId": v.run_id, "source": v.source, "modelUri": v.model_uri}


def _info(v: VersionInfo) -> dict[str, Any]:
    """The VersionInfo part of a Stable or Canary."""
    return v.model_dump(include=set(VersionInfo.model_fields))


def _split(rel: _Release) -> Split:
    """Where traffic goes: a rolling switch sends everything to the stable version until the
    promotion moves it all at once."""
    return Split.all_to(rel.stable.version) if rel.stable is not None else Split()


def _children(obs: Observed, spec: ModelDeploymentSpec, owner: render.Owner, router: Router,
              rel: _Release) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in (rel.stable, rel.canary):
        if v is not None:
            served = render.ServedVersion(version=v.version, model_uri=v.modelUri or "",
                                          registry=obs.target)
            out += render.render_version(owner, spec, served, default_image=obs.default_image)
    if rel.stable is not None:
        out.append(render.render_stable_service(owner, spec, rel.stable.version))
        out += router.render(owner, spec, _split(rel))
    return out


def _key(manifest: dict[str, Any]) -> tuple[str, str]:
    return (manifest["kind"], manifest["metadata"]["name"])


def _up_to_date(obs: Observed, manifest: dict[str, Any]) -> bool:
    """The child exists as we last rendered it (hash), nobody has changed the fields we own
    since (fingerprint), and a fixed replica count is still in place."""
    kind, name = _key(manifest)
    child = obs.child(kind, name)
    if child is None or child.hash != manifest["metadata"]["annotations"][render.ANNOTATION_HASH]:
        return False
    if child.fingerprint is not None and child.fingerprint != render.fingerprint(kind, manifest):
        return False
    replicas = manifest["spec"].get("replicas") if kind == "Deployment" else None
    return replicas is None or child.replicas == replicas


def _serving(obs: Observed, spec: ModelDeploymentSpec, version: str,
             desired: list[dict[str, Any]]) -> bool:
    """The version's Deployment runs the current spec with every desired replica Ready."""
    dep = obs.deployment(version)
    manifest = next((m for m in desired if m["kind"] == "Deployment"
                     and m["metadata"]["labels"].get(render.LABEL_VERSION) == version), None)
    return dep is not None and manifest is not None and _up_to_date(obs, manifest) \
        and dep.ready_for(render.desired_replicas(spec))


def _deletions(obs: Observed, spec: ModelDeploymentSpec, stable: Stable | None,
               desired: list[dict[str, Any]]) -> tuple[ChildRef, ...]:
    """Children nobody wants any more, but only once a Ready stable version exists."""
    if stable is None or report.health(obs, spec, stable.version) != "available":
        return ()
    keep = {_key(m) for m in desired}
    return tuple(sorted((ChildRef(c.kind, c.name, c.uid) for c in obs.children
                         if (c.kind, c.name) not in keep), key=lambda r: (r.kind, r.name)))


def _wake_at(obs: Observed, spec: ModelDeploymentSpec, rel: _Release,
             now: dt.datetime) -> dt.datetime | None:
    if rel.promoted:
        return now + dt.timedelta(seconds=PROMOTED_REQUEUE)
    waiting = rel.canary is not None or (
        rel.stable is not None and report.health(obs, spec, rel.stable.version) != "available")
    stall = report.stall_due(obs, now)
    candidates = [t for t in (now + dt.timedelta(seconds=WAIT_REQUEUE) if waiting else None,
                              stall) if t is not None]
    return min(candidates, default=None)


__all__ = ["decide", "selector_text"]
