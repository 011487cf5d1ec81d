"""Restart safety under fire: the operator is killed (SIGKILL) at 20 seeded random moments spread
over every state a release can be in, and restarted each time.

On a simulated cluster most states last milliseconds (pods are Ready at once, a route change
lands at once), so the test *holds* a release in each one with an admission policy on the
real apiserver (pods of the new version cannot be created yet: Starting; the route cannot
change yet: a step not yet confirmed, Promoting, RollingBack) and kills the operator at a
seeded random moment inside the hold; the other states (a step's pause, a human pause, a
rejection, the blue-green window) last long enough by themselves.

After each restart, a held release must be exactly where it was (state, step, weight, start
and pause end times: a restarted operator waits out only the rest of a pause), the status
weight must be the live route's. Across the whole run an independent watcher checks that no
release ever went back a step, that the live route only ever had weights of the current
steps, never more than the current step's, and that each release ended as an uninterrupted
one does, with no duplicate children and no event of a promotion or rollback posted twice."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.operator_process import OperatorProcess
from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from tests.integration.conftest import Kubectl, stand_in
from tests.integration.test_canary import GATEWAY, canary_spec, release
from tests.integration.test_modeldeployment import deployments
from tests.support import apiserver
from tests.support.hold import pods_hold, route_hold, status_hold
from tests.support.mdep import events, manifest, serving, status, wait_status
from tests.support.routewatch import MODELDEPLOYMENTS, ObjectWatch, RouteWatch
from tests.support.scrape import scrape, total
from tests.support.wait import eventually

SEED = 20261203
KILLS = 20
#: Every state a release passes through (Switched is blue-green's window after the switch).
STATES = {"Starting", "Stepping", "Paused", "Promoting", "RollingBack", "Aborted", "Switched"}
#: The second step waits for a human: Paused lasts until the test resumes it.
STEPS = [{"weight": 20, "pause": "4s"}, {"weight": 50, "pause": ""}]
WEIGHTS = {0, 20, 50, 100}
#: A measurement every 4 s: a step's first one comes as its pause ends, and a failing one
#: leaves time to put a hold in force before the rollback it causes.
ANALYSIS = {"interval": "4s", "failureLimit": 0, "minRequests": 0,
            "metrics": [{"name": "errors", "template": "error-rate", "max": 0.05}]}
#: The blue-green window: long enough for two kills and restarts on a loaded machine, and
#: the old version is only required to be there while the window is surely open.
SCALE_DOWN_DELAY = 15.0
BLUE_GREEN = {"strategy": "blueGreen", "analysis": ANALYSIS,
              "blueGreen": {"autoPromote": True, "scaleDownDelay": f"{SCALE_DOWN_DELAY:g}s"}}
#: Release fields a restart must not change while the release is held.
HELD_FIELDS = ("version", "state", "step", "weight", "startedAt", "stepStartedAt",
               "stepEndsAt", "switchedAt", "reason")
#: Order of a release's states: a release never goes back (Paused at step s ranks with
#: Stepping at step s, as a pause request holds a step without leaving it).
RANK = {"Starting": 0, "Stepping": 10, "Paused": 10, "Promoting": 50, "RollingBack": 60,
        "Aborted": 70, "Switched": 80}

Digest = tuple[str | None, str | None, int, int | None]


def _digest(obj: dict[str, Any] | None) -> Digest:
    rel = release((obj or {}).get("status") or {})
    return rel.get("version"), rel.get("state"), int(rel.get("step") or 0), rel.get("weight")


@pytest.fixture()
def solo(stack: StackInfo, operator: OperatorProcess,
         tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator of this test's own, without leader election (one replica, restarted at
    once after each kill instead of waiting out its own Lease); the session's operator
    steps aside meanwhile."""
    with stand_in(stack, operator, tmp_path / "solo",
                  env={"MODELDEPLOY_LEADER_ELECTION": "false"}) as proc:
        yield proc


