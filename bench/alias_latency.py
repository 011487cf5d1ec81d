"""Benchmark: alias move in MLflow -> new version serving, via polling and via webhook.

"Serving" means the ModelDeployment reports the new version Stable, which the operator only
does after the version's Deployment is Available, traffic points at it and the old version is
deleted. Pods are kwok's (Ready at once), so this measures operator + apiserver latency.

    .venv/bin/python bench/alias_latency.py [--moves 5] [--poll 5]

Uses the running stack (`make cluster-up`) or starts one in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes import client
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent

from bench.common import stack_with_operator
from devstack.operator_process import WEBHOOK_SECRET
from devstack.seed import mlflow_client, seed_model
from devstack.stack import kubectl
from tests.support.mdep import manifest, serving, stable_version, status, wait_status


def moves(custom: client.CustomObjectsApi, ml: MlflowClient, *,
          model: str, ns: str, count: int) -> list[float]:
    out = []
    target = str(stable_version(status(custom, ns, "bench")))
    for _ in range(count):
        target = "2" if target == "1" else "1"
        ml.set_registered_model_alias(model, "champion", target)
        started = time.monotonic()
        wait_status(custom, ns, "bench", serving(target), timeout=120, what=f"v{target}")
        out.append(time.monotonic() - started)
        time.sleep(1)
    return out


def report(label: str, samples: list[float], target: float) -> None:
    ok = max(samples) <= target
    print(f"  {label:<34} median {statistics.median(samples):5.2f}s   max {max(samples):5.2f}s"
          f"   target <= {target:.0f}s: {'met' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--poll", type=int, default=5, help="poll interval, seconds")
    args = parser.parse_args()

    hook = None
    with stack_with_operator() as (info, op, custom):
        ml = mlflow_client(info)
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        model = f"bench-{ns}"
        try:
            kubectl(info, "create", "namespace", ns)
            seed_model(info, name=model, alias="champion")
            seed_model(info, name=model, bias=1.0)
            spec = {"model": {"name": model, "alias": "champion",
                              "pollInterval": f"{args.poll}s"}, "serving": {"replicas": 2}}
            kubectl(info, "-n", ns, "apply", "-f", "-", stdin=manifest("bench", spec))
            wait_status(custom, ns, "bench", serving("1"), timeout=60, what="first version")
            polled = moves(custom, ml, model=model, ns=ns, count=args.moves)

            hook = ml.create_webhook(name=f"bench-{ns}", url=op.webhook_url,
                                     secret=WEBHOOK_SECRET,
                                     events=[WebhookEvent("model_version_alias", "created")])
            spec["model"]["pollInterval"] = "10m"
            kubectl(info, "-n", ns, "apply", "-f", "-", stdin=manifest("bench", spec))
            time.sleep(2)
            hooked = moves(custom, ml, model=model, ns=ns, count=args.moves)
        finally:
            if hook is not None:
                ml.delete_webhook(hook.webhook_id)
            kubectl(info, "delete", "namespace", ns, "--wait=false")

    print(f"\nalias move -> new version serving ({args.moves} moves each, kwok pods):")
    report(f"polling ({args.poll}s interval)", polled, args.poll + 2)
    report("webhook (10m poll interval)", hooked, 3)
    print(json.dumps({"poll": polled, "webhook": hooked}))


if __name__ == "__main__":
    main()
