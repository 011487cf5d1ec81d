"""Gates as status entries: what :mod:`modeldeploy.core.gates` finds, judged per spec (pure).

A release with ``spec.rollout.gates`` is judged twice before it gets any traffic:

1. **Registry gates** (``required``, ``signature``, ``registryMetrics``), from the registry's
   details of the new version and of the stable one, while the release is ``Gating``: the new
   version has no pods yet. A missing required mark *waits* (staging may promote it later);
   a breaking signature change blocks, waits for approval or warns; a metric regression
   blocks.
2. The **smoke test**, once the new version's pods are Ready (``Starting``): its logged input
   example is posted to its Service and the answer judged against its output signature and
   the latency budget.

Every result is a :class:`GateStatus` with the values compared and a reason; the release
state machine (:mod:`modeldeploy.core.release`) acts on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from modeldeploy.api.spec import Gates, OnBreakingChange, OnMissing, OnMissingExample, SmokeTest
from modeldeploy.api.status import GateCheck, GateResult, GateStatus
from modeldeploy.core import gates
from modeldeploy.core.world import SmokeResult, VersionDetails

SMOKE_TEST, METRICS, SIGNATURE, REQUIRED = "SmokeTest", "RegistryMetrics", "Signature", "Required"
#: The order gates are judged and listed in.
ORDER = (REQUIRED, SIGNATURE, METRICS, SMOKE_TEST)
#: Results that let a release go on.
THROUGH = frozenset({GateResult.PASSED, GateResult.SKIPPED, GateResult.WARNED,
                     GateResult.APPROVED})
#: Rollback reasons that mean "stopped by a gate" (history: Rejected, never had traffic).
GATE_REASONS = frozenset({"BreakingChange", "MetricRegression", "MetricMissing",
                          "SmokeTestFailed", "NoInputExample", "VersionGone"})
_ANY = "*"


def registry_gates(spec: Gates | None) -> tuple[str, ...]:
    """The registry gates ``spec`` configures, in judging order."""
    if spec is None:
        return ()
    configured = {REQUIRED: spec.required is not None and bool(
                      spec.required.tags or spec.required.aliases),
                  SIGNATURE: spec.signature is not None,
                  METRICS: bool(spec.registryMetrics)}
    return tuple(g for g in ORDER if configured.get(g))


def find(entries: Sequence[GateStatus] | None, gate: str) -> GateStatus | None:
    return next((g for g in entries or () if g.gate == gate), None)


def merge(entries: Sequence[GateStatus] | None, new: Iterable[GateStatus]) -> list[GateStatus]:
    """``entries`` with ``new`` replacing the entries of the same gates, in judging order."""
    by_gate = {g.gate: g for g in entries or ()}
    for g in new:
        old = by_gate.get(g.gate)
        if old is not None and old.startedAt and old.startedAt != g.startedAt:
            g = g.model_copy(update={"startedAt": old.startedAt})  # when it first began
        by_gate[g.gate] = g
    return sorted(by_gate.values(), key=lambda g: ORDER.index(g.gate)
                  if g.gate in ORDER else len(ORDER))


def judge_registry(spec: Gates, candidate: VersionDetails, stable: VersionDetails | None, *,
                   stable_version: str | None, ts: str) -> list[GateStatus]:
    """Every configured registry gate's result for ``candidate`` (against ``stable``)."""
    out: list[GateStatus] = []
    for gate in registry_gates(spec):
        if not candidate.exists:
            out.append(GateStatus(gate=gate, result=GateResult.FAILED, reason="VersionGone",
                                  message="the version no longer exists in the registry",
                                  at=ts, startedAt=ts))
            continue
        if gate == REQUIRED:
            out.append(_required(spec, candidate, ts))
        elif gate == SIGNATURE:
            out.append(_signature(spec, candidate, stable, stable_version, ts))
        else:
            out.append(_metrics(spec, candidate, stable, stable_version, ts))
    return out


