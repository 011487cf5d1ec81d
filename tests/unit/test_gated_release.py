"""Gates and registry write-back in the fake world: every gate judged before the new version
has any traffic, results in status, and the registry told what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeldeploy.api.status import GateResult, Outcome, Phase, ReleaseState
from modeldeploy.core.world import Attempt, SmokeResult, VersionDetails
from tests.unit.fakeworld import World, reasons, resolved

GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
COLUMNS = '[{"type": "double", "name": "x", "required": true}]'
SIGNATURE = {"inputs": COLUMNS, "outputs": '[{"type": "double", "required": true}]'}
EXAMPLE = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}


def details(*, metrics: dict[str, float] | None = None, signature: dict[str, Any] | None = None,
            example: Any = EXAMPLE, tags: dict[str, str] | None = None,
            aliases: tuple[str, ...] = (), exists: bool = True) -> VersionDetails:
    return VersionDetails(metrics=metrics or {}, signature=signature or SIGNATURE,
                          input_example=None, serving_example=example, tags=tags or {},
                          aliases=aliases, exists=exists)


def gated_world(gates: dict[str, Any], *, write_back: dict[str, Any] | None = None,
                stable: VersionDetails | None = None) -> World:
    model: dict[str, Any] = {"name": "fraud-scorer", "alias": "champion", "pollInterval": "10s"}
    if write_back is not None:
        model["writeBack"] = write_back
    w = World(spec={"model": model, "serving": {"replicas": 2}, "traffic": GATEWAY,
                    "rollout": {"strategy": "canary", "steps": [{"weight": 50, "pause": "5s"}],
                                "gates": gates}})
    # The first version is gated too: it carries every mark these tests require.
    w.details["1"] = stable or details(metrics={"rmse": 0.30}, aliases=("staging",),
                                       tags={"qa": "ok", "modeldeploy.outcome": "Promoted"})
    for _ in range(6):
        w.tick()
        w.available.add("1")
    assert w.status.phase is Phase.STABLE, w.status.message
    return w


def release(w: World) -> Any:
    assert w.status.rollout is not None and w.status.rollout.release is not None
    return w.status.rollout.release


def gate(w: World, name: str) -> Any:
    return next(g for g in release(w).gates or () if g.gate == name)


def move_to_v2(w: World, d: VersionDetails) -> None:
    w.details["2"] = d
    w.registry = resolved("2")
    w.tick()


def test_a_version_that_passes_every_gate_goes_on_to_its_steps() -> None:
    w = gated_world({"smokeTest": {}, "signature": {}, "required": {"tags": {"qa": "ok"}},
                     "registryMetrics": [{"name": "rmse", "direction": "lower",
                                          "maxRegression": "5%"}]})
    move_to_v2(w, details(metrics={"rmse": 0.31}, tags={"qa": "ok"}))
    assert release(w).state is ReleaseState.STARTING
    assert [g.gate for g in release(w).gates] == ["Required", "Signature", "RegistryMetrics"]
    assert all(g.result is GateResult.PASSED for g in release(w).gates)
    metric = gate(w, "RegistryMetrics").checks[0]
    assert (metric.value, metric.stableValue) == ("0.31", "0.3") and "0.315" in metric.limit
    assert ("Deployment", "scorer-v2") in w.children, "registry gates passed: pods now"
    w.available.add("2")
    w.tick()
    w.tick()
    smoke = gate(w, "SmokeTest")
    assert smoke.result is GateResult.PASSED and smoke.latencyMs == 12.0
    for _ in range(10):
        w.tick()
    assert w.weights().get("2") == 50 or w.status.stable.version == "2"
    assert "GatePassed" in [r for p in w.plans for r in reasons(p)]


def test_registry_gates_run_before_any_pod_and_a_regression_stops_the_version() -> None:
    w = gated_world({"registryMetrics": [{"name": "rmse", "direction": "lower",
                                          "maxRegression": "2%"}]},
                    write_back={"tagPrefix": "md"})
    move_to_v2(w, details(metrics={"rmse": 0.40}))
    metrics = gate(w, "RegistryMetrics")
    assert metrics.result is GateResult.FAILED and metrics.reason == "MetricRegression"
    assert "rmse 0.4 regresses beyond rmse ≤ 0.306 (stable 0.3 + 2%)" in metrics.message
    assert ("Deployment", "scorer-v2") not in w.children
    assert w.weights() == {"1": 100}
    for _ in range(3):
        w.tick()
    rel = release(w)
    assert rel.state is ReleaseState.ABORTED and rel.reason == "MetricRegression"
    assert w.status.history[0].outcome is Outcome.REJECTED
    assert w.status.stable.version == "1" and w.status.phase is Phase.DEGRADED
    tags = {k: v for x in w.written for k, v in x.tags.items() if x.version == "2"}
    assert tags["md.outcome"] == "Rejected" and "MetricRegression" in tags["md.reason"]
    assert tags["md.namespace"] == "ml" and tags["md.name"] == "scorer"
    assert not w.status.registryWrites, "written, so no longer owed"
    events = [e for p in w.plans for e in p.events]
    assert any(e.reason == "GateFailed" and "rmse" in e.message for e in events)
    assert any(e.reason == "RegistryUpdated" for e in events)


def test_a_missing_metric_follows_its_policy() -> None:
    blocked = gated_world({"registryMetrics": [{"name": "auc", "direction": "higher"}]})
    move_to_v2(blocked, details(metrics={}))
    assert gate(blocked, "RegistryMetrics").reason == "MetricMissing"
    allowed = gated_world({"registryMetrics": [{"name": "auc", "direction": "higher",
                                                "onMissing": "allow"}]})
    move_to_v2(allowed, details(metrics={}))
    entry = gate(allowed, "RegistryMetrics")
    assert entry.result is GateResult.PASSED and entry.checks[0].result is GateResult.SKIPPED
    assert "allowed by onMissing" in entry.checks[0].message
    assert release(allowed).state is ReleaseState.STARTING


def test_a_breaking_signature_waits_for_approval_and_a_promote_lets_it_through() -> None:
    w = gated_world({"signature": {"onBreakingChange": "approve"}})
    broken = dict(SIGNATURE, inputs='[{"type": "string", "name": "x", "required": true}]')
    move_to_v2(w, details(signature=broken))
    sig = gate(w, "Signature")
    assert sig.result is GateResult.WAITING and "column 'x'" in sig.message
    assert w.status.phase is Phase.PAUSED and "waits for approval" in w.status.message
    for _ in range(5):
        w.tick(10)
    assert release(w).state is ReleaseState.GATING and ("Deployment", "scorer-v2") \
        not in w.children
    w.request = "promote"
    w.tick()
    assert gate(w, "Signature").result is GateResult.APPROVED
    assert release(w).state is ReleaseState.STARTING
    assert "approved" in w.status.lastRequest.result
    w.tick()
    assert ("Deployment", "scorer-v2") in w.children


def test_a_breaking_signature_blocks_by_default_and_warn_lets_it_through() -> None:
    broken = dict(SIGNATURE, outputs='[{"type": "tensor", "tensor-spec": '
                                     '{"dtype": "float64", "shape": [-1, 2]}}]')
    w = gated_world({"signature": {}})
    move_to_v2(w, details(signature=broken))
    assert gate(w, "Signature").result is GateResult.FAILED
    assert release(w).reason == "BreakingChange"
    warned = gated_world({"signature": {"onBreakingChange": "warn"}})
    move_to_v2(warned, details(signature=broken))
    assert gate(warned, "Signature").result is GateResult.WARNED
    assert release(warned).state is ReleaseState.STARTING


def test_required_marks_wait_and_are_looked_for_again() -> None:
    w = gated_world({"required": {"tags": {"modeldeploy.outcome": "Promoted"},
                                  "aliases": ["staging"]}})
    move_to_v2(w, details())
    req = gate(w, "Required")
    assert req.result is GateResult.WAITING and "alias staging" in req.message
    asked = len(w.gate_requests)
    w.tick(3)
    assert len(w.gate_requests) == asked, "not asked again before pollInterval"
    w.details["2"] = details(tags={"modeldeploy.outcome": "Promoted"}, aliases=("staging",))
    w.tick(10)
    assert gate(w, "Required").result is GateResult.PASSED
    assert release(w).state is ReleaseState.STARTING


def test_smoke_test_failures_stop_the_version_before_any_weight() -> None:
    w = gated_world({"smokeTest": {"attempts": 2}}, write_back={})
    w.details["2"] = details()
    w.smoke["2"] = SmokeResult(False, "http://svc", (
        Attempt(200, 0.01, "expected 1 prediction per row, got 2"),
        Attempt(200, 0.01, "expected 1 prediction per row, got 2")))
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    seen = set()
    for _ in range(6):
        w.tick()
        seen.add(w.weights().get("2", 0))
    assert seen == {0}
    assert release(w).state is ReleaseState.ABORTED and release(w).reason == "SmokeTestFailed"
    smoke = gate(w, "SmokeTest")
    assert len(smoke.checks) == 2 and "per row" in smoke.message
    assert ("Deployment", "scorer-v2") not in w.children
    assert any(x.tags.get("modeldeploy.outcome") == "Rejected" for x in w.written)


def test_a_starting_server_is_waited_for_and_a_missing_example_follows_the_policy() -> None:
    w = gated_world({"smokeTest": {"onMissingExample": "fail"}})
    w.details["2"] = details()
    w.smoke["2"] = SmokeResult(False, "http://svc", (), not_ready="the server is starting")
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    w.tick()
    w.tick()
    assert gate(w, "SmokeTest").result is GateResult.PENDING
    assert release(w).state is ReleaseState.STARTING
    del w.smoke["2"]
    w.tick(2)
    assert gate(w, "SmokeTest").result is GateResult.PASSED
    none = gated_world({"smokeTest": {"onMissingExample": "fail"}})
    none.details["2"] = details(example=None)
    none.registry = resolved("2")
    none.tick()
    none.available.add("2")
    none.tick()
    assert gate(none, "SmokeTest").reason == "NoInputExample"
    assert release(none).reason == "NoInputExample"


def test_write_back_on_promotion_moves_aliases_and_is_retried_until_accepted() -> None:
    w = gated_world({}, write_back={"promotedAliases": ["staging-approved"],
                                    "previousAlias": "previous-champion"})
    w.write_error = "RESOURCE_DOES_NOT_EXIST: 503 from the registry"
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    for _ in range(12):
        w.tick()
    assert w.status.stable.version == "2", "a failing registry never holds traffic back"
    owed = w.status.registryWrites
    assert owed and owed[0].attempts >= 1 and "503" in (owed[0].lastError or "")
    assert "RegistryWriteFailed" in [r for p in w.plans for r in reasons(p)]
    w.write_error = None
    for _ in range(4):
        w.tick(30)
    assert not w.status.registryWrites
    by_version = {x.version: x for x in w.written}
    assert by_version["2"].aliases == ["staging-approved"]
    assert by_version["2"].tags["modeldeploy.outcome"] == "Promoted"
    assert by_version["1"].aliases == ["previous-champion"]


def test_a_first_version_is_gated_too() -> None:
    w = World(spec={"model": {"name": "fraud-scorer", "alias": "champion"},
                    "traffic": GATEWAY,
                    "rollout": {"strategy": "canary", "steps": [{"weight": 50}],
                                "gates": {"required": {"aliases": ["staging"]}}}})
    w.details["1"] = details()
    w.tick()
    assert release(w).state is ReleaseState.GATING and not w.children
    assert w.status.phase is Phase.PROGRESSING
    w.details["1"] = details(aliases=("staging",))
    w.tick(30)
    w.tick()
    w.available.add("1")
    w.tick()
    w.tick()
    assert w.status.stable is not None and w.status.stable.version == "1"
    assert w.status.phase is Phase.STABLE


# --- after promotion: bake window, fast-tracked return, fixForward --------------------------

ERRORS = {"name": "errors", "query": "sum(errors)", "max": 0.05}


def baking_world(**rollout: Any) -> World:
    from modeldeploy.core.analysis import QueryResult

    w = World(spec={"model": {"name": "fraud-scorer", "alias": "champion"},
                    "serving": {"replicas": 2}, "traffic": GATEWAY,
                    "rollout": {"strategy": "canary", "steps": [{"weight": 50}],
                                "analysis": {"interval": "2s", "metrics": [ERRORS]},
                                **rollout}})
    w.answers["errors"] = QueryResult(value=0.0, series=1)
    for _ in range(3):
        w.tick()
        w.available.add("1")
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    for _ in range(20):
        w.tick()
        if w.status.stable is not None and w.status.stable.version == "2":
            break
    assert w.status.stable.version == "2", w.status.message
    return w


def test_a_breach_in_the_bake_window_switches_straight_back_without_new_pods() -> None:
    from modeldeploy.core.analysis import QueryResult

    w = baking_world(bakeWindow="1m")
    assert release(w).state is ReleaseState.BAKING and release(w).previous.version == "1"
    assert w.weights() == {"2": 100}
    assert ("Deployment", "scorer-v1") in w.children, "the previous version stays up"
    uid = w.child("Deployment", "scorer-v1").uid
    w.tick(2)
    assert release(w).state is ReleaseState.BAKING
    w.answers["errors"] = QueryResult(value=0.5, series=1)
    applied_before = len(w.plans)
    for _ in range(3):
        w.tick(1)
        if w.status.stable.version == "1":
            break
    assert w.status.stable.version == "1" and w.weights() == {"1": 100}
    assert w.child("Deployment", "scorer-v1").uid == uid, "the same pods serve again"
    switch = next(p for p in w.plans[applied_before:] if "RolledBack" in reasons(p))
    assert not any(m["kind"] == "Deployment" for m in switch.apply), "no new pods"
    rel = release(w)
    assert rel.state is ReleaseState.ABORTED and rel.reason == "BakeFailed"
    assert w.status.history[0].outcome is Outcome.ROLLED_BACK
    assert "errors 0.5 > max 0.05" in w.status.history[0].reason


def test_a_switch_back_interrupted_by_a_crash_is_never_undone() -> None:
    """Killed after the route went back to version 1 but before that status was stored, and
    the restarted operator's measurement shows nothing now: version 1 keeps all traffic."""
    from modeldeploy.core.analysis import QueryResult

    w = baking_world(bakeWindow="1m")
    w.answers["errors"] = QueryResult(value=0.5, series=1)
    seen = [w.weights(), *w.crash_at_verdict("applied", limit=10)]
    assert w.weights() == {"1": 100}, seen
    w.answers["errors"] = QueryResult()
    for _ in range(20):
        w.tick(1)
        seen.append(w.weights())
    assert seen[-1] == {"1": 100}
    moved = seen.index({"1": 100})
    assert all(s == {"1": 100} for s in seen[moved:]), seen
    assert w.status.stable.version == "1" and release(w).reason == "BakeFailed"


