"""The frozen inputs and outputs of ``decide()``: what was observed, and the plan.

``Observed`` is one snapshot of everything a decision may depend on: the object, the
registry's answer, the children as the watches last saw them (including the route's live
weights), measurements that are due, and what went wrong applying the previous plan.
``Plan`` is everything the apply step does: the next status, the manifests to apply, the
children to delete (by UID), the traffic split, measurements to take, registry write-backs,
events, and an absolute time to look again. Canary steps and analysis add values to these
fields, not new channels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modeldeploy.api import DEFAULT_MLFLOW_IMAGE
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, RegistryWrite, VersionInfo
from modeldeploy.core.analysis import QueryResult


class RegistryOutcome(StrEnum):
    """What the registry said about spec.model."""

    OK = "ok"  # a version was resolved
    NOT_FOUND = "not_found"  # the registry answered: no such model / alias / version / stage
    UNREACHABLE = "unreachable"  # no answer (network, timeout, 5xx, auth): try again later
    UNKNOWN = "unknown"  # not asked yet (first reconcile before the first resolution)


@dataclass(frozen=True)
class ResolvedVersion:
    version: str
    run_id: str | None
    source: str | None
    model_uri: str

    @classmethod
    def of(cls, v: VersionInfo) -> ResolvedVersion:
        """A version as status records it, to ask the registry about it again."""
        return cls(version=v.version, run_id=v.runId, source=v.source,
                   model_uri=v.modelUri or "")


@dataclass(frozen=True)
class Resolution:
    outcome: RegistryOutcome
    version: ResolvedVersion | None = None
    #: CamelCase reason: Resolved, ModelNotFound, AliasNotFound, VersionNotFound, StageEmpty,
    #: NoVersions, InvalidSpec (the registry refuses the name), RegistryUnreachable,
    #: RegistryUnauthorized, CredentialsUnavailable.
    reason: str = ""
    message: str = ""
    at: dt.datetime | None = None


@dataclass(frozen=True)
class SecretRef:
    """A registry credentials Secret and the key names inside it (names, not values)."""

    namespace: str
    name: str
    token_key: str = "token"  # noqa: S105
    username_key: str = "username"
    password_key: str = "password"  # noqa: S105


@dataclass(frozen=True)
class RegistryTarget:
    """Where the registry is and how pods authenticate to it (for rendering)."""

    tracking_uri: str
    registry_uri: str
    credentials: SecretRef | None = None


@dataclass(frozen=True)
class Audience:
    """An A/B audience: requests with this header (or cookie) value go to ``version``."""

    version: str
    value: str
    header: str | None = None
    cookie: str | None = None


@dataclass(frozen=True)
class Mirror:
    """``percent`` of the default rule's requests copied to ``version`` (answers unseen)."""

    version: str
    percent: int


@dataclass(frozen=True)
class Split:
    """A traffic split: version -> percent, summing to 100 (empty: no traffic anywhere); and,
    for an A/B test, the audience routed by a header or cookie, for a shadow, the mirror."""

    weights: tuple[tuple[str, int], ...] = ()
    audience: Audience | None = None
    mirror: Mirror | None = None

    @classmethod
    def of(cls, weights: dict[str, int]) -> Split:
        return cls(tuple(sorted(weights.items(), key=lambda kv: version_key(kv[0]))))

    @classmethod
    def all_to(cls, version: str) -> Split:
        return cls(((version, 100),))

    def as_dict(self) -> dict[str, int]:
        return dict(self.weights)

    def weight(self, version: str) -> int:
        return self.as_dict().get(version, 0)


def version_key(version: str) -> tuple[int, str]:
    """Numeric order for version numbers ("9" before "10")."""
    return (int(version), version) if version.isdigit() else (0, version)


