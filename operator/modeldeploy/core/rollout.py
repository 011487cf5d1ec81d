"""``decide(observed, now) -> Plan``: the whole release logic, as a pure function.

No kopf, kubernetes, mlflow or network here. One call advances at most one transition; the
caller applies the plan and calls again when the world changes (or ``plan.wake_at`` passes).
When the plan asks for measurements, the caller takes them and calls again with the answers
in ``Observed.measurements``; that second plan is the one applied.

Without ``spec.rollout`` (or for the very first version) a release is a rolling switch
(``status.rollout.type: Rolling``):

1. the registry resolves a version that is not the stable one → it becomes ``status.canary``
   and its Deployment/Service are applied next to the stable ones;
2. once every desired replica of it is Ready with the current spec, one plan moves traffic to
   it and names it stable (history: Promoted / Replaced); the next plan deletes the old
   version's children, so the stored status never names a version that is already gone;
3. if the tracked version moves again mid-switch, the in-flight version is abandoned.

With ``strategy: canary`` or ``blueGreen`` the release is the state machine of
:mod:`modeldeploy.core.release` (steps, analysis, rollback, requests); the routers of
:mod:`modeldeploy.routing` turn its weights into route objects and read them back.

Faults never remove what serves: with an invalid spec, an unknown model, an unreachable
registry or a child the apiserver refuses, the plan keeps the stable version's children as
they are, and nothing is deleted unless a Ready stable version exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec, Strategy
from modeldeploy.api.status import (
    Canary,
    Health,
    HistoryEntry,
    ModelDeploymentStatus,
    Outcome,
    Previous,
    RegistryWrite,
    ReleaseState,
    Rolling,
    RolloutState,
    RolloutType,
    Stable,
    VersionInfo,
)
from modeldeploy.core import durations, gating, health, release, render, report, templates
from modeldeploy.core.conditions import timestamp
from modeldeploy.core.release import Working
from modeldeploy.core.world import (
    Audience,
    ChildRef,
    Event,
    MeasurementRequest,
    Mirror,
    Observed,
    Plan,
    ProbeRequest,
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


def decide(obs: Observed, now: dt.datetime) -> Plan:
    if obs.spec is None:
        return report.invalid_spec_plan(obs, now)
    spec = obs.spec
    ts = timestamp(now)
    st = obs.status
    w = Working(stable=st.stable, canary=st.canary, rollout=_rollout_of(st),
                history=list(st.history), last_request=st.lastRequest,
                writes=list(st.registryWrites or ()), write_spec=spec.model.writeBack,
                origin=(obs.namespace, obs.name, obs.cluster), model=spec.model.name,
                previous=st.previous)
    _written(w, obs, now)
    router = router_for(spec)
    owner = render.Owner(obs.name, obs.namespace, obs.uid)

    if w.release is not None and not release.progressive(spec.rollout):
        # spec.rollout was removed (or changed strategy) mid-release: finish as a rolling
        # switch; a rejection is forgotten.
        w.rollout = _rolling(w.canary.version, ts) if w.canary is not None else None
    elif w.release is not None and spec.rollout is not None and w.rollout is not None and \
            w.rollout.type is not release.KINDS[spec.rollout.strategy]:
        w.rollout = _restart(w, spec, ts)

    res = obs.registry
    desired_version = res.version if res.outcome is RegistryOutcome.OK else None
    if desired_version is not None:
        _follow(w, spec, desired_version, ts, now)

    new_request = obs.request is not None and obs.request != (
        st.lastRequest.value if st.lastRequest else None)
    if w.release is not None or new_request:
        release.advance(w, _facts(obs, spec, owner, router, w, now, desired_version))
        if desired_version is not None:
            _follow(w, spec, desired_version, ts, now)  # a retry starts it again
    elif w.canary is not None and obs.apply_failure is None and \
            _serving(obs, spec, w.canary.version, _children(obs, spec, owner, router, w)):
        # A rolling switch: promote once every desired replica is Ready. This plan moves
        # traffic and records the new stable version; the old version's children go in the
        # *next* plan, once that status is stored. A refused apply holds everything.
        release.promote(w, ts)

    desired = _children(obs, spec, owner, router, w)
    failed = obs.apply_failure is not None
    apply = () if failed else tuple(m for m in desired if not _up_to_date(obs, m))
    live = router.live_split(owner, obs.children)
    # A version the route still sends traffic to keeps its pods until the route has moved
    # (a route applied in this plan is seen moved by the next one). Not for a replicas split,
    # whose live weights are those very pods.
    routed = {v for v, weight in live.weights if weight > 0} \
        if live is not None and router.kinds() else set()
    delete = () if failed or w.promoted else _deletions(obs, spec, w, desired, routed)
    # Moving traffic off a version on a verdict (the route, or the replicas of a replicas
    # split): the verdict is stored first, with the weights as they still are.
    before = (live, *_at_weight(spec, w, live)) if w.record_first and apply else None
    if any(m["kind"] in router.kinds() for m in apply):
        live = _split(spec, w, router, obs)  # live as soon as this plan is applied
    w.canary, w.rollout = _at_weight(spec, w, live)
    health_now, previous, probe = _serving_checks(obs, spec, w, now)

    def status_at(live: Split | None, canary: Canary | None,
                  rollout: RolloutState | None) -> ModelDeploymentStatus:
        return report.status(obs, spec, now, stable=w.stable, canary=canary, rollout=rollout,
                             history=w.history, last_request=w.last_request,
                             traffic=router.describe(live) if live is not None else None,
                             last_probe=health_now, previous=previous, registry_writes=w.writes)

    next_status = status_at(live, w.canary, w.rollout)
    # A rollback or switch back decided on measurements (which need not repeat) is stored
    # before the route moves, with the route's weights as they still are: a restart in
    # between finds the decision and carries it out, and never undoes it.
    record_first = status_at(*before) if before is not None else None
    transitions = report.transition_events(st.conditions, next_status.conditions)
    ending = (release.ROLLING_BACK_EVENT, "Rejected", "RolledBack")
    if w.release is not None and any(e.reason in ending for e in w.events):
        # The rollback's own event says why; the Degraded condition it sets (with the same
        # reason) would say it again. Other transitions still speak.
        transitions = [e for e in transitions if e.reason != w.release.reason]
    events = w.events + transitions
    wake = _wake_at(obs, spec, w, now)
    due = health.next_due(spec, health_now, previous, w.stable,
                          now if probe is not None and probe.previous is not None
                          else obs.rollback_checked_at)
    if due is not None:
        wake = min(wake, max(due, now)) if wake is not None else max(due, now)
    return Plan(status=next_status, apply=apply, delete=delete,
                traffic=_split(spec, w, router, obs), measure=tuple(w.measure),
                gates=w.gates, write_back=_writes_due(obs, now), probe=probe,
                events=tuple(events), wake_at=wake, record_first=record_first)


def _at_weight(spec: ModelDeploymentSpec, w: Working,
               live: Split | None) -> tuple[Canary | None, RolloutState | None]:
    """The canary and its release as they stand with ``live`` on the route: a status weight
    is the route's weight."""
    if w.canary is None:
        return None, w.rollout
    weight = live.weight(w.canary.version) if live is not None else 0
    canary = w.canary.model_copy(update={"weight": weight, "step": _step_text(spec, w)})
    rel = w.release
    if rel is None or rel.weight == weight or w.rollout is None:
        return canary, w.rollout
    return canary, release.state_of(w.rollout.type, rel.model_copy(update={"weight": weight}))