def test_a_switched_back_version_keeps_its_pods_until_the_route_has_left_it() -> None:
    """Killed once the switch back was stored, before the route moved: the restarted operator
    moves the route, and removes version 2 only in a later plan, once the route it sees no
    longer sends it traffic."""
    from modeldeploy.core.analysis import QueryResult

    w = baking_world(bakeWindow="1m")
    w.answers["errors"] = QueryResult(value=0.5, series=1)
    w.crash_at_verdict("recorded", limit=10)
    assert w.weights() == {"2": 100} and w.status.stable.version == "1"
    moving = w.tick(1)
    assert any(m["kind"] == "HTTPRoute" for m in moving.apply)
    assert not any(r.name == "scorer-v2" for r in moving.delete), "deleted as the route moved"
    assert w.weights() == {"1": 100}
    w.tick(1)
    assert "2" not in w.versions(), "gone once the route left it"


def test_the_bake_window_ends_and_the_previous_version_goes() -> None:
    w = baking_world(bakeWindow="10s")
    for _ in range(12):
        w.tick(1)
    assert w.status.rollout is None and w.versions() == {"2"}
    assert "Baked" in [r for p in w.plans for r in reasons(p)]


def test_pinning_a_recent_stable_version_returns_to_it_fast_tracked() -> None:
    w = baking_world()
    assert w.status.previous is not None and w.status.previous.version == "1"
    w.registry = resolved("1")
    w.tick()
    assert release(w).fastTrack
    assert release(w).state in (ReleaseState.STARTING, ReleaseState.PROMOTING)
    w.available.add("1")
    seen = set()
    for _ in range(6):
        w.tick()
        seen.add(w.weights().get("1", 0))
    assert w.status.stable.version == "1"
    assert 50 not in seen, "no canary steps on the way back"