@dataclass
class Chaos:
    """The run's kills, and the handles it needs to place and check them."""

    rng: random.Random
    solo: OperatorProcess
    api: client.ApiClient
    custom: client.CustomObjectsApi
    apps: client.AppsV1Api
    kubectl: Kubectl
    namespace: str
    route: RouteWatch
    kills: list[str] = field(default_factory=list)
    requests: int = 0

    def wait(self, check: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 60) -> dict[str, Any]:
        return wait_status(self.custom, self.namespace, "scorer", check, timeout=timeout,
                           what=what)

    def wait_release(self, version: str, state: str, *, step: int | None = None,
                     confirmed: bool | None = None, timeout: float = 60) -> dict[str, Any]:
        def check(st: dict[str, Any]) -> bool:
            rel = release(st)
            return rel.get("version") == version and rel.get("state") == state and \
                (step is None or int(rel.get("step") or 0) == step) and \
                (confirmed is None or (rel.get("stepStartedAt") is not None) == confirmed)
        return self.wait(check, f"version {version} {state}"
                         + (f" at step {step}" if step is not None else ""), timeout)

    def kill(self, within: tuple[float, float]) -> dict[str, Any]:
        """SIGKILL the operator at a seeded random moment ``within`` seconds from now and
        start it again; returns the release as it was just before the kill."""
        time.sleep(self.rng.uniform(*within))
        before = release(status(self.custom, self.namespace, "scorer"))
        self.kills.append(f"{before.get('state')}:{before.get('step', 0)}")
        self.solo.kill9()
        self.solo.start()
        return before

    def kill_held(self, within: tuple[float, float]) -> dict[str, Any]:
        """A kill while a hold keeps the release where it is: once the new operator has
        reconciled, the release is exactly where it was and status tells the live weight."""
        before = self.kill(within)
        eventually(lambda: total(scrape(self.solo.metrics_url), "modeldeploy_reconcile_total")
                   >= 1, timeout=30, what="the restarted operator reconciled")
        time.sleep(1.0)
        st = status(self.custom, self.namespace, "scorer")
        after = release(st)
        assert {k: after.get(k) for k in HELD_FIELDS} == \
            {k: before.get(k) for k in HELD_FIELDS}, f"moved by a restart: {before} -> {after}"
        live = (self.route.current() or {}).get(f"scorer-v{before['version']}", 0)
        if before["state"] != "Aborted":
            assert (st.get("canary") or {}).get("weight", 0) == live == after["weight"], \
                f"status weight {after['weight']} vs live route {live}"
        return before

    def request(self, action: str) -> None:
        """kubectl annotate, with a value of its own (a repeated value is one request)."""
        self.requests += 1
        self.kubectl("annotate", "mdep", "scorer",
                     f"modeldeploy.io/request={action}:{self.requests}", "--overwrite")

    def set_alias(self, model: str, version: str) -> None:
        mlflow_client(self.kubectl.stack).set_registered_model_alias(model, "champion", version)


def test_kill_9_at_random_moments_in_every_state_never_changes_how_a_release_ends(
    stack: StackInfo, solo: OperatorProcess, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
    namespace: str, traffic: Traffic,
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded on purpose: reproducible kill moments
    model = f"chaos-{namespace}"
    seed_model(stack, name=model, alias="champion")
    v2, v3, v4, v5 = (str(seed_model(stack, name=model, bias=float(i))["version"])
                      for i in range(1, 5))
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=STEPS, analysis=ANALYSIS, traffic=GATEWAY)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
    route = RouteWatch(api, namespace, "HTTPRoute", "scorer").start()
    releases = ObjectWatch(api, namespace, MODELDEPLOYMENTS, "scorer", _digest).start()
    chaos = Chaos(rng, solo, api, custom, apps, kubectl, namespace, route)
    try:
        _good_canary(chaos, model, v2, hold_step=False)
        _failing_canary_retried(chaos, model, v3, traffic)
        _good_canary(chaos, model, v4, hold_step=True)
        blue_green = canary_spec(model, steps=STEPS, analysis=None, traffic=GATEWAY)
        blue_green["rollout"] = BLUE_GREEN
        kubectl("apply", "-f", "-", stdin=manifest("scorer", blue_green))
        _blue_green(chaos, model, v5)
    finally:
        route.stop()
        releases.stop()

    print(f"\nkilled in: {chaos.kills}")
    assert len(chaos.kills) == KILLS
    hit = {k.split(":")[0] for k in chaos.kills}
    assert hit == STATES, f"kills missed {STATES - hit}: {chaos.kills}"
    for version in (v2, v3, v4):
        weights = _as_candidate(route.weights_of(f"scorer-v{version}"))
        assert set(weights) <= WEIGHTS, weights
        if version != v3:  # v3 went to 0 once, on its rollback
            assert weights == sorted(weights), f"version {version}'s weight went down: {weights}"
    assert route.weights_of(f"scorer-v{v5}") in ([0, 100], [100]), "blue-green never splits"
    _assert_never_went_back([d for _, d in releases.seen])
    assert set(deployments(apps, namespace)) == {f"scorer-v{v5}"}
    services = sorted(s.metadata.name for s in core.list_namespaced_service(namespace).items)
    assert services == ["scorer", f"scorer-v{v5}"], services
    posted = events(core, namespace, "scorer")
    for version in (v2, v3, v4, v5):  # a crash may lose an event, never post it twice
        for reason in ("Promoted", "RolledBack"):
            same = [m for _, r, m in posted if r == reason and m.startswith(f"version {version} ")]
            assert len(same) <= 1, same