@dataclass(frozen=True)
class Child:
    """A child object as last seen (from the watch index, never a fresh GET)."""

    kind: str
    name: str
    version: str | None
    hash: str | None
    uid: str | None = None
    #: Digest of the fields the operator owns, read from the live object (see
    #: :func:`modeldeploy.core.render.fingerprint`): a change by anyone else shows here.
    fingerprint: str | None = None
    # Deployments only:
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    current: bool = True  # status.observedGeneration >= metadata.generation
    deadline_exceeded: bool = False
    #: spec.replicas is set by the operator's own apply (not handed to an autoscaler yet).
    replicas_owned: bool = False
    # Routes only: (backend Service name, weight) of the default rule as the route object
    # says it; the backend of the first header/cookie-matched rule (an A/B audience); the
    # default rule's mirror (backend Service name, percent).
    backends: tuple[tuple[str, int], ...] = ()
    audience: str | None = None
    mirror: tuple[str, int] | None = None

    def ready_for(self, desired: int) -> bool:
        """Every one of ``desired`` replicas is updated and Ready, and the Deployment has
        seen its current spec. Zero desired replicas is vacuously ready; a Deployment
        scaled to zero out of band is not, when more are desired."""
        want = max(desired, self.replicas)
        return self.current and self.ready >= want and self.updated >= want


@dataclass(frozen=True)
class ChildRef:
    """A child to delete: the UID precondition guarantees it is the object we saw."""

    kind: str
    name: str
    uid: str | None


@dataclass(frozen=True)
class ApplyFailure:
    """The apiserver refused a child of the previous plan; it is not worth retrying soon."""

    kind: str
    name: str
    #: ApplyFailed (400/403/404/422) or Conflict (the name belongs to another owner).
    reason: str
    message: str


@dataclass(frozen=True)
class MeasurementRequest:
    """The queries of one analysis metric that decide() wants run before its next call."""

    metric: str
    query: str  # the new version's value
    stable_query: str | None = None  # the stable version's value (relative thresholds)
    requests_query: str | None = None  # the new version's requests in the window


@dataclass(frozen=True)
class Measurement:
    """The provider's answers to one MeasurementRequest (errors are answers too)."""

    metric: str
    candidate: QueryResult
    stable: QueryResult | None = None
    requests: QueryResult | None = None


@dataclass(frozen=True)
class VersionDetails:
    """What gates need beyond the resolution: run metrics, signature, input example, and the
    version's own marks in the registry (tags, aliases, stage, status)."""

    metrics: dict[str, float]
    signature: dict[str, Any] | None
    input_example: Any | None
    #: The payload to POST to the model server's /invocations (MLflow's serving input
    #: example, else the input example in ``dataframe_split`` form), None without one.
    serving_example: Any | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    stage: str | None = None
    #: MLflow's registration status (READY, PENDING_REGISTRATION, FAILED_REGISTRATION).
    status: str | None = None
    #: The version still exists in the registry (False: deleted since it was resolved).
    exists: bool = True
    #: Its run still exists (False: no run, or the run was deleted).
    run_found: bool = True
    #: Its MLmodel could be read (False: the artifacts are gone; None: not checkable here).
    artifacts_found: bool | None = None


@dataclass(frozen=True)
class Attempt:
    """One smoke-test request."""

    #: HTTP status, None when no answer came (refused, timed out).
    status: int | None
    #: Seconds until the whole answer was read, None when none came.
    latency: float | None
    #: Why this attempt failed; None when it passed.
    problem: str | None


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    url: str
    attempts: tuple[Attempt, ...]
    #: The scoring server did not answer its health check yet: nothing was judged.
    not_ready: str | None = None

    @property
    def message(self) -> str:
        if self.not_ready is not None:
            return f"{self.url}: {self.not_ready}"
        last = self.attempts[-1] if self.attempts else None
        if self.passed and last is not None and last.latency is not None:
            tries = "" if len(self.attempts) == 1 else f" (attempt {len(self.attempts)})"
            return f"{self.url}/invocations answered as the signature says in " \
                   f"{last.latency * 1000:.0f} ms{tries}"
        problems = "; ".join(a.problem or "" for a in self.attempts)
        return f"{self.url}/invocations failed {len(self.attempts)} attempt(s): {problems}"


@dataclass(frozen=True)
class SmokeRequest:
    """Run the smoke test against the new version's Service."""

    service: str
    port: int
    attempts: int
    timeout: float
    max_latency: float


