"""Benchmark: N ModelDeployments on one operator — time to Stable, memory, registry reads.

    .venv/bin/python bench/scale.py [--count 1000] [--models 10] [--replicas 0]

Objects are spread over 10 namespaces and track ``--models`` registered models, so the
resolver shares each model's resolution between count/models objects. ``--replicas 0`` keeps
kwok's pods out of it (each version still gets its Deployment and Services), so the figure is
the operator's own cost. Prints the operator's resident memory (peak and settled), time until
every object is Stable, and registry reads over a minute of steady state.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes import client

from bench.common import group_rss_mib, stack_with_operator
from devstack import procs
from devstack import stack as devstack
from devstack.operator_process import OperatorProcess
from devstack.seed import seed_model
from devstack.stack import kubectl
from modeldeploy.api import API_VERSION, GROUP, KIND, PLURAL, VERSION

NAMESPACES = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--poll", default="30s")
    args = parser.parse_args()

    with stack_with_operator() as (info, op, custom):
        run(info, op, custom, args)


def run(info: devstack.StackInfo, op: OperatorProcess, custom: client.CustomObjectsApi,
        args: argparse.Namespace) -> None:
    pid = procs.running(op.state, "operator")
    assert pid is not None
    stamp = str(int(time.time()))
    namespaces = [f"scale-{stamp}-{i}" for i in range(NAMESPACES)]
    models = [f"scale-{stamp}-m{i}" for i in range(args.models)]
    peak = 0.0
    try:
        idle = group_rss_mib(pid)
        for model in models:
            seed_model(info, name=model, alias="champion")
        for ns in namespaces:
            kubectl(info, "create", "namespace", ns)
        started = time.monotonic()
        for batch in range(0, args.count, 100):
            items = [{
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": f"md-{i}", "namespace": namespaces[i % NAMESPACES]},
                "spec": {"model": {"name": models[i % args.models], "alias": "champion",
                                   "pollInterval": args.poll},
                         "serving": {"replicas": args.replicas}},
            } for i in range(batch, min(batch + 100, args.count))]
            kubectl(info, "apply", "-f", "-",
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            peak = max(peak, group_rss_mib(pid))
        created = time.monotonic() - started
        while True:
            listed = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            stable = sum(1 for o in listed if o["metadata"]["namespace"] in namespaces
                         and (o.get("status") or {}).get("phase") == "Stable")
            peak = max(peak, group_rss_mib(pid))
            if stable >= args.count:
                break
            if time.monotonic() - started > 1800:
                raise SystemExit(f"only {stable}/{args.count} Stable after 30 min")
            time.sleep(2)
        all_stable = time.monotonic() - started
        log = Path(info.state) / "logs" / "mlflow.log"
        pattern = re.compile(rf"GET /api/2\.0/mlflow/registered-models/alias\?name=scale-{stamp}")
        before = len(pattern.findall(log.read_text(errors="replace")))
        for _ in range(30):
            time.sleep(2)
            peak = max(peak, group_rss_mib(pid))
        reads = len(pattern.findall(log.read_text(errors="replace"))) - before
        settled = group_rss_mib(pid)
    finally:
        for ns in namespaces:
            subprocess.run([info.kubectl, "--kubeconfig", info.kubeconfig, "delete", "namespace",
                            ns, "--wait=false"], capture_output=True)

    print(f"\n{args.count} ModelDeployments, {args.models} models, replicas {args.replicas}, "
          f"poll {args.poll}:")
    print(f"  created in {created:.1f}s; all Stable {all_stable:.1f}s after the first apply")
    print(f"  operator RSS: idle {idle:.0f} MiB, peak {peak:.0f} MiB, "
          f"settled {settled:.0f} MiB (goal <= 160 MiB)")
    print(f"  registry reads in 60s of steady state: {reads} "
          f"({args.models} shared keys; one poll per object would be "
          f"~{args.count * 60 // max(1, int(args.poll.rstrip('s')))})")


if __name__ == "__main__":
    main()
