"""The smoke-test gate in real releases: real MLflow versions, real `mlflow models serve`
backends behind the stack's service gateway, the real route watched from outside. A version
that passes every gate goes on to its canary steps; one whose answer breaks its signature, a
slow one and an erroring one are each stopped before any weight, with the reason in status and
the outcome tagged on the version in MLflow."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from devstack.operator_process import OperatorProcess
from devstack.scoring import SCORING_ENABLED, SCORING_LABEL
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import GATEWAY, release
from tests.integration.test_modeldeployment import spec
from tests.support.mdep import manifest, serving, status, wait_reasons, wait_status
from tests.support.routewatch import RouteWatch
from tests.support.scrape import scrape, total
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

SLOW = 1.5
#: name -> how its second version behaves when served
CANDIDATES: dict[str, dict[str, Any]] = {
    "good": {"bias": 1.0}, "breaks": {"kind": "breaks-signature"},
    "slow": {"kind": "slow", "delay": SLOW}, "error": {"kind": "error"}}
GATES = {"smokeTest": {"attempts": 2, "timeout": "5s", "maxLatency": "1s"},
         "registryMetrics": [{"name": "rmse", "direction": "lower", "maxRegression": "5%"}]}


def gated_spec(model: str, version: str) -> dict[str, Any]:
    return spec(model, replicas=1, select={"version": version}, traffic=GATEWAY,
                model={"writeBack": {}},
                rollout={"strategy": "canary", "steps": [{"weight": 50, "pause": "2s"}],
                         "gates": GATES})


def gate(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next((g for g in release(st).get("gates") or [] if g["gate"] == name), {})


def test_the_smoke_test_lets_a_good_version_through_and_stops_bad_ones_before_any_weight(
    stack: StackInfo, api: client.ApiClient, kubectl: Kubectl, operator: OperatorProcess,
    custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str,
) -> None:
    assert stack.scoring_url, "the stack has no service gateway: the smoke test cannot run"
    core.patch_namespace(namespace, {"metadata": {"labels": {SCORING_LABEL: SCORING_ENABLED}}})
    model = f"gated-{namespace}"
    first = seed_model(stack, name=model, metrics={"rmse": 0.30})
    with ThreadPoolExecutor(len(CANDIDATES)) as pool:
        seeded = list(pool.map(lambda kw: seed_model(stack, name=model,  # type: ignore[arg-type]
                                                     metrics={"rmse": 0.301}, **kw),
                               CANDIDATES.values()))
    versions = {name: str(v["version"]) for name, v in zip(CANDIDATES, seeded, strict=True)}
    routes = {name: RouteWatch(api, namespace, "HTTPRoute", name).start()
              for name in CANDIDATES}
    try:
        for name in CANDIDATES:
            kubectl("apply", "-f", "-", stdin=manifest(name, gated_spec(model, "1")))
        for name in CANDIDATES:
            st = wait_status(custom, namespace, name, serving("1"), timeout=120,
                             what=f"{name}: version 1 (smoke-tested too) Stable")
        for name, version in versions.items():
            kubectl("patch", "modeldeployment", name, "--type=merge",
                    "-p", f'{{"spec": {{"model": {{"version": "{version}"}}}}}}')

        # The good version: every gate passed, then its steps on the live route.
        st = wait_status(custom, namespace, "good",
                         lambda s: release(s).get("state") in ("Stepping", "Promoting"),
                         timeout=120, what="good: past its gates")
        smoke, metrics = gate(st, "SmokeTest"), gate(st, "RegistryMetrics")
        assert smoke["result"] == "Passed" and 0 < smoke["latencyMs"] < 1000, smoke
        assert metrics["result"] == "Passed" and metrics["checks"][0]["value"] == "0.301"
        assert "0.315" in metrics["checks"][0]["limit"], metrics
        wait_status(custom, namespace, "good", serving(versions["good"]), timeout=60,
                    what="good: promoted")
        assert 50 in routes["good"].weights_of(f"good-v{versions['good']}")

        # The bad ones: stopped, never any weight.
        expected = {"breaks": "per row", "slow": "over the 1000 ms budget",
                    "error": "HTTP 500"}
        for name, words in expected.items():
            st = wait_status(custom, namespace, name,
                             lambda s: release(s).get("state") == "Aborted", timeout=120,
                             what=f"{name}: stopped by its smoke test")
            rel = release(st)
            assert rel["reason"] == "SmokeTestFailed", rel
            assert gate(st, "SmokeTest")["result"] == "Failed"
            assert words in rel["message"], (name, rel["message"])
            assert st["stable"]["version"] == "1" and st["phase"] == "Degraded"
            assert st["history"][0]["outcome"] == "Rejected"
            assert "version 1 keeps serving" in st["message"]
            assert set(routes[name].weights_of(f"{name}-v{versions[name]}")) <= {0}, \
                f"{name}: the new version had traffic"
            wait_reasons(core, namespace, name, lambda r: "GateFailed" in r and "Rejected" in r)
    finally:
        for watch in routes.values():
            watch.stop()

    # The registry tells a data scientist what happened, and why.
    mlflow = mlflow_client(stack)

    def tags(version: str) -> dict[str, str]:
        return dict(mlflow.get_model_version(model, version).tags)

    good = tags(versions["good"])
    assert good["modeldeploy.outcome"] == "Promoted", good
    assert "SmokeTest Passed" in good["modeldeploy.analysis"], good
    assert good["modeldeploy.namespace"] == namespace and good["modeldeploy.name"] == "good"
    for name in expected:
        got = _eventually_tagged(custom, namespace, name, versions[name], tags)
        assert got["modeldeploy.outcome"] == "Rejected", (name, got)
        assert got["modeldeploy.reason"].startswith("SmokeTestFailed"), (name, got)
    assert tags(first["version"])["modeldeploy.outcome"] == "Promoted"

    # The operator's /metrics counts the same smoke tests and registry writes.
    samples = scrape(operator.metrics_url)
    assert total(samples, "modeldeploy_smoke_tests_total", result="failed") >= 3
    assert total(samples, "modeldeploy_smoke_tests_total", result="passed") >= 5
    assert total(samples, "modeldeploy_registry_writes_total", result="ok") >= 8


def _eventually_tagged(custom: client.CustomObjectsApi, namespace: str, name: str,
                       version: str, read: Any) -> dict[str, str]:
    return dict(eventually(lambda: (t := read(version)).get("modeldeploy.outcome") and t,
                           timeout=30, what=f"{name}: outcome tagged in MLflow"
                           f" (owed: {status(custom, namespace, name).get('registryWrites')})"))