def test_fix_forward_skips_comparisons_with_the_broken_stable_version() -> None:
    w = gated_world({"smokeTest": {}, "signature": {},
                     "registryMetrics": [{"name": "rmse", "direction": "lower"}]})
    w.spec["rollout"]["fixForward"] = True
    broken = dict(SIGNATURE, inputs='[{"type": "string", "name": "x", "required": true}]')
    move_to_v2(w, details(metrics={"rmse": 0.9}, signature=broken))
    assert gate(w, "Signature").result is GateResult.SKIPPED
    assert gate(w, "RegistryMetrics").reason == "FixForward"
    assert release(w).state is ReleaseState.STARTING
    w.smoke["2"] = SmokeResult(False, "http://svc", (Attempt(500, 0.01, "HTTP 500"),))
    w.available.add("2")
    w.tick()
    w.tick()
    assert gate(w, "SmokeTest").result is GateResult.FAILED, "the smoke test still runs"


# --- found in review: ordering, bake and fast-track edges -----------------------------------


def release_one_after_another(w: World, *versions: str) -> None:
    """Each version resolved, Ready and given time to be promoted, in turn."""
    for version in versions:
        w.registry = resolved(version)
        w.tick()
        w.available.add(version)
        for _ in range(12):
            w.tick()


def test_owed_writes_land_in_order_even_after_the_registry_was_down() -> None:
    w = gated_world({}, write_back={"promotedAliases": ["approved"]})
    w.write_error = "503 from the registry"
    release_one_after_another(w, "2", "3")
    assert w.status.stable.version == "3"
    w.write_error = None
    for _ in range(8):
        w.tick(60)
    moved = [x.version for x in w.written if x.aliases == ["approved"]]
    assert moved == ["1", "2", "3"], "the newer alias move lands last"