def _serving_checks(obs: Observed, spec: ModelDeploymentSpec, w: Working,
                    now: dt.datetime) -> tuple[Health | None, Previous | None,
                                               ProbeRequest | None]:
    """Health probes of the serving version and the rollback-readiness check: their answers
    folded in (second decide), or the next round asked for (first decide)."""
    st = obs.status
    health_now = st.health if spec.healthCheck is not None else None
    previous = w.previous
    if obs.probe_answers is not None:
        out = health.record(spec, obs.probe_answers, health=health_now, previous=previous,
                            now=now)
        w.events += out.events
        return out.health, out.previous, None
    probe = None if w.stable is None else health.request(
        spec, stable=w.stable, previous=previous, now=now, health=health_now,
        service=render.child_name(obs.name, w.stable.version),
        checked_at=obs.rollback_checked_at)
    return health_now, previous, probe


# --- registry write-back --------------------------------------------------------------------

#: Attempts before an owed registry write is given up (with a Warning event).
WRITE_ATTEMPTS = 12


def write_backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failures: 5, 10, 20 ... 600."""
    return float(min(5.0 * 2 ** max(attempts - 1, 0), 600.0))


def _writes_due(obs: Observed, now: dt.datetime) -> tuple[RegistryWrite, ...]:
    """Stored owed writes whose time has come, oldest first, up to the first that is not due
    (a write is made only once its status is stored, so a crash can repeat a write, which is
    idempotent, but never lose one)."""
    if obs.write_results:
        return ()
    due = []
    for x in obs.status.registryWrites or ():
        if (release._at(x.nextAt) or now) > now:
            break  # in order: a newer alias move never lands before an older one
        due.append(x)
    return tuple(due)


def _written(w: Working, obs: Observed, now: dt.datetime) -> None:
    """Take in how the previous plan's registry writes went."""
    for result in obs.write_results:
        if result.write not in w.writes:
            continue
        i = w.writes.index(result.write)
        what = _write_text(result.write)
        if result.error is None:
            del w.writes[i]
            w.events.append(Event("Normal", "RegistryUpdated", what))
            continue
        if result.permanent:
            del w.writes[i]
            w.events.append(Event("Warning", "RegistryWriteRefused",
                                  f"{what}: the registry refused it; not retried (the "
                                  f"writes after it go on): {result.error}"[:1000]))
            continue
        attempts = result.write.attempts + 1
        if attempts >= WRITE_ATTEMPTS:
            del w.writes[i]
            w.events.append(Event("Warning", "RegistryWriteAbandoned",
                                  f"{what}: gave up after {attempts} attempts: "
                                  f"{result.error}"[:1000]))
            continue
        w.writes[i] = result.write.model_copy(update={
            "attempts": attempts, "lastError": result.error[:500],
            "nextAt": release._later(now, write_backoff(attempts))})
        w.events.append(Event("Warning", "RegistryWriteFailed",
                              f"{what}: attempt {attempts} failed, retrying in "
                              f"{write_backoff(attempts):.0f}s: {result.error}"[:1000]))


