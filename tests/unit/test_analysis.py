"""Canary analysis, pure: verdict rules at their boundaries, placeholder rendering, the
built-in templates, and the limits over a run of measurements."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from modeldeploy.core.analysis import (
    DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    PLACEHOLDERS,
    TEMPLATES,
    Counters,
    Outcome,
    QueryResult,
    Verdict,
    evaluate,
    judge,
    measurement_variables,
    prometheus_duration,
    render,
    render_metric,
    unknown_placeholders,
)

NAN, INF = math.nan, math.inf
EMPTY = QueryResult(value=None, series=0)


def v(x: float) -> QueryResult:
    return QueryResult(value=x, series=1)


def err(text: str) -> QueryResult:
    return QueryResult(error=text)


def judge_one(candidate: QueryResult, **kw: Any) -> tuple[Verdict, str]:
    args: dict[str, Any] = {"metric": "error-rate", "candidate": candidate, "stable": None,
                            "requests": None, "min": None, "max": None, "max_increase": None,
                            "min_requests": 0, "query": "q"}
    m = evaluate(**(args | kw))
    return m.verdict, m.message


OK, FAIL, INC, ERR = Verdict.SUCCESSFUL, Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.ERROR


# --- verdicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("candidate", "bounds", "verdict", "message"), [
    (v(0.05), {"max": 0.05}, OK, "error-rate 0.05 within <= 0.05 (successful)"),
    (v(0.0500001), {"max": 0.05}, FAIL, "error-rate 0.0500001 > max 0.05 (failed)"),
    (v(0.2), {"max": 0.05}, FAIL, "error-rate 0.2 > max 0.05 (failed)"),
    (v(0.0), {"max": 0.05}, OK, None),
    (v(-1.0), {"max": 0.05}, OK, None),
    (v(0.9), {"min": 0.9}, OK, "error-rate 0.9 within >= 0.9 (successful)"),
    (v(0.8999), {"min": 0.9}, FAIL, "error-rate 0.8999 < min 0.9 (failed)"),
    (v(0.1), {"min": 0.1, "max": 0.3}, OK, None),
    (v(0.3), {"min": 0.1, "max": 0.3}, OK, "error-rate 0.3 within >= 0.1 and <= 0.3 (successful)"),
    (v(0.09), {"min": 0.1, "max": 0.3}, FAIL, None),
    (v(0.31), {"min": 0.1, "max": 0.3}, FAIL, None),
    (v(7.0), {}, OK, "error-rate 7 (successful)"),
    (EMPTY, {"max": 0.05}, INC, "error-rate: no data: the query returned an empty vector "
                              "(inconclusive)"),
    (EMPTY, {}, INC, None),
    (v(NAN), {"max": 0.05}, INC, "error-rate: no data: the query returned NaN (inconclusive)"),
    (v(NAN), {"min": 0.0}, INC, None),
    (v(INF), {"max": 0.05}, INC, "error-rate: no data: the query returned +Inf (inconclusive)"),
    (v(-INF), {"min": 0.0}, INC, "error-rate: no data: the query returned -Inf (inconclusive)"),
    (v(INF), {}, INC, None),
    (err("bad_data: 1:5: parse error: unexpected <EOF>"), {"max": 0.05}, ERR,
     "error-rate: Prometheus error: bad_data: 1:5: parse error: unexpected <EOF> (error)"),
    (QueryResult(value=0.01, series=3), {"max": 0.05}, ERR, None),
])
def test_absolute_bounds(candidate: QueryResult, bounds: dict[str, float], verdict: Verdict,
                         message: str | None) -> None:
    got, text = judge_one(candidate, **bounds)
    assert got is verdict
    if message is not None:
        assert text == message


@pytest.mark.parametrize(("requests", "min_requests", "candidate", "verdict", "message"), [
    (v(3), 20, v(0.0), INC, "error-rate: too few requests: 3 < 20 (inconclusive)"),
    (v(19.999), 20, v(0.0), INC, None),
    (v(20), 20, v(0.0), OK, None),
    (v(20), 20, v(0.5), FAIL, None),
    (EMPTY, 20, v(0.0), INC, "error-rate: too few requests: 0 < 20 (inconclusive)"),
    (v(NAN), 20, v(0.0), INC, "error-rate: too few requests: 0 < 20 (inconclusive)"),
    (v(3), 20, v(0.5), INC, None),  # not enough evidence to fail either
    (v(3), 20, EMPTY, INC, None),
    (err("timeout"), 20, v(0.0), ERR,
     "error-rate: requests query: Prometheus error: timeout (error)"),
    (err("timeout"), 0, v(0.0), OK, None),  # requests not needed: not queried for the verdict
    (EMPTY, 0, v(0.0), OK, None),
    (v(3), 20, err("down"), ERR, None),  # a failed query beats too few requests
])
def test_minimum_requests(requests: QueryResult, min_requests: float, candidate: QueryResult,
                          verdict: Verdict, message: str | None) -> None:
    got, text = judge_one(candidate, requests=requests, min_requests=min_requests, max=0.1)
    assert got is verdict
    if message is not None:
        assert text == message


@pytest.mark.parametrize(("candidate", "stable", "bounds", "verdict", "message"), [
    (v(0.07), v(0.05), {}, OK,
     "error-rate 0.07 (stable 0.05) within <= stable + 0.02 (successful)"),
    (v(0.0701), v(0.05), {}, FAIL,
     "error-rate 0.0701 > stable 0.05 + max increase 0.02 (failed)"),
    (v(0.0), v(0.05), {}, OK, None),
    (v(0.3), v(0.29), {}, OK, None),
    (v(0.07), EMPTY, {}, INC, "error-rate: no data for the stable version: the query returned an "
                            "empty vector (inconclusive)"),
    (v(0.07), v(NAN), {}, INC, None),
    (v(0.07), v(INF), {}, INC, None),
    (v(0.07), None, {}, INC, "error-rate: no data for the stable version: no stable version "
                           "(inconclusive)"),
    (v(0.07), err("bad_data: x"), {}, ERR,
     "error-rate: stable query: Prometheus error: bad_data: x (error)"),
    (EMPTY, v(0.05), {}, INC, None),
    (v(0.5), v(0.49), {"max": 0.1}, FAIL, "error-rate 0.5 > max 0.1 (failed)"),  # absolute first
    (v(0.5), EMPTY, {"max": 0.1}, FAIL, None),
])
def test_relative_form(candidate: QueryResult, stable: QueryResult | None,
                       bounds: dict[str, float], verdict: Verdict, message: str | None) -> None:
    got, text = judge_one(candidate, stable=stable, max_increase=0.02, **bounds)
    assert got is verdict
    if message is not None:
        assert text == message


def test_stable_is_recorded_but_not_needed_without_max_increase() -> None:
    m = evaluate(metric="p99", candidate=v(0.2), stable=err("down"), requests=None, min=None,
                 max=0.3, max_increase=None, min_requests=0, query="q")
    assert (m.verdict, m.stable) == (OK, None)
    m = evaluate(metric="p99", candidate=v(0.2), stable=v(0.1), requests=None, min=None,
                 max=0.3, max_increase=None, min_requests=0, query="q")
    assert (m.verdict, m.stable) == (OK, 0.1)


def test_measurement_carries_what_status_shows() -> None:
    m = evaluate(metric="error-rate", candidate=v(0.2), stable=v(0.01), requests=v(100),
                 min=None, max=0.05, max_increase=0.02, min_requests=20, query="sum(x)")
    assert m.metric == "error-rate"
    assert (m.verdict, m.value, m.stable) == (FAIL, 0.2, 0.01)
    assert m.threshold == "<= 0.05 and <= stable + 0.02"
    assert m.query == "sum(x)"
    assert m.message == "error-rate 0.2 > max 0.05 (failed)"


def test_measurement_without_a_value_has_none() -> None:
    m = evaluate(metric="x", candidate=v(NAN), stable=None, requests=None, min=0.9, max=None,
                 max_increase=None, min_requests=0, query="q")
    assert (m.value, m.threshold) == (None, ">= 0.9")


def test_provider_name_is_in_error_messages() -> None:
    m = evaluate(metric="x", candidate=err("boom"), stable=None, requests=None, min=None,
                 max=1, max_increase=None, min_requests=0, query="q", provider="Datadog")
    assert m.message == "x: Datadog error: boom (error)"


# --- rendering --------------------------------------------------------------------------------

VARS = {"namespace": "ml", "name": "scorer", "model": "fraud", "version": "8",
        "stableVersion": "7", "interval": "1m"}


@pytest.mark.parametrize(("query", "expected"), [
    ('x{version="{{ version }}"}', 'x{version="8"}'),
    ('x{version="{{version}}"}', 'x{version="8"}'),
    ('x{version="{{  version\t}}"}', 'x{version="8"}'),
    ('x{version="{{version }}"}[{{ interval}}]', 'x{version="8"}[1m]'),
    ("{{ namespace }}/{{ name }}/{{ model }}/{{ stableVersion }}", "ml/scorer/fraud/7"),
    ("no placeholders {here}", "no placeholders {here}"),
    ("{{ version }}{{ version }}", "88"),
])
def test_render(query: str, expected: str) -> None:
    assert render(query, VARS) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ('a"b', 'a\\"b'),
    ("a\\b", "a\\\\b"),
    ('\\"', '\\\\\\"'),
    ("line\nbreak", "line\\nbreak"),
    ("plain-1.2_x", "plain-1.2_x"),
])
def test_render_escapes_values_for_double_quoted_promql(value: str, expected: str) -> None:
    assert render('x{model="{{ model }}"}', VARS | {"model": value}) == f'x{{model="{expected}"}}'


@pytest.mark.parametrize(("query", "unknown"), [
    ("{{ version }}", []),
    ("{{ versoin }}", ["versoin"]),
    ("{{ stable_version }} {{ nope }} {{ nope }}", ["stable_version", "nope"]),
    ("{{ Version }}", ["Version"]),
    ("{{}}", [""]),
    ("{{ a b }}", ["a b"]),
])
def test_unknown_placeholders(query: str, unknown: list[str]) -> None:
    assert unknown_placeholders(query) == unknown


def test_render_names_an_unknown_placeholder() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{ versoin \}\}"):
        render("x{v='{{ versoin }}'}", VARS)


def test_render_names_a_placeholder_without_a_value() -> None:
    with pytest.raises(ValueError, match=r"\{\{ stableVersion \}\} has no value"):
        render("{{ stableVersion }}", {k: x for k, x in VARS.items() if k != "stableVersion"})


@pytest.mark.parametrize("interval", ["1.5m", "1m]) or vector(1", "", "5 m", "-1m"])
def test_render_refuses_an_interval_that_is_not_a_prometheus_duration(interval: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        render("x[{{ interval }}]", VARS | {"interval": interval})


@pytest.mark.parametrize(("seconds", "expected"), [
    (60, "1m"), (90, "1m30s"), (30, "30s"), (0.5, "500ms"), (3600, "1h"), (3661.5, "1h1m1s500ms"),
    (86400, "24h"),
])
def test_prometheus_duration(seconds: float, expected: str) -> None:
    assert prometheus_duration(seconds) == expected
    assert render("[{{ interval }}]", VARS | {"interval": expected}) == f"[{expected}]"


def test_prometheus_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        prometheus_duration(0)


def test_measurement_variables() -> None:
    got = measurement_variables(namespace="ml", name="scorer", model="fraud", version="8",
                                stable_version="7", interval="1m")
    assert got == VARS
    first = measurement_variables(namespace="ml", name="scorer", model="fraud", version="8",
                                  stable_version=None, interval="1m")
    assert "stableVersion" not in first
    assert set(got) == set(PLACEHOLDERS)


# --- built-in templates -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_renders_for_candidate_and_stable(name: str) -> None:
    t = TEMPLATES[name]
    assert t.name == name and t.description and t.unit
    assert unknown_placeholders(t.query) == []
    r = render_metric(query=t.query, requests=t.requests, variables=VARS, relative=True)
    assert r.stable is not None
    for q in (r.candidate, r.stable, r.requests or ""):
        assert "{{" not in q and "}}" not in q
        assert q.count("(") == q.count(")") and q.count("[") == q.count("]")
    assert "[1m]" in r.candidate
    version_label = "destination_version" if name.startswith("istio-") else "version"
    assert f'{version_label}="8"' in r.candidate and f'{version_label}="7"' not in r.candidate
    assert f'{version_label}="7"' in r.stable and f'{version_label}="8"' not in r.stable
    assert r.candidate.replace('"8"', '"7"') == r.stable, "stable form: only the version differs"
    if r.requests is not None:
        assert f'{version_label}="8"' in r.requests, "requests count the candidate's traffic"


@pytest.mark.parametrize(("name", "metric", "unit"), [
    ("error-rate", "model_requests_total", "ratio"),
    ("latency-p99", "model_request_duration_seconds_bucket", "seconds"),
    ("latency-p95", "model_request_duration_seconds_bucket", "seconds"),
    ("request-count", "model_requests_total", "requests"),
    ("istio-error-rate", "istio_requests_total", "ratio"),
    ("istio-latency-p99", "istio_request_duration_milliseconds_bucket", "ms"),
    ("istio-request-count", "istio_requests_total", "requests"),
])
def test_template_table(name: str, metric: str, unit: str) -> None:
    t = TEMPLATES[name]
    assert metric in t.query and t.unit == unit


def test_istio_templates_select_the_destination_side() -> None:
    for name in ("istio-error-rate", "istio-latency-p99", "istio-request-count"):
        q = render(TEMPLATES[name].query, VARS)
        assert 'reporter="destination"' in q
        assert 'destination_workload_namespace="ml"' in q and 'destination_app="scorer"' in q
    assert 'response_code=~"5.."' in TEMPLATES["istio-error-rate"].query


def test_error_rate_is_zero_not_empty_without_any_5xx_series() -> None:
    # The numerator must fall back to 0 (the 5xx counter only exists after a first error).
    q = TEMPLATES["error-rate"].query
    assert re.search(r'code=~"5\.\."\}\[\{\{ interval \}\}\]\)\) or vector\(0\)\)', q)


def test_render_metric_without_stable_version_or_relative_form() -> None:
    first = {k: x for k, x in VARS.items() if k != "stableVersion"}
    t = TEMPLATES["latency-p99"]
    r = render_metric(query=t.query, requests=t.requests, variables=first, relative=True)
    assert r.stable is None and r.requests is not None
    r = render_metric(query=t.query, requests=None, variables=VARS, relative=False)
    assert r.stable is None and r.requests is None


# --- limits over a run ------------------------------------------------------------------------

def run(*intervals: list[Verdict]) -> Counters:
    c = Counters()
    for interval in intervals:
        c = c.add(interval)
    return c


def test_counters_count_metric_measurements() -> None:
    c = run([OK, FAIL], [FAIL, FAIL, INC], [ERR, OK])
    assert (c.successful, c.failed, c.inconclusive) == (2, 3, 1)
    assert c.consecutive_errors == 1 and c.latest is ERR


@pytest.mark.parametrize(("intervals", "consecutive"), [
    ([[ERR]], 1),
    ([[ERR], [ERR], [ERR]], 3),
    ([[ERR, ERR, ERR]], 1),  # one interval, however many metrics erred
    ([[ERR], [ERR], [OK]], 0),
    ([[ERR], [ERR], [INC]], 0),  # any interval without an Error resets
    ([[ERR], [ERR], [FAIL]], 0),
    ([[ERR], [OK, ERR]], 2),  # a healthy metric does not hide a broken one
    ([[ERR], []], 1),  # an empty interval changes nothing
])
def test_consecutive_errors_count_intervals(intervals: list[list[Verdict]],
                                            consecutive: int) -> None:
    assert run(*intervals).consecutive_errors == consecutive


@pytest.mark.parametrize(("interval", "latest"), [
    ([OK], OK), ([OK, INC], INC), ([INC, ERR], ERR), ([ERR, FAIL, OK], FAIL), ([OK, OK], OK),
])
def test_latest_is_the_worst_verdict_of_the_interval(interval: list[Verdict],
                                                     latest: Verdict) -> None:
    assert Counters().add(interval).latest is latest


LIMITS = {"failure_limit": 2, "inconclusive_limit": 3, "consecutive_error_limit": 4}


@pytest.mark.parametrize(("counters", "outcome"), [
    (Counters(), Outcome.HOLD),  # nothing measured yet: do not advance
    (Counters(successful=5, latest=OK), Outcome.CONTINUE),
    (Counters(failed=2, latest=OK), Outcome.CONTINUE),  # at the limit: tolerated
    (Counters(failed=2, latest=FAIL), Outcome.HOLD),
    (Counters(failed=3, latest=OK), Outcome.ABORT_FAILED),
    (Counters(inconclusive=3, latest=INC), Outcome.HOLD),
    (Counters(inconclusive=4, latest=OK), Outcome.ABORT_INCONCLUSIVE),
    (Counters(consecutive_errors=4, latest=ERR), Outcome.HOLD),  # equal to the limit: not yet
    (Counters(consecutive_errors=5, latest=ERR), Outcome.ABORT_ERRORS),
    (Counters(failed=3, inconclusive=4, consecutive_errors=5, latest=FAIL), Outcome.ABORT_FAILED),
    (Counters(inconclusive=4, consecutive_errors=5, latest=ERR), Outcome.ABORT_ERRORS),
])
def test_judge(counters: Counters, outcome: Outcome) -> None:
    assert judge(counters, **LIMITS) is outcome


@pytest.mark.parametrize(("failed", "outcome"), [(0, Outcome.CONTINUE), (1, Outcome.ABORT_FAILED)])
def test_failure_limit_zero_aborts_at_the_first_failure(failed: int, outcome: Outcome) -> None:
    c = Counters(failed=failed, latest=OK)
    assert judge(c, failure_limit=0, inconclusive_limit=0) is outcome


def test_default_consecutive_error_limit_is_argos() -> None:
    assert DEFAULT_CONSECUTIVE_ERROR_LIMIT == 4
    c = run(*[[ERR]] * 4)
    assert judge(c, failure_limit=0, inconclusive_limit=0) is Outcome.HOLD
    assert judge(c.add([ERR]), failure_limit=0, inconclusive_limit=0) is Outcome.ABORT_ERRORS
    assert judge(c.add([OK]), failure_limit=0, inconclusive_limit=0) is Outcome.CONTINUE


def test_judge_refuses_negative_limits() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        judge(Counters(), failure_limit=-1, inconclusive_limit=0)


def test_a_run_from_measurements_to_rollback() -> None:
    """error-rate fails twice (tolerated, held), recovers, fails a third time: roll back."""
    c = Counters()
    outcomes = []
    for verdicts in ([OK, OK], [FAIL, OK], [OK, OK], [OK, FAIL], [OK, OK], [FAIL, OK]):
        c = c.add(verdicts)
        outcomes.append(judge(c, failure_limit=2, inconclusive_limit=3))
    assert outcomes == [Outcome.CONTINUE, Outcome.HOLD, Outcome.CONTINUE, Outcome.HOLD,
                        Outcome.CONTINUE, Outcome.ABORT_FAILED]
