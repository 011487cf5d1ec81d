"""PrometheusProvider against the real local Prometheus (and, for what a real Prometheus never
does, small loopback servers): every failure comes back as data, with Prometheus's own words.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from aiohttp import web

from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from modeldeploy.adapters.prometheus import PrometheusProvider
from modeldeploy.core.analysis import (
    TEMPLATES,
    QueryResult,
    Verdict,
    evaluate,
    measurement_variables,
    render_metric,
)
from tests.integration.conftest import Kubectl
from tests.support.loopback import loopback_server
from tests.support.wait import eventually


async def _query(url: str, promql: str, timeout: float) -> QueryResult:
    provider = PrometheusProvider(base_url=url, timeout=timeout)
    try:
        return await provider.query(promql)
    finally:
        await provider.close()


def ask(url: str, promql: str, *, timeout: float = 10.0) -> QueryResult:
    return asyncio.run(_query(url, promql, timeout))


def free_loopback_port() -> int:
    """A port nothing listens on: bound, then closed again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                ) -> AbstractAsyncContextManager[str]:
    return loopback_server("GET", "/api/v1/query", handler)


def ask_fake(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
             promql: str = "up", *, timeout: float = 5.0) -> QueryResult:
    async def scenario() -> QueryResult:
        async with fake_server(handler) as url:
            return await _query(url, promql, timeout)
    return asyncio.run(scenario())


# --- the real Prometheus ----------------------------------------------------------------------

def test_vector(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, "up")
    assert got.error is None
    assert got.series >= 1 and got.value in (0.0, 1.0)


def test_single_series_value(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, "count(up) * 0 + 42")
    assert got == QueryResult(value=42.0, series=1, error=None)


def test_empty_vector(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, 'up{job="no-such-job-anywhere"}')
    assert got == QueryResult(value=None, series=0, error=None)


def test_syntax_error_keeps_prometheus_words(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, "sum(rate(up[1m])")
    assert got.value is None and got.series == 0
    assert got.error is not None
    assert got.error.startswith("bad_data: ") and "parse error" in got.error, got.error


@pytest.mark.parametrize(("promql", "value"), [
    ("vector(1)", 1.0), ("scalar(vector(2.5))", 2.5), ("3", 3.0),
])
def test_scalar_and_vector_literals(stack: StackInfo, promql: str, value: float) -> None:
    assert ask(stack.prometheus_url, promql) == QueryResult(value=value, series=1)


@pytest.mark.parametrize(("promql", "check"), [
    ("0/0", math.isnan),
    ("vector(0)/0", math.isnan),
    ("1/0", lambda x: x == math.inf),
    ("-1/0", lambda x: x == -math.inf),
])
def test_nan_and_inf(stack: StackInfo, promql: str, check: Callable[[float], bool]) -> None:
    got = ask(stack.prometheus_url, promql)
    assert got.error is None and got.series == 1
    assert got.value is not None and check(got.value), got


def test_nan_is_inconclusive_end_to_end(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, "vector(0)/0")
    m = evaluate(metric="error-rate", candidate=got, stable=None, requests=None, min=None,
                 max=0.05, max_increase=None, min_requests=0, query="vector(0)/0")
    assert m.verdict is Verdict.INCONCLUSIVE and "NaN" in m.message


def test_range_vector_is_an_error(stack: StackInfo) -> None:
    got = ask(stack.prometheus_url, "up[1m]")
    assert got.error is not None and "matrix" in got.error


def test_unreachable_prometheus_is_an_error_not_an_exception() -> None:
    port = free_loopback_port()
    got = ask(f"http://127.0.0.1:{port}", "up", timeout=5)
    assert got.value is None and got.series == 0
    assert got.error is not None
    assert f"127.0.0.1:{port}" in got.error and "cannot query Prometheus" in got.error


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_are_valid_promql(stack: StackInfo, name: str) -> None:
    t = TEMPLATES[name]
    rendered = render_metric(query=t.query, requests=t.requests, relative=True,
                             variables=measurement_variables(
                                 namespace="no-such-ns", name="scorer", model='we"ird\\model',
                                 version="2", stable_version="1", interval="30s"))
    assert rendered.stable is not None
    for q in (rendered.candidate, rendered.stable, rendered.requests):
        if q is None:
            continue
        got = ask(stack.prometheus_url, q)
        assert got.error is None, (q, got.error)
        assert got.series == 0, "nothing is labelled with this namespace: an empty vector"