def _write_text(write: RegistryWrite) -> str:
    parts = [f"{k}={v}" for k, v in write.tags.items() if k.endswith(".outcome")]
    parts += [f"alias {a}" for a in write.aliases]
    extra = len(write.tags) - sum(k.endswith(".outcome") for k in write.tags)
    return (f"version {write.version}: " + ", ".join(parts)
            + (f" (+{extra} tags)" if extra else ""))


# --- the version state machine's pieces ----------------------------------------------------


def _rollout_of(st: ModelDeploymentStatus) -> RolloutState | None:
    """The stored rollout state. A canary with no (or another version's) rollout state was
    written before rollout states existed: it reads as a Rolling switch of that canary. An
    Aborted or Switched release outlives its canary."""
    if st.rollout is not None:
        member = st.rollout.release
        if member is not None and st.canary is None and member.state in (
                ReleaseState.ABORTED, ReleaseState.SWITCHED, ReleaseState.BAKING):
            return st.rollout
        if st.canary is not None and (
                (member is not None and member.version == st.canary.version) or
                (st.rollout.rolling is not None and
                 st.rollout.rolling.version == st.canary.version)):
            return st.rollout
    if st.canary is None:
        return None
    return _rolling(st.canary.version, None)


def _restart(w: Working, spec: ModelDeploymentSpec, ts: str) -> RolloutState | None:
    """The strategy changed mid-release: the new version starts over under the new one."""
    if w.canary is None or spec.rollout is None:
        return None
    release.start(w, spec.rollout, version=w.canary.version, ts=ts)
    return w.rollout


def _step_text(spec: ModelDeploymentSpec, w: Working) -> str | None:
    rel, steps = w.release, (spec.rollout.steps or []) if spec.rollout else []
    if rel is None or not steps or w.rollout is None or w.rollout.type is not RolloutType.CANARY \
            or rel.state not in (ReleaseState.STEPPING, ReleaseState.PAUSED):
        return None
    return f"{min(rel.step, len(steps) - 1) + 1}/{len(steps)}"


def _rolling(version: str, ts: str | None) -> RolloutState:
    return RolloutState(type=RolloutType.ROLLING, rolling=Rolling(version=version, startedAt=ts))


