"""Built-in PromQL templates for canary analysis, and the placeholder language they share with
users' own queries. Pure: strings in, strings out.

A query names the version it measures through ``{{ version }}``. Rendering the same query once
with the candidate's version and once with the stable version (:func:`render_metric` with
``relative=True``) gives two measurements over the same window — the "relative form" that
``maxIncrease`` compares, so a metric that is bad for every version (a noisy upstream, a slow
node) does not fail the candidate alone.

Placeholders (whitespace inside the braces is optional)::

    {{ namespace }}      the ModelDeployment's namespace
    {{ name }}           the ModelDeployment's name
    {{ model }}          the model's label value (what the traffic exporter reports)
    {{ version }}        the version measured: the candidate, or the stable one (relative form)
    {{ stableVersion }}  the stable version, always
    {{ interval }}       the analysis window as a Prometheus duration (``30s``, ``1m30s``)

Values are meant for double-quoted PromQL label matchers (``version="{{ version }}"``) and are
escaped for them; ``interval`` goes into a range selector (``[{{ interval }}]``), outside any
quotes, so it must be a plain Prometheus duration. An unknown placeholder is an error, never
left in the query: Prometheus would reject ``{{`` with a parse error far from its cause.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS = ("namespace", "name", "model", "version", "stableVersion", "interval")

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class Template:
    """A named query users refer to with ``template: <name>`` instead of writing PromQL."""

    name: str
    description: str
    query: str  # PromQL with placeholders; one series (or a scalar) per version
    unit: str  # of the query's value: "ratio", "seconds", "ms", "requests"
    requests: str | None  # PromQL: requests in the window, for the minimum-request check


@dataclass(frozen=True)
class RenderedMetric:
    """The queries one metric runs at one measurement."""

    candidate: str
    stable: str | None  # the same query for the stable version (relative form), else None
    requests: str | None  # the candidate's request count in the window, else None


def _selector(*, extra: str = "") -> str:
    return ('namespace="{{ namespace }}", model="{{ model }}", version="{{ version }}"'
            + extra)


def _istio_selector(*, extra: str = "") -> str:
    return ('reporter="destination", destination_workload_namespace="{{ namespace }}", '
            'destination_app="{{ name }}", destination_version="{{ version }}"' + extra)


def _error_rate(metric: str, selector: str, errors: str) -> str:
    # `or vector(0)`: a counter labelled 5xx only exists after the first error, and an empty
    # numerator would make a healthy version's error rate "no data" instead of 0. The
    # denominator stays empty without traffic, and 0/0 is NaN: both are Inconclusive.
    return (f"(sum(rate({metric}{{{errors}}}[{{{{ interval }}}}])) or vector(0))\n"
            f"/ sum(rate({metric}{{{selector}}}[{{{{ interval }}}}]))")


def _quantile(q: str, bucket: str, selector: str) -> str:
    return (f"histogram_quantile({q}, sum by (le) "
            f"(rate({bucket}{{{selector}}}[{{{{ interval }}}}])))")


def _count(metric: str, selector: str) -> str:
    return f"sum(increase({metric}{{{selector}}}[{{{{ interval }}}}]))"


_LOCAL_REQUESTS = _count("model_requests_total", _selector())
_ISTIO_REQUESTS = _count("istio_requests_total", _istio_selector())

#: Every built-in template, by name. The first four read the local stack's traffic exporter
#: (``devstack/traffic.py``); the ``istio-`` ones read Istio's standard metrics.
TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template(
        name="error-rate",
        description="Share of requests answered 5xx over the interval.",
        query=_error_rate("model_requests_total", _selector(),
                          _selector(extra=', code=~"5.."')),
        unit="ratio",
        requests=_LOCAL_REQUESTS,
    ),
    Template(
        name="latency-p99",
        description="99th percentile request latency over the interval.",
        query=_quantile("0.99", "model_request_duration_seconds_bucket", _selector()),
        unit="seconds",
        requests=_LOCAL_REQUESTS,
    ),
    Template(
        name="latency-p95",
        description="95th percentile request latency over the interval.",
        query=_quantile("0.95", "model_request_duration_seconds_bucket", _selector()),
        unit="seconds",
        requests=_LOCAL_REQUESTS,
    ),
    Template(
        name="request-count",
        description="Requests served over the interval.",
        query=_LOCAL_REQUESTS,
        unit="requests",
        requests=None,  # the value is the count; bound it with min
    ),
    Template(
        name="istio-error-rate",
        description="Share of requests answered 5xx over the interval (Istio sidecar metrics).",
        query=_error_rate("istio_requests_total", _istio_selector(),
                          _istio_selector(extra=', response_code=~"5.."')),
        unit="ratio",
        requests=_ISTIO_REQUESTS,
    ),
    Template(
        name="istio-latency-p99",
        description="99th percentile request latency over the interval (Istio sidecar metrics).",
        query=_quantile("0.99", "istio_request_duration_milliseconds_bucket",
                        _istio_selector()),
        unit="ms",
        requests=_ISTIO_REQUESTS,
    ),
    Template(
        name="istio-request-count",
        description="Requests served over the interval (Istio sidecar metrics).",
        query=_ISTIO_REQUESTS,
        unit="requests",
        requests=None,
    ),
)}


def unknown_placeholders(query: str) -> list[str]:
    """Placeholders in ``query`` that are not in :data:`PLACEHOLDERS`, in order of first
    appearance (for spec validation; empty when the query is fine)."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(query):
        name = match.group(1).strip()
        if name not in PLACEHOLDERS and name not in seen:
            seen.append(name)
    return seen


