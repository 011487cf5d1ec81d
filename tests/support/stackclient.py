"""Thin clients for the stack's services, as the tests use them."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import versions
from devstack.paths import cache_dir
from devstack.stack import StackInfo

SEED_SCRIPT = Path(__file__).resolve().parents[2] / "devstack" / "mlflow_seed.py"


def _request(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
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

    def reset(self, namespace: str) -> Any:
        return _request("DELETE", f"{self.url}/behaviour?namespace={namespace}")

    def state(self) -> Any:
        return _request("GET", f"{self.url}/state")


def seed_model(stack: StackInfo, *, name: str, alias: str | None = None,
               metrics: dict[str, float] | None = None, bias: float = 0.0,
               stage: str | None = None) -> dict[str, Any]:
    """Log and register a pyfunc version with the MLflow server's own (full mlflow) venv."""
    python = cache_dir() / "venv" / f"mlflow-{versions.MLFLOW_SERVER}" / "bin" / "python"
    argv = [str(python), str(SEED_SCRIPT), "--tracking-uri", stack.mlflow_tracking_uri,
            "--name", name, "--bias", str(bias)]
    if alias:
        argv += ["--alias", alias]
    if stage:
        argv += ["--stage", stage]
    for key, value in (metrics or {}).items():
        argv += ["--metric", f"{key}={value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"seeding {name} failed:\n{out.stderr[-3000:]}"
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
