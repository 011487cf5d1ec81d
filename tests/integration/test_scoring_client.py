"""The smoke test's HTTP side against real servers on loopback that answer as a good, a slow,
an erroring, a signature-breaking and a hanging model server would (the local stack's real
`mlflow models serve` backends are exercised by the release tests)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

from modeldeploy.adapters.scoring import ScoringClient, SmokeResult
from modeldeploy.core.gates import parse_schema
from tests.support.loopback import Handler, loopback_server

OUTPUTS = parse_schema('[{"type": "double", "required": true}]')
EXAMPLE = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


def server(handler: Handler) -> AbstractAsyncContextManager[str]:
    return loopback_server("POST", "/invocations", handler)


def affine(bias: float = 0.0, *, delay: float = 0.0, status: int = 200,
           shape: str = "flat") -> Handler:
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        await asyncio.sleep(delay)
        if status != 200:
            return web.json_response({"error_code": "INTERNAL_ERROR",
                                      "message": "ZeroDivisionError: boom"}, status=status)
        xs = [row[0] for row in body["dataframe_split"]["data"]]
        preds: list[Any] = [2 * x + bias for x in xs]
        if shape == "pairs":
            preds = [[p, 1.0] for p in preds]
        return web.json_response({"predictions": preds})

    handle.seen = seen  # type: ignore[attr-defined]
    return handle


def smoke(handler: Handler, **kwargs: Any) -> SmokeResult:
    async def run() -> SmokeResult:
        client = ScoringClient()
        try:
            async with server(handler) as url:
                return await client.smoke(url, EXAMPLE, OUTPUTS, **{
                    "attempts": 2, "timeout": 2.0, "max_latency": 0.5, "pause": 0.1,
                    **kwargs})
        finally:
            await client.close()
    return asyncio.run(run())


def test_a_good_server_passes_on_the_first_attempt_with_the_example_as_sent() -> None:
    handler = affine(1.0)
    result = smoke(handler)
    assert result.passed and len(result.attempts) == 1, result
    assert result.attempts[0].status == 200 and result.attempts[0].latency is not None
    assert handler.seen == [EXAMPLE]  # type: ignore[attr-defined]
    assert "answered as the signature says" in result.message


def test_an_output_that_breaks_the_signature_fails_every_attempt_and_says_how() -> None:
    result = smoke(affine(shape="pairs"))
    assert not result.passed and len(result.attempts) == 2
    assert result.attempts[0].problem == "expected one double per row, got [2.0, 1.0]"


def test_a_slow_server_fails_the_latency_budget() -> None:
    result = smoke(affine(delay=0.7))
    assert not result.passed
    problem = result.attempts[0].problem or ""
    assert problem.startswith("answered in ") and "over the 500 ms budget" in problem


def test_an_erroring_server_fails_with_its_own_words() -> None:
    result = smoke(affine(status=500), attempts=1)
    assert not result.passed
    assert result.attempts[0].problem == ('HTTP 500: {"error_code": "INTERNAL_ERROR", '
                                          '"message": "ZeroDivisionError: boom"}')


def test_a_hanging_server_times_out_and_a_closed_port_is_refused() -> None:
    hanging = smoke(affine(delay=5), attempts=1, timeout=0.5)
    assert hanging.attempts[0] == hanging.attempts[0].__class__(
        None, None, "no answer within 0.5s")

    async def refused() -> SmokeResult:
        async with server(affine()) as url:
            pass  # the server is gone again: its port refuses
        client = ScoringClient()
        try:
            return await client.smoke(url, EXAMPLE, OUTPUTS, attempts=1, timeout=2,
                                      max_latency=1)
        finally:
            await client.close()

    result = asyncio.run(refused())
    assert not result.passed and "ClientConnectorError" in (result.attempts[0].problem or "")
    assert "failed 1 attempt(s)" in result.message


def test_a_flaky_server_passes_on_a_later_attempt() -> None:
    calls = {"n": 0}
    good = affine()

    async def flaky(request: web.Request) -> web.StreamResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=503, text="warming up")
        return await good(request)

    result = smoke(flaky, attempts=3)
    assert result.passed and len(result.attempts) == 2
    assert result.attempts[0].problem == "HTTP 503: warming up"
    assert "(attempt 2)" in result.message
