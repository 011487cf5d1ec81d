"""A fake world for scenario tests of ``decide()``: tick, then change the world.

It keeps the children a plan applied (with their content hashes and the fingerprint the
apiserver's copy would have), removes what a plan deleted (only the object with that UID),
and lets a test say which versions' Deployments are Available. Status is stored the way the
apiserver stores the reconciler's write: the whole ``.status`` replaced by the JSON the
reconciler sends, then read back, so a field that disappears from a plan's status disappears
from the world (a merge patch would keep it, and so would a fake that kept the model).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, RegistryWrite
from modeldeploy.controller.index import child_of
from modeldeploy.controller.reconciler import parse_status, status_dict
from modeldeploy.core.analysis import QueryResult
from modeldeploy.core.rollout import decide
from modeldeploy.core.world import (
    ApplyFailure,
    Attempt,
    Child,
    GateAnswers,
    Measurement,
    MeasurementRequest,
    Observed,
    Plan,
    ProbeAnswers,
    RegistryOutcome,
    RegistryTarget,
    Resolution,
    ResolvedVersion,
    SmokeResult,
    VersionDetails,
    WriteResult,
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
    apply_failure: ApplyFailure | None = None
    plans: list[Plan] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)  # .status as the apiserver holds it
    status_writes: int = 0
    uids: Any = field(default_factory=lambda: itertools.count(1))
    #: The modeldeploy.io/request annotation.
    request: str | None = None
    #: What the metric provider answers, by metric name (default: an empty vector).
    answers: dict[str, QueryResult] = field(default_factory=dict)
    stable_answers: dict[str, QueryResult] = field(default_factory=dict)
    requests_answer: QueryResult = field(default_factory=lambda: QueryResult(value=100.0,
                                                                             series=1))
    #: Every measurement request the operator made.
    measured: list[MeasurementRequest] = field(default_factory=list)
    #: What the registry knows of each version (gates); absent: a version with nothing logged.
    details: dict[str, VersionDetails] = field(default_factory=dict)
    #: What each version's scoring server answers to the smoke test (absent: passes, 12 ms).
    smoke: dict[str, SmokeResult] = field(default_factory=dict)
    #: The registry refuses writes with this error (None: accepts them).
    write_error: str | None = None
    #: Versions whose writes the registry refuses for good (a read-only token, a deleted
    #: version): the reconciler reports those as permanent.
    write_refused: set[str] = field(default_factory=set)
    #: Every registry write the registry accepted; every gate request made.
    written: list[RegistryWrite] = field(default_factory=list)
    gate_requests: list[Any] = field(default_factory=list)
    #: Every probe request, and when the previous version was last checked (the reconciler's
    #: memory).
    probes: list[Any] = field(default_factory=list)
    rollback_checked_at: dt.datetime | None = None
    #: The operator is killed in the next plan that moves traffic on a verdict: "recorded"
    #: (its first status stored, nothing applied) or "applied" (applied, final status not
    #: stored). Cleared once it happened.
    crash: str | None = None

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
            children=children, apply_failure=self.apply_failure, request=self.request,
            rollback_checked_at=self.rollback_checked_at)

    def tick(self, seconds: float = 1.0) -> Plan:
        """decide(), then do what the plan says, as the apply step would."""
        self.now += dt.timedelta(seconds=seconds)
        observed = self.observed()
        plan = decide(observed, self.now)
        if plan.measure or plan.gates or plan.write_back or plan.probe:
            # As the reconciler does: measure, read the registry, test, write; then decide
            # again with the answers.
            self.measured += plan.measure
            answers = tuple(Measurement(
                metric=m.metric, candidate=self.answers.get(m.metric, QueryResult()),
                stable=(self.stable_answers.get(m.metric, QueryResult())
                        if m.stable_query else None),
                requests=self.requests_answer if m.requests_query else None)
                for m in plan.measure)
            results = tuple(
                WriteResult(x, "PERMISSION_DENIED: the token may not write", permanent=True)
                if x.version in self.write_refused else WriteResult(x, self.write_error)
                for x in plan.write_back)
            self.written += [r.write for r in results if r.error is None]
            if plan.probe is not None and plan.probe.previous is not None:
                self.rollback_checked_at = self.now
                observed = replace(observed, rollback_checked_at=self.now)
            plan = decide(replace(observed, measurements=answers,
                                  gate_answers=self.gate_answers(plan),
                                  probe_answers=self.probe_answers(plan),
                                  write_results=results), self.now)
            assert not plan.measure, "a second decide must not ask to measure again"
        verdict = any(e.reason == "RollingBack" or (
            e.reason == "RolledBack" and "switched back" in e.message) for e in plan.events)
        crash = self.crash if verdict else None
        if plan.record_first is not None:
            self.write_status(plan.record_first)
        if crash == "recorded":
            self.crash = None
            self.plans.append(plan)
            return plan
        for manifest in plan.apply:
            self.put_child(manifest)
        if crash == "applied":
            self.crash = None
            self.plans.append(plan)
            return plan
        for ref in plan.delete:
            if self.children[(ref.kind, ref.name)].uid == ref.uid:
                del self.children[(ref.kind, ref.name)]
        self.write_status(plan.status)
        self.plans.append(plan)
        return plan

    def crash_at_verdict(self, when: str, *, seconds: float = 1.0,
                         limit: int = 60) -> list[dict[str, int]]:
        """Tick until the operator has been killed (``when``: see ``crash``) in the next plan
        that moves traffic on a verdict; the live route's weights after each tick."""
        self.crash, seen = when, []
        for _ in range(limit):
            self.tick(seconds)
            seen.append(self.weights())
            if self.crash is None:
                return seen
        raise AssertionError(f"no verdict within {limit} ticks: {self.status.message}")

    def gate_answers(self, plan: Plan) -> GateAnswers | None:
        request = plan.gates
        if request is None:
            return None
        self.gate_requests.append(request)
        empty = VersionDetails(metrics={}, signature=None, input_example=None)
        candidate = self.details.get(request.version.version, empty)
        stable = (self.details.get(request.stable.version, empty)
                  if request.stable is not None else None)
        smoke = None
        if request.smoke is not None and candidate.serving_example is not None:
            smoke = self.smoke.get(request.version.version, SmokeResult(
                True, "http://svc", (Attempt(200, 0.012, None),)))
        return GateAnswers(candidate=candidate, stable=stable, smoke=smoke)

    def probe_answers(self, plan: Plan) -> ProbeAnswers | None:
        request = plan.probe
        if request is None:
            return None
        self.probes.append(request)
        empty = VersionDetails(metrics={}, signature=None, input_example=None)
        stable = self.details.get(request.stable.version, empty) if request.stable else None
        smoke = None
        if request.smoke is not None and request.stable is not None:
            smoke = self.smoke.get(request.stable.version, SmokeResult(
                True, "http://svc", (Attempt(200, 0.012, None),)))
        previous = (self.details.get(request.previous.version, empty)
                    if request.previous else None)
        return ProbeAnswers(request, stable=stable, smoke=smoke, previous=previous)

    def put_child(self, manifest: dict[str, Any]) -> Child:
        """Store a child as the apiserver returns it (our manifest plus a UID; replicas a
        Deployment without the field keeps, as server-side apply with a hand-over does)."""
        body = json.loads(json.dumps(manifest))
        key = (manifest["kind"], manifest["metadata"]["name"])
        known = self.children.get(key)
        body["metadata"]["uid"] = known.uid if known else f"child-{next(self.uids)}"
        if manifest["kind"] == "Deployment" and "replicas" not in body["spec"]:
            body["spec"]["replicas"] = known.replicas if known else 1
        child = child_of(manifest["kind"], body)
        self.children[key] = child
        return child

    def write_status(self, status: ModelDeploymentStatus) -> None:
        """What the reconciler does with a plan's status, against a fake apiserver: nothing
        when unchanged, else a replace of the whole .status with the JSON it sends."""
        body = status_dict(status)
        if body == status_dict(self.status):
            return
        self.stored = json.loads(json.dumps(body))
        self.status = parse_status(self.stored)
        self.status_writes += 1

    def weights(self) -> dict[str, int]:
        """The live route's weights by version (HTTPRoute or VirtualService)."""
        route = next((c for c in self.children.values()
                      if c.kind in ("HTTPRoute", "VirtualService")), None)
        if route is None:
            return {}
        versions = {c.name: c.version for c in self.children.values()
                    if c.kind == "Service" and c.version}
        return {versions.get(name) or name: w for name, w in route.backends}

    def versions(self, kind: str = "Deployment") -> set[str]:
        return {c.version for c in self.children.values() if c.kind == kind and c.version}

    def child(self, kind: str, name: str) -> Child:
        return self.children[(kind, name)]


def condition(status: ModelDeploymentStatus, type_: str) -> tuple[str, str]:
    cond = next(c for c in status.conditions if c.type == type_)
    return (cond.status, cond.reason)


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def deleted(plan: Plan) -> set[tuple[str, str]]:
    return {(ref.kind, ref.name) for ref in plan.delete}