def _recent_stable(w: Working, spec: ModelDeploymentSpec, desired: ResolvedVersion,
                   now: dt.datetime) -> bool:
    """``desired`` served as stable here within spec.rollout.fastTrackWindow."""
    if spec.rollout is None:
        return False
    since = now - dt.timedelta(seconds=durations.parse(spec.rollout.fastTrackWindow))
    latest = next((h for h in w.history if h.version == desired.version), None)
    if latest is None or latest.outcome not in (Outcome.PROMOTED, Outcome.REPLACED):
        return False  # never served here, or its last word was a rollback or a rejection
    if w.previous is not None and _same(w.previous, desired):
        replaced = release._at(w.previous.replacedAt)
        return replaced is not None and replaced >= since
    at = release._at(latest.at)
    return at is not None and at >= since


def _follow(w: Working, spec: ModelDeploymentSpec, desired: ResolvedVersion,
            ts: str, now: dt.datetime) -> None:
    """Follow the registry's answer: update in place, abandon, or start a release."""
    if w.stable is not None and w.stable.version == desired.version and \
            not _same(w.stable, desired):
        # Same number, different model (spec renamed it, or moved registries): children
        # are named by number, so the stable Deployment rolls in place (maxUnavailable 0).
        w.events.append(Event("Normal", "ModelChanged",
                              f"version {desired.version} now means {desired.model_uri}"
                              + (f" (run {desired.run_id})" if desired.run_id else "")
                              + "; updating in place"))
        w.stable = Stable(**_fields(desired), since=ts)
    current = w.release
    if current is not None and current.state is ReleaseState.ABORTED and w.canary is None:
        if current.version == desired.version:
            return  # rejected: not released again while the selector points at it
        w.rollout = None  # the selector moved on: the rejection is forgotten
    if w.canary is not None and not _same(w.canary, desired):
        back = w.stable is not None and w.stable.version == desired.version
        w.history.insert(0, HistoryEntry(version=w.canary.version, outcome=Outcome.ABANDONED,
                                         reason=f"tracked version moved to {desired.version}",
                                         at=ts))
        w.events.append(Event("Normal", "Abandoned",
                              f"version {w.canary.version} abandoned before promotion: "
                              f"{selector_text(spec)} now resolves to {desired.version}"
                              + ("; the stable version keeps all traffic" if back else "")))
        w.canary, w.rollout = None, None
    if w.canary is None and (w.stable is None or w.stable.version != desired.version):
        w.canary = Canary(**_fields(desired), weight=0)
        if release.progressive(spec.rollout) and (w.stable is not None or _gated(spec)):
            assert spec.rollout is not None
            release.start(w, spec.rollout, version=desired.version, ts=ts,
                          fast_track=w.stable is not None and
                          _recent_stable(w, spec, desired, now))
        else:
            w.rollout = _rolling(desired.version, ts)
        w.events.append(Event("Normal", "NewVersion",
                              report.new_version_message(spec, desired, w.stable)))


def _gated(spec: ModelDeploymentSpec) -> bool:
    """The release has gates: even a first version is judged before it serves."""
    g = spec.rollout.gates if spec.rollout is not None else None
    return g is not None and (g.smokeTest is not None or bool(gating.registry_gates(g)))


def _facts(obs: Observed, spec: ModelDeploymentSpec, owner: render.Owner, router: Router,
           w: Working, now: dt.datetime,
           desired: ResolvedVersion | None) -> release.Facts:
    candidate = w.canary.version if w.canary is not None else None
    stable = w.stable.version if w.stable is not None else None
    ready = stuck = False
    if candidate is not None:
        dep = obs.deployment(candidate)
        ready = dep is not None and dep.ready_for(_candidate_target(spec, router, w)) and \
            _candidate_current(obs, spec, owner, router, w)
        stuck = dep is not None and dep.deadline_exceeded

    def in_place(weight: int) -> bool:
        if candidate is None or stable is None:
            return True
        # Read when called: the release's state then says whether an audience or a mirror
        # belongs on the route.
        return router.in_place(owner, obs.children, _wanted(spec, w, weight), stable=stable)

    return release.Facts(
        rollout_spec=spec.rollout, now=now, candidate_ready=ready,
        candidate_stuck=stuck, in_place=in_place,
        resolved_version=desired.version if desired else None, request=obs.request,
        apply_refused=obs.apply_failure is not None,
        measurements=obs.measurements, requests=_measurement_requests(obs, spec, w),
        candidate=ResolvedVersion.of(w.canary) if w.canary else None,
        stable=ResolvedVersion.of(w.stable) if w.stable else None,
        candidate_service=render.child_name(obs.name, candidate) if candidate else "",
        recheck_after=durations.parse(spec.model.pollInterval),
        gate_answers=obs.gate_answers)