@dataclass(frozen=True)
class GateRequest:
    """What decide() needs from outside to judge the gates of the release in flight: the
    registry's details of the new version (and the stable one), and a smoke test."""

    version: ResolvedVersion
    stable: ResolvedVersion | None = None
    smoke: SmokeRequest | None = None


@dataclass(frozen=True)
class GateAnswers:
    """The answers to a GateRequest. A registry that could not be read is an answer too."""

    candidate: VersionDetails | None = None
    stable: VersionDetails | None = None
    #: Why the registry could not be read (then nothing is judged; the gate is retried).
    error: str | None = None
    smoke: SmokeResult | None = None


@dataclass(frozen=True)
class ProbeRequest:
    """Probe the serving version (its input example to its Service), and check that the
    previous version can still be rolled back to."""

    stable: ResolvedVersion | None = None
    smoke: SmokeRequest | None = None
    previous: ResolvedVersion | None = None


@dataclass(frozen=True)
class ProbeAnswers:
    request: ProbeRequest
    stable: VersionDetails | None = None
    smoke: SmokeResult | None = None
    previous: VersionDetails | None = None
    #: Why the registry could not be read.
    error: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """How one owed registry write went (None: accepted)."""

    write: RegistryWrite
    error: str | None = None
    #: The registry refused it for good (no permission, the version or model is gone): trying
    #: again cannot help, so it is reported once and dropped.
    permanent: bool = False


@dataclass(frozen=True)
class Observed:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: ModelDeploymentSpec | None
    spec_error: str | None
    status: ModelDeploymentStatus
    registry: Resolution
    target: RegistryTarget
    children: tuple[Child, ...] = ()
    default_image: str = DEFAULT_MLFLOW_IMAGE
    #: Answers to the previous plan's measurement requests (second decide of a reconcile).
    measurements: tuple[Measurement, ...] = ()
    #: The modeldeploy.io/request annotation (promote, abort, retry, pause, resume).
    request: str | None = None
    #: Set on the second decide() of a reconcile whose apply step was refused.
    apply_failure: ApplyFailure | None = None
    #: How long a registry "not found" may last before the object counts as Stalled.
    stall_after: float = 120.0
    #: Answers to the previous plan's gate request (second decide of a reconcile).
    gate_answers: GateAnswers | None = None
    #: Results of the previous plan's registry writes (second decide of a reconcile).
    write_results: tuple[WriteResult, ...] = ()
    #: The cluster's name, written with outcomes to the registry (MODELDEPLOY_CLUSTER_NAME).
    cluster: str = ""
    #: Answers to the previous plan's probe request (second decide of a reconcile).
    probe_answers: ProbeAnswers | None = None
    #: When this operator last checked that the previous version can be rolled back to
    #: (memory: an unchanged answer is no status write; after a restart it is checked again).
    rollback_checked_at: dt.datetime | None = None

    def deployment(self, version: str) -> Child | None:
        return next((c for c in self.children
                     if c.kind == "Deployment" and c.version == version), None)

    def child(self, kind: str, name: str) -> Child | None:
        return next((c for c in self.children if c.kind == kind and c.name == name), None)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: ModelDeploymentStatus
    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[ChildRef, ...] = ()  # after every apply
    #: The split the applied route objects carry (None: no change of traffic is planned).
    traffic: Split | None = None
    measure: tuple[MeasurementRequest, ...] = ()
    #: Gate inputs to fetch (registry details, a smoke test) before deciding again.
    gates: GateRequest | None = None
    #: Owed registry writes that are due (already stored in status).
    write_back: tuple[RegistryWrite, ...] = ()
    #: A health probe of the serving version and a rollback-readiness check that are due.
    probe: ProbeRequest | None = None
    events: tuple[Event, ...] = ()
    #: When to look again even if nothing changes (None: only on change).
    wake_at: dt.datetime | None = None
    #: A status to store before anything is applied (a rollback or a switch back that moves
    #: the route): the decision outlives a crash before the final status is stored.
    record_first: ModelDeploymentStatus | None = None

    def requeue_after(self, now: dt.datetime) -> float | None:
        if self.wake_at is None:
            return None
        return max(0.0, (self.wake_at - now).total_seconds())
