"""Run the operator as a real process (``modeldeploy-operator``: ``kopf run``) on the stack.

Used by the integration tests, the benchmarks and `make demo`. Started with the stack's state
directory, it is stopped by `make cluster-down` like every other stack process.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack import procs
from devstack.ports import free_port
from devstack.stack import StackInfo

#: Shared by the local operator and the MLflow webhooks tests and the demo register.
WEBHOOK_SECRET = "local-stack-webhook-secret"  # noqa: S105 - loopback test value


@dataclass
class OperatorProcess:
    stack: StackInfo
    state: Path
    webhook_port: int
    liveness_port: int
    metrics_port: int
    proc: procs.Proc | None = None
    #: More MODELDEPLOY_* settings, e.g. a lease identity for the leader-election tests.
    extra_env: dict[str, str] = field(default_factory=dict)
    #: More `kopf run` options (after the command), e.g. --log-format=json.
    extra_args: list[str] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/mlflow"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        # MLflow's HTTP settings are the operator's own (as in a cluster), not the harness's.
        env = procs.host_env(drop=("MLFLOW_HTTP_",))
        env.update({
            "KUBECONFIG": self.stack.kubeconfig,
            "MODELDEPLOY_DEFAULT_TRACKING_URI": self.stack.mlflow_tracking_uri,
            "MODELDEPLOY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MODELDEPLOY_WEBHOOK_HOST": "127.0.0.1",
            "MODELDEPLOY_WEBHOOK_PORT": str(self.webhook_port),
            "MODELDEPLOY_METRICS_HOST": "127.0.0.1",
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
            "MODELDEPLOY_REGISTRY_TIMEOUT": "5",
            # Seconds, not minutes: tests see "not found" turn Stalled (kstatus: Failed).
            "MODELDEPLOY_STALL_AFTER_SECONDS": "3",
            # Canary analysis queries the stack's Prometheus (which scrapes the traffic).
            "MODELDEPLOY_PROMETHEUS_URL": self.stack.prometheus_url,
        })
        if self.stack.service_url_template:
            # Smoke tests reach a version's Service through the stack's service gateway
            # (devstack/scoring.py) instead of cluster DNS.
            env["MODELDEPLOY_SERVICE_URL_TEMPLATE"] = self.stack.service_url_template
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        # One operator per stack: a previous one (`make demo` runs it in the stack's own state)
        # would reconcile the same objects and post every event twice.
        procs.stop(Path(self.stack.state), "operator")
        # The installed command, as in the image: `kopf run` scoped by
        # MODELDEPLOY_WATCH_NAMESPACES (set one through extra_env).
        command = Path(sys.executable).parent / "modeldeploy-operator"
        self.proc = procs.start("operator", [
            str(command), f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            *self.extra_args,
        ], state=self.state, env=self.env(), cwd=Path(__file__).resolve().parent.parent)
        procs.wait_until("operator liveness", lambda: procs.http_ok(
            f"http://127.0.0.1:{self.liveness_port}/healthz"), timeout=60, proc=self.proc)
        procs.wait_until("operator webhook receiver", lambda: procs.http_ok(
            f"http://127.0.0.1:{self.webhook_port}/healthz"), timeout=30, proc=self.proc)
        procs.wait_until("operator metrics", lambda: procs.http_ok(self.metrics_url),
                         timeout=30, proc=self.proc)
        # Ready (the chart's readiness probe): children listed, watches running.
        procs.wait_until("operator readiness", lambda: procs.http_ok(
            self.metrics_url.replace("/metrics", "/readyz")), timeout=30, proc=self.proc)
        self._announce(True)

    def _announce(self, running: bool) -> None:
        """Tell the stack's Prometheus where to scrape this operator (file-based discovery):
        one file per operator, so a demo's and a test's operators never overwrite each other."""
        sd = Path(self.stack.state) / "prometheus" / "targets"
        target = sd / f"operator-{self.metrics_port}.json"
        if not running:
            target.unlink(missing_ok=True)
        elif not sd.is_dir():
            print(f"warning: {sd} is missing, so Prometheus will not scrape the operator: the "
                  "running stack predates that; restart it (make cluster-down)", file=sys.stderr)
        else:
            for other in sd.glob("operator-*.json"):  # operators stopped without a word
                port = other.stem.removeprefix("operator-")
                if other != target and not procs.http_ok(f"http://127.0.0.1:{port}/metrics"):
                    other.unlink(missing_ok=True)
            tmp = sd / f".{target.name}.tmp"
            tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{self.metrics_port}"]}]))
            tmp.rename(target)  # atomic: Prometheus never reads half a file

    def stop(self) -> None:
        """SIGTERM, as a rolling update would: the operator releases its Lease on the way."""
        procs.stop(self.state, "operator")
        self._announce(False)

    def kill9(self) -> None:
        """SIGKILL the operator: no cleanup, as a crash or an OOM kill would."""
        pid = procs.running(self.state, "operator")
        assert pid is not None, "operator is not running"
        os.kill(pid, 9)
        procs.stop(self.state, "operator")

    def log(self) -> str:
        return (self.state / "logs" / "operator.log").read_text(errors="replace")

    @classmethod
    def create(cls, stack: StackInfo, state: Path) -> OperatorProcess:
        return cls(stack=stack, state=state, webhook_port=free_port(), liveness_port=free_port(),
                   metrics_port=free_port())
