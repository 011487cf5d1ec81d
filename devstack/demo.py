"""``make demo``: the local stack, the operator, and a release you can watch.

1. installs the ModelDeployment CRD and starts the operator (a `kopf run` process, stopped by
   `make cluster-down`), with an MLflow webhook pointing at it;
2. registers two versions of ``fraud-scorer`` in MLflow, ``champion`` on version 1;
3. applies ``ModelDeployment fraud-scorer`` with a Gateway API route, so simulated traffic
   flows to whatever the route says;
4. moves ``champion`` to version 2 and prints, every second, what `kubectl get mdep` shows and
   the per-version request rate Prometheus measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devstack import build, procs, stack
from devstack.ports import free_port

NAMESPACE = "modeldeploy-demo"
MODEL = "fraud-scorer"
REPO = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "demo-webhook-secret"  # noqa: S105 - a throwaway local demo value


def _kubectl(info: stack.StackInfo, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([info.kubectl, "--kubeconfig", info.kubeconfig, *args], input=stdin,
                          text=True, capture_output=True, check=True).stdout


def _seed(info: stack.StackInfo, *extra: str) -> dict[str, str]:
    python = build.mlflow_venv_dir() / "bin" / "python"
    out = subprocess.run([str(python), str(REPO / "devstack" / "mlflow_seed.py"),
                          "--tracking-uri", info.mlflow_tracking_uri, "--name", MODEL, *extra],
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _mlflow(info: stack.StackInfo, script: str) -> None:
    python = build.mlflow_venv_dir() / "bin" / "python"
    subprocess.run([str(python), "-c", "from mlflow import MlflowClient\n"
                    f"c = MlflowClient(tracking_uri={info.mlflow_tracking_uri!r}, "
                    f"registry_uri={info.mlflow_tracking_uri!r})\n" + script],
                   check=True, capture_output=True)


def _start_operator(info: stack.StackInfo) -> int:
    state = Path(info.state)
    procs.stop(state, "operator")
    port, live = free_port(), free_port()
    env = dict(os.environ, KUBECONFIG=info.kubeconfig,
               MODELDEPLOY_DEFAULT_TRACKING_URI=info.mlflow_tracking_uri,
               MODELDEPLOY_WEBHOOK_SECRET=WEBHOOK_SECRET, MODELDEPLOY_WEBHOOK_HOST="127.0.0.1",
               MODELDEPLOY_WEBHOOK_PORT=str(port))
    proc = procs.start("operator", [
        str(Path(sys.executable).parent / "kopf"), "run", "--standalone", "--all-namespaces",
        f"--liveness=http://127.0.0.1:{live}/healthz", "-m", "modeldeploy.handlers",
    ], state=state, env=env, cwd=REPO)
    procs.wait_until("operator liveness", lambda: procs.http_ok(
        f"http://127.0.0.1:{live}/healthz"), timeout=60, proc=proc)
    return port


def _rates(info: stack.StackInfo) -> dict[str, float]:
    query = f'sum by (version) (rate(model_requests_total{{namespace="{NAMESPACE}"}}[3s]))'
    url = f"{info.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        data = json.loads(resp.read())
    return {r["metric"]["version"]: float(r["value"][1]) for r in data["data"]["result"]}


def _show(info: stack.StackInfo, seconds: float, until: str | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st = json.loads(_kubectl(info, "-n", NAMESPACE, "get", "mdep", MODEL, "-o", "json")
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
    _kubectl(info, "apply", "--server-side", "--force-conflicts", "-f",
             str(REPO / "crds" / "modeldeployment.yaml"))
    _kubectl(info, "wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io")
    port = _start_operator(info)
    print(f"operator running (log: {info.state}/logs/operator.log)")
    _mlflow(info, "from mlflow.entities.webhook import WebhookEvent\n"
            "names = [w.name for w in c.list_webhooks()]\n"
            "if 'modeldeploy-demo' not in names:\n"
            "    c.create_webhook(name='modeldeploy-demo', "
            f"url='http://127.0.0.1:{port}/webhooks/mlflow', "
            "events=[WebhookEvent('model_version_alias', 'created')], "
            f"secret={WEBHOOK_SECRET!r})\n")
    print(f"registering two versions of {MODEL} in MLflow ...")
    v1 = _seed(info, "--alias", "champion", "--metric", "rmse=0.31")
    v2 = _seed(info, "--metric", "rmse=0.29", "--bias", "1")
    _kubectl(info, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    _kubectl(info, "apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps({
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
    _mlflow(info, f"c.set_registered_model_alias({MODEL!r}, 'champion', {v2['version']!r})")
    _show(info, 12)
    print("\nevents:")
    print(_kubectl(info, "-n", NAMESPACE, "get", "events", "--field-selector",
                   f"involvedObject.name={MODEL},involvedObject.kind=ModelDeployment",
                   "--sort-by=.eventTime", "-o",
                   "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message"))
    print(f"Everything keeps running. Try:  source {info.state}/stack.env && "
          f"kubectl -n {NAMESPACE} get mdep,deploy,svc,httproute")
    print("Stop it all:  make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
