"""``make demo``: the local stack, the operator, and a release you can watch.

1. installs the ModelDeployment CRD and starts the operator (a `kopf run` process, stopped by
   `make cluster-down`), with an MLflow webhook pointing at it;
2. registers two versions of ``fraud-scorer`` in MLflow, ``champion`` on version 1;
3. applies ``ModelDeployment fraud-scorer`` with a Gateway API route, so simulated traffic
   flows to whatever the route says;
4. moves ``champion`` to version 2 and prints, every second, what `kubectl get mdep` shows and
   the per-version request rate Prometheus measures; then the events, and the operator's own
   metrics as Prometheus scraped them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mlflow.entities.webhook import WebhookEvent

from devstack import stack
from devstack.operator_process import WEBHOOK_SECRET, OperatorProcess
from devstack.seed import mlflow_client, seed_model
from devstack.stack import kubectl
from devstack.stackclient import Prometheus

NAMESPACE = "modeldeploy-demo"
MODEL = "fraud-scorer"


def _rates(info: stack.StackInfo) -> dict[str, float]:
    return Prometheus(info.prometheus_url).by_label(
        f'sum by (version) (rate(model_requests_total{{namespace="{NAMESPACE}"}}[3s]))',
        "version")


def _operator_figures(info: stack.StackInfo) -> str:
    prom = Prometheus(info.prometheus_url)
    writes = prom.by_label("sum by (verb) (modeldeploy_kube_writes_total)", "verb")
    polls = prom.by_label("sum by (outcome) (modeldeploy_registry_polls_total)", "outcome")
    hooks = prom.by_label("sum by (result) (modeldeploy_webhook_deliveries_total)", "result")

    def fmt(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.0f}" for k, v in sorted(d.items())) or "none yet"

    return (f"  Kubernetes writes: {fmt(writes)}\n  registry polls: {fmt(polls)}\n"
            f"  webhook deliveries: {fmt(hooks)}")


def _show(info: stack.StackInfo, seconds: float, until: str | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st = json.loads(kubectl(info, "-n", NAMESPACE, "get", "mdep", MODEL, "-o", "json")
                        ).get("status") or {}
        row = [st.get("selector") or "", (st.get("stable") or {}).get("version", ""),
               (st.get("canary") or {}).get("version", ""), st.get("phase") or ""]
        rates = "  ".join(f"v{v}: {r:4.1f} req/s" for v, r in sorted(_rates(info).items()))
        print("  " + "".join(f"{c:<12}" for c in row) + f"| {rates}", flush=True)
        if until and until in row:
            return
        time.sleep(1)


def main() -> int:
    info = stack.load()
    if info is None or stack.healthy(info):
        print("the stack is not running; `make demo` starts it with `make cluster-up`")
        return 1
    print(f"\nKubernetes {info.kubernetes_version}: real control plane, kwok nodes")
    print(f"MLflow {info.mlflow_tracking_uri}   Prometheus {info.prometheus_url}\n")
    stack.install_crd(info)
    operator = OperatorProcess.create(info, Path(info.state))  # make cluster-down stops it
    operator.start()  # and stops the one a previous demo left running
    print(f"operator running (log: {info.state}/logs/operator.log)")
    mlflow = mlflow_client(info)
    for hook in mlflow.list_webhooks():  # a previous demo's webhook names an old port
        if hook.name == "modeldeploy-demo":
            mlflow.delete_webhook(hook.webhook_id)
    mlflow.create_webhook(name="modeldeploy-demo", url=operator.webhook_url,
                          events=[WebhookEvent("model_version_alias", "created")],
                          secret=WEBHOOK_SECRET)
    print(f"registering two versions of {MODEL} in MLflow ...")
    v1 = seed_model(info, name=MODEL, alias="champion", metrics={"rmse": 0.31})
    v2 = seed_model(info, name=MODEL, metrics={"rmse": 0.29}, bias=1.0)
    kubectl(info, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    kubectl(info, "apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps({
        "apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": MODEL},
        "spec": {"model": {"name": MODEL, "alias": "champion"}, "serving": {"replicas": 3},
                 "traffic": {"router": "gatewayAPI",
                             "gatewayAPI": {"parentRefs": [{"name": "public-gw"}]}}}}))
    print(f"\nModelDeployment {MODEL} tracks @champion (version {v1['version']}):")
    print("  " + "".join(f"{c:<12}" for c in ("SELECTOR", "STABLE", "CANARY", "PHASE")))
    _show(info, 20, until="Stable")
    _show(info, 4)
    print(f"\nmoving champion to version {v2['version']} in MLflow (the webhook tells the "
          "operator at once) ...")
    mlflow.set_registered_model_alias(MODEL, "champion", v2["version"])
    _show(info, 12)
    print("\nevents:")
    print(kubectl(info, "-n", NAMESPACE, "get", "events", "--field-selector",
                   f"involvedObject.name={MODEL},involvedObject.kind=ModelDeployment",
                   "--sort-by=.eventTime", "-o",
                   "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message"))
    print("the operator's own metrics, as Prometheus scraped them:")
    print(_operator_figures(info))
    print(f"\nEverything keeps running. Try:  source {info.state}/stack.env && "
          f"kubectl -n {NAMESPACE} get mdep,deploy,svc,httproute")
    print("Stop it all:  make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