def _measurement_requests(obs: Observed, spec: ModelDeploymentSpec,
                          w: Working) -> tuple[MeasurementRequest, ...]:
    """Every analysis metric's queries for the new version (and the stable one, for a
    relative threshold), rendered for this object."""
    rollout, rel = spec.rollout, w.release
    baking = rel is not None and rel.state is ReleaseState.BAKING
    version = w.canary.version if w.canary is not None else (rel.version if baking and rel
                                                             else None)
    if rollout is None or rollout.analysis is None or version is None:
        return ()
    analysis = rollout.analysis
    interval = templates.prometheus_duration(durations.parse(analysis.interval))
    # Baking: the previous version has no traffic to compare with; fixForward: the stable
    # version is broken. Either way, only absolute bounds are judged.
    compare = not baking and not rollout.fixForward and w.stable is not None
    variables = templates.measurement_variables(
        namespace=obs.namespace, name=render.label_value(obs.name),
        model=render.label_value(spec.model.name), version=version,
        stable_version=w.stable.version if compare and w.stable else None, interval=interval)
    out = []
    for metric in analysis.metrics:
        template = templates.TEMPLATES.get(metric.template) if metric.template else None
        query = template.query if template is not None else (metric.query or "")
        requests = template.requests if template is not None else None
        try:
            rendered = templates.render_metric(
                query=query, requests=requests if analysis.minRequests else None,
                variables=variables, relative=compare and metric.maxIncrease is not None)
        except ValueError as exc:  # e.g. {{ stableVersion }} without a stable version
            rendered = templates.RenderedMetric(candidate=f"# {exc}", stable=None,
                                                requests=None)
        out.append(MeasurementRequest(metric=metric.name, query=rendered.candidate,
                                      stable_query=rendered.stable,
                                      requests_query=rendered.requests))
    return tuple(out)


def _candidate_target(spec: ModelDeploymentSpec, router: Router, w: Working) -> int:
    """Replicas the new version runs now: its full count, or (replicas router) the count
    that gives it the current step's weight next to the stable version."""
    full = render.desired_replicas(spec)
    rel, rollout = w.release, spec.rollout
    if rel is None or rollout is None or w.canary is None or w.stable is None:
        return full
    weight = release.wanted_weight(rollout, rel, candidate_ready=True)
    if rel.state is ReleaseState.STARTING and rollout.steps:
        weight = rollout.steps[0].weight  # it comes up at the first step's size
    count = router.candidate_replicas(weight, full)
    return full if count is None else count


def _candidate_current(obs: Observed, spec: ModelDeploymentSpec, owner: render.Owner,
                       router: Router, w: Working) -> bool:
    """The new version's Deployment is as rendered now (no change of its own pending)."""
    assert w.canary is not None
    version = w.canary.version
    manifest = next((m for m in _children(obs, spec, owner, router, w)
                     if m["kind"] == "Deployment"
                     and m["metadata"]["labels"].get(render.LABEL_VERSION) == version), None)
    return manifest is not None and _up_to_date(obs, manifest)


def _same(known: VersionInfo, v: ResolvedVersion) -> bool:
    """The same model version: number, URI and run all match."""
    return (known.version, known.modelUri, known.runId) == (v.version, v.model_uri, v.run_id)


def _fields(v: ResolvedVersion) -> dict[str, Any]:
    """A registry answer as status fields (VersionInfo)."""
    return {"version": v.version, "runId": v.run_id, "source": v.source, "modelUri": v.model_uri}


