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
from dataclasses import dataclass
from typing import Any

import aiohttp

from modeldeploy.core.gates import Schema, example_rows, response_problems

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


@dataclass(frozen=True)
class Attempt:
    #: HTTP status, None when no answer came (refused, timed out).
    status: int | None
    #: Seconds until the whole answer was read, None when none came.
    latency: float | None
    #: Why this attempt failed; None when it passed.
    problem: str | None


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    url: str
    attempts: tuple[Attempt, ...]

    @property
    def message(self) -> str:
        last = self.attempts[-1] if self.attempts else None
        if self.passed and last is not None and last.latency is not None:
            tries = "" if len(self.attempts) == 1 else f" (attempt {len(self.attempts)})"
            return f"{self.url}/invocations answered as the signature says in " \
                   f"{last.latency * 1000:.0f} ms{tries}"
        problems = "; ".join(a.problem or "" for a in self.attempts)
        return f"{self.url}/invocations failed {len(self.attempts)} attempt(s): {problems}"


class ScoringClient:
    """POSTs to scoring servers. ``session`` makes the aiohttp session (tests inject one); it
    is created on first use, inside the running loop, and closed by :meth:`close`."""

    def __init__(self, *, session: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._make_session = session or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None

    async def smoke(self, url: str, payload: Any, outputs: Schema | None, *, attempts: int,
                    timeout: float, max_latency: float, pause: float = 1.0) -> SmokeResult:
        """Up to ``attempts`` tries, ``pause`` seconds apart; the first that passes ends it."""
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