def test_a_write_refused_for_good_is_reported_once_and_does_not_hold_later_writes() -> None:
    # Issue 17, item 11: a read-only token (PERMISSION_DENIED) or a deleted version was tried
    # 12 times over ~51 minutes, and every later owed write waited behind it.
    w = gated_world({}, write_back={"promotedAliases": ["approved"]})
    w.write_refused = {"2"}
    release_one_after_another(w, "2", "3")
    assert w.status.stable.version == "3"
    assert not w.status.registryWrites, "nothing owed forever"
    all_reasons = [r for p in w.plans for r in reasons(p)]
    assert all_reasons.count("RegistryWriteRefused") == 1
    assert "RegistryWriteFailed" not in all_reasons, "a permanent refusal is not retried"
    moved = [x.version for x in w.written if x.aliases == ["approved"]]
    assert moved == ["1", "3"], "version 3's alias move did not wait for version 2's"


def test_fix_forward_judges_no_relative_bound() -> None:
    from modeldeploy.core.analysis import QueryResult

    w = gated_world({})
    w.spec["rollout"].update(fixForward=True, analysis={"interval": "2s", "metrics": [
        {"name": "p99", "query": "sum(p99)", "maxIncrease": 0.01}]})
    w.answers["p99"] = QueryResult(value=5.0, series=1)
    w.registry = resolved("2")
    w.tick()
    w.available.add("2")
    for _ in range(20):
        w.tick()
    assert w.status.stable.version == "2", w.status.message


