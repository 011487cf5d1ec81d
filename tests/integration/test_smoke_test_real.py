"""The smoke test end to end on real artifacts and real model servers: each version's serving
input example and signature are read from MLflow by the registry adapter, posted by the
scoring client through the URL template to a real `mlflow models serve` (the stack's service
gateway), and judged. A good version passes; one whose output breaks its signature, a slow
one and an erroring one fail, each with its reason. (Wiring the gate into releases: issue 9.)"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client

from devstack.scoring import SCORING_ENABLED, SCORING_LABEL
from devstack.seed import seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Scoring
from modeldeploy.adapters.registry import Registry, ResolveKey
from modeldeploy.adapters.scoring import ScoringClient, SmokeResult, service_url
from modeldeploy.core.gates import parse_signature
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import spec
from tests.support.mdep import manifest, serving, wait_status

pytestmark = pytest.mark.usefixtures("operator")

SLOW = 1.5
KINDS = {"good": {}, "breaks": {"kind": "breaks-signature"},
         "slow": {"kind": "slow", "delay": SLOW}, "error": {"kind": "error"}}


def test_the_smoke_test_judges_real_model_servers(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, namespace: str,
) -> None:
    assert stack.scoring_url and stack.service_url_template, "no service gateway"
    core.patch_namespace(namespace, {"metadata": {"labels": {SCORING_LABEL: SCORING_ENABLED}}})
    model = f"smoke-{namespace}"
    seed_model(stack, name=model)  # the registered model first: then versions in parallel
    with ThreadPoolExecutor(len(KINDS)) as pool:
        seeded = pool.map(lambda kw: seed_model(stack, name=model, **kw),  # type: ignore[arg-type]
                          KINDS.values())
        versions = {name: str(v["version"]) for name, v in zip(KINDS, seeded, strict=True)}
    for name, version in versions.items():
        kubectl("apply", "-f", "-", stdin=manifest(name, spec(
            model, replicas=1, select={"version": version})))
    for name, version in versions.items():
        wait_status(custom, namespace, name, serving(version), what=f"{name} Stable")
    gateway = Scoring(stack.scoring_url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda nv: gateway.wait_ready(namespace, f"{nv[0]}-v{nv[1]}"),
                      versions.items()))

    async def judge() -> dict[str, SmokeResult]:
        registry, scorer = Registry(timeout=10), ScoringClient()
        out = {}
        try:
            for name, version in versions.items():
                key = ResolveKey(stack.mlflow_tracking_uri, stack.mlflow_tracking_uri, model,
                                 "version", version)
                resolved = (await registry.resolve(key, None)).version
                assert resolved is not None
                details = await registry.details(key, None, resolved)
                signature = parse_signature(details.signature)
                assert signature is not None and details.serving_example is not None
                url = service_url(stack.service_url_template, service=f"{name}-v{version}",
                                  namespace=namespace, port=8080)
                out[name] = await scorer.smoke(url, details.serving_example,
                                               signature.outputs, attempts=2, timeout=10,
                                               max_latency=1.0, pause=0.2)
        finally:
            await scorer.close()
        return out

    results = asyncio.run(judge())
    good, breaks, slow, error = (results[k] for k in KINDS)
    assert good.passed and len(good.attempts) == 1, good.message
    assert not breaks.passed and "per row" in (breaks.attempts[0].problem or ""), breaks.message
    assert not slow.passed and "over the 1000 ms budget" in (slow.attempts[0].problem or ""), \
        slow.message
    assert (slow.attempts[0].latency or 0) >= SLOW
    assert not error.passed and (error.attempts[0].status, error.attempts[-1].status) == (
        500, 500), error.message
    assert "INTERNAL_ERROR" in (error.attempts[0].problem or "")
