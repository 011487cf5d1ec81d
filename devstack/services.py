"""The non-Kubernetes services of the stack: MLflow, the traffic exporter, Prometheus and the
scoring backends with their service gateway."""

from __future__ import annotations

import base64
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from devstack import procs
from devstack.ports import free_port

#: How often Prometheus scrapes the traffic exporter. Short, so tests see weight changes fast.
SCRAPE_INTERVAL = "1s"
#: The Prometheus job of the operator's own /metrics (see OperatorProcess).
OPERATOR_JOB = "modeldeploy-operator"


@dataclass(frozen=True)
class Endpoint:
    url: str
    proc: procs.Proc


def mlflow_env(state: Path) -> dict[str, str]:
    """Environment for the MLflow server: local webhooks allowed, no telemetry leaving."""
    key_file = state / "mlflow" / "webhook-kek"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode())
    env = dict(os.environ)
    env.update({
        # Our webhook receiver is plain http on loopback; MLflow refuses both by default.
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key_file.read_text().strip(),
        # MLflow caches the webhook list (60 s by default): a webhook registered by a test
        # would get no delivery for up to a minute.
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The job runner and its seven huey consumers serve GenAI jobs (~230 MiB each); the
        # registry and webhook delivery (an in-process thread pool) do not need them.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "DO_NOT_TRACK": "true",
    })
    return env


def start_mlflow(venv: Path, *, state: Path, timeout: float = 90.0,
                 port: int | None = None) -> Endpoint:
    """Start MLflow on ``port`` (a free one by default). Restarting on the same port with the
    same state keeps every registered model: tests use that to simulate an outage."""
    port = port or free_port()
    root = state / "mlflow"
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    proc = procs.start("mlflow", [
        str(venv / "bin" / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ], state=state, env=mlflow_env(state), cwd=root)
    url = f"http://127.0.0.1:{port}"
    procs.wait_until("MLflow /health", lambda: procs.http_ok(f"{url}/health"),
                     timeout=timeout, proc=proc)
    return Endpoint(url=url, proc=proc)


def start_traffic(*, state: Path, kubeconfig: Path, port: int | None = None) -> Endpoint:
    """The synthetic traffic exporter (:mod:`devstack.traffic`), from this same interpreter.
    Its behaviours and rates live in memory: a restart on the same ``port`` forgets them."""
    port = port or free_port()
    proc = procs.start("traffic", [
        sys.executable, "-m", "devstack.traffic",
        "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}",
    ], state=state, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    procs.wait_until("traffic exporter /healthz", lambda: procs.http_ok(f"{url}/healthz"),
                     timeout=30, proc=proc)
    return Endpoint(url=url, proc=proc)


def start_scoring(*, state: Path, kubeconfig: Path, venv: Path, tracking_uri: str,
                  port: int | None = None) -> Endpoint:
    """The service gateway and the model servers behind it (:mod:`devstack.scoring`), from
    this same interpreter; the servers run from the MLflow server's ``venv``. A restart stops
    the servers and starts them again for the Deployments that still want them."""
    port = port or free_port()
    proc = procs.start("scoring", [
        sys.executable, "-m", "devstack.scoring", "--kubeconfig", str(kubeconfig),
        "--state", str(state), "--venv", str(venv), "--tracking-uri", tracking_uri,
        "--listen", f"127.0.0.1:{port}",
    ], state=state, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    procs.wait_until("service gateway /_healthz", lambda: procs.http_ok(f"{url}/_healthz"),
                     timeout=30, proc=proc)
    return Endpoint(url=url, proc=proc)


def start_prometheus(binary: Path, *, state: Path, targets: dict[str, str],
                     port: int | None = None) -> Endpoint:
    """Prometheus as our own process (not the Debian service), scraping ``targets``.
    Restarting on the same ``port`` and state keeps the samples already stored."""
    port = port or free_port()
    root = state / "prometheus"
    (root / "data").mkdir(parents=True, exist_ok=True)
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{hostport}']\n"
        for job, hostport in targets.items()
    )
    # Processes started later (the operator) announce themselves with a file here.
    (root / "targets").mkdir(exist_ok=True)
    jobs += (f"  - job_name: {OPERATOR_JOB}\n    file_sd_configs:\n"
             f"      - files: ['{root / 'targets'}/*.json']\n        refresh_interval: 5s\n")
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        f"scrape_configs:\n{jobs}"
    )
    proc = procs.start("prometheus", [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=6h",
    ], state=state, cwd=root)
    url = f"http://127.0.0.1:{port}"
    procs.wait_until("Prometheus /-/ready", lambda: procs.http_ok(f"{url}/-/ready"),
                     timeout=60, proc=proc)
    # Ready to serve queries is not the same as having data: wait for a first scrape of every
    # static target, so nothing that starts on a fresh stack sees an empty `up`.
    query = urllib.parse.urlencode({"query": f"count(up) >= {len(targets)}"})
    procs.wait_until("Prometheus's first scrape", lambda: procs.http_ok(
        f"{url}/api/v1/query?{query}", body='"value"'), timeout=60, proc=proc)
    return Endpoint(url=url, proc=proc)


#: Stopped in this order (newest first), restarted in the reverse.
COMPONENTS = ("scoring", "prometheus", "traffic", "mlflow")
