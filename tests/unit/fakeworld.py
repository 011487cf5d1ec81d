"""A fake world for scenario tests of ``decide()``: tick, then change the world.

It keeps the children a plan applied (with their content hashes), removes what a plan
deleted, and lets a test say which versions' Deployments are Available.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.core import render
from modeldeploy.core.rollout import decide
from modeldeploy.core.world import (
    Child,
    Observed,
    Plan,
    RegistryOutcome,
    RegistryTarget,
    Resolution,
    ResolvedVersion,
)

T0 = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def resolved(version: str, model: str = "fraud-scorer") -> Resolution:
    return Resolution(
        outcome=RegistryOutcome.OK, reason="Resolved", at=T0,
        version=ResolvedVersion(version=version, run_id=f"run{version}",
                                source=f"models:/m-{version}",
                                model_uri=f"models:/{model}/{version}"))


def not_found(reason: str = "AliasNotFound",
              message: str = "alias champion not found") -> Resolution:
    return Resolution(outcome=RegistryOutcome.NOT_FOUND, reason=reason, message=message, at=T0)


UNREACHABLE = Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable",
                         message="connection refused", at=T0)


@dataclass
class World:
    spec: dict[str, Any] = field(
        default_factory=lambda: {"model": {"name": "fraud-scorer", "alias": "champion"},
                                 "serving": {"replicas": 2}})
    registry: Resolution = field(default_factory=lambda: resolved("1"))
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    children: dict[tuple[str, str], Child] = field(default_factory=dict)
    available: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    ready_count: dict[str, int] = field(default_factory=dict)  # overrides for partial readiness
    generation: int = 1
    now: dt.datetime = T0
    spec_error: str | None = None
    plans: list[Plan] = field(default_factory=list)

    def observed(self) -> Observed:
        spec = None if self.spec_error else ModelDeploymentSpec.model_validate(self.spec)
        children = tuple(
            replace(c, ready=self.ready_count.get(
                        c.version or "", c.replicas if c.version in self.available else 0),
                    updated=c.replicas, deadline_exceeded=c.version in self.stuck)
            if c.kind == "Deployment" else c
            for c in self.children.values())
        return Observed(
            name="scorer", namespace="ml", uid="uid-1", generation=self.generation,
            spec=spec, spec_error=self.spec_error, status=self.status, registry=self.registry,
            target=RegistryTarget(tracking_uri="http://mlflow:5000",
                                  registry_uri="http://mlflow:5000"),
            children=children)

    def tick(self, seconds: float = 1.0) -> Plan:
        """decide(), then do what the plan says, as the apply step would."""
        self.now += dt.timedelta(seconds=seconds)
        plan = decide(self.observed(), self.now)
        for manifest in plan.apply:
            meta = manifest["metadata"]
            replicas = manifest.get("spec", {}).get("replicas", 0) \
                if manifest["kind"] == "Deployment" else 0
            self.children[(manifest["kind"], meta["name"])] = Child(
                kind=manifest["kind"], name=meta["name"],
                version=meta["labels"].get(render.LABEL_VERSION),
                hash=meta["annotations"][render.ANNOTATION_HASH], replicas=replicas)
        for key in plan.delete:
            del self.children[key]
        self.status = plan.status
        self.plans.append(plan)
        return plan

    def versions(self, kind: str = "Deployment") -> set[str]:
        return {c.version for c in self.children.values() if c.kind == kind and c.version}

    def child(self, kind: str, name: str) -> Child:
        return self.children[(kind, name)]


def condition(status: ModelDeploymentStatus, type_: str) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == type_)
    return (cond.status, cond.reason)


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]