def _split(spec: ModelDeploymentSpec, w: Working, router: Router, obs: Observed) -> Split:
    """Where traffic goes: everything to the stable version, except while a canary is in
    flight (its weight; 0 while it starts or rolls back, still listed so the live route
    shows it)."""
    if w.stable is None:
        return Split()
    rel, rollout = w.release, spec.rollout
    if w.canary is None or rel is None or rollout is None or \
            rollout.strategy is Strategy.BLUE_GREEN or rel.state is ReleaseState.GATING:
        return Split.all_to(w.stable.version)
    dep = obs.deployment(w.canary.version)
    weight = release.wanted_weight(rollout, rel, candidate_ready=dep is not None and
                                   dep.ready_for(_candidate_target(spec, router, w)))
    return _wanted(spec, w, weight)


def _wanted(spec: ModelDeploymentSpec, w: Working, weight: int) -> Split:
    """The split with ``weight`` for the new version; during an A/B test also its audience,
    during a shadow also the mirror (from the moment its steps start until promotion)."""
    assert w.stable is not None and w.canary is not None
    split = Split.of({w.stable.version: 100 - weight, w.canary.version: weight})
    rel, rollout = w.release, spec.rollout
    if rel is None or rollout is None or rel.state not in (ReleaseState.STEPPING,
                                                           ReleaseState.PAUSED):
        return split
    version = w.canary.version
    if rollout.strategy is Strategy.AB_TEST and rollout.abTest is not None:
        m = rollout.abTest.match
        return replace(split, audience=Audience(version=version, value=m.value,
                                                header=m.header, cookie=m.cookie))
    if rollout.strategy is Strategy.SHADOW:
        percent = rollout.shadow.percent if rollout.shadow is not None else 100
        return replace(split, mirror=Mirror(version=version, percent=percent))
    return split


def _children(obs: Observed, spec: ModelDeploymentSpec, owner: render.Owner, router: Router,
              w: Working) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in (w.stable, w.canary):
        if v is None or (v is w.canary and w.release is not None and
                         w.release.state is ReleaseState.GATING):
            continue  # a version in its registry gates has no pods yet
        served = render.ServedVersion(version=v.version, model_uri=v.modelUri or "",
                                      registry=obs.target)
        version_spec = spec
        if v is w.canary and w.release is not None and spec.serving.autoscaling is None:
            target = _candidate_target(spec, router, w)
            if target != spec.serving.replicas:
                version_spec = spec.model_copy(update={"serving": spec.serving.model_copy(
                    update={"replicas": target})})
        out += render.render_version(owner, version_spec, served,
                                     default_image=obs.default_image)
    if w.stable is not None:
        out.append(render.render_shared_service(owner, spec) if router.entry_all_versions
                   else render.render_stable_service(owner, spec, w.stable.version))
        out += router.render(owner, spec, _split(spec, w, router, obs))
    if w.canary is not None and w.rollout is not None and \
            w.rollout.type is RolloutType.BLUE_GREEN:
        out.append(render.render_preview_service(owner, spec, w.canary.version))
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


def _deletions(obs: Observed, spec: ModelDeploymentSpec, w: Working,
               desired: list[dict[str, Any]], routed: set[str]) -> tuple[ChildRef, ...]:
    """Children nobody wants any more, but only once a Ready stable version exists (and
    never those of a version the blue-green window keeps up, or the live route still sends
    traffic to)."""
    stable = w.stable
    if stable is None or report.health(obs, spec, stable.version) != "available":
        return ()
    keep = {_key(m) for m in desired}
    return tuple(sorted((ChildRef(c.kind, c.name, c.uid) for c in obs.children
                         if (c.kind, c.name) not in keep and c.version not in w.keep
                         and c.version not in routed),
                        key=lambda r: (r.kind, r.name)))


def _wake_at(obs: Observed, spec: ModelDeploymentSpec, w: Working,
             now: dt.datetime) -> dt.datetime | None:
    if w.promoted:
        return now + dt.timedelta(seconds=PROMOTED_REQUEUE)
    waiting = w.canary is not None or (
        w.stable is not None and report.health(obs, spec, w.stable.version) != "available")
    stall = report.stall_due(obs, now)
    owed = [release._at(x.nextAt) or now for x in w.writes[:1]]  # they go in order
    candidates = [t for t in (now + dt.timedelta(seconds=WAIT_REQUEUE) if waiting else None,
                              stall, *w.wake, *owed) if t is not None]
    return min(candidates, default=None)


__all__ = ["decide", "selector_text"]