def _good_canary(chaos: Chaos, model: str, version: str, *, hold_step: bool) -> None:
    """Starting (held) → Stepping 0 (its pause) → [step 1 not yet on the route (held)] →
    Paused 1 (a human pause) → resume → Promoting (held) → promoted: 4 or 5 kills."""
    with pods_hold(chaos.api, chaos.namespace, version):
        chaos.set_alias(model, version)
        chaos.wait_release(version, "Starting", timeout=30)
        chaos.kill_held((0.0, 2.0))
    st = chaos.wait_release(version, "Stepping", step=0, confirmed=True)
    with route_hold(chaos.api, chaos.namespace, "scorer") if hold_step else nullcontext():
        before = chaos.kill((0.0, 2.0))
        after = release(status(chaos.custom, chaos.namespace, "scorer"))
        if after.get("step") == 0 and after.get("state") == "Stepping":
            assert after["stepEndsAt"] == before["stepEndsAt"] == release(st)["stepEndsAt"], \
                "a restart must not start the pause over"
        if hold_step:
            chaos.wait_release(version, "Stepping", step=1, confirmed=False)
            chaos.kill_held((0.0, 1.5))  # still 20 % on the route and in status, not 50 %
    chaos.wait_release(version, "Paused", step=1)
    chaos.kill_held((0.0, 2.0))
    with route_hold(chaos.api, chaos.namespace, "scorer"):
        chaos.request("resume")
        chaos.wait_release(version, "Promoting")
        chaos.kill_held((0.0, 2.0))
    st = chaos.wait(serving(version), f"version {version} promoted", timeout=60)
    assert [h["outcome"] for h in st["history"][:2]] == ["Promoted", "Replaced"]
    assert st["history"][0]["version"] == version


def _failing_canary_retried(chaos: Chaos, model: str, version: str, traffic: Traffic) -> None:
    """Starting (held) → Stepping 0 → a failed measurement → RollingBack (held) → Aborted
    (not redeployed) → retry, with a kill just after the request → the fixed version goes
    through Stepping and Paused again and is promoted: 7 kills."""
    traffic.behaviour(namespace=chaos.namespace, model=model, version=version, error_rate=0.5)
    with pods_hold(chaos.api, chaos.namespace, version):
        chaos.set_alias(model, version)
        chaos.wait_release(version, "Starting", timeout=30)
        chaos.kill_held((0.0, 2.0))
    chaos.wait_release(version, "Stepping", step=0, confirmed=True)  # 20 % on the route
    with route_hold(chaos.api, chaos.namespace, "scorer"):
        chaos.kill((0.0, 1.0))  # Stepping 0 (the first measurement is due 4 s in)
        chaos.wait_release(version, "RollingBack", timeout=30)
        chaos.kill_held((0.0, 2.0))  # weight still 20 on the route, and status says so
    st = chaos.wait_release(version, "Aborted", timeout=30)
    assert release(st)["reason"] == "AnalysisFailed"
    assert (chaos.route.current() or {}).get(f"scorer-v{version}", 0) == 0
    chaos.kill_held((0.0, 3.0))
    eventually(lambda: f"scorer-v{version}" not in deployments(chaos.apps, chaos.namespace),
               timeout=30, what=f"version {version} scaled down")
    time.sleep(6)  # more than a poll interval: the alias still points at the rejected version
    assert release(status(chaos.custom, chaos.namespace, "scorer"))["state"] == "Aborted"
    assert f"scorer-v{version}" not in deployments(chaos.apps, chaos.namespace), \
        "a rejected version was deployed again"

    traffic.behaviour(namespace=chaos.namespace, model=model, version=version, error_rate=0.0)
    chaos.request("retry")
    chaos.kill((0.0, 1.0))  # the request is handled once, before or after the kill
    chaos.wait_release(version, "Stepping", step=0, confirmed=True)
    chaos.kill((0.0, 3.0))
    chaos.wait_release(version, "Paused", step=1)
    chaos.kill_held((0.0, 2.0))
    chaos.request("resume")
    st = chaos.wait(serving(version), f"retried version {version} promoted", timeout=60)
    assert [h["outcome"] for h in st["history"][:4]] == \
        ["Promoted", "Replaced", "Retried", "RolledBack"], st["history"][:4]
    assert st["lastRequest"]["action"] == "resume"


