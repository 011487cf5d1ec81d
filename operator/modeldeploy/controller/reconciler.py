"""One reconcile of one ModelDeployment: observe → decide → apply.

Observe reads only memory (the watch index and the shared resolver; a key never resolved is
waited for briefly, never for a whole registry timeout). Decide is
:func:`modeldeploy.core.rollout.decide`. Apply server-side-applies the children that differ,
deletes what the plan drops (after every apply, so traffic moves before anything goes away,
and each delete with a UID precondition), writes the status once, only if it changed, and
exactly (a replace with a resourceVersion precondition), then posts the plan's events.
Applying the same plan twice changes nothing.

A child the apiserver refuses for good (422 invalid, 404 unknown kind, 403 forbidden) or whose
name another owner holds (Conflict) is not retried in a tight loop: the same observation is
decided again with the failure in it, which makes the object Degraded and Stalled with the
apiserver's own message, and the next attempt comes after a growing backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from modeldeploy.adapters.kube import PERMANENT_STATUSES, ApiError, Kube
from modeldeploy.adapters.registry import REGISTRY_ERRORS, Registry, ResolveKey, permanent
from modeldeploy.adapters.scoring import ScoringClient, service_url
from modeldeploy.api import KIND
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, RegistryWrite
from modeldeploy.config import OperatorConfig, registry_allowed
from modeldeploy.controller.index import Index, Key
from modeldeploy.controller.resolver import CredentialsProvider, Resolver
from modeldeploy.core import durations
from modeldeploy.core.analysis import MetricProvider, QueryResult
from modeldeploy.core.gates import output_schema
from modeldeploy.core.release import REQUEST_ANNOTATION
from modeldeploy.core.rollout import decide
from modeldeploy.core.world import (
    ApplyFailure,
    Attempt,
    Event,
    GateAnswers,
    GateRequest,
    Measurement,
    MeasurementRequest,
    Observed,
    Plan,
    ProbeAnswers,
    ProbeRequest,
    RegistryOutcome,
    RegistryTarget,
    Resolution,
    ResolvedVersion,
    SecretRef,
    SmokeRequest,
    SmokeResult,
    VersionDetails,
    WriteResult,
)
from modeldeploy.metrics import Metrics

log = logging.getLogger(__name__)

def spec_error_text(exc: ValidationError) -> str:
    """``spec.serving.replicas: Input should be greater than or equal to 0; ...``"""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in ("spec", *err["loc"]))
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_spec(raw: Any) -> tuple[ModelDeploymentSpec | None, str | None]:
    try:
        return ModelDeploymentSpec.model_validate(raw or {}), None
    except ValidationError as exc:
        return None, spec_error_text(exc)


def parse_status(raw: Any) -> ModelDeploymentStatus:
    """The stored status; an unreadable one is treated as empty (decide() deletes nothing
    without a known Ready stable version, so this can only cause a re-apply, never a loss)."""
    try:
        return ModelDeploymentStatus.model_validate(raw or {})
    except ValidationError as exc:
        log.warning("ignoring unreadable status: %s", exc)
        return ModelDeploymentStatus()


def status_dict(status: ModelDeploymentStatus) -> dict[str, Any]:
    """The status as written: exactly these fields, nothing left over from before."""
    return status.model_dump(mode="json", exclude_none=True)


#: How long a reconcile waits for a key's first registry answer before it moves on (the
#: resolver wakes the object when the answer lands): a hanging registry never holds a worker.
FIRST_ANSWER_WAIT = 2.0
#: How long one smoke test waits for a scoring server's /ping before it says "not ready"
#: (the next reconcile asks again; the gate's own deadline is the progress deadline).
SMOKE_READY_WAIT = 5.0
#: Versions whose input example and signature are kept for health probes.
EXAMPLE_CACHE = 512
#: How long one registry lookup of a previous version answers for every object (seconds).
PREVIOUS_TTL = 20.0
#: Field manager that keeps spec.replicas while autoscaling takes it over (see apply).
HANDOVER_MANAGER = "modeldeploy-handover"


class StatusConflictError(Exception):
    """The object changed since it was observed: decide again on the newer one."""


def refusal_backoff(failures: int) -> float:
    """Seconds before retrying a child the apiserver refused: 5, 10, 20 ... 300."""
    return float(min(5.0 * 2 ** max(failures - 1, 0), 300.0))


def _controller(body: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in (body.get("metadata") or {}).get("ownerReferences") or []
                 if r.get("controller")), None)


def registry_key(spec: ModelDeploymentSpec, namespace: str,
                 config: OperatorConfig) -> tuple[ResolveKey, RegistryTarget] | str:
    """The shared resolution key and the registry target, or an error naming the field."""
    reg = spec.model.registry
    tracking = (reg.trackingUri if reg else None) or config.default_tracking_uri
    if not tracking:
        return ("spec.model.registry.trackingUri: required, because the operator has no "
                "default registry (MODELDEPLOY_DEFAULT_TRACKING_URI)")
    if reg and reg.trackingUri:  # a registry named in the spec never mixes with defaults
        registry = reg.registryUri or reg.trackingUri
    else:
        registry = (reg.registryUri if reg else None) or config.default_registry_uri or tracking
    if config.allowed_registries:
        for field, uri in (("trackingUri", tracking), ("registryUri", registry)):
            if not registry_allowed(uri, config.allowed_registries):
                return (f"spec.model.registry.{field}: {uri} is not one of the registries "
                        f"this operator may call ({', '.join(config.allowed_registries)})")
    secret = reg.credentialsSecret if reg else None
    creds = SecretRef(namespace=namespace, name=secret.name, token_key=secret.tokenKey,
                      username_key=secret.usernameKey,
                      password_key=secret.passwordKey) if secret else None
    kind, value = spec.model.selector()
    rkey = ResolveKey(tracking_uri=tracking, registry_uri=registry, model=spec.model.name,
                      kind=kind, value=value, credentials=creds)
    return rkey, RegistryTarget(tracking_uri=tracking, registry_uri=registry, credentials=creds)


class Reconciler:
    def __init__(self, *, kube: Kube, index: Index, resolver: Resolver,
                 config: OperatorConfig, metrics: Metrics | None = None,
                 provider: MetricProvider | None = None, registry: Registry | None = None,
                 credentials: CredentialsProvider | None = None,
                 scoring: ScoringClient | None = None) -> None:
        self.kube, self.index, self.resolver, self.config = kube, index, resolver, config
        self.provider = provider
        self.registry, self.credentials, self.scoring = registry, credentials, scoring
        self._examples: dict[tuple[str, str, str, str | None], VersionDetails] = {}
        #: When each object's previous version was last looked up (RollbackReady), and the
        #: lookups themselves, shared between objects for a short while.
        self._rollback_checked: dict[Key, dt.datetime] = {}
        self._previous_seen: dict[tuple[Any, ...], tuple[float, VersionDetails]] = {}
        self.metrics = metrics or Metrics()
        self._refusals: dict[Key, int] = {}

    def forget(self, key: Key) -> None:
        """The object is gone: drop everything held for it."""
        self.index.remove(key)
        self.resolver.unsubscribe(key)
        self._refusals.pop(key, None)
        self._rollback_checked.pop(key, None)

    async def observe(self, body: dict[str, Any], key: Key) -> Observed | None:
        """One snapshot for decide(); None when the object waits for its first registry
        answer and already has a status (the resolver wakes it when the answer lands)."""
        meta = body["metadata"]
        spec, spec_error = parse_spec(body.get("spec"))
        status = parse_status(body.get("status"))
        resolution = Resolution(outcome=RegistryOutcome.UNKNOWN)
        target = RegistryTarget(tracking_uri="", registry_uri="")
        if spec is not None:
            found = registry_key(spec, meta["namespace"], self.config)
            if isinstance(found, str):
                spec, spec_error = None, found
                self.resolver.unsubscribe(key)
            else:
                rkey, target = found
                self.resolver.subscribe(key, rkey, durations.parse(spec.model.pollInterval))
                answer = self.resolver.current(rkey)
                if answer is None:
                    try:
                        answer = await asyncio.wait_for(self.resolver.ensure(rkey),
                                                        FIRST_ANSWER_WAIT)
                    except TimeoutError:
                        if status.phase is not None:
                            return None
                resolution = answer or resolution
        return Observed(
            name=meta["name"], namespace=meta["namespace"], uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 1), spec=spec, spec_error=spec_error,
            status=status, registry=resolution, target=target,
            children=self.index.children(str(meta["uid"])),
            default_image=self.config.mlflow_image, stall_after=self.config.stall_after,
            request=((meta.get("annotations") or {}).get(REQUEST_ANNOTATION) or None),
            cluster=self.config.cluster_name,
            rollback_checked_at=self._rollback_checked.get(key))

    async def reconcile(self, key: Key) -> float | None:
        """Reconcile ``key``; returns when to look again (None: only on change)."""
        body = self.index.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Children go by garbage collection (ownerReferences): no finalizer to get stuck.
            self.resolver.unsubscribe(key)
            return None
        observed = await self.observe(body, key)
        if observed is None:
            return None
        now = dt.datetime.now(dt.UTC)
        plan = decide(observed, now)
        if plan.measure or plan.gates or plan.write_back or plan.probe:
            # Measure, read the registry, smoke-test and write back what the plan asks, then
            # decide again knowing the answers: that plan carries the verdicts (and any
            # rollback) and is the one applied.
            measurements, answers, written, probed = await asyncio.gather(
                self.measure(plan.measure), self.check_gates(observed, plan.gates),
                self.write_back(observed, plan.write_back), self.probe(observed, plan.probe))
            observed = dataclasses.replace(observed, measurements=measurements,
                                           gate_answers=answers, write_results=written,
                                           probe_answers=probed)
            if plan.probe is not None and plan.probe.previous is not None:
                self._rollback_checked[key] = now
                observed = dataclasses.replace(observed, rollback_checked_at=now)
            now = dt.datetime.now(dt.UTC)
            plan = decide(observed, now)
        stored, posted = observed.status, set[Event]()
        if plan.record_first is not None:
            # The decision (a rollback, a switch back) before the route moves, and its events:
            # a retry after a failed apply or a conflict starts from the stored decision and
            # would not tell them again.
            recorded = await self.write_status(key, body, plan.record_first, stored)
            if recorded is None:
                return None
            await self.post_events(recorded, plan.events)
            # The next write goes with this resourceVersion: a spec changed meanwhile is a
            # conflict (and a retry), as for any status write.
            body, stored, posted = recorded, plan.record_first, set(plan.events)
        failure = await self.apply_children(observed, plan)
        requeue = plan.requeue_after(now)
        if failure is None:
            self._refusals.pop(key, None)
            await self.delete_children(observed, plan)
        else:
            # Decide again on the same observation, now knowing what was refused: the status
            # says so, nothing is promoted or deleted, and the retry backs off.
            plan = decide(dataclasses.replace(observed, apply_failure=failure), now)
            refusals = self._refusals[key] = self._refusals.get(key, 0) + 1
            requeue = refusal_backoff(refusals)
            log.warning("%s/%s: %s %s refused (%s): %s; retry in %.0fs", *key, failure.kind,
                        failure.name, failure.reason, failure.message, requeue)
        if await self.write_status(key, body, plan.status, stored) is None:
            return None
        await self.post_events(body, [e for e in plan.events if e not in posted])
        return requeue

    async def _registry_access(self, observed: Observed) -> tuple[ResolveKey, Any] | str:
        """The object's registry key and credentials, or why they are not available."""
        spec = observed.spec
        if spec is None or self.registry is None:
            return "the operator has no registry client"
        found = registry_key(spec, observed.namespace, self.config)
        if isinstance(found, str):
            return found
        rkey = found[0]
        try:
            creds = await self.credentials(rkey) if self.credentials is not None else None
        except LookupError as exc:
            return str(exc)
        return rkey, creds

    def _failure(self, rkey: ResolveKey, exc: BaseException) -> str:
        """What a registry call that failed (timed out, refused, unreadable) tells a status."""
        assert self.registry is not None
        if isinstance(exc, TimeoutError):
            return f"{rkey.tracking_uri}: no answer within {self.registry.timeout:.0f}s"
        return f"the registry: {type(exc).__name__}: {exc}"[:500]

    async def _score(self, namespace: str, s: SmokeRequest, details: VersionDetails, *,
                     ready_wait: float) -> SmokeResult:
        """POST the version's input example to its Service (the smoke test, and a health
        probe); a version without one is asked for ``/ping`` only."""
        url = service_url(self.config.service_url_template, service=s.service,
                          namespace=namespace, port=s.port)
        scoring = self.scoring = self.scoring or ScoringClient()
        if details.serving_example is None:
            why = await scoring.wait_ready(url, s.timeout, timeout=s.timeout)
            return SmokeResult(why is None, url, (Attempt(200 if why is None else None,
                                                          None, why),))
        return await scoring.smoke(url, details.serving_example,
                                   output_schema(details.signature), attempts=s.attempts,
                                   timeout=s.timeout, max_latency=s.max_latency,
                                   ready_wait=ready_wait)

    async def check_gates(self, observed: Observed,
                          request: GateRequest | None) -> GateAnswers | None:
        """The registry's details of the versions the gates compare, and the smoke test
        against the new version's Service. Every failure is an answer."""
        if request is None:
            return None
        access = await self._registry_access(observed)
        if isinstance(access, str):
            return GateAnswers(error=access)
        rkey, creds = access
        assert self.registry is not None
        try:
            candidate = await self.registry.details(rkey, creds, request.version)
            stable = (await self.registry.details(rkey, creds, request.stable)
                      if request.stable is not None else None)
        except (TimeoutError, *REGISTRY_ERRORS) as exc:  # an answer, never a crash
            return GateAnswers(error=self._failure(rkey, exc))
        smoke = None
        if request.smoke is not None and candidate.serving_example is not None:
            started = time.monotonic()
            smoke = await self._score(observed.namespace, request.smoke, candidate,
                                      ready_wait=min(request.smoke.timeout, SMOKE_READY_WAIT))
            if smoke.not_ready is None:
                self.metrics.smoke_tests.labels("passed" if smoke.passed else "failed").inc()
                self.metrics.smoke_seconds.observe(time.monotonic() - started)
        return GateAnswers(candidate=candidate, stable=stable, smoke=smoke)

    async def _example(self, rkey: ResolveKey, creds: Any,
                       version: ResolvedVersion) -> VersionDetails:
        """A version's details for probing it: its example and signature never change, so
        they are read once per version (a bounded cache), not at every probe."""
        assert self.registry is not None
        key = (rkey.tracking_uri, rkey.model, version.version, version.source)
        found = self._examples.get(key)
        if found is None:
            found = await self.registry.details(rkey, creds, version)
            if len(self._examples) >= EXAMPLE_CACHE:
                self._examples.pop(next(iter(self._examples)))
            self._examples[key] = found
        return found

    async def _previous(self, rkey: ResolveKey, creds: Any,
                        version: ResolvedVersion) -> VersionDetails:
        """A previous version's registry details, shared for PREVIOUS_TTL seconds by every
        object that could roll back to it (1,000 objects on ten models cost ten lookups)."""
        assert self.registry is not None
        key = (rkey.tracking_uri, rkey.registry_uri, rkey.credentials, rkey.model,
               version.version, version.source)
        now = time.monotonic()
        hit = self._previous_seen.get(key)
        if hit is not None and now - hit[0] < PREVIOUS_TTL:
            return hit[1]
        found = await self.registry.details(rkey, creds, version)
        if len(self._previous_seen) >= EXAMPLE_CACHE:
            self._previous_seen = {k: v for k, v in self._previous_seen.items()
                                   if now - v[0] < PREVIOUS_TTL}
        self._previous_seen[key] = (now, found)
        return found

    async def probe(self, observed: Observed,
                    request: ProbeRequest | None) -> ProbeAnswers | None:
        """Probe the serving version with its input example, and look the previous version
        up in the registry. Every failure is an answer."""
        if request is None:
            return None
        access = await self._registry_access(observed)
        if isinstance(access, str):
            return ProbeAnswers(request, error=access)
        rkey, creds = access
        assert self.registry is not None
        stable = previous = smoke = None
        try:
            if request.previous is not None:
                previous = await self._previous(rkey, creds, request.previous)
            if request.stable is not None:
                stable = await self._example(rkey, creds, request.stable)
        except (TimeoutError, *REGISTRY_ERRORS) as exc:
            return ProbeAnswers(request, previous=previous, error=self._failure(rkey, exc))
        if request.smoke is not None and stable is not None:
            smoke = await self._score(observed.namespace, request.smoke, stable, ready_wait=0)
            self.metrics.health_probes.labels("passed" if smoke.passed else "failed").inc()
        return ProbeAnswers(request, stable=stable, smoke=smoke, previous=previous)

    async def write_back(self, observed: Observed,
                         writes: tuple[RegistryWrite, ...]) -> tuple[WriteResult, ...]:
        """Make the owed registry writes; each one's failure comes back as its answer."""
        if not writes:
            return ()
        access = await self._registry_access(observed)
        if isinstance(access, str):
            return tuple(WriteResult(x, access) for x in writes)
        rkey, creds = access
        assert self.registry is not None
        out = []
        for x in writes:
            try:
                await self.registry.write_back(dataclasses.replace(rkey, model=x.model), creds,
                                               x.version, tags=dict(x.tags),
                                               aliases=tuple(x.aliases))
            except (TimeoutError, *REGISTRY_ERRORS) as exc:  # the registry's refusal: an answer
                out.append(WriteResult(x, self._failure(rkey, exc), permanent=permanent(exc)))
            else:
                out.append(WriteResult(x))
            self.metrics.registry_writes.labels(
                "error" if out[-1].error is not None else "ok").inc()
            # In order: the later writes wait for a failed one, unless it was refused for
            # good (it will never land).
            if out[-1].error is not None and not out[-1].permanent:
                break
        return tuple(out)

    async def measure(self, requests: tuple[MeasurementRequest, ...]) -> tuple[Measurement, ...]:
        """Every query of every request, side by side; failures come back as answers."""
        if not requests:
            return ()
        provider = self.provider

        async def one(query: str | None) -> QueryResult | None:
            if query is None:
                return None
            if provider is None:
                return QueryResult(error="no metric provider: the operator has no "
                                         "MODELDEPLOY_PROMETHEUS_URL")
            return await provider.query(query)

        async def request(r: MeasurementRequest) -> Measurement:
            candidate, stable, count = await asyncio.gather(
                one(r.query), one(r.stable_query), one(r.requests_query))
            assert candidate is not None
            return Measurement(metric=r.metric, candidate=candidate, stable=stable,
                               requests=count)

        started = time.monotonic()
        answers = tuple(await asyncio.gather(*(request(r) for r in requests)))
        self.metrics.analysis_seconds.observe(time.monotonic() - started)
        return answers

    async def apply_children(self, observed: Observed, plan: Plan) -> ApplyFailure | None:
        """Apply the plan's manifests in order; stop at the first one refused for good."""
        for manifest in plan.apply:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            conflict = await self._held_by_another(observed, kind, name)
            if conflict is not None:
                return ApplyFailure(kind, name, "Conflict", conflict)
            try:
                await self._hand_over_replicas(observed, manifest)
                applied = await self.kube.apply(manifest)
            except ApiError as exc:
                if exc.status not in PERMANENT_STATUSES or namespace_terminating(exc):
                    raise
                return ApplyFailure(kind, name, "ApplyFailed", refusal_message(manifest, exc))
            self.metrics.wrote("apply", kind)
            if isinstance(applied, dict):
                self.index.upsert_child(kind, applied)
        return None

    async def _held_by_another(self, observed: Observed, kind: str, name: str) -> str | None:
        """Why ``name`` may not be applied (it belongs to someone else), or None. Objects we
        already own are known from the watches; a name we are about to create is looked up,
        because a forced apply would silently take over whatever holds it."""
        if observed.child(kind, name) is not None:
            return None
        holder = self.index.holder(observed.namespace, kind, name)
        if holder is None or holder == observed.uid:
            existing = await self.kube.get(kind, observed.namespace, name)
            if existing is None:
                return None
            ref = _controller(existing)
            if ref is not None and ref.get("uid") == observed.uid:
                return None
            who = (f"{ref.get('kind')} {ref.get('name')}" if ref is not None
                   else "no controller (it was created by someone else)")
        else:
            who = "another ModelDeployment"
        return (f"{kind} {name} already exists and is controlled by {who}; the operator will "
                "not take it over: rename this ModelDeployment or remove that object")

    async def _hand_over_replicas(self, observed: Observed, manifest: dict[str, Any]) -> None:
        """Autoscaling was just turned on: our apply no longer sets spec.replicas, and server-
        side apply would reset a field its only owner dropped (to 1). A second field manager
        first takes co-ownership of the current count, so the field stays until the
        HorizontalPodAutoscaler writes it (and takes it over)."""
        if manifest["kind"] != "Deployment" or "replicas" in manifest["spec"]:
            return
        meta = manifest["metadata"]
        child = observed.child("Deployment", meta["name"])
        if child is None or not child.replicas_owned:
            return
        await self.kube.apply({"apiVersion": manifest["apiVersion"], "kind": "Deployment",
                               "metadata": {"name": meta["name"],
                                            "namespace": meta["namespace"]},
                               "spec": {"replicas": child.replicas}},
                              field_manager=HANDOVER_MANAGER)
        self.metrics.wrote("apply", "Deployment")

    async def delete_children(self, observed: Observed, plan: Plan) -> None:
        for ref in plan.delete:
            if await self.kube.delete(ref.kind, observed.namespace, ref.name, uid=ref.uid):
                self.metrics.wrote("delete", ref.kind)  # False: gone, or no longer ours
            self.index.deleted_by_us(observed.uid, ref.kind, ref.name)

    async def write_status(self, key: Key, body: dict[str, Any], status: ModelDeploymentStatus,
                           stored: ModelDeploymentStatus) -> dict[str, Any] | None:
        """Replace the status if it differs from the ``stored`` one; the object as it now
        stands (``body`` when nothing changed), or None when it is gone."""
        new, old = status_dict(status), status_dict(stored)
        if new == old:
            return body
        meta = body["metadata"]
        try:
            written = await self.kube.replace_status(
                meta["namespace"], meta["name"], uid=str(meta["uid"]),
                resource_version=str(meta.get("resourceVersion") or ""), status=new)
        except ApiError as exc:
            if exc.status == 404:
                self.forget(key)
                return None
            if exc.status == 409:
                raise StatusConflictError(exc.message) from exc
            raise
        self.metrics.wrote("status", KIND)
        if not isinstance(written, dict):
            return body
        self.index.upsert(written)
        return written

    async def post_events(self, body: dict[str, Any], events: Iterable[Event]) -> None:
        # Status before events: events are derived from status transitions, so once the new
        # status is stored a crash can only lose an event, never post it twice.
        for event in events:
            try:
                await self.kube.post_event(body, type_=event.type, reason=event.reason,
                                           message=event.message)
                self.metrics.wrote("event", "Event")
                self.metrics.release_events.labels(event.reason).inc()
            except ApiError as exc:  # an event is not worth failing a reconcile for
                log.warning("posting event %s failed: %s", event.reason, exc)


def refusal_message(manifest: dict[str, Any], exc: ApiError) -> str:
    """What the apiserver said about a manifest it refused, in words a user can act on: a bare
    404 ("404 page not found") on an apply means the kind itself is not served."""
    status = f"{exc.status} {exc.reason}".strip()
    if exc.status == 404 and exc.reason != "NotFound":
        return (f"the apiserver does not serve {manifest['kind']} ({manifest['apiVersion']}; "
                f"{status}: {exc.message.strip()}): install its CRDs, or choose another "
                "spec.traffic.router")
    return f"the apiserver refused it ({status}): {exc.message}"[:800]


def namespace_terminating(exc: Exception) -> bool:
    return isinstance(exc, ApiError) and exc.status == 403 and \
        "because it is being terminated" in exc.message
