"""Restart safety under fire: the operator is killed (SIGKILL) at 20 seeded random moments
spread over four canary releases, and restarted each time. Every release must resume where
it was, never show a weight that is not one of its steps on the live route, create no
duplicate children, and end as an uninterrupted release does."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.operator_process import OperatorProcess
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import GATEWAY, canary_spec, release
from tests.integration.test_modeldeployment import deployments
from tests.support.mdep import events, manifest, serving, status, wait_status
from tests.support.routewatch import RouteWatch
from tests.support.wait import eventually

SEED = 20261203
KILLS_PER_RELEASE = 5
RELEASES = 4
STEPS = [{"weight": 20, "pause": "5s"}, {"weight": 50, "pause": "5s"}]
ANALYSIS = {"interval": "2s", "failureLimit": 0, "minRequests": 0,
            "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]}


@pytest.fixture()
def solo(stack: StackInfo, operator: OperatorProcess,
         tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator of this test's own, without leader election (one replica, restarted at
    once after each kill instead of waiting out its own Lease); the session's operator
    steps aside meanwhile."""
    operator.stop()
    proc = OperatorProcess.create(stack, tmp_path / "solo")
    proc.extra_env["MODELDEPLOY_LEADER_ELECTION"] = "false"
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        operator.start()


def test_kill_9_at_random_moments_never_changes_how_a_release_ends(
    stack: StackInfo, solo: OperatorProcess, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
    namespace: str,
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded on purpose: reproducible kill moments
    model = f"chaos-{namespace}"
    seed_model(stack, name=model, alias="champion")
    versions = [str(seed_model(stack, name=model, bias=float(i))["version"])
                for i in range(1, RELEASES + 1)]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=STEPS, analysis=ANALYSIS, traffic=GATEWAY)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    route = RouteWatch(api, namespace, "HTTPRoute", "scorer").start()
    killed_in: list[str] = []
    try:
        for version in versions:
            mlflow_client(stack).set_registered_model_alias(model, "champion", version)
            # The clock starts when the release does (the alias is polled every 5 s); its
            # steps and promotion take ~15 s, and a kill may also land just after.
            wait_status(custom, namespace, "scorer",
                        lambda s, v=version: (s.get("canary") or {}).get("version") == v,
                        timeout=60, what=f"release of version {version} started")
            started = time.monotonic()
            for at in sorted(rng.uniform(0.0, 16.0) for _ in range(KILLS_PER_RELEASE)):
                time.sleep(max(0.0, started + at - time.monotonic()))
                st = status(custom, namespace, "scorer")
                rel = release(st)
                killed_in.append(f"{rel['state']}:{rel.get('step', 0)}" if rel
                                 else str(st.get("phase")))
                solo.kill9()
                solo.start()
            st = wait_status(custom, namespace, "scorer", serving(version), timeout=120,
                             what=f"version {version} promoted despite the kills")
            eventually(lambda v=version: set(deployments(apps, namespace)) == {f"scorer-v{v}"},
                       timeout=60, what=f"only version {version} left")
            _assert_ends_like_an_uninterrupted_release(st, version)
            weights = route.weights_of(f"scorer-v{version}")
            assert set(weights) <= {0, 20, 50, 100}, weights
            assert weights == sorted(weights), f"the weight went down: {weights}"
    finally:
        route.stop()
    print(f"\nkilled in states: {killed_in}")
    assert len(killed_in) == KILLS_PER_RELEASE * RELEASES
    steps_hit = {k.split(":")[1] for k in killed_in if ":" in k}
    assert steps_hit >= {"0", "1"}, f"kills did not land on both steps: {killed_in}"
    services = sorted(s.metadata.name for s in core.list_namespaced_service(namespace).items)
    assert services == ["scorer", f"scorer-v{versions[-1]}"], services
    promoted = [m for _, r, m in events(core, namespace, "scorer") if r == "Promoted"]
    for version in versions:  # a crash may lose an event, never post it twice
        assert sum(m.startswith(f"version {version} ") for m in promoted) <= 1, promoted


def _assert_ends_like_an_uninterrupted_release(st: dict[str, Any], version: str) -> None:
    assert st["phase"] == "Stable" and st.get("rollout") is None and st.get("canary") is None
    assert st["history"][0]["version"] == version
    assert st["history"][0]["outcome"] == "Promoted"
    assert st["history"][1]["outcome"] == "Replaced"