def _blue_green(chaos: Chaos, model: str, version: str) -> None:
    """Starting (held) → the preview under analysis → Switched (two kills in the window,
    which is timed from the switch, not from a restart) → the old version removed: 4 kills."""
    apps = chaos.apps
    old = f"scorer-v{status(chaos.custom, chaos.namespace, 'scorer')['stable']['version']}"
    with pods_hold(chaos.api, chaos.namespace, version):
        chaos.set_alias(model, version)
        chaos.wait_release(version, "Starting", timeout=30)
        chaos.kill_held((0.0, 2.0))
    chaos.wait_release(version, "Stepping", confirmed=True)
    chaos.kill((0.0, 1.0))
    st = chaos.wait_release(version, "Switched", timeout=60)
    switched_at = release(st)["switchedAt"]
    window_end = dt.datetime.fromisoformat(switched_at.replace("Z", "+00:00")) + \
        dt.timedelta(seconds=SCALE_DOWN_DELAY)
    for window in ((0.0, 2.5), (0.0, 2.5)):
        before = chaos.kill(window)
        if before.get("state") == "Switched":
            assert before["switchedAt"] == switched_at
        # Timed from the switch, not from a restart: while the window is open (a second of
        # margin for the clock's rounding), the old version must still be there.
        if dt.datetime.now(dt.UTC) < window_end - dt.timedelta(seconds=1):
            assert old in deployments(apps, chaos.namespace), \
                "the old version went before its window"
    eventually(lambda: old not in deployments(apps, chaos.namespace), timeout=30,
               what="the old version removed after its window")
    chaos.wait(lambda s: serving(version)(s) and s.get("rollout") is None,
               "the blue-green window closed in status")


def _as_candidate(weights: list[int]) -> list[int]:
    """A version's weights until it took all the traffic (then it is the stable one, whose
    share the next candidate takes)."""
    return weights[:weights.index(100) + 1] if 100 in weights else weights


def _assert_never_went_back(seen: list[Digest]) -> None:
    """Within each attempt at a version (a retry starts one over from Starting), the release
    only ever moves forward, and never shows a weight above its current step's."""
    last: dict[str, int] = {}
    for version, state, step, weight in seen:
        if version is None or state is None:
            continue
        rank = RANK[state] + (step if state in ("Stepping", "Paused") else 0)
        if state == "Starting":
            last[version] = rank  # a first start, or a retry's
            continue
        assert rank >= last.get(version, 0), f"version {version} went back: {seen}"
        last[version] = rank
        if state in ("Stepping", "Paused") and weight is not None:
            assert weight <= STEPS[step]["weight"], f"above step {step}: {seen}"


def test_a_rollback_moves_the_route_only_once_its_verdict_is_stored(
    stack: StackInfo, solo: OperatorProcess, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, namespace: str, traffic: Traffic,
) -> None:
    """The verdict of a failed measurement need not repeat after a restart (the candidate has
    no traffic any more), so it is stored before the route moves. While the apiserver refuses
    that status the candidate keeps its weight; the operator is killed meanwhile, and the
    restarted one carries the rollback out: the route goes to 0 once, after the hold."""
    model = f"chaos-{namespace}"
    seed_model(stack, name=model, alias="champion")
    v2 = str(seed_model(stack, name=model, bias=1.0)["version"])
    route = RouteWatch(api, namespace, "HTTPRoute", "scorer").start()
    try:
        kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
            model, steps=[{"weight": 20, "pause": ""}], analysis={**ANALYSIS, "interval": "2s"})))
        wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")
        traffic.behaviour(namespace=namespace, model=model, version=v2, error_rate=0.5)
        refused = _refused_status_writes(api)
        with status_hold(api, namespace, "scorer", "RollingBack"):
            mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
            eventually(lambda: _refused_status_writes(api) >= refused + 2, timeout=60,
                       what="the rollback's status refused twice")
            rel = release(status(custom, namespace, "scorer"))
            assert rel["state"] in ("Stepping", "Paused") and rel["weight"] == 20, rel
            assert route.weights_of(f"scorer-v{v2}")[-1] == 20, route.seen
            solo.kill9()
        lifted = time.monotonic()
        solo.start()
        st = wait_status(custom, namespace, "scorer",
                         lambda s: release(s).get("state") == "Aborted", timeout=60,
                         what="rolled back by the restarted operator")
        assert release(st)["reason"] == "AnalysisFailed" and st["stable"]["version"] == "1"
        weights = route.weights_of(f"scorer-v{v2}")
        assert weights[weights.index(20):] == [20, 0], weights
        twenty = route.first_time(f"scorer-v{v2}", 20)
        assert twenty is not None
        zero = route.first_time(f"scorer-v{v2}", 0, after=twenty)
        assert zero is not None and zero > lifted, "the route moved before the verdict was stored"
    finally:
        route.stop()


def _refused_status_writes(api: client.ApiClient) -> float:
    """ModelDeployment status replaces the apiserver refused at admission (all namespaces)."""
    return total(apiserver.metrics(api), "apiserver_request_total", group="modeldeploy.io",
                 resource="modeldeployments", subresource="status", verb="PUT", code="422",
                 dry_run="")
