"""After promotion, on the real stack: a bake window in which a breach switches the live route
straight back to the previous version's still-running pods, and a declarative return to a
recent stable version (pinning spec.model.version) that is fast-tracked past the steps."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from kubernetes import client

from devstack.seed import mlflow_client
from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import ANALYSIS, canary_spec, release, route, two_versions
from tests.integration.test_modeldeployment import deployments
from tests.support.mdep import events, manifest, serving, wait_reasons, wait_status
from tests.support.routewatch import RouteWatch
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")
__all__ = ["route"]  # the fixture, shared with the canary tests

BAKE_ANALYSIS = {**ANALYSIS, "interval": "2s", "failureLimit": 0}


def pods(core: client.CoreV1Api, namespace: str, version: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(
        namespace, label_selector=f"modeldeploy.io/version={version}").items}


def test_a_breach_in_the_bake_window_switches_back_to_the_running_previous_version(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, route: RouteWatch,
    traffic: Traffic,
) -> None:
    model, v2 = two_versions(stack, namespace)
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=[{"weight": 50, "pause": "2s"}], analysis=BAKE_ANALYSIS,
        bakeWindow="3m")))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: release(s).get("state") == "Baking", timeout=120,
                     what="version 2 promoted, baking")
    assert st["stable"]["version"] == v2 and release(st)["previous"]["version"] == "1"
    assert route.current() == {f"scorer-v{v2}": 100}
    assert {"scorer-v1", f"scorer-v{v2}"} <= set(deployments(apps, namespace)), \
        "the previous version stays up while the new one bakes"
    before = pods(core, namespace, "1")
    assert before, "version 1 has pods to switch back to"
    dep_uid = apps.read_namespaced_deployment("scorer-v1", namespace).metadata.uid

    induced = time.monotonic()
    traffic.behaviour(namespace=namespace, model=model, version=v2, error_rate=0.5)
    st = wait_status(custom, namespace, "scorer",
                     lambda s: (s.get("stable") or {}).get("version") == "1", timeout=60,
                     what="switched back to version 1")
    # The switch back is stored first, then the route moves: wait for the route.
    back_at = eventually(lambda: route.first_time("scorer-v1", 100, after=induced),
                         timeout=30, what="version 1 at 100% on the live route")
    rel = release(st)
    assert rel["state"] == "Aborted" and rel["reason"] == "BakeFailed", rel
    assert "failed in its bake window" in rel["message"] and "switched back" in rel["message"]
    assert st["history"][0]["version"] == v2 and st["history"][0]["outcome"] == "RolledBack"
    assert st["phase"] == "Degraded" and "version 1 keeps serving" in st["message"]

    # The measured bound: from the failing measurement to version 1 at 100% on the route.
    failed = [e for e in core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=scorer").items
        if e.reason == "AnalysisFailed"]
    assert failed, "the breach was measured"
    first = min(e.event_time or e.metadata.creation_timestamp for e in failed)
    lag = time.monotonic() - back_at
    latency = (dt.datetime.now(dt.UTC) - first).total_seconds() - lag
    print(f"\nbake breach: induced -> back on version 1 {back_at - induced:.1f}s; failing "
          f"measurement -> route {latency:.2f}s")
    # Event times have whole seconds: the switch is the very reconcile that measured.
    assert latency < 5.0, latency
    assert back_at - induced < 15.0, "an analysis interval (2 s) and a scrape or two"

    # No new pods: the very same Deployment and pods serve again.
    assert apps.read_namespaced_deployment("scorer-v1", namespace).metadata.uid == dep_uid
    assert pods(core, namespace, "1") == before
    wait_reasons(core, namespace, "scorer", lambda r: "Baking" in r and "RolledBack" in r)
    time.sleep(6)  # the alias still points at version 2: it is not released again
    st = wait_status(custom, namespace, "scorer", lambda s: s["stable"]["version"] == "1")
    assert release(st)["state"] == "Aborted" and f"scorer-v{v2}" not in deployments(
        apps, namespace)


def test_pinning_a_recent_stable_version_returns_to_it_fast_tracked(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, namespace: str, route: RouteWatch,
) -> None:
    model, v2 = two_versions(stack, namespace)
    steps = [{"weight": 30, "pause": "2s"}, {"weight": 60, "pause": "2s"}]
    body = canary_spec(model, steps=steps, analysis=None)
    body["model"] = {"name": model, "version": "1", "pollInterval": "5s"}
    kubectl("apply", "-f", "-", stdin=manifest("scorer", body))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")

    def pin(version: str) -> None:
        kubectl("patch", "modeldeployment", "scorer", "--type=merge",
                "-p", json.dumps({"spec": {"model": {"version": version}}}))

    pin(v2)
    wait_status(custom, namespace, "scorer", serving(v2), timeout=90, what="v2 via its steps")
    assert {30, 60} <= set(route.weights_of(f"scorer-v{v2}"))
    pinned = time.monotonic()
    pin("1")
    # The fast-tracked release may be over within a second or two: judge it by what stays,
    # the events, the history and every weight the route had.
    st = wait_status(custom, namespace, "scorer", serving("1"), timeout=60,
                     what="version 1 serves again")
    eventually(lambda: any("fast-tracked, no steps" in m and "version 1" in m
                           for _, r, m in events(core, namespace, "scorer") if r == "Promoting"),
               timeout=20, what="the fast-tracked Promoting event")
    back = [w for t, ws in route.seen if t >= pinned for w in [ws.get("scorer-v1", 0)]]
    assert 30 not in back and 60 not in back and back[-1] == 100, back
    assert [(h["version"], h["outcome"]) for h in st["history"][:2]] == [
        ("1", "Promoted"), (v2, "Replaced")]
