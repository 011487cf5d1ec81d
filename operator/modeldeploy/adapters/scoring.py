"""A model version's scoring server, reached through its Service: the smoke test.

The operator sends the version's logged serving input example to ``/invocations`` and judges
the answer with :func:`modeldeploy.core.gates.response_problems` (row count, output signature)
and a latency budget. A Service's URL comes from one template
(``MODELDEPLOY_SERVICE_URL_TEMPLATE``, default the in-cluster DNS name); the local test stack
points it at its loopback service gateway, so the smoke test runs the same code here and in a
cluster. Every failure is data (an :class:`Attempt` with its problem), never an exception.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from modeldeploy.core.gates import Schema, example_rows, response_problems
from modeldeploy.core.world import Attempt, SmokeResult

__all__ = ["Attempt", "ScoringClient", "SmokeResult", "service_url"]

DEFAULT_SERVICE_URL_TEMPLATE = "http://{service}.{namespace}.svc:{port}"
PLACEHOLDERS = ("service", "namespace", "port")
_BODY_EXCERPT = 200


def service_url(template: str, *, service: str, namespace: str, port: int) -> str:
    """The base URL of a Service, from the template (ValueError naming an unknown
    placeholder)."""
    try:
        return template.format(service=service, namespace=namespace, port=port).rstrip("/")
    except (KeyError, IndexError) as exc:
        raise ValueError(f"service URL template {template!r}: unknown placeholder {exc}; "
                         f"use {{{'}, {'.join(PLACEHOLDERS)}}}") from exc


class ScoringClient:
    """POSTs to scoring servers. ``session`` makes the aiohttp session (tests inject one); it
    is created on first use, inside the running loop, and closed by :meth:`close`."""

    def __init__(self, *, session: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._make_session = session or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None

    async def smoke(self, url: str, payload: Any, outputs: Schema | None, *, attempts: int,
                    timeout: float, max_latency: float, pause: float = 1.0,
                    ready_wait: float = 0.0) -> SmokeResult:
        """Up to ``attempts`` tries, ``pause`` seconds apart; the first that passes ends it.
        With ``ready_wait``, the server's ``/ping`` must answer 200 first (polled for up to
        that long): a server still loading its model is not judged yet, and the result
        says so (``not_ready``) instead of counting failed attempts."""
        if ready_wait > 0:
            waiting = await self.wait_ready(url, ready_wait, timeout=min(timeout, ready_wait))
            if waiting is not None:
                return SmokeResult(False, url, (), not_ready=waiting)
        done: list[Attempt] = []
        rows = example_rows(payload)
        for i in range(attempts):
            if i:
                await asyncio.sleep(pause)
            attempt = await self._once(url, payload, outputs, rows, timeout, max_latency)
            done.append(attempt)
            if attempt.problem is None:
                return SmokeResult(True, url, tuple(done))
        return SmokeResult(False, url, tuple(done))

    async def wait_ready(self, url: str, wait: float, *, timeout: float,
                         pause: float = 0.5) -> str | None:
        """Poll ``url/ping`` until it answers 200 (None) or ``wait`` seconds pass (why not)."""
        deadline = time.monotonic() + wait
        last = "no answer"
        while True:
            if self._session is None or self._session.closed:
                self._session = self._make_session()
            try:
                async with self._session.get(
                        f"{url}/ping", timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return None
                    last = f"/ping answers HTTP {resp.status}"
            except TimeoutError:
                last = f"/ping: no answer within {timeout:g}s"
            except aiohttp.ClientError as exc:
                last = f"/ping: {type(exc).__name__}"
            if time.monotonic() + pause >= deadline:
                return f"the scoring server is not ready ({last})"
            await asyncio.sleep(pause)

    async def _once(self, url: str, payload: Any, outputs: Schema | None, rows: int | None,
                    timeout: float, max_latency: float) -> Attempt:
        if self._session is None or self._session.closed:
            self._session = self._make_session()
        started = time.monotonic()
        try:
            async with self._session.post(
                    f"{url}/invocations", data=json.dumps(payload),
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                text = await resp.text()
                status = resp.status
        except TimeoutError:
            return Attempt(None, None, f"no answer within {timeout:g}s")
        except aiohttp.ClientError as exc:
            return Attempt(None, None, f"{type(exc).__name__}: {exc}")
        latency = time.monotonic() - started
        if status != 200:
            excerpt = " ".join(text.split())[:_BODY_EXCERPT]
            return Attempt(status, latency, f"HTTP {status}: {excerpt}")
        try:
            body = json.loads(text)
        except ValueError:
            return Attempt(status, latency, f"not JSON: {text[:_BODY_EXCERPT]!r}")
        problems = response_problems(outputs, body, rows)
        if problems:
            return Attempt(status, latency, "; ".join(problems))
        if latency > max_latency:
            return Attempt(status, latency, f"answered in {latency * 1000:.0f} ms, over the "
                                            f"{max_latency * 1000:.0f} ms budget")
        return Attempt(status, latency, None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