def test_local_templates_measure_simulated_traffic(
    stack: StackInfo, kubectl: Kubectl, traffic: Traffic, namespace: str
) -> None:
    """A 50/50 route between a healthy stable v1 and a v2 with 25% errors and 0.4 s latency:
    the templates tell them apart, and the verdicts follow."""
    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": f"m-v{v}", "labels": {"modeldeploy.io/model": "m",
                                                    "modeldeploy.io/version": v}},
         "spec": {"selector": {"app": f"m-v{v}"}, "ports": [{"port": 8080}]}}
        for v in ("1", "2")]
    objects.append({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "m", "labels": {"modeldeploy.io/model": "m"}},
        "spec": {"rules": [{"backendRefs": [{"name": "m-v1", "port": 8080, "weight": 50},
                                            {"name": "m-v2", "port": 8080, "weight": 50}]}]}})
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))
    traffic.behaviour(namespace=namespace, model="m", version="2", error_rate=0.25, latency=0.4)
    variables = measurement_variables(namespace=namespace, name="m", model="m", version="2",
                                      stable_version="1", interval="10s")

    def measure(name: str) -> tuple[QueryResult, QueryResult, QueryResult | None]:
        t = TEMPLATES[name]
        r = render_metric(query=t.query, requests=t.requests, variables=variables,
                          relative=True)
        assert r.stable is not None
        return (ask(stack.prometheus_url, r.candidate), ask(stack.prometheus_url, r.stable),
                ask(stack.prometheus_url, r.requests) if r.requests else None)

    try:
        def error_rates() -> tuple[QueryResult, QueryResult, QueryResult | None] | None:
            got = measure("error-rate")
            cand, n = got[0].value, got[2].value if got[2] else None
            # 10 simulated requests/s reach v2: a full 10s window holds about 100
            full = n is not None and n >= 50
            return got if full and cand is not None and abs(cand - 0.25) <= 0.03 else None

        cand, stable, requests = eventually(error_rates, timeout=45, interval=1,
                                            what="error-rate of v2 near 0.25 over a full window")
        assert stable == QueryResult(value=0.0, series=1), "no 5xx series at all is a 0 rate"
        assert requests is not None
        m = evaluate(metric="error-rate", candidate=cand, stable=stable, requests=requests,
                     min=None, max=0.05, max_increase=None, min_requests=20, query="q")
        assert m.verdict is Verdict.FAILED, m.message

        def latencies() -> tuple[QueryResult, QueryResult, QueryResult | None] | None:
            got = measure("latency-p99")
            return got if got[0].value is not None and got[1].value is not None else None

        p99, p99_stable, _ = eventually(latencies, timeout=30, interval=1,
                                        what="p99 latency for both versions")
        assert p99.value is not None and p99_stable.value is not None
        assert p99.value > 0.3 > 0.1 > p99_stable.value, (p99, p99_stable)
        m = evaluate(metric="latency-p99", candidate=p99, stable=p99_stable, requests=None,
                     min=None, max=None, max_increase=0.1, min_requests=0, query="q")
        assert m.verdict is Verdict.FAILED and "stable" in m.message, m.message

        count, count_stable, _ = measure("request-count")
        assert count.value is not None and count_stable.value is not None
        assert count.value > 0 and count_stable.value > 0
    finally:
        traffic.reset(namespace)


# --- what a real Prometheus does not do, from loopback servers --------------------------------

def test_non_json_body_is_an_error() -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=502, text="<html><body>Bad Gateway</body></html>",
                            content_type="text/html")
    got = ask_fake(handler)
    assert got.error is not None
    assert got.error.startswith("HTTP 502") and "Bad Gateway" in got.error


def test_http_error_with_prometheus_body_keeps_its_words() -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"status": "error", "errorType": "timeout",
                                  "error": "query timed out in expression evaluation"},
                                 status=503)
    got = ask_fake(handler)
    assert got.error == "timeout: query timed out in expression evaluation"


def test_slow_prometheus_times_out_as_an_error() -> None:
    async def handler(_: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({"status": "success",
                                  "data": {"resultType": "vector", "result": []}})
    got = ask_fake(handler, timeout=0.3)
    assert got.error is not None and "did not answer within 0.3s" in got.error


def test_query_and_timeout_are_sent_as_parameters() -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.query)
        return web.json_response({"status": "success", "data": {
            "resultType": "vector", "result": [
                {"metric": {"a": "1"}, "value": [1700000000.0, "NaN"]},
                {"metric": {"a": "2"}, "value": [1700000000.0, "0.5"]}]}})
    got = ask_fake(handler, 'sum(x{v="a b&c"})', timeout=2)
    assert seen == {"query": 'sum(x{v="a b&c"})', "timeout": "2"}
    assert got.series == 2 and got.value is not None and math.isnan(got.value)


def test_credentials_in_the_url_stay_out_of_errors() -> None:
    port = free_loopback_port()
    got = ask(f"http://user:s3cret@127.0.0.1:{port}", "up", timeout=5)
    assert got.error is not None and "s3cret" not in got.error


def test_close_is_idempotent_and_the_provider_reopens(stack: StackInfo) -> None:
    async def scenario() -> tuple[QueryResult, QueryResult]:
        provider = PrometheusProvider(base_url=stack.prometheus_url)
        first = await provider.query("vector(1)")
        await provider.close()
        await provider.close()
        second = await provider.query("vector(2)")
        await provider.close()
        return first, second
    first, second = asyncio.run(scenario())
    assert (first.value, second.value) == (1.0, 2.0)
