"""Benchmark: warm start time and memory of the local stack, and pod-readiness latency.

Runs in its own state directory, so it never touches a stack started by `make cluster-up`.
Prints one table; nothing here asserts a number (shared machines vary).

    .venv/bin/python bench/stack_start.py [--runs 3] [--replicas 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import group_rss_mib
from devstack import procs, stack


def pods_ready_seconds(info: stack.StackInfo, replicas: int) -> float:
    """Seconds from `kubectl apply` of a Deployment to all its replicas Available."""
    kubectl = [info.kubectl, "--kubeconfig", info.kubeconfig]
    subprocess.run([*kubectl, "create", "namespace", "bench"], check=True, capture_output=True)
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}},
                              "spec": {"containers": [{"name": "c", "image": "x.invalid/y"}]}}},
    }
    started = time.monotonic()
    subprocess.run([*kubectl, "-n", "bench", "apply", "-f", "-"], input=json.dumps(manifest),
                   text=True, check=True, capture_output=True)
    subprocess.run([*kubectl, "-n", "bench", "wait", "--for=condition=Available",
                    "--timeout=120s", "deployment/bench"], check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=20)
    args = parser.parse_args()

    starts: list[float] = []
    memory: dict[str, float] = {}
    ready: list[float] = []
    with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-") as tmp:
        state = Path(tmp)
        os.environ["MODELDEPLOY_STATE"] = str(state)
        for run in range(args.runs):
            t0 = time.monotonic()
            info = stack.up(state=state, quiet=True)
            starts.append(time.monotonic() - t0)
            if run == args.runs - 1:
                time.sleep(5)  # let every component finish its start-up allocations
                for name in stack.ALL_COMPONENTS:
                    pid = procs.running(state, name)
                    memory[name] = group_rss_mib(pid) if pid else float("nan")
                ready.append(pods_ready_seconds(info, args.replicas))
            stack.down(state=state, quiet=True)

    print(f"\nlocal stack, {args.runs} warm starts (binaries cached):")
    print(f"  start to all-ready   median {statistics.median(starts):6.1f} s   "
          f"min {min(starts):.1f}  max {max(starts):.1f}")
    print(f"  Deployment of {args.replicas} replicas to Available: {ready[0]:.1f} s")
    print("  resident memory after start (process group, MiB):")
    for name, mib in sorted(memory.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<26}{mib:8.0f}")
    print(f"    {'total':<26}{sum(memory.values()):8.0f}")


if __name__ == "__main__":
    main()
