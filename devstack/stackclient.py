"""Thin clients for the stack's Prometheus, traffic exporter and service gateway (tests,
benches, the demo)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
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


@dataclass(frozen=True)
class Answer:
    """One response through the service gateway, whatever its status."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Scoring:
    """The service gateway (:mod:`devstack.scoring`) and the model servers behind it."""

    url: str

    @property
    def template(self) -> str:
        return f"{self.url}/{{namespace}}/{{service}}"

    def service_url(self, namespace: str, service: str) -> str:
        return self.template.format(namespace=namespace, service=service)

    def backends(self, namespace: str | None = None) -> list[dict[str, Any]]:
        listing = _request("GET", f"{self.url}/_backends")
        return [b for b in listing if namespace in (None, b["namespace"])]

    def backend(self, namespace: str, deployment: str) -> dict[str, Any] | None:
        found = [b for b in self.backends(namespace) if b["deployment"] == deployment]
        return found[0] if found else None

    def wait_ready(self, namespace: str, deployment: str, *,
                   timeout: float = 90.0) -> dict[str, Any]:
        """The backend of Deployment ``namespace/deployment`` once it answers."""
        return dict(self._wait(lambda: (b := self.backend(namespace, deployment)) is not None
                               and b["state"] == "Ready" and b, timeout,
                               f"backend {namespace}/{deployment} Ready"))

    def wait_gone(self, namespace: str, deployment: str, *, timeout: float = 30.0) -> None:
        self._wait(lambda: self.backend(namespace, deployment) is None, timeout,
                   f"backend {namespace}/{deployment} stopped")

    def post(self, namespace: str, service: str, body: Any, *,
             path: str = "invocations") -> Answer:
        """POST ``body`` (JSON) to ``path`` of Service ``namespace/service``."""
        req = urllib.request.Request(  # noqa: S310 - loopback stack
            f"{self.service_url(namespace, service)}/{path}", data=json.dumps(body).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - loopback
                status, headers, data = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            status, headers, data = err.code, dict(err.headers), err.read()
        return Answer(status, headers, data, time.monotonic() - started)

    @staticmethod
    def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout:.0f}s")
            time.sleep(0.2)
