"""Registry gates in real releases, judged from what the real MLflow server knows about each
version, before the version has a single pod: run metrics against the stable version's, the
signature diff (block, or wait for a human), and required marks that chain staging to
production through write-back."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import GATEWAY, release
from tests.integration.test_modeldeployment import deployments, spec
from tests.support.mdep import manifest, serving, status, wait_reasons, wait_status
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

STEPS = [{"weight": 50, "pause": "1s"}]


def gated(model: str, version: str, gates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return spec(model, replicas=1, select={"version": version}, traffic=GATEWAY,
                rollout={"strategy": "canary", "steps": STEPS, "gates": gates}, **extra)


def gate(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next((g for g in release(st).get("gates") or [] if g["gate"] == name), {})


def pin(kubectl: Kubectl, name: str, version: str) -> None:
    kubectl("patch", "modeldeployment", name, "--type=merge",
            "-p", json.dumps({"spec": {"model": {"version": version}}}))


def seed_all(stack: StackInfo, model: str, *kwargs: dict[str, Any]) -> list[str]:
    """The first version, then the others side by side; their version numbers in order of
    ``kwargs`` (MLflow numbers them as they register)."""
    first = seed_model(stack, name=model, **kwargs[0])
    with ThreadPoolExecutor(4) as pool:
        rest = list(pool.map(lambda kw: seed_model(stack, name=model, **kw), kwargs[1:]))
    return [str(v["version"]) for v in (first, *rest)]


def test_registry_metric_regression_blocks_and_a_missing_metric_follows_the_policy(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    model = f"metrics-{namespace}"
    v1, worse, unlogged = seed_all(stack, model, {"metrics": {"rmse": 0.30, "auc": 0.9}},
                                   {"metrics": {"rmse": 0.40, "auc": 0.91}},
                                   {"metrics": {"auc": 0.91}})
    rmse = {"name": "rmse", "direction": "lower", "maxRegression": "2%"}
    auc = {"name": "auc", "direction": "higher", "maxDelta": 0.05}
    specs = {"strict": ({"registryMetrics": [rmse, auc]}, worse),
             "blocks-missing": ({"registryMetrics": [rmse]}, unlogged),
             "allows-missing": ({"registryMetrics": [dict(rmse, onMissing="allow")]}, unlogged)}
    for name, (gates, _) in specs.items():
        kubectl("apply", "-f", "-", stdin=manifest(name, gated(model, v1, gates)))
    for name in specs:
        wait_status(custom, namespace, name, serving(v1), what=f"{name}: v1 Stable")
    for name, (_, version) in specs.items():
        pin(kubectl, name, version)

    st = wait_status(custom, namespace, "strict", lambda s: release(s).get("state") == "Aborted",
                     what="strict: blocked")
    metrics = gate(st, "RegistryMetrics")
    assert release(st)["reason"] == "MetricRegression" and metrics["result"] == "Failed"
    assert "rmse 0.4 regresses beyond rmse ≤ 0.306 (stable 0.3 + 2%)" in metrics["message"]
    checks = {c["name"]: c for c in metrics["checks"]}
    assert (checks["rmse"]["value"], checks["rmse"]["stableValue"]) == ("0.4", "0.3")
    assert checks["auc"]["result"] == "Passed" and "auc ≥ 0.85" in checks["auc"]["limit"]
    assert st["history"][0] == {**st["history"][0], "version": worse, "outcome": "Rejected"}

    st = wait_status(custom, namespace, "blocks-missing",
                     lambda s: release(s).get("state") == "Aborted", what="missing: blocked")
    assert release(st)["reason"] == "MetricMissing"
    assert "the new version's run has no rmse" in release(st)["message"]

    st = wait_status(custom, namespace, "allows-missing", serving(unlogged), timeout=90,
                     what="allows-missing: promoted")
    assert st["history"][0]["version"] == unlogged

    names = set(deployments(apps, namespace))
    assert f"strict-v{worse}" not in names and f"blocks-missing-v{unlogged}" not in names, \
        "a version stopped by a registry gate never had a pod"


def test_a_breaking_signature_blocks_or_waits_for_a_promote_request(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str,
) -> None:
    model = f"signature-{namespace}"
    v1, renamed = seed_all(stack, model, {}, {"input_column": "amount"})
    kubectl("apply", "-f", "-", stdin=manifest("blocks", gated(model, v1, {"signature": {}})))
    kubectl("apply", "-f", "-", stdin=manifest("approves", gated(
        model, v1, {"signature": {"onBreakingChange": "approve"}})))
    for name in ("blocks", "approves"):
        wait_status(custom, namespace, name, serving(v1), what=f"{name}: v1 Stable")
        pin(kubectl, name, renamed)

    st = wait_status(custom, namespace, "blocks", lambda s: release(s).get("state") == "Aborted",
                     what="blocks: rejected")
    sig = gate(st, "Signature")
    assert release(st)["reason"] == "BreakingChange" and sig["result"] == "Failed"
    assert "input column 'x'" in sig["message"] and f"version {v1}" in sig["message"], sig

    st = wait_status(custom, namespace, "approves",
                     lambda s: gate(s, "Signature").get("result") == "Waiting",
                     what="approves: waiting")
    assert st["phase"] == "Paused" and "waits for approval" in st["message"], st["message"]
    assert release(st)["state"] == "Gating"
    assert f"approves-v{renamed}" not in deployments(apps, namespace), "no pods while waiting"
    kubectl("annotate", "modeldeployment", "approves", "--overwrite",
            "modeldeploy.io/request=promote")
    st = wait_status(custom, namespace, "approves",
                     lambda s: gate(s, "Signature").get("result") == "Approved",
                     what="approves: approved")
    assert "approved by a promote request" in gate(st, "Signature")["message"]
    wait_status(custom, namespace, "approves", serving(renamed), timeout=90,
                what="approves: promoted through its steps")
    wait_reasons(core, namespace, "approves",
                 lambda r: {"GateWaiting", "GateApproved", "StepStarted", "Promoted"} <= set(r))


def test_production_starts_only_after_stagings_promotion_tagged_the_version(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, namespace: str,
) -> None:
    """One registry, two ModelDeployments: staging tracks @staging and writes back; production
    tracks @champion and requires staging's tag and alias on the version."""
    model = f"chain-{namespace}"
    v1 = str(seed_model(stack, name=model, alias="staging")["version"])
    mlflow = mlflow_client(stack)
    mlflow.set_registered_model_alias(model, "champion", v1)
    staging = spec(model, replicas=1, poll="5s", select={"alias": "staging"},
                   model={"writeBack": {"tagPrefix": "staging",
                                        "promotedAliases": ["staging-approved"],
                                        "previousAlias": "staging-previous"}})
    production = spec(model, replicas=1, poll="5s", traffic=GATEWAY, rollout={
        "strategy": "canary", "steps": STEPS, "gates": {"required": {
            "tags": {"staging.outcome": "Promoted"}, "aliases": ["staging-approved"]}}})
    kubectl("apply", "-f", "-", stdin=manifest("production", production))
    st = wait_status(custom, namespace, "production",
                     lambda s: gate(s, "Required").get("result") == "Waiting",
                     what="production's first version waits for staging")
    assert "tag staging.outcome=Promoted is missing" in gate(st, "Required")["message"]
    assert not deployments(apps, namespace), "nothing runs before staging promoted it"
    kubectl("apply", "-f", "-", stdin=manifest("staging", staging))
    wait_status(custom, namespace, "production", serving(v1), timeout=90,
                what="production serves v1 once staging promoted it")

    v2 = str(seed_model(stack, name=model, bias=1.0)["version"])
    mlflow.set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "production",
                     lambda s: release(s).get("version") == v2 and
                     gate(s, "Required").get("result") == "Waiting",
                     what="production's v2 waits for staging")
    assert f"production-v{v2}" not in deployments(apps, namespace)
    assert st["stable"]["version"] == v1 and st["phase"] == "Progressing"
    mlflow.set_registered_model_alias(model, "staging", v2)
    wait_status(custom, namespace, "staging", serving(v2), timeout=60, what="staging on v2")
    # Written right after staging's promotion is stored (never before: a crash in between
    # repeats the write, it cannot lose it).
    tags = eventually(lambda: (t := mlflow.get_model_version(model, v2).tags).get(
        "staging.outcome") == "Promoted" and t, timeout=30, what="staging's outcome tagged")
    assert tags.get("staging.name") == "staging" and tags.get("staging.namespace") == namespace
    st = wait_status(custom, namespace, "production", serving(v2), timeout=90,
                     what="production promotes v2 after staging")
    promoted_at = next(h["at"] for h in st["history"] if h["version"] == v2
                       and h["outcome"] == "Promoted")
    assert promoted_at >= tags["staging.at"], (promoted_at, tags["staging.at"])
    assert "staging-approved" in mlflow.get_model_version(model, v2).aliases
    assert "staging-previous" in mlflow.get_model_version(model, v1).aliases, \
        "the version staging's promotion replaced carries previousAlias"
    assert status(custom, namespace, "staging").get("registryWrites") in (None, [])