def _required(spec: Gates, candidate: VersionDetails, ts: str) -> GateStatus:
    assert spec.required is not None
    tags = {k: (None if v == _ANY else v) for k, v in (spec.required.tags or {}).items()}
    aliases = list(spec.required.aliases or ())
    missing = gates.missing_marks(tags, aliases, candidate.tags, candidate.aliases)
    checks = [GateCheck(name=f"tag {k}", value=candidate.tags.get(k), limit=v or _ANY,
                        result=GateResult.PASSED if candidate.tags.get(k) is not None and
                        (v is None or candidate.tags.get(k) == v) else GateResult.WAITING)
              for k, v in tags.items()]
    checks += [GateCheck(name=f"alias {a}", limit="on this version",
                         value="present" if a in candidate.aliases else "absent",
                         result=GateResult.PASSED if a in candidate.aliases
                         else GateResult.WAITING) for a in aliases]
    if missing:
        return GateStatus(gate=REQUIRED, result=GateResult.WAITING, reason="MarksMissing",
                          message="waiting for registry marks: " + "; ".join(missing),
                          checks=checks, at=ts, startedAt=ts)
    return GateStatus(gate=REQUIRED, result=GateResult.PASSED, reason="MarksPresent",
                      message="the version carries every required tag and alias",
                      checks=checks, at=ts, startedAt=ts)


def _signature(spec: Gates, candidate: VersionDetails, stable: VersionDetails | None,
               stable_version: str | None, ts: str) -> GateStatus:
    assert spec.signature is not None
    if stable is None or stable_version is None:
        return GateStatus(gate=SIGNATURE, result=GateResult.SKIPPED, reason="NoStableVersion",
                          message="no stable version to compare the signature with",
                          at=ts, startedAt=ts)
    try:
        changes = gates.breaking_changes(gates.parse_signature(stable.signature),
                                         gates.parse_signature(candidate.signature))
    except (ValueError, TypeError, KeyError) as exc:
        changes = [f"the signature cannot be read: {exc}"]
    checks = [GateCheck(name="signature", result=GateResult.FAILED, message=c)
              for c in changes[:16]]
    if not changes:
        return GateStatus(gate=SIGNATURE, result=GateResult.PASSED, reason="Compatible",
                          message=f"no breaking change from version {stable_version}'s "
                                  "signature", at=ts, startedAt=ts)
    what = f"breaking change from version {stable_version}: " + "; ".join(changes)
    policy = spec.signature.onBreakingChange
    if policy is OnBreakingChange.APPROVE:
        return GateStatus(gate=SIGNATURE, result=GateResult.WAITING, reason="ApprovalRequired",
                          message=what + " (a promote request approves it)", checks=checks,
                          at=ts, startedAt=ts)
    result = GateResult.WARNED if policy is OnBreakingChange.WARN else GateResult.FAILED
    return GateStatus(gate=SIGNATURE, result=result, reason="BreakingChange", message=what,
                      checks=checks, at=ts, startedAt=ts)


def _metrics(spec: Gates, candidate: VersionDetails, stable: VersionDetails | None,
             stable_version: str | None, ts: str) -> GateStatus:
    if stable is None or stable_version is None:
        return GateStatus(gate=METRICS, result=GateResult.SKIPPED, reason="NoStableVersion",
                          message="no stable version to compare run metrics with",
                          at=ts, startedAt=ts)
    checks: list[GateCheck] = []
    failed: list[str] = []
    missing = False
    for m in spec.registryMetrics or ():
        relative = m.maxDelta is None
        allowance = (float(m.maxRegression.rstrip("%")) / 100 if m.maxRegression
                     else None) if relative else m.maxDelta
        value = candidate.metrics.get(m.name) if candidate.run_found else None
        baseline = stable.metrics.get(m.name)
        c = gates.compare_metric(m.name, m.direction.value, value, baseline,
                                 max_regression=allowance, relative=relative,
                                 missing_blocks=m.onMissing is OnMissing.BLOCK)
        message = c.message
        if value is None and not candidate.run_found:
            message = message.replace("run has no", "run (it has none) has no")
        result = {gates.MetricVerdict.PASSED: GateResult.PASSED,
                  gates.MetricVerdict.FAILED: GateResult.FAILED,
                  gates.MetricVerdict.SKIPPED: GateResult.SKIPPED}[c.verdict]
        checks.append(GateCheck(name=m.name, result=result, value=_num(c.candidate),
                                stableValue=_num(c.stable), limit=c.limit or None,
                                message=message))
        if result is GateResult.FAILED:
            failed.append(message)
            missing = missing or value is None
    against = f" against version {stable_version}"
    if failed:
        reason = "MetricRegression" if not missing else "MetricMissing"
        return GateStatus(gate=METRICS, result=GateResult.FAILED, reason=reason,
                          message="; ".join(failed) + against, checks=checks, at=ts,
                          startedAt=ts)
    skipped = [c.message for c in checks if c.result is GateResult.SKIPPED]
    text = "; ".join(c.message for c in checks) + against
    return GateStatus(gate=METRICS, result=GateResult.PASSED,
                      reason="WithinLimits" if not skipped else "WithinLimitsSomeSkipped",
                      message=text, checks=checks, at=ts, startedAt=ts)


