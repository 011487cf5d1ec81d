"""``ModelDeployment.status``: everything the rollout knows lives here, and only here.

A restarted operator resumes from this object alone, so each field is the truth about the
cluster, never a plan. Shape written by the operator::

    status:
      phase: Stable
      observedGeneration: 4
      selector: "@champion"
      stable:   {version: "7", runId: 1f3c..., source: "models:/m-...", modelUri: ..., since: ..}
      canary:   {version: "8", runId: ..., weight: 0, step: 0, startedAt: ...}  # while switching
      resolved: {version: "8", runId: ..., source: ..., at: ...}  # the registry's last answer
      conditions: [{type: Ready, status: "True", reason: .., message: .., lastTransitionTime: ..}]
      history: [{version: "7", outcome: Promoted, at: ...}]
      message: "serving version 7 (run 1f3c...)"
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

HISTORY_LIMIT = 10


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


class Outcome(StrEnum):
    """How a version left (or entered) service, in history."""

    PROMOTED = "Promoted"  # became the stable version
    REPLACED = "Replaced"  # was stable until a newer version was promoted
    ROLLED_BACK = "RolledBack"  # was abandoned and traffic returned to stable
    ABANDONED = "Abandoned"  # a switch was dropped because the tracked version moved again


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
    weight: int = Field(default=0, description="Percent of traffic it receives.")
    step: int = Field(default=0, description="Index of the current rollout step.")
    startedAt: str | None = Field(default=None, description="When the switch started.")


class Resolved(VersionInfo):
    at: str | None = Field(default=None, description="When the registry answered this.")


class HistoryEntry(_Status):
    version: str = Field(description="Model version.")
    outcome: Outcome = Field(description="Promoted, Replaced, RolledBack or Abandoned.")
    reason: str | None = Field(default=None, description="Why.")
    at: str | None = Field(default=None, description="When.")


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
    resolved: Resolved | None = Field(default=None, description=(
        "The registry's latest answer for spec.model."))
    conditions: list[Condition] = Field(default_factory=list, description=(
        "Ready, Progressing, Degraded and RegistryReachable."))
    history: list[HistoryEntry] = Field(default_factory=list, description=(
        f"The last {HISTORY_LIMIT} version transitions, newest first."))
    message: str | None = Field(default=None, description="One line about the current state.")
