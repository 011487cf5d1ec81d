"""``make demo``: the whole story on the local stack, unattended.

1. installs the Helm chart (CRD, ServiceAccount, least-privilege RBAC) and runs the operator
   from this checkout with a TokenRequest token of the chart's ServiceAccount, so it can do
   exactly what the chart grants; an MLflow webhook points at it;
2. registers three versions of ``fraud-scorer`` in MLflow, ``champion`` on version 1, and
   applies a ModelDeployment with a Gateway API route, canary steps and an error-rate analysis;
3. plays the story with the plugin's live view (``kubectl modeldeploy status -w``):
   version 1 serves; version 2 becomes champion and is promoted through its canary steps;
   version 3 answers 30% errors (simulated traffic) and is rolled back automatically;
4. prints a summary (history, what Prometheus measured per version, events, timings) and
   exits 0 only if every chapter happened as told; 1 otherwise, saying which one did not.

Everything keeps running afterwards (``make cluster-down`` stops it).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities.webhook import WebhookEvent

from devstack import stack
from devstack.kube import token_kubeconfig
from devstack.operator_process import WEBHOOK_SECRET, OperatorProcess
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo, kubectl
from devstack.stackclient import Prometheus, Traffic
from modeldeploy.plugin import CLEAR, render_history, render_status, timeline_point

NAMESPACE = "modeldeploy-demo"
MODEL = "fraud-scorer"
RELEASE = "modeldeploy-operator"
RELEASE_NAMESPACE = "modeldeploy-system"
SERVICE_ACCOUNT = RELEASE  # the chart names its objects after a release named like the chart
CHART = Path(__file__).resolve().parent.parent / "charts" / "modeldeploy-operator"
#: How long each chapter may take before the story counts as failed.
CHAPTER_SECONDS = 150.0

STEPS = [{"weight": 20, "pause": "6s"}, {"weight": 50, "pause": "6s"}]
ANALYSIS = {"interval": "3s", "failureLimit": 1, "minRequests": 5,
            "metrics": [{"name": "error-rate", "template": "error-rate", "max": 0.05}]}
#: Judged before any traffic: the run's rmse may be at most 5% worse than the stable one's.
GATES = {"registryMetrics": [{"name": "rmse", "direction": "lower", "maxRegression": "5%"}]}


class StoryError(Exception):
    """A chapter did not happen as told."""


def model_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": MODEL, "alias": "champion", "pollInterval": "10s",
                      "writeBack": {}},
            "serving": {"replicas": 2},
            "traffic": {"router": "gatewayAPI",
                        "gatewayAPI": {"parentRefs": [{"name": "public-gw"}]}},
            "rollout": {"strategy": "canary", "steps": STEPS, "analysis": ANALYSIS,
                        "gates": GATES},
        },
    }


class LiveView:
    """The plugin's live view: redrawn in a terminal; without one (CI, a pipe), a frame is
    printed only when what it shows changes."""

    def __init__(self, info: StackInfo) -> None:
        self.info = info
        self.points: list[tuple[str, str, str]] = []
        self.tty = sys.stdout.isatty()
        self._last = ""

    def get(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(kubectl(self.info, "-n", NAMESPACE, "get", "mdep",
                                                 MODEL, "-o", "json"))
        return out

    def frame(self, chapter: str) -> dict[str, Any]:
        obj = self.get()
        point = timeline_point(obj, dt.datetime.now(dt.UTC))
        if not self.points or self.points[-1][1:] != point[1:]:
            self.points.append(point)
        text = f"== {chapter}\n" + render_status(obj, timeline=self.points)
        if self.tty:
            print(CLEAR + text, flush=True)
        elif text != self._last:
            print(text + "\n", flush=True)
        self._last = text
        return obj

    def until(self, chapter: str, done: Callable[[dict[str, Any]], bool],
              failed: Callable[[dict[str, Any]], str | None] = lambda _: None) -> float:
        """Redraw every second until ``done``; StoryError when ``failed`` says why, or after
        CHAPTER_SECONDS. Returns the seconds it took."""
        started = time.monotonic()
        while True:
            obj = self.frame(chapter)
            if done(obj):
                return time.monotonic() - started
            why = failed(obj)
            if why or time.monotonic() - started > CHAPTER_SECONDS:
                raise StoryError(f"{chapter}: {why or f'not within {CHAPTER_SECONDS:.0f}s'}"
                                  f"\n{render_status(obj)}")
            time.sleep(1)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _release(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((_status(obj).get("rollout") or {}).get("canary") or {})


def stable_on(version: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        st = _status(obj)
        return (st.get("phase") == "Stable" and (st.get("stable") or {}).get("version")
                == version and not _release(obj)
                and (obj["metadata"]["generation"] == st.get("observedGeneration")))
    return done


def rolled_back(version: str, stable: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        st, rel = _status(obj), _release(obj)
        return (st.get("phase") == "Degraded" and rel.get("state") == "Aborted"
                and rel.get("version") == version and rel.get("weight") == 0
                and (st.get("stable") or {}).get("version") == stable)
    return done


def rejected(version: str, stable: str) -> Callable[[dict[str, Any]], bool]:
    def done(obj: dict[str, Any]) -> bool:
        st, rel = _status(obj), _release(obj)
        return (rel.get("state") == "Aborted" and rel.get("version") == version
                and rel.get("reason") == "MetricRegression"
                and (st.get("stable") or {}).get("version") == stable)
    return done


def promoted_wrongly(version: str) -> Callable[[dict[str, Any]], str | None]:
    def failed(obj: dict[str, Any]) -> str | None:
        stable = (_status(obj).get("stable") or {}).get("version")
        return f"version {version} was promoted" if stable == version else None
    return failed


def install_chart(info: StackInfo) -> Path:
    """The chart into the cluster, and a kubeconfig that is its ServiceAccount."""
    kubectl(info, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}))
    values = {"config": {"defaultTrackingUri": info.mlflow_tracking_uri,
                         "prometheusUrl": info.prometheus_url}}
    state = Path(info.state)
    (state / "demo-values.yaml").write_text(yaml.safe_dump(values))
    subprocess.run([info.helm, "upgrade", "--install", RELEASE, str(CHART), "--namespace",
                    RELEASE_NAMESPACE, "--kubeconfig", info.kubeconfig, "--values",
                    str(state / "demo-values.yaml"), "--wait", "--timeout", "120s"],
                   check=True, capture_output=True, text=True)
    # Helm installs crds/ only when the CRD is absent: make it this checkout's.
    stack.install_crd(info)
    token = kubectl(info, "-n", RELEASE_NAMESPACE, "create", "token", SERVICE_ACCOUNT,
                    "--duration=24h").strip()
    return token_kubeconfig(info.kubeconfig, state / "demo-operator.kubeconfig", token=token,
                            user=f"system:serviceaccount:{RELEASE_NAMESPACE}:{SERVICE_ACCOUNT}")


def summary(info: StackInfo, obj: dict[str, Any], chapters: list[tuple[str, float]],
            started: float) -> str:
    prom = Prometheus(info.prometheus_url)
    where = f'namespace="{NAMESPACE}"'
    requests = prom.by_label(f"sum by (version) (increase(model_requests_total{{{where}}}"
                             f"[10m]))", "version")
    errors = prom.by_label(f"sum by (version) (increase(model_requests_total{{{where},"
                           f'code=~"5.."}}[10m]))', "version")
    lines = ["", "== summary", render_history(obj), "",
             "requests Prometheus counted per version (simulated traffic, last 10 minutes):"]
    for version in sorted(requests, key=lambda v: int(v) if v.isdigit() else 0):
        total = requests[version]
        bad = errors.get(version, 0.0)
        lines.append(f"  version {version}: {total:7.0f} requests, {bad:5.0f} errors "
                     f"({bad / total:.1%})" if total else f"  version {version}: none")
    events = json.loads(kubectl(
        info, "-n", NAMESPACE, "get", "events", "--field-selector",
        f"involvedObject.name={MODEL},involvedObject.kind=ModelDeployment",
        "--sort-by=.eventTime", "-o", "json"))["items"]
    lines += ["", "events (kubectl get events; messages cut at the first line):"]
    lines += [f"  {e['reason']:<20} {e['message'].splitlines()[0][:110]}" for e in events]
    lines.append("")
    lines.append("chapters:")
    lines += [f"  {name:<58} {seconds:5.1f}s" for name, seconds in chapters]
    lines.append(f"story complete in {time.monotonic() - started:.0f}s (after the stack was up)")
    return "\n".join(lines)


def registry_view(mlflow: Any, versions: list[str], *, wait: float = 30.0) -> str:
    """What a data scientist sees in MLflow: each version's outcome tags (the write-back is
    made right after the status that owes it is stored)."""
    deadline = time.monotonic() + wait
    while True:
        tags = {v: dict(mlflow.get_model_version(MODEL, v).tags) for v in versions}
        if all("modeldeploy.outcome" in t for t in tags.values()) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lines = ["", "the registry (MLflow tags the operator wrote on each version):"]
    for v, t in tags.items():
        lines.append(f"  version {v}: {t.get('modeldeploy.outcome', '-'):<9} "
                     f"{t.get('modeldeploy.reason', '')[:90]}")
    return "\n".join(lines)


def play(info: StackInfo) -> int:
    started = time.monotonic()
    chapters: list[tuple[str, float]] = []
    print(f"Kubernetes {info.kubernetes_version}: real control plane, kwok nodes (pods and "
          f"request traffic are simulated)\nMLflow {info.mlflow_tracking_uri}   "
          f"Prometheus {info.prometheus_url}\n", flush=True)
    t = time.monotonic()
    token_kubeconfig = install_chart(info)
    operator = OperatorProcess.create(info, Path(info.state))  # make cluster-down stops it
    operator.extra_env.update({"KUBECONFIG": str(token_kubeconfig),
                               "MODELDEPLOY_LEASE_NAMESPACE": RELEASE_NAMESPACE,
                               "MODELDEPLOY_CREDENTIAL_NAMESPACES": ""})
    operator.start()  # and stops the one a previous demo left running
    chapters.append(("chart installed; operator runs as its ServiceAccount",
                     time.monotonic() - t))
    print(f"chart {RELEASE} installed in {RELEASE_NAMESPACE}; the operator runs as "
          f"{SERVICE_ACCOUNT} (log: {operator.state}/logs/operator.log)", flush=True)

    t = time.monotonic()
    mlflow = mlflow_client(info)
    for hook in mlflow.list_webhooks():  # a previous demo's webhook names an old port
        if hook.name == "modeldeploy-demo":
            mlflow.delete_webhook(hook.webhook_id)
    mlflow.create_webhook(name="modeldeploy-demo", url=operator.webhook_url,
                          events=[WebhookEvent("model_version_alias", "created")],
                          secret=WEBHOOK_SECRET)
    kubectl(info, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl(info, "create", "namespace", NAMESPACE)
    traffic = Traffic(info.traffic_url)
    traffic.reset(NAMESPACE)
    print(f"registering four versions of {MODEL} in MLflow ...", flush=True)
    v1 = str(seed_model(info, name=MODEL, alias="champion", metrics={"rmse": 0.31})["version"])
    v2 = str(seed_model(info, name=MODEL, metrics={"rmse": 0.29}, bias=1.0)["version"])
    v3 = str(seed_model(info, name=MODEL, metrics={"rmse": 0.27}, bias=2.0)["version"])
    v4 = str(seed_model(info, name=MODEL, metrics={"rmse": 0.41}, bias=3.0)["version"])
    traffic.behaviour(namespace=NAMESPACE, model=MODEL, version=v3, error_rate=0.3)
    chapters.append((f"versions {v1}, {v2}, {v3}, {v4} registered", time.monotonic() - t))
    kubectl(info, "apply", "-f", "-", stdin=json.dumps(model_deployment()))

    view = LiveView(info)
    chapters.append((f"version {v1} serves", view.until(
        f"version {v1} (champion) comes up", stable_on(v1))))
    mlflow.set_registered_model_alias(MODEL, "champion", v2)
    chapters.append((f"version {v2} promoted through {len(STEPS)} canary steps", view.until(
        f"champion → version {v2}: a canary, analysed at every step", stable_on(v2))))
    mlflow.set_registered_model_alias(MODEL, "champion", v3)
    chapters.append((f"version {v3} (30% errors) rolled back automatically", view.until(
        f"champion → version {v3}, which answers 30% errors", rolled_back(v3, v2),
        promoted_wrongly(v3))))
    mlflow.set_registered_model_alias(MODEL, "champion", v4)
    chapters.append((f"version {v4} (rmse regressed) stopped before any traffic", view.until(
        f"champion → version {v4}, whose run logged a worse rmse", rejected(v4, v2),
        promoted_wrongly(v4))))
    obj = view.get()
    history = [(h["version"], h["outcome"]) for h in _status(obj).get("history") or []][:4]
    expected = [(v4, "Rejected"), (v3, "RolledBack"), (v2, "Promoted"), (v1, "Replaced")]
    if history != expected:
        raise StoryError(f"history is {history}, expected {expected}")
    print(summary(info, obj, chapters, started))
    print(registry_view(mlflow, [v1, v2, v3, v4]))
    print(f"\nEverything keeps running. Try:  source {info.state}/stack.env && "
          f"kubectl modeldeploy -n {NAMESPACE} status {MODEL} -w")
    print("Stop it all:  make cluster-down")
    return 0


def main() -> int:
    info = stack.load()
    if info is None or stack.healthy(info):
        print("the stack is not running; `make demo` starts it with `make cluster-up`")
        return 1
    try:
        return play(info)
    except StoryError as exc:
        print(f"\nThe story did not happen as told: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"\n{' '.join(map(str, exc.cmd[:3]))} failed: {exc.stderr or exc}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
