"""Thin clients for the stack's Prometheus and traffic exporter (tests, benches, the demo)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


def _request(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - loopback stack
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback stack
        return json.loads(resp.read())


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        result = _request("GET", f"{self.url}/api/v1/query?{q}")
        assert result["status"] == "success", result
        return list(result["data"]["result"])

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}


@dataclass(frozen=True)
class Traffic:
    url: str

    def behaviour(self, *, namespace: str, model: str, version: str,
                  error_rate: float | None = None, latency: float | None = None) -> Any:
        body: dict[str, Any] = {"namespace": namespace, "model": model, "version": version}
        if error_rate is not None:
            body["errorRate"] = error_rate
        if latency is not None:
            body["latencySeconds"] = latency
        return _request("PUT", f"{self.url}/behaviour", body)

    def rate(self, *, namespace: str, model: str, rps: float) -> Any:
        """Simulated requests per second to ``model`` (default 20)."""
        return _request("PUT", f"{self.url}/rate",
                        {"namespace": namespace, "model": model, "rps": rps})

    def reset(self, namespace: str) -> Any:
        return _request("DELETE", f"{self.url}/behaviour?namespace={namespace}")

    def state(self) -> Any:
        return _request("GET", f"{self.url}/state")