def escape(value: str) -> str:
    """``value`` as the inside of a double-quoted PromQL string."""
    return (value.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))


def render(query: str, variables: Mapping[str, str]) -> str:
    """``query`` with every placeholder replaced by its escaped value.

    Raises ValueError naming the placeholder when it is unknown or has no value in
    ``variables``, and when ``interval`` is not a Prometheus duration (it is substituted
    outside quotes, so nothing else may get through).
    """
    unknown = unknown_placeholders(query)
    if unknown:
        raise ValueError(f"unknown placeholder {{{{ {unknown[0]} }}}} in query; "
                         f"known: {', '.join(PLACEHOLDERS)}")
    interval = variables.get("interval")
    if interval is not None and not _PROM_DURATION.match(interval):
        raise ValueError(f"interval {interval!r} is not a Prometheus duration like 30s or 1m")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in variables:
            raise ValueError(f"placeholder {{{{ {name} }}}} has no value here")
        return escape(variables[name])

    return _PLACEHOLDER.sub(substitute, query)


def prometheus_duration(seconds: float) -> str:
    """``seconds`` as a Prometheus duration (``90`` -> ``1m30s``, ``0.5`` -> ``500ms``),
    rounded to whole milliseconds. Specs allow ``1.5m``; PromQL does not."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"an analysis interval must be positive, not {seconds}s")
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def measurement_variables(*, namespace: str, name: str, model: str, version: str,
              stable_version: str | None, interval: str) -> dict[str, str]:
    """The placeholder values for one measurement of the candidate ``version``.

    ``model`` is the label value the operator puts on its objects
    (``core.render.label_value`` of the registered model name), which is what the traffic
    exporter reports. Without a stable version ``{{ stableVersion }}`` has no value, and a
    query that uses it fails to render.
    """
    out = {"namespace": namespace, "name": name, "model": model, "version": version,
           "interval": interval}
    if stable_version is not None:
        out["stableVersion"] = stable_version
    return out


def render_metric(*, query: str, requests: str | None, variables: Mapping[str, str],
                  relative: bool) -> RenderedMetric:
    """The queries of one metric for the candidate; with ``relative``, also the same query
    for the stable version (``version`` set to ``stableVersion``; no stable query when there
    is no stable version). Raises ValueError as :func:`render` does."""
    stable = None
    stable_version = variables.get("stableVersion")
    if relative and stable_version is not None:
        stable = render(query, {**variables, "version": stable_version})
    return RenderedMetric(
        candidate=render(query, variables),
        stable=stable,
        requests=render(requests, variables) if requests is not None else None,
    )


__all__ = ["PLACEHOLDERS", "TEMPLATES", "RenderedMetric", "Template", "escape",
           "measurement_variables", "prometheus_duration", "render", "render_metric",
           "unknown_placeholders"]
