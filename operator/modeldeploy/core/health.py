"""While a version serves: health probes, and whether a rollback would work (pure).

* **Health probes** (``spec.healthCheck``): every ``interval`` the serving version's logged
  input example is posted to its Service, as the smoke test does, and the answer judged against
  its output signature and ``maxLatency``. ``failureThreshold`` failures in a row make it
  Unhealthy (condition ``Healthy=False`` and a Warning event); one success makes it Healthy
  again. A version without an input example is probed at ``/ping``.
* **Rollback readiness**: at the same interval (every minute without ``spec.healthCheck``), the
  version the stable one replaced (``status.previous``) is looked up in the registry: it must
  still exist, not be archived, and its artifacts must still be readable. The
  ``RollbackReady`` condition says whether a rollback to it is known to work before it is
  needed.

Both run against :class:`~modeldeploy.core.world.ProbeRequest` answers the reconciler fetches;
everything here only computes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Health, Previous, Stable
from modeldeploy.core import durations
from modeldeploy.core.conditions import parse_time, timestamp
from modeldeploy.core.world import (
    Event,
    ProbeAnswers,
    ProbeRequest,
    ResolvedVersion,
    SmokeRequest,
    VersionDetails,
)

#: How often rollback readiness is checked without spec.healthCheck.
DEFAULT_INTERVAL = 60.0
HEALTHY, UNHEALTHY, UNKNOWN = "Healthy", "Unhealthy", "Unknown"


def interval(spec: ModelDeploymentSpec) -> float:
    return durations.parse(spec.healthCheck.interval) if spec.healthCheck else DEFAULT_INTERVAL


def next_due(spec: ModelDeploymentSpec, health: Health | None, previous: Previous | None,
             stable: Stable | None, checked_at: dt.datetime | None) -> dt.datetime | None:
    """When the next probe or check is due (None: nothing to do; a past time: now).
    ``checked_at``: when this operator last checked the previous version (kept in memory, so
    an unchanged answer costs no status write; a restarted operator checks at once)."""
    times: list[dt.datetime] = []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    if spec.healthCheck is not None and stable is not None:
        if health is None or health.version != stable.version:
            times.append(epoch)
        else:
            times.append(parse_time(health.nextAt) or epoch)
    if previous is not None:
        times.append(checked_at + dt.timedelta(seconds=interval(spec)) if checked_at else epoch)
    return min(times, default=None)


def request(spec: ModelDeploymentSpec, *, stable: Stable | None, previous: Previous | None,
            service: str, now: dt.datetime, health: Health | None,
            checked_at: dt.datetime | None) -> ProbeRequest | None:
    """What to probe and check now, if anything is due."""
    due = next_due(spec, health, previous, stable, checked_at)
    if due is None or due > now:
        return None
    hc = spec.healthCheck
    smoke = None
    if hc is not None and stable is not None:
        smoke = SmokeRequest(service=service, port=80, attempts=1,
                             timeout=durations.parse(hc.timeout),
                             max_latency=durations.parse(hc.maxLatency))
    check_previous = previous is not None and (
        checked_at is None or checked_at + dt.timedelta(seconds=interval(spec)) <= now)
    return ProbeRequest(stable=ResolvedVersion.of(stable) if stable is not None and smoke
                        else None,
                        smoke=smoke,
                        previous=ResolvedVersion.of(previous) if previous and check_previous
                        else None)


@dataclass(frozen=True)
class Outcome:
    health: Health | None
    previous: Previous | None
    events: tuple[Event, ...] = ()


def record(spec: ModelDeploymentSpec, answers: ProbeAnswers, *, health: Health | None,
           previous: Previous | None, now: dt.datetime) -> Outcome:
    """Fold one round of answers into status.health and status.previous."""
    request_ = answers.request
    ts = timestamp(now)
    events: list[Event] = []
    hc = spec.healthCheck
    if request_.smoke is not None and request_.stable is not None and hc is not None:
        health, said = _probe(hc.failureThreshold, request_.stable.version, answers, health,
                              ts, now + dt.timedelta(seconds=interval(spec)))
        events += said
    if request_.previous is not None and previous is not None and \
            previous.version == request_.previous.version:
        previous, said = _rollback_ready(previous, answers)
        events += said
    return Outcome(health, previous, tuple(events))


def _probe(threshold: int, version: str, answers: ProbeAnswers, old: Health | None, ts: str,
           next_at: dt.datetime) -> tuple[Health, list[Event]]:
    smoke = answers.smoke
    if old is None or old.version != version:
        old = Health(version=version, result=UNKNOWN)
    if smoke is None:
        why = answers.error or "the version has no input example and /ping did not answer"
        passed, latency, message = False, None, why
    else:
        passed = smoke.passed
        last = smoke.attempts[-1] if smoke.attempts else None
        latency = round(last.latency * 1000, 1) if last and last.latency is not None else None
        message = smoke.message
    failures = 0 if passed else old.consecutiveFailures + 1
    result = HEALTHY if passed else (UNHEALTHY if failures >= threshold else old.result)
    events: list[Event] = []
    if result == UNHEALTHY and old.result != UNHEALTHY:
        events.append(Event("Warning", "Unhealthy", f"version {version} failed {failures} "
                                                    f"health probes in a row: {message}"[:1000]))
    elif result == HEALTHY and old.result == UNHEALTHY:
        events.append(Event("Normal", "Healthy", f"version {version} answers its health probe "
                                                 "again"))
    return Health(version=version, result=result, consecutiveFailures=failures,
                  latencyMs=latency, message=message[:500], lastProbeAt=ts,
                  nextAt=timestamp(next_at)), events


def _rollback_ready(previous: Previous,
                    answers: ProbeAnswers) -> tuple[Previous, list[Event]]:
    details = answers.previous
    if details is None:
        # The registry could not be read: keep what was known, look again next time.
        return previous, []
    ready, reason, message = readiness(previous.version, details)
    events = []
    if previous.ready is not False and not ready:
        events.append(Event("Warning", "RollbackNotReady", message))
    elif previous.ready is False and ready:
        events.append(Event("Normal", "RollbackReady", message))
    return previous.model_copy(update={"ready": ready, "reason": reason,
                                       "message": message}), events


def readiness(version: str, details: VersionDetails) -> tuple[bool, str, str]:
    """(ready, reason, message) for rolling back to ``version``."""
    if not details.exists:
        return False, "PreviousVersionDeleted", \
            f"version {version} was deleted from the registry: a rollback cannot load it"
    if (details.stage or "").lower() == "archived":
        return False, "PreviousVersionArchived", f"version {version} is archived in the registry"
    if details.status and details.status.upper() not in ("READY", "MODELVERSIONSTATUS.READY"):
        return False, "PreviousVersionNotReady", \
            f"version {version}'s registration is {details.status}"
    if details.artifacts_found is False:
        return False, "ArtifactsMissing", \
            f"version {version}'s artifacts (MLmodel) can no longer be read"
    return True, "PreviousVersionAvailable", \
        f"version {version} exists and its artifacts resolve: a rollback to it would work"
