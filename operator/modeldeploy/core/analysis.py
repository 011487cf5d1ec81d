"""Canary analysis decisions: what one measurement means, and when a run of them must stop a
rollout. Pure; only a :class:`MetricProvider` does I/O, and it reports failures as data.

Semantics follow Argo Rollouts: four verdicts, each with its own limit, and every verdict
carries a human-readable message that ends up in status and events. A provider's failure is an
``Error`` measurement, never an exception that aborts the loop; a measurement without enough
evidence (no data, NaN, too few requests) is ``Inconclusive`` and never ``Successful``.

The placeholder language and the built-in templates live in :mod:`modeldeploy.core.templates`
and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from modeldeploy.core.templates import (
    PLACEHOLDERS,
    TEMPLATES,
    RenderedMetric,
    Template,
    measurement_variables,
    prometheus_duration,
    render,
    render_metric,
    unknown_placeholders,
)

#: Argo Rollouts' default: abort once consecutive Error measurements exceed 4.
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4


class Verdict(StrEnum):
    SUCCESSFUL = "Successful"  # the value was present, finite and within every bound
    FAILED = "Failed"  # the value was outside a bound: evidence the candidate is worse
    INCONCLUSIVE = "Inconclusive"  # no evidence either way: no data, NaN/Inf, too few requests
    ERROR = "Error"  # the measurement itself failed: provider down, bad query


@dataclass(frozen=True)
class QueryResult:
    """A provider's answer to one instant query. Errors are data, never exceptions."""

    value: float | None = None  # the scalar, or the first sample of the vector; None if empty
    series: int = 0  # samples in the vector (1 for a scalar); 0 = empty
    error: str | None = None  # the provider's failure, or Prometheus's own error message


class MetricProvider(Protocol):
    """A source of measurements (Prometheus, ...)."""

    async def query(self, promql: str) -> QueryResult:
        """Evaluate ``promql`` as an instant query, now. Never raises for provider or query
        failures (unreachable, timeout, HTTP error, PromQL error, unreadable answer): those
        come back as ``QueryResult(error=...)`` with the provider's own words."""
        ...


@dataclass(frozen=True)
class Measurement:
    """One metric's verdict at one measurement, as status shows it."""

    metric: str
    verdict: Verdict
    value: float | None  # the candidate's value; None when there was none
    stable: float | None  # the stable version's value (relative form); None otherwise
    threshold: str  # e.g. "<= 0.05", ">= 0.9 and <= 2", "<= stable + 0.02"
    query: str  # the rendered candidate query
    message: str  # one line for status and events


def _num(x: float) -> str:
    return f"{x:.6g}"


def _threshold(lo: float | None, hi: float | None, max_increase: float | None) -> str:
    parts = []
    if lo is not None:
        parts.append(f">= {_num(lo)}")
    if hi is not None:
        parts.append(f"<= {_num(hi)}")
    if max_increase is not None:
        parts.append(f"<= stable + {_num(max_increase)}")
    return " and ".join(parts) or "none"


def _missing(result: QueryResult) -> str | None:
    """Why ``result`` holds no usable number, or None when it does."""
    if result.value is None or result.series == 0:
        return "the query returned an empty vector"
    if math.isnan(result.value):
        return "the query returned NaN"
    if math.isinf(result.value):
        return f"the query returned {'+' if result.value > 0 else '-'}Inf"
    return None


def evaluate(
    *,
    metric: str,
    candidate: QueryResult,
    stable: QueryResult | None,
    requests: QueryResult | None,
    min: float | None,
    max: float | None,
    max_increase: float | None,
    min_requests: float,
    query: str,
    provider: str = "Prometheus",
) -> Measurement:
    """The verdict on one metric's measurement; rules in order, the first that applies wins:

    1. Any query that was needed failed (``error``) -> Error, with the provider's message.
       The requests query is needed only when ``min_requests > 0``, the stable query only
       with ``max_increase``.
    2. The candidate's query returned more than one series -> Error: which sample is "the"
       value would be arbitrary; the query must aggregate (``sum(...)``).
    3. Requests in the window < ``min_requests`` -> Inconclusive (an empty requests vector
       counts as 0 requests, NaN too).
    4. The candidate's value is missing (empty vector), NaN or ±Inf -> Inconclusive.
    5. value < ``min`` or value > ``max`` -> Failed.
    6. With ``max_increase``: no stable value (no stable version, empty, NaN, ±Inf) ->
       Inconclusive; value > stable + ``max_increase`` -> Failed.
    7. Otherwise Successful. A value exactly on a bound passes; with no bound at all the
       measurement only records the value.
    """
    threshold = _threshold(min, max, max_increase)
    stable_value = (stable.value if stable is not None and stable.error is None
                    and _missing(stable) is None else None)

    def done(verdict: Verdict, text: str, value: float | None = None) -> Measurement:
        return Measurement(metric=metric, verdict=verdict, value=value, stable=stable_value,
                           threshold=threshold, query=query,
                           message=f"{text} ({verdict.value.lower()})")

    needed = [("", candidate)]
    if requests is not None and min_requests > 0:
        needed.append(("requests query: ", requests))
    if stable is not None and max_increase is not None:
        needed.append(("stable query: ", stable))
    for which, result in needed:
        if result.error is not None:
            return done(Verdict.ERROR, f"{metric}: {which}{provider} error: {result.error}")
    if candidate.series > 1:
        return done(Verdict.ERROR, f"{metric}: the query returned {candidate.series} series, "
                                   "not one; aggregate it (e.g. sum(...))")

    if requests is not None and min_requests > 0:
        count = requests.value if _missing(requests) is None else None
        seen = count if count is not None else 0.0
        if seen < min_requests:
            return done(Verdict.INCONCLUSIVE,
                        f"{metric}: too few requests: {_num(seen)} < {_num(min_requests)}")

    why = _missing(candidate)
    if why is not None or candidate.value is None:
        return done(Verdict.INCONCLUSIVE, f"{metric}: no data: {why}")
    value = candidate.value

    if min is not None and value < min:
        return done(Verdict.FAILED, f"{metric} {_num(value)} < min {_num(min)}", value)
    if max is not None and value > max:
        return done(Verdict.FAILED, f"{metric} {_num(value)} > max {_num(max)}", value)
    if max_increase is not None:
        if stable_value is None:
            why = "no stable version" if stable is None else _missing(stable)
            return done(Verdict.INCONCLUSIVE,
                        f"{metric}: no data for the stable version: {why}", value)
        if value > stable_value + max_increase:
            return done(Verdict.FAILED,
                        f"{metric} {_num(value)} > stable {_num(stable_value)} + max "
                        f"increase {_num(max_increase)}", value)
    shown = f"{metric} {_num(value)}"
    if stable_value is not None:
        shown += f" (stable {_num(stable_value)})"
    return done(Verdict.SUCCESSFUL,
                f"{shown} within {threshold}" if threshold != "none" else shown, value)