def not_blocking(entry: GateStatus, why: str) -> GateStatus:
    """A comparison with the stable version that must not stop this release: a fast-tracked
    return to a recent stable version (recorded, Warned when it would have blocked), or
    fixForward (the stable version is broken: Skipped)."""
    if entry.gate not in (SIGNATURE, METRICS):
        return entry
    if why == "FixForward":
        return entry.model_copy(update={
            "result": GateResult.SKIPPED, "reason": why, "checks": [],
            "message": "fixForward: no comparison with the (broken) stable version"})
    if entry.result in (GateResult.FAILED, GateResult.WAITING):
        return entry.model_copy(update={
            "result": GateResult.WARNED, "reason": why,
            "message": f"{entry.message} (not blocking: a fast-tracked return to a recent "
                       "stable version)"[:1000]})
    return entry


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def smoke_missing_example(spec: SmokeTest, ts: str) -> GateStatus:
    """The version was logged without an input example: the policy decides."""
    if spec.onMissingExample is OnMissingExample.FAIL:
        return GateStatus(gate=SMOKE_TEST, result=GateResult.FAILED, reason="NoInputExample",
                          message="the version has no logged input example "
                                  "(onMissingExample: fail)", at=ts, startedAt=ts)
    return GateStatus(gate=SMOKE_TEST, result=GateResult.SKIPPED, reason="NoInputExample",
                      message="the version has no logged input example: smoke test skipped "
                              "(onMissingExample: skip)", at=ts, startedAt=ts)


def judge_smoke(result: SmokeResult, ts: str) -> GateStatus:
    """A smoke test that ran (``result.not_ready`` is not a result: see the caller)."""
    checks = [GateCheck(name=f"attempt {i + 1}",
                        result=GateResult.PASSED if a.problem is None else GateResult.FAILED,
                        value=f"HTTP {a.status}" if a.status is not None else None,
                        limit=None, message=(a.problem or "as the signature says") + (
                            f" ({a.latency * 1000:.0f} ms)" if a.latency is not None else ""))
              for i, a in enumerate(result.attempts)]
    last = result.attempts[-1] if result.attempts else None
    latency = round(last.latency * 1000, 1) if last is not None and last.latency else None
    if result.passed:
        return GateStatus(gate=SMOKE_TEST, result=GateResult.PASSED, reason="SmokeTestPassed",
                          message=result.message, checks=checks, latencyMs=latency, at=ts)
    return GateStatus(gate=SMOKE_TEST, result=GateResult.FAILED, reason="SmokeTestFailed",
                      message=result.message[:1000], checks=checks, latencyMs=latency, at=ts)


def smoke_pending(message: str, ts: str) -> GateStatus:
    return GateStatus(gate=SMOKE_TEST, result=GateResult.PENDING, reason="ServerStarting",
                      message=message[:500], startedAt=ts)


def blocking(entries: Sequence[GateStatus] | None) -> GateStatus | None:
    """The first gate that failed."""
    return next((g for g in entries or () if g.result is GateResult.FAILED), None)


def waiting(entries: Sequence[GateStatus] | None) -> GateStatus | None:
    return next((g for g in entries or () if g.result is GateResult.WAITING), None)


def event_for(entry: GateStatus, version: str) -> tuple[str, str, str]:
    """(type, reason, message) of the event a newly judged gate posts."""
    kind = "Warning" if entry.result in (GateResult.FAILED, GateResult.WARNED) else "Normal"
    return kind, f"Gate{entry.result.value}", \
        f"version {version}: {entry.gate} {entry.result.value.lower()} " \
        f"({entry.reason}): {entry.message}"[:1000]
