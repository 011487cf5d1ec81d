"""The operator's own Prometheus metrics, served at ``/metrics`` (MODELDEPLOY_METRICS_PORT).

Counters and histograms record what the operator did (reconciles, registry polls, webhook
deliveries, writes to the Kubernetes API); gauges describe the state it holds, read at scrape
time from the watch index, the work queue and the resolver, so they never drift from it.

Label values come from small fixed sets (results, outcomes, reasons, kinds, phases), except
``modeldeploy_model_deployment_info``, which has one series per ModelDeployment, as
kube-state-metrics has one per object.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modeldeploy.api.status import release_of


@dataclass(frozen=True)
class StateView:
    """Read-only callables into the running operator (so this module imports none of it)."""

    objects: Callable[[], Iterable[dict[str, Any]]]
    queue_depth: Callable[[], int]
    registry_stats: Callable[[], dict[str, int]]
    #: Only the leader reports the objects' state: two replicas must not double it.
    leading: Callable[[], bool] = lambda: True


def _text(parent: Any, key: str) -> str:
    """``parent[key]`` as text; "" when absent or when ``parent`` is not a mapping (a status
    someone edited by hand must not break every scrape)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return "" if value is None or isinstance(value, dict | list) else str(value)


def _state_rows(objects: Iterable[dict[str, Any]]) -> tuple[Tally[str], list[tuple[str, ...]]]:
    phases: Tally[str] = Tally()
    info: list[tuple[str, ...]] = []
    for body in objects:
        meta, spec, status = body.get("metadata"), body.get("spec"), body.get("status")
        phase = _text(status, "phase") or "Pending"
        phases[phase] += 1
        info.append((_text(meta, "namespace"), _text(meta, "name"),
                     _text(spec.get("model") if isinstance(spec, dict) else None, "name"),
                     _text(status, "selector"), phase,
                     _text(status.get("stable") if isinstance(status, dict) else None,
                           "version")))
    return phases, info


