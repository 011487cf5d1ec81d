"""Benchmarks of canary releases on the local stack, timed from the live route.

* rollback latency: a canary whose new version answers 20 % errors, analysed every
  ``--interval`` seconds with ``failureLimit: 0``. Printed per run: from the first failing
  measurement to weight 0 on the live route (the bound the tests hold it to is
  interval x (failureLimit + 1) + 5 s), and from the moment the failing version got traffic.
* rollout overhead: a good canary through steps of known pauses; printed: how much longer
  than its pause each step took, from its weight appearing on the route to the next weight.

    .venv/bin/python bench/canary.py [--runs 10] [--interval 2]

Uses the running stack (`make cluster-up`) or starts one in a temporary directory. Pods are
kwok's (Ready at once) and traffic is simulated, so this measures operator, apiserver and
Prometheus latency, not model start-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes import client, config

from bench.common import stack_with_operator
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo, kubectl
from devstack.stackclient import Traffic
from modeldeploy.core.render import label_value
from tests.support.mdep import manifest, serving, wait_status
from tests.support.routewatch import RouteWatch

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def _spec(model: str, *, steps: list[dict[str, Any]], interval: int) -> dict[str, Any]:
    return {"model": {"name": model, "alias": "champion", "pollInterval": "5s"},
            "serving": {"replicas": 1}, "traffic": GATEWAY,
            "rollout": {"strategy": "canary", "steps": steps, "analysis": {
                "interval": f"{interval}s", "failureLimit": 0, "minRequests": 0,
                "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]}}}


def _at(text: str) -> float:
    """A status timestamp as time.monotonic() would have read it."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return time.monotonic() - (dt.datetime.now(dt.UTC) - when).total_seconds()


def rollback_run(info: StackInfo, api: client.ApiClient, custom: client.CustomObjectsApi,
                 ns: str, i: int, interval: int) -> tuple[float, float]:
    model = f"rb-{ns}-{i}"
    name = f"rb{i}"
    seed_model(info, name=model, alias="champion")
    v2 = str(seed_model(info, name=model, bias=1.0)["version"])
    Traffic(info.traffic_url).behaviour(namespace=ns, model=label_value(model), version=v2,
                                        error_rate=0.2)
    kubectl(info, "-n", ns, "apply", "-f", "-", stdin=manifest(name, _spec(
        model, steps=[{"weight": 30, "pause": "60s"}], interval=interval)))
    wait_status(custom, ns, name, serving("1"), timeout=60, what="first version")
    route = RouteWatch(api, ns, "HTTPRoute", name).start()
    try:
        mlflow_client(info).set_registered_model_alias(model, "champion", v2)
        st = wait_status(custom, ns, name, lambda s: ((s.get("rollout") or {}).get(
            "canary") or {}).get("state") == "Aborted", timeout=120, what="rolled back")
        backend = f"{name}-v{v2}"
        got_traffic = route.first_time(backend, 30)
        zero = route.first_time(backend, 0, after=got_traffic or 0.0)
        failed_at = _at(st["rollout"]["canary"]["analysis"]["measurements"][0]["at"])
        assert got_traffic is not None and zero is not None, route.seen
        return zero - failed_at, zero - got_traffic
    finally:
        route.stop()


def rollout_run(info: StackInfo, api: client.ApiClient, custom: client.CustomObjectsApi,
                ns: str, pauses: list[int], interval: int) -> list[float]:
    model = f"ro-{ns}"
    seed_model(info, name=model, alias="champion")
    v2 = str(seed_model(info, name=model, bias=1.0)["version"])
    steps = [{"weight": w, "pause": f"{p}s"} for w, p in zip((20, 50), pauses, strict=True)]
    kubectl(info, "-n", ns, "apply", "-f", "-", stdin=manifest("ro", _spec(
        model, steps=steps, interval=interval)))
    wait_status(custom, ns, "ro", serving("1"), timeout=60, what="first version")
    route = RouteWatch(api, ns, "HTTPRoute", "ro").start()
    try:
        mlflow_client(info).set_registered_model_alias(model, "champion", v2)
        wait_status(custom, ns, "ro", serving(v2), timeout=180, what="promoted")
    finally:
        route.stop()
    backend = f"ro-v{v2}"
    times = [route.first_time(backend, w) for w in (20, 50, 100)]
    assert all(t is not None for t in times), route.seen
    return [float(b) - float(a) - p for a, b, p in
            zip(times[:-1], times[1:], pauses, strict=True)]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=int, default=2, help="analysis interval, seconds")
    args = parser.parse_args()
    bound = args.interval * (0 + 1) + 5
    with stack_with_operator() as (info, _, custom):
        api = config.new_client_from_config(config_file=info.kubeconfig)
        ns = f"bench-canary-{uuid.uuid4().hex[:6]}"
        kubectl(info, "create", "namespace", ns)
        try:
            rollbacks = [rollback_run(info, api, custom, ns, i, args.interval)
                         for i in range(args.runs)]
            overhead = rollout_run(info, api, custom, ns, [3, 3], args.interval)
        finally:
            kubectl(info, "delete", "namespace", ns, "--wait=false")
    from_failure = [r[0] for r in rollbacks]
    from_traffic = [r[1] for r in rollbacks]
    print(f"\nrollback of a failing canary ({args.runs} runs, analysis every {args.interval}s,"
          " failureLimit 0):")
    for label, xs in (("first failing measurement -> weight 0", from_failure),
                      ("traffic to the bad version -> weight 0", from_traffic)):
        print(f"  {label:<40} median {statistics.median(xs):5.2f}s  "
              f"min {min(xs):5.2f}s  max {max(xs):5.2f}s")
    print(f"  bound (interval x (failureLimit + 1) + 5s): {bound}s: "
          f"{'met' if max(from_failure) <= bound else 'MISSED'}")
    print("good canary, steps of 3 s pauses: time per step beyond its pause: "
          + ", ".join(f"{x:.2f}s" for x in overhead))
    print(json.dumps({"rollback_from_failure": from_failure,
                      "rollback_from_traffic": from_traffic, "step_overhead": overhead}))


if __name__ == "__main__":
    main()
