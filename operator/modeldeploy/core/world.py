"""The frozen inputs and outputs of ``decide()``: what was observed, and the plan."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modeldeploy.api import DEFAULT_MLFLOW_IMAGE
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus


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


@dataclass(frozen=True)
class Resolution:
    outcome: RegistryOutcome
    version: ResolvedVersion | None = None
    #: CamelCase reason: Resolved, ModelNotFound, AliasNotFound, VersionNotFound, StageEmpty,
    #: RegistryUnreachable, CredentialsUnavailable.
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
class Child:
    """A child object as last seen (from the watch index, never a fresh GET)."""

    kind: str
    name: str
    version: str | None
    hash: str | None
    # Deployments only:
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    current: bool = True  # status.observedGeneration >= metadata.generation
    deadline_exceeded: bool = False

    @property
    def available(self) -> bool:
        """Every desired replica is updated and Ready (vacuously true at 0 replicas)."""
        return self.current and self.ready >= self.replicas and self.updated >= self.replicas


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

    def deployment(self, version: str) -> Child | None:
        return next((c for c in self.children
                     if c.kind == "Deployment" and c.version == version), None)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: ModelDeploymentStatus
    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[tuple[str, str], ...] = ()  # (kind, name), after every apply
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