def _release_families(objects: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """Canary weight, the last measurement of each analysis metric, each gate's result and
    the smoke test's latency, per object with a release in flight (what Flagger users
    chart)."""
    weight = GaugeMetricFamily(
        "modeldeploy_canary_weight",
        "Percent of traffic the new version has, as read back from the live route.",
        labels=["namespace", "name", "version", "state"])
    values = GaugeMetricFamily(
        "modeldeploy_analysis_value",
        "Last measured value of each analysis metric of the release in flight.",
        labels=["namespace", "name", "version", "metric", "verdict", "threshold"])
    results = GaugeMetricFamily(
        "modeldeploy_gate_result",
        "Gates of the release in flight: 1 per gate, labelled with its result (Passed, "
        "Failed, Waiting, Approved, Warned, Skipped, Pending).",
        labels=["namespace", "name", "version", "gate", "result", "reason"])
    smoke = GaugeMetricFamily(
        "modeldeploy_smoke_test_latency_seconds",
        "Latency of the new version's answer to its smoke test.",
        labels=["namespace", "name", "version"])
    for body in objects:
        meta, status = body.get("metadata"), body.get("status")
        rollout = status.get("rollout") if isinstance(status, dict) else None
        if not isinstance(rollout, dict):
            continue
        rel = release_of(rollout)
        if rel is None:
            continue
        ns, name, version = _text(meta, "namespace"), _text(meta, "name"), _text(rel, "version")
        weight.add_metric([ns, name, version, _text(rel, "state")],
                          float(rel.get("weight") or 0))
        analysis = rel.get("analysis")
        for m in (analysis.get("measurements") or []) if isinstance(analysis, dict) else []:
            if isinstance(m, dict) and isinstance(m.get("value"), int | float):
                values.add_metric([ns, name, version, _text(m, "metric"), _text(m, "verdict"),
                                   _text(m, "threshold")], float(m["value"]))
        gates = rel.get("gates")
        for g in gates if isinstance(gates, list) else []:
            if not isinstance(g, dict):
                continue
            results.add_metric([ns, name, version, _text(g, "gate"), _text(g, "result"),
                                _text(g, "reason")], 1)
            if g.get("gate") == "SmokeTest" and isinstance(g.get("latencyMs"), int | float):
                smoke.add_metric([ns, name, version], float(g["latencyMs"]) / 1000)
    yield weight
    yield values
    yield results
    yield smoke


def _health_families(objects: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """The serving version's last health probe, and whether a rollback would work."""
    up = GaugeMetricFamily(
        "modeldeploy_health_probe_success",
        "1 when the serving version's last health probe passed, else 0 (spec.healthCheck).",
        labels=["namespace", "name", "version", "result"])
    latency = GaugeMetricFamily(
        "modeldeploy_health_probe_latency_seconds",
        "Latency of the serving version's last answer to its health probe.",
        labels=["namespace", "name", "version"])
    ready = GaugeMetricFamily(
        "modeldeploy_rollback_ready",
        "1 when the previous version can still be rolled back to, else 0.",
        labels=["namespace", "name", "previous_version", "reason"])
    for body in objects:
        meta, status = body.get("metadata"), body.get("status")
        if not isinstance(status, dict):
            continue
        ns, name = _text(meta, "namespace"), _text(meta, "name")
        health = status.get("health")
        if isinstance(health, dict) and health.get("lastProbeAt"):
            version = _text(health, "version")
            up.add_metric([ns, name, version, _text(health, "result")],
                          0 if health.get("consecutiveFailures") else 1)
            if isinstance(health.get("latencyMs"), int | float):
                latency.add_metric([ns, name, version], float(health["latencyMs"]) / 1000)
        previous = status.get("previous")
        if isinstance(previous, dict) and previous.get("ready") is not None:
            ready.add_metric([ns, name, _text(previous, "version"), _text(previous, "reason")],
                             1 if previous.get("ready") else 0)
    yield up
    yield latency
    yield ready


class _StateCollector(Collector):
    def __init__(self, view: StateView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        leading = self._view.leading()
        yield GaugeMetricFamily("modeldeploy_leader",
                                "1 on the replica that holds the leader Lease and acts, 0 on a "
                                "standby.", value=1 if leading else 0)
        phases, info = _state_rows(self._view.objects() if leading else ())
        by_phase = GaugeMetricFamily("modeldeploy_model_deployments",
                                     "ModelDeployments the operator watches, by phase.",
                                     labels=["phase"])
        for phase, count in sorted(phases.items()):
            by_phase.add_metric([phase], count)
        yield by_phase
        rows = GaugeMetricFamily(
            "modeldeploy_model_deployment_info",
            "One series per ModelDeployment (value 1): its model, selector, phase and the "
            "version serving as stable.",
            labels=["namespace", "name", "model", "selector", "phase", "stable_version"])
        for row in info:
            rows.add_metric(list(row), 1)
        yield rows
        yield from _release_families(self._view.objects() if leading else ())
        yield from _health_families(self._view.objects() if leading else ())
        yield GaugeMetricFamily("modeldeploy_workqueue_depth",
                                "Objects waiting for a reconcile worker.",
                                value=self._view.queue_depth())
        stats = self._view.registry_stats()
        yield GaugeMetricFamily("modeldeploy_registry_keys",
                                "Distinct (registry, credentials, model, selector) keys polled; "
                                "objects that share a key share its polls.",
                                value=stats.get("keys", 0))


class Metrics:
    """One registry per operator (not the process-global default), so tests and two operators
    in one process never mix their figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "modeldeploy_reconcile_total",
            "Reconciles by result (ok, error, skipped: the namespace is being deleted).",
            ["result"],
            registry=self.registry)
        self.reconcile_seconds = Histogram(
            "modeldeploy_reconcile_duration_seconds", "Time of one reconcile.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry)
        self.registry_polls = Counter(
            "modeldeploy_registry_polls_total",
            "Registry resolutions by outcome (ok, not_found, unreachable) and reason.",
            ["outcome", "reason"], registry=self.registry)
        self.registry_poll_seconds = Histogram(
            "modeldeploy_registry_poll_duration_seconds", "Time of one registry resolution.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
            registry=self.registry)
        self.webhook_deliveries = Counter(
            "modeldeploy_webhook_deliveries_total",
            "MLflow webhook deliveries by result (accepted, ignored, duplicate, unauthorized, "
            "invalid, standby: answered 503 by a replica that is not the leader).", ["result"],
            registry=self.registry)
        self.release_events = Counter(
            "modeldeploy_release_events_total",
            "Release transitions by event reason (NewVersion, StepStarted, Promoted, "
            "RolledBack, AnalysisFailed, ...).", ["reason"], registry=self.registry)
        self.analysis_seconds = Histogram(
            "modeldeploy_analysis_duration_seconds",
            "Time to take one interval's measurements (all metrics, side by side).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry)
        self.smoke_tests = Counter(
            "modeldeploy_smoke_tests_total",
            "Smoke tests of new versions by result (passed, failed).", ["result"],
            registry=self.registry)
        self.smoke_seconds = Histogram(
            "modeldeploy_smoke_test_duration_seconds",
            "Time of one smoke test (every attempt).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=self.registry)
        self.health_probes = Counter(
            "modeldeploy_health_probes_total",
            "Health probes of serving versions by result (passed, failed).", ["result"],
            registry=self.registry)
        self.registry_writes = Counter(
            "modeldeploy_registry_writes_total",
            "Write-backs to the model registry (tags, aliases) by result (ok, error).",
            ["result"], registry=self.registry)
        self.kube_writes = Counter(
            "modeldeploy_kube_writes_total",
            "Writes to the Kubernetes API by verb (apply, delete, status, event) and kind.",
            ["verb", "kind"], registry=self.registry)

    def wrote(self, verb: str, kind: str) -> None:
        """Count one successful write to the Kubernetes API."""
        self.kube_writes.labels(verb, kind).inc()

    def watch_state(self, view: StateView) -> None:
        self.registry.register(_StateCollector(view))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
