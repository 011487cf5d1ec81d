"""Prometheus as a :class:`~modeldeploy.core.analysis.MetricProvider`: instant queries over
its HTTP API (``GET /api/v1/query``) with plain aiohttp.

Every failure becomes ``QueryResult(error=...)``, never an exception: an unreachable or slow
Prometheus, an HTTP error from a proxy in front of it, an unreadable body, and Prometheus's own
refusals, which keep its words (``bad_data: 1:5: parse error: ...``) so the user sees what to
fix in status and events. Deciding what an error means is :func:`core.analysis.evaluate`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from modeldeploy.core.analysis import QueryResult

_BODY_EXCERPT = 200  # characters of a non-JSON body quoted in an error


def parse_response(status: int, body: str) -> QueryResult:
    """A :class:`QueryResult` from one ``/api/v1/query`` answer (HTTP status and body).

    A vector gives its first sample and its length, a scalar its value (series 1). Sample
    values are strings in the API; ``NaN`` and ``±Inf`` become float NaN and infinities.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        excerpt = " ".join(body.split())[:_BODY_EXCERPT]
        return QueryResult(error=f"HTTP {status}, not a Prometheus API answer: {excerpt!r}")
    if not isinstance(doc, dict):
        return QueryResult(error=f"HTTP {status}, not a Prometheus API answer: {doc!r:.200}")
    if doc.get("status") == "error":
        return QueryResult(error=f"{doc.get('errorType', 'error')}: {doc.get('error', '')}")
    if status != 200 or doc.get("status") != "success":
        return QueryResult(error=f"HTTP {status}, unexpected answer: {body[:_BODY_EXCERPT]!r}")
    try:
        return _from_data(doc["data"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return QueryResult(error=f"unreadable Prometheus answer ({exc!r}): "
                                 f"{body[:_BODY_EXCERPT]!r}")


def _from_data(data: dict[str, Any]) -> QueryResult:
    kind, result = data["resultType"], data["result"]
    if kind == "vector":
        if not result:
            return QueryResult(value=None, series=0)
        return QueryResult(value=float(result[0]["value"][1]), series=len(result))
    if kind == "scalar":
        return QueryResult(value=float(result[1]), series=1)
    return QueryResult(error=f"the query returned a {kind}, not an instant vector or a scalar")


class PrometheusProvider:
    """Instant queries against one Prometheus server.

    ``session`` makes the aiohttp session (tests inject one); it is called on the first query,
    inside the running event loop, and the session is closed by :meth:`close`.
    """

    def __init__(self, *, base_url: str, timeout: float = 10.0,
                 session: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._url = str(URL(base_url.rstrip("/")) / "api" / "v1" / "query")
        # Errors name the server, but never the credentials in a URL like http://u:p@host.
        self._name = str(URL(base_url).with_user(None).with_query(None))
        self._timeout = timeout
        self._make_session = session or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None

    async def query(self, promql: str) -> QueryResult:
        """Evaluate ``promql`` now; never raises for a failed query (see the module doc)."""
        if self._session is None or self._session.closed:
            self._session = self._make_session()
        # Prometheus stops evaluating at its own timeout too (float seconds are accepted).
        params = {"query": promql, "timeout": str(self._timeout)}
        try:
            async with self._session.get(
                self._url, params=params,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                body = await resp.text(errors="replace")
                status = resp.status
        except TimeoutError:
            return QueryResult(error=f"Prometheus at {self._name} did not answer within "
                                     f"{self._timeout:g}s")
        except aiohttp.ClientError as exc:
            return QueryResult(error=f"cannot query Prometheus at {self._name}: "
                                     f"{type(exc).__name__}: {exc}")
        return parse_response(status, body)

    async def close(self) -> None:
        """Close the session (idempotent); a later query opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["PrometheusProvider", "parse_response"]