def release_version_3(w: World, *, ticks: int,
                      until: Callable[[World], bool] = lambda w: False) -> None:
    """Version 3, whose promotion moves the alias "approved", released after a baked one."""
    w.spec["model"]["writeBack"] = {"promotedAliases": ["approved"]}
    w.registry = resolved("3")
    w.tick()
    w.available.add("3")
    for _ in range(ticks):
        w.tick()
        if until(w):
            return


def test_a_bake_moves_aliases_only_once_it_has_passed() -> None:
    from modeldeploy.core.analysis import QueryResult

    w = baking_world(bakeWindow="20s")
    release_version_3(w, ticks=20, until=lambda w: release(w).state is ReleaseState.BAKING
                      and release(w).version == "3")
    w.tick(0.5)  # the write is made right after the status that owes it is stored
    tags = {x.tags.get("modeldeploy.outcome") for x in w.written if x.version == "3"}
    assert tags == {"Baking"} and not any(x.aliases for x in w.written if x.version == "3")
    w.answers["errors"] = QueryResult(value=0.9, series=1)
    plan_count = len(w.plans)
    for _ in range(4):
        w.tick(1)
    assert w.status.stable.version == "2"
    switch = next(p for p in w.plans[plan_count:] if "RolledBack" in reasons(p))
    assert ("Deployment", "scorer-v3") not in {(r.kind, r.name) for r in switch.delete}, \
        "the rejected version's pods outlive the plan that switches back"
    assert not any(x.aliases for x in w.written if x.version == "3"), "never approved"
    assert any(x.tags.get("modeldeploy.outcome") == "Rejected" for x in w.written
               if x.version == "3")


def test_a_version_rolled_back_after_promotion_is_not_fast_tracked() -> None:
    from modeldeploy.core.analysis import QueryResult

    w = baking_world(bakeWindow="1m")
    w.answers["errors"] = QueryResult(value=0.9, series=1)
    for _ in range(4):
        w.tick(1)
    assert w.status.stable.version == "1" and release(w).reason == "BakeFailed"
    w.answers["errors"] = QueryResult(value=0.0, series=1)
    w.registry = resolved("3")
    w.tick()
    w.registry = resolved("2")
    w.tick()
    assert release(w).version == "2" and not release(w).fastTrack


def test_a_passed_bake_window_promotes_in_the_registry() -> None:
    w = baking_world(bakeWindow="5s")
    release_version_3(w, ticks=30)
    assert w.status.rollout is None and w.status.stable.version == "3"
    final = [x for x in w.written if x.version == "3"]
    assert [x.tags.get("modeldeploy.outcome") for x in final] == ["Baking", "Promoted"]
    assert final[-1].aliases == ["approved"]
    assert "passed its bake window" in final[-1].tags["modeldeploy.reason"]