class Outcome(StrEnum):
    CONTINUE = "Continue"  # the latest interval was Successful: the step may advance
    HOLD = "Hold"  # the latest interval was not (yet) good enough: stay, measure again
    ABORT_FAILED = "AbortFailed"  # more Failed measurements than failureLimit: roll back
    ABORT_ERRORS = "AbortErrors"  # consecutive Error intervals exceed the limit: roll back
    ABORT_INCONCLUSIVE = "AbortInconclusive"  # more Inconclusive than inconclusiveLimit:
    # roll back


# Which verdict speaks for an interval with several metrics: the worst one.
_SEVERITY = {Verdict.SUCCESSFUL: 0, Verdict.INCONCLUSIVE: 1, Verdict.ERROR: 2,
             Verdict.FAILED: 3}


@dataclass(frozen=True)
class Counters:
    """Tallies over one analysis run (one canary version), kept in status between calls.

    Counting, per :meth:`add`:

    * ``successful``, ``failed``, ``inconclusive`` count **metric measurements** (as Argo
      Rollouts does): an interval in which two metrics fail adds 2 to ``failed``. Unlike Argo,
      the limits apply to the sum over all metrics, not to each metric separately — stricter
      when several metrics misbehave at once.
    * ``consecutive_errors`` counts consecutive **intervals** with at least one Error; an
      interval without any Error resets it to 0. Counting intervals keeps the limit meaning
      "this many measurement rounds in a row could not be made", whatever the number of
      metrics, and a healthy metric cannot hide a permanently broken one (which a per-metric
      reset on every Successful measurement would do).
    * ``latest`` is the worst verdict of the latest interval (Failed > Error > Inconclusive >
      Successful); None before the first.
    """

    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    consecutive_errors: int = 0
    latest: Verdict | None = None

    def add(self, verdicts: Iterable[Verdict]) -> Counters:
        """These counters after one interval's verdicts (one per metric). An interval without
        verdicts changes nothing."""
        batch = list(verdicts)
        if not batch:
            return self
        errors = Verdict.ERROR in batch
        return replace(
            self,
            successful=self.successful + batch.count(Verdict.SUCCESSFUL),
            failed=self.failed + batch.count(Verdict.FAILED),
            inconclusive=self.inconclusive + batch.count(Verdict.INCONCLUSIVE),
            consecutive_errors=(self.consecutive_errors + 1) if errors else 0,
            latest=max(batch, key=_SEVERITY.__getitem__),
        )


def judge(counters: Counters, *, failure_limit: int, inconclusive_limit: int,
          consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT) -> Outcome:
    """What the rollout does next, given the run so far; the first rule that applies wins:

    1. ``failed > failure_limit`` -> ABORT_FAILED (limit 0: the first Failed aborts).
    2. ``consecutive_errors > consecutive_error_limit`` -> ABORT_ERRORS (Argo: the default 4
       aborts at the 5th erroring interval in a row).
    3. ``inconclusive > inconclusive_limit`` -> ABORT_INCONCLUSIVE (roll back: a release
       that cannot be measured is not promoted; within the limit it holds its step).
    4. The latest interval was not Successful (Failed within the limit, Error, Inconclusive)
       or there was none yet -> HOLD: do not advance a step on a bad or missing measurement.
    5. Otherwise CONTINUE.

    Rollback reasons come before the pause, so a run that is both failing and inconclusive
    rolls back. Limits below zero are a ValueError.
    """
    if min(failure_limit, inconclusive_limit, consecutive_error_limit) < 0:
        raise ValueError("analysis limits must be >= 0")
    if counters.failed > failure_limit:
        return Outcome.ABORT_FAILED
    if counters.consecutive_errors > consecutive_error_limit:
        return Outcome.ABORT_ERRORS
    if counters.inconclusive > inconclusive_limit:
        return Outcome.ABORT_INCONCLUSIVE
    if counters.latest is not Verdict.SUCCESSFUL:
        return Outcome.HOLD
    return Outcome.CONTINUE


__all__ = [
    "DEFAULT_CONSECUTIVE_ERROR_LIMIT", "PLACEHOLDERS", "TEMPLATES", "Counters", "Measurement",
    "MetricProvider", "Outcome", "QueryResult", "RenderedMetric", "Template", "Verdict",
    "evaluate", "judge", "measurement_variables", "prometheus_duration", "render",
    "render_metric", "unknown_placeholders",
]
