"""The chart, driven by the stack's helm: render, lint, install, upgrade; and a kubeconfig that
authenticates as a ServiceAccount (a TokenRequest token), to run as what the chart grants."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from devstack import kube
from devstack.stack import StackInfo

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modeldeploy-operator"


class Helm:
    def __init__(self, stack: StackInfo, workdir: Path) -> None:
        self.stack, self.workdir = stack, workdir

    def run(self, *args: str, values: Mapping[str, Any] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.stack.helm, *args, "--kubeconfig", self.stack.kubeconfig]
        if values is not None:
            path = self.workdir / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            argv += ["--values", str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def render(self, values: Mapping[str, Any], *,
               namespace: str = "modeldeploy-system") -> list[dict[str, Any]]:
        out = self.run("template", "r", str(CHART), "--namespace", namespace,
                       values=values).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def lint(self, values: Mapping[str, Any]) -> str:
        result = self.run("lint", "--strict", str(CHART), values=values, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def rules(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(role, rule) for every rule of every ClusterRole and Role."""
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules") or []:
                yield doc, rule


def pods_of(docs: list[dict[str, Any]], namespace: str) -> Iterator[dict[str, Any]]:
    """A Pod for every pod template the chart renders (what a ReplicaSet would create)."""
    for doc in docs:
        template = (doc.get("spec") or {}).get("template")
        if template:
            yield {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{doc['metadata']['name']}-probe",
                                "namespace": namespace,
                                "labels": template["metadata"].get("labels", {})},
                   "spec": template["spec"]}


def token_kubeconfig(stack: StackInfo, core: client.CoreV1Api, namespace: str,
                     service_account: str, path: Path) -> Path:
    """A kubeconfig for the stack's apiserver that authenticates as the ServiceAccount."""
    token = core.create_namespaced_service_account_token(service_account, namespace, {
        "spec": {"expirationSeconds": 3600}}).status.token
    return kube.token_kubeconfig(stack.kubeconfig, path, token=token,
                                 user=f"system:serviceaccount:{namespace}:{service_account}")
