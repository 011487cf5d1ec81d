"""``ModelDeployment.status``: everything the rollout knows lives here, and only here.

A restarted operator resumes from this object alone, so each field is the truth about the
cluster, never a plan. Shape written by the operator::

    status:
      phase: Stable
      observedGeneration: 4
      selector: "@champion"
      stable:   {version: "7", runId: 1f3c..., source: "models:/m-...", modelUri: ..., since: ..}
      canary:   {version: "8", runId: ..., weight: 0}       # while a new version comes up
      rollout:  {type: Rolling, rolling: {version: "8", startedAt: ...}}   # the state machine
      resolved: {version: "8", runId: ..., source: ..., at: ...}  # the registry's last answer
      conditions: [{type: Ready, status: "True", reason: .., message: .., lastTransitionTime: ..}]
      history: [{version: "7", outcome: Promoted, at: ...}]
      message: "serving version 7 (run 1f3c...)"
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeldeploy.core.analysis import Verdict

HISTORY_LIMIT = 10
#: The members of status.rollout that hold a release (canary, blue-green, A/B, shadow).
RELEASE_MEMBERS = ("canary", "blueGreen", "abTest", "shadow")


def release_of(rollout: object) -> dict[str, Any] | None:
    """The release member of a raw ``status.rollout`` dict, whichever is set (None when it is
    not a dict or holds none: a status someone edited by hand must not break a reader)."""
    if not isinstance(rollout, dict):
        return None
    return next((m for m in (rollout.get(k) for k in RELEASE_MEMBERS)
                 if isinstance(m, dict)), None)


class _Status(BaseModel):
    # Status is read back from the cluster: tolerate fields written by newer operators.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Phase(StrEnum):
    """Where the ModelDeployment stands, as one word for `kubectl get`."""

    PENDING = "Pending"  # nothing serves yet: first resolution or first version coming up
    STABLE = "Stable"  # the tracked version serves and is Ready
    PROGRESSING = "Progressing"  # a new version is being brought up or switched to
    PAUSED = "Paused"  # a rollout waits for a human (progressive delivery)
    ROLLING_BACK = "RollingBack"  # traffic is returning to the stable version
    DEGRADED = "Degraded"  # something is wrong, but the last good version keeps serving
    FAILED = "Failed"  # nothing can serve (e.g. the first version never resolved)


class ConditionType(StrEnum):
    """Condition types this operator writes."""

    READY = "Ready"  # the stable version serves with all replicas Ready
    PROGRESSING = "Progressing"  # a version change is under way
    DEGRADED = "Degraded"  # the spec cannot be met right now; see reason
    REGISTRY_REACHABLE = "RegistryReachable"  # the last registry call succeeded
    HEALTHY = "Healthy"  # the serving version answers its input example (spec.healthCheck)
    ROLLBACK_READY = "RollbackReady"  # the previous version can still be rolled back to
    # kstatus (Flux, kpt, cli-utils) reads these two and ignores the rest:
    RECONCILING = "Reconciling"  # the operator is still working towards the spec (InProgress)
    STALLED = "Stalled"  # the spec cannot be met without a human (kstatus: Failed)


class Outcome(StrEnum):
    """How a version left (or entered) service, in history."""

    PROMOTED = "Promoted"  # became the stable version
    REPLACED = "Replaced"  # was stable until a newer version was promoted
    ROLLED_BACK = "RolledBack"  # analysis, a deadline or a request sent traffic back to stable
    ABANDONED = "Abandoned"  # a release was dropped because the tracked version moved again
    RETRIED = "Retried"  # a rolled-back version was released again on request
    REJECTED = "Rejected"  # a gate stopped it before it had any traffic


class Condition(_Status):
    type: str = Field(description="Condition type.")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    lastTransitionTime: str | None = Field(default=None, description="When status last changed.")
    observedGeneration: int | None = Field(default=None, description="Spec generation seen.")


class VersionInfo(_Status):
    version: str = Field(description="Model version number.")
    runId: str | None = Field(default=None, description="MLflow run that produced it.")
    source: str | None = Field(default=None, description="Registry source URI of the version.")
    modelUri: str | None = Field(default=None, description="URI the server loads.")


class Stable(VersionInfo):
    since: str | None = Field(default=None, description="When it became stable.")


class Canary(VersionInfo):
    weight: int = Field(default=0, description=(
        "Percent of traffic it receives, read back from the live route."))
    step: str | None = Field(default=None, description=(
        "Canary step as n/total while steps are under way (for kubectl get -o wide)."))


class RolloutType(StrEnum):
    """Which release state machine is running (the tag of :class:`RolloutState`)."""

    ROLLING = "Rolling"  # bring the new version up in full, then move all traffic at once
    CANARY = "Canary"  # shift traffic to the new version step by step, with analysis
    BLUE_GREEN = "BlueGreen"  # new version in full behind a preview Service, then switch
    AB_TEST = "AbTest"  # a sticky audience on the new version for a while, then promote
    SHADOW = "Shadow"  # requests mirrored to the new version for a while, then promote


class Rolling(_Status):
    """A rolling switch: the new version comes up next to the stable one; once every desired
    replica is Ready, all traffic moves to it in one step."""

    version: str = Field(description="The version being brought up.")
    startedAt: str | None = Field(default=None, description="When the switch started.")


class ReleaseState(StrEnum):
    """Where a canary or blue-green release stands."""

    GATING = "Gating"  # registry gates are checked (or wait); the version has no pods yet
    STARTING = "Starting"  # the new version's pods come up; it has no traffic
    STEPPING = "Stepping"  # holding a step's weight while analysis runs
    PAUSED = "Paused"  # a step with an empty pause or a pause request (waits for a human), or
    # an unsuccessful measurement (the next successful one moves on)
    PROMOTING = "Promoting"  # all traffic moves to the new version; it becomes stable next
    ROLLING_BACK = "RollingBack"  # traffic returns to the stable version, then it scales down
    ABORTED = "Aborted"  # rolled back; not deployed again while the selector points at it
    SWITCHED = "Switched"  # blue-green: traffic switched; the old version stays up a while
    BAKING = "Baking"  # promoted; still analysed, the previous version up to switch back to


class MeasurementStatus(_Status):
    """The last measurement of one metric."""

    metric: str = Field(description="Metric name from spec.rollout.analysis.metrics.")
    verdict: Verdict = Field(description="Successful, Failed, Inconclusive or Error.")
    value: float | None = Field(default=None, description="The new version's value.")
    stableValue: float | None = Field(default=None, description=(
        "The stable version's value (relative thresholds only)."))
    threshold: str = Field(default="", description="What the value was held against.")
    message: str = Field(default="", description="The verdict in words.")
    query: str = Field(default="", description="The PromQL that was run.")
    at: str | None = Field(default=None, description="When it was measured.")


class AnalysisStatus(_Status):
    """Analysis counters of the release in flight (Argo Rollouts' limits apply to them)."""

    successful: int = Field(default=0, description="Successful measurements.")
    failed: int = Field(default=0, description="Failed measurements.")
    inconclusive: int = Field(default=0, description="Inconclusive measurements.")
    consecutiveErrors: int = Field(default=0, description="Errors since the last success.")
    nextAt: str | None = Field(default=None, description="When the next measurement is due.")
    stepSuccesses: int = Field(default=0, description=(
        "Successful measurements at the current step (a step with analysis needs one)."))
    measurements: list[MeasurementStatus] = Field(default_factory=list, description=(
        "The last measurement of each metric."))


class GateResult(StrEnum):
    """What one gate concluded about the version."""

    PENDING = "Pending"  # not judged yet (its turn has not come, or the server is starting)
    PASSED = "Passed"
    FAILED = "Failed"  # the version is stopped before any traffic
    WAITING = "Waiting"  # required registry marks are not there yet, or approval is needed
    APPROVED = "Approved"  # a breaking change a human let through (promote request)
    WARNED = "Warned"  # a breaking change that onBreakingChange: warn lets through
    SKIPPED = "Skipped"  # nothing to judge (no input example, no stable version) by policy


class GateCheck(_Status):
    """One compared value inside a gate: a metric, a signature difference, a tag, an attempt."""

    name: str = Field(description="What was compared: a metric, a column, a tag, attempt N.")
    result: GateResult = Field(description="Passed, Failed, Skipped or Waiting.")
    value: str | None = Field(default=None, description="The new version's value.")
    stableValue: str | None = Field(default=None, description="The stable version's value.")
    limit: str | None = Field(default=None, description="What the value was held against.")
    message: str = Field(default="", description="The comparison in words.")


class GateStatus(_Status):
    """The result of one gate (spec.rollout.gates) for the release in flight."""

    gate: str = Field(description="SmokeTest, RegistryMetrics, Signature or Required.")
    result: GateResult = Field(description=(
        "Pending, Passed, Failed, Waiting, Approved, Warned or Skipped."))
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Why, naming the values compared.")
    checks: list[GateCheck] = Field(default_factory=list, description=(
        "Each value compared (metrics, signature differences, marks, smoke attempts)."))
    latencyMs: float | None = Field(default=None, description=(
        "Smoke test: the passing (or last) answer's latency in milliseconds."))
    startedAt: str | None = Field(default=None, description="When the gate began.")
    at: str | None = Field(default=None, description="When it was last judged.")


class Release(_Status):
    """A canary or blue-green release. Every time is absolute, so a restarted operator waits
    out only what is left of a pause."""

    version: str = Field(description="The version being released.")
    state: ReleaseState = Field(description=(
        "Gating, Starting, Stepping, Paused, Promoting, RollingBack, Aborted, Switched or "
        "Baking."))
    step: int = Field(default=0, description="Index of the current canary step.")
    weight: int = Field(default=0, description=(
        "Percent of traffic the new version has, read back from the live route."))
    startedAt: str | None = Field(default=None, description="When the release started.")
    notReadySince: str | None = Field(default=None, description=(
        "Since when the new version has not been Ready at its current size (absent: it is); "
        "progressDeadline counts from here."))
    stepStartedAt: str | None = Field(default=None, description=(
        "When the current step's weight was confirmed on the route."))
    stepEndsAt: str | None = Field(default=None, description=(
        "When the current step's pause ends (absent: no timed pause)."))
    pausedBy: str | None = Field(default=None, description=(
        "Why it is paused: Step (an empty pause), Request (a pause request) or Analysis "
        "(the last measurement was not successful; the next successful one resumes)."))
    switchedAt: str | None = Field(default=None, description=(
        "Blue-green: when traffic switched (the old version scales down scaleDownDelay later)."))
    previous: VersionInfo | None = Field(default=None, description=(
        "The version that served before the switch (blue-green) or the promotion (bake "
        "window), kept up until scaleDownDelay or bakeWindow has passed (an abort or a "
        "failed measurement meanwhile switches back to it at once)."))
    bakeEndsAt: str | None = Field(default=None, description=(
        "When the bake window ends (spec.rollout.bakeWindow)."))
    fastTrack: bool | None = Field(default=None, description=(
        "The version served as stable here within fastTrackWindow: it skips the steps."))
    reason: str | None = Field(default=None, description=(
        "Why it rolled back: AnalysisFailed, AnalysisInconclusive, AnalysisErrors, "
        "ProgressDeadlineExceeded or Aborted (a request)."))
    message: str | None = Field(default=None, description="The rollback in words.")
    analysis: AnalysisStatus | None = Field(default=None, description=(
        "Analysis counters and the last measurement of each metric."))
    gates: list[GateStatus] | None = Field(default=None, description=(
        "Each configured gate's result, checked before the version gets any traffic."))


class RolloutState(_Status):
    """Where a release stands, as a tagged union in the Kubernetes style (like a Deployment's
    ``strategy: {type: RollingUpdate, rollingUpdate: {...}}``): ``type`` names the state
    machine and exactly the member of that name is set. A reader that meets a ``type`` it
    does not know refuses it."""

    type: RolloutType = Field(description="Rolling, Canary, BlueGreen, AbTest or Shadow.")
    rolling: Rolling | None = Field(default=None, description="State of a Rolling release.")
    canary: Release | None = Field(default=None, description="State of a Canary release.")
    blueGreen: Release | None = Field(default=None, description=(
        "State of a BlueGreen release."))
    abTest: Release | None = Field(default=None, description="State of an AbTest release.")
    shadow: Release | None = Field(default=None, description="State of a Shadow release.")

    @model_validator(mode="after")
    def _member_matches_type(self) -> Self:
        members = {t: getattr(self, t.value[0].lower() + t.value[1:]) for t in RolloutType}
        if members[self.type] is None or any(v is not None for t, v in members.items()
                                             if t is not self.type):
            raise ValueError(f"rollout type {self.type.value} needs exactly its own member")
        return self

    @property
    def release(self) -> Release | None:
        """The canary, blue-green, A/B or shadow member, whichever is set."""
        return self.canary or self.blueGreen or self.abTest or self.shadow


class Request(_Status):
    """The last manual request handled (from the modeldeploy.io/request annotation)."""

    value: str = Field(description="The annotation's value, e.g. promote or retry:2.")
    action: str = Field(description="promote, abort, retry, pause or resume.")
    result: str = Field(default="", description="What it did, or why it did nothing.")
    at: str | None = Field(default=None, description="When it was handled.")


class Resolved(VersionInfo):
    at: str | None = Field(default=None, description="When the registry answered this.")


class HistoryEntry(_Status):
    version: str = Field(description="Model version.")
    outcome: Outcome = Field(description=(
        "Promoted, Replaced, RolledBack, Abandoned, Retried or Rejected."))
    reason: str | None = Field(default=None, description="Why.")
    at: str | None = Field(default=None, description="When.")


class Health(_Status):
    """The last probes of the serving version (spec.healthCheck)."""

    version: str = Field(description="The version probed.")
    result: str = Field(description="Healthy, Unhealthy or Unknown (not probed yet).")
    consecutiveFailures: int = Field(default=0, description="Failed probes in a row.")
    latencyMs: float | None = Field(default=None, description="The last answer's latency.")
    message: str = Field(default="", description="The last probe in words.")
    lastProbeAt: str | None = Field(default=None, description="When it was last probed.")
    nextAt: str | None = Field(default=None, description="When the next probe is due.")


class Previous(VersionInfo):
    """The version the stable one replaced: what a rollback returns to."""

    replacedAt: str | None = Field(default=None, description="When it stopped serving.")
    ready: bool | None = Field(default=None, description=(
        "Whether it can still be rolled back to (None: not checked yet)."))
    reason: str | None = Field(default=None, description="Why (not): CamelCase.")
    message: str | None = Field(default=None, description="Why, in words.")


class RegistryWrite(_Status):
    """A write-back to the registry that is owed (spec.model.writeBack): kept here until the
    registry accepted it, so a restarted operator still makes it."""

    model: str = Field(description="The registered model.")
    version: str = Field(description="The model version written to.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags to set on it.")
    aliases: list[str] = Field(default_factory=list, description="Aliases to point at it.")
    attempts: int = Field(default=0, description="Failed attempts so far.")
    nextAt: str | None = Field(default=None, description="When the next attempt is due.")
    lastError: str | None = Field(default=None, description="What the registry said last.")


class ModelDeploymentStatus(_Status):
    phase: Phase | None = Field(default=None, description=(
        "Pending, Stable, Progressing, Paused, RollingBack, Degraded or Failed."))
    observedGeneration: int | None = Field(default=None, description=(
        "The spec generation this status describes."))
    selector: str | None = Field(default=None, description=(
        "What the spec tracks, e.g. @champion, stage:Production, v3 or latest."))
    stable: Stable | None = Field(default=None, description="The version serving traffic.")
    canary: Canary | None = Field(default=None, description=(
        "The version being brought up, while a change is under way."))
    rollout: RolloutState | None = Field(default=None, description=(
        "The release in flight (absent when idle): its state machine and progress."))
    resolved: Resolved | None = Field(default=None, description=(
        "The registry's latest answer for spec.model."))
    conditions: list[Condition] = Field(default_factory=list, description=(
        "Ready, Progressing, Degraded, RegistryReachable, Healthy, RollbackReady, "
        "Reconciling and Stalled."))
    history: list[HistoryEntry] = Field(default_factory=list, description=(
        f"The last {HISTORY_LIMIT} version transitions, newest first."))
    lastRequest: Request | None = Field(default=None, description=(
        "The last modeldeploy.io/request annotation handled (each value is handled once)."))
    health: Health | None = Field(default=None, description=(
        "Probes of the serving version (spec.healthCheck)."))
    previous: Previous | None = Field(default=None, description=(
        "The version the stable one replaced, and whether a rollback to it would work."))
    registryWrites: list[RegistryWrite] | None = Field(default=None, description=(
        "Registry write-backs not yet accepted by the registry (retried with backoff)."))
    message: str | None = Field(default=None, description="One line about the current state.")
