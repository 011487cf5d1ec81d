"""``make demo``: the local stack, and something to watch on it.

Until the operator's rollout lands, the demo shows the machinery a rollout will drive: an
HTTPRoute splits simulated traffic between two model versions, and Prometheus reports the
per-version request rate. The route's weights move 90/10 → 50/50 → 0/100 and you watch the
rates follow, which is exactly the signal canary analysis will read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from devstack import stack

NAMESPACE = "modeldeploy-demo"
STEPS = ((90, 10), (50, 50), (0, 100))


def _kubectl(info: stack.StackInfo, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([info.kubectl, "--kubeconfig", info.kubeconfig, *args], input=stdin,
                          text=True, capture_output=True, check=True).stdout


def _objects(weights: tuple[int, int]) -> str:
    services = [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"scorer-v{v}", "namespace": NAMESPACE,
                     "labels": {"modeldeploy.io/model": "scorer", "modeldeploy.io/version": v}},
        "spec": {"selector": {"app": f"scorer-v{v}"}, "ports": [{"port": 8080}]},
    } for v in ("1", "2")]
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "scorer", "namespace": NAMESPACE,
                     "labels": {"modeldeploy.io/model": "scorer"}},
        "spec": {"rules": [{"backendRefs": [
            {"name": "scorer-v1", "port": 8080, "weight": weights[0]},
            {"name": "scorer-v2", "port": 8080, "weight": weights[1]}]}]},
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [*services, route]})


def _rates(info: stack.StackInfo) -> dict[str, float]:
    query = (f'sum by (version) (rate(model_requests_total{{namespace="{NAMESPACE}"}}[5s]))')
    url = f"{info.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        data = json.loads(resp.read())
    return {r["metric"]["version"]: float(r["value"][1]) for r in data["data"]["result"]}


def main() -> int:
    info = stack.load()
    if info is None or stack.healthy(info):
        print("the stack is not running; `make demo` starts it with `make cluster-up`")
        return 1
    print(f"\nKubernetes {info.kubernetes_version} (real control plane, kwok nodes):")
    print(_kubectl(info, "get", "nodes", "-o", "wide"))
    print(f"MLflow      {info.mlflow_tracking_uri}\nPrometheus  {info.prometheus_url}\n"
          f"Traffic     {info.traffic_url}/state\n")
    _kubectl(info, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    for weights in STEPS:
        _kubectl(info, "apply", "-f", "-", stdin=_objects(weights))
        print(f"HTTPRoute scorer weights v1={weights[0]} v2={weights[1]}; "
              "simulated req/s per version from Prometheus:")
        for _ in range(4):
            time.sleep(3)
            rates = _rates(info)
            print("   " + "   ".join(f"v{v}: {r:5.1f}/s" for v, r in sorted(rates.items())))
    print(f"\nThe stack keeps running. Use it:  source {info.state}/stack.env"
          " && kubectl get all -A")
    print("Stop it:  make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
