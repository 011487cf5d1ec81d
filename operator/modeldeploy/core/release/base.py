"""The release state machine's working copy, the facts it decides on, and helpers every
state shares (times, weights, the registry summary)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from modeldeploy.api.spec import Rollout, Strategy, WriteBack
from modeldeploy.api.status import (
    Canary,
    HistoryEntry,
    Previous,
    RegistryWrite,
    Release,
    ReleaseState,
    Request,
    RolloutState,
    RolloutType,
    Stable,
)
from modeldeploy.core import writeback
from modeldeploy.core.conditions import parse_time, timestamp
from modeldeploy.core.world import (
    Event,
    GateAnswers,
    GateRequest,
    Measurement,
    MeasurementRequest,
    ResolvedVersion,
)

REQUEST_ANNOTATION = "modeldeploy.io/request"


ACTIONS = ("promote", "abort", "retry", "pause", "resume")


#: How soon to look again while waiting for a weight to show on the live route.
CONFIRM_REQUEUE = 1.0


#: The event a rollback posts (its message names the reason).
ROLLING_BACK_EVENT = "RollingBack"


#: How soon to ask a scoring server that is still starting again.
SMOKE_REQUEUE = 2.0


S = ReleaseState


@dataclass
class Working:
    """The version state machine's working copy during one decide()."""

    stable: Stable | None
    canary: Canary | None
    rollout: RolloutState | None
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    promoted: bool = False
    measure: list[MeasurementRequest] = field(default_factory=list)
    last_request: Request | None = None
    #: Versions whose children stay although neither stable nor canary (blue-green window).
    keep: set[str] = field(default_factory=set)
    wake: list[dt.datetime] = field(default_factory=list)
    #: Registry details or a smoke test the gates need before the next decision.
    gates: GateRequest | None = None
    #: Registry write-backs owed (status.registryWrites), and what to write them for.
    writes: list[RegistryWrite] = field(default_factory=list)
    write_spec: WriteBack | None = None
    #: The version the stable one replaced (what a rollback returns to).
    previous: Previous | None = None
    #: (namespace, name, cluster) written with each outcome, and the registered model.
    origin: tuple[str, str, str] = ("", "", "")
    model: str = ""
    #: Traffic leaves a version on a verdict (rollback, switch back): store it first.
    record_first: bool = False

    def owe(self, outcome: writeback.Outcome) -> None:
        """Record what the registry should learn of ``outcome`` (spec.model.writeBack)."""
        if self.write_spec is None:
            return
        for write in writeback.plan(self.write_spec, outcome):
            entry = RegistryWrite(model=self.model, version=write.version, tags=write.tags,
                                  aliases=list(write.aliases))
            if entry not in self.writes:
                self.writes.append(entry)

    def outcome(self, version: str, *, promoted: bool, reason: str, at: str,
                previous: str | None = None, summary: str = "",
                baking: bool = False) -> writeback.Outcome:
        namespace, name, cluster = self.origin
        return writeback.Outcome(version=version, promoted=promoted, reason=reason, at=at,
                                 namespace=namespace, name=name, cluster=cluster,
                                 previous=previous, analysis=summary, baking=baking)

    @property
    def release(self) -> Release | None:
        return self.rollout.release if self.rollout is not None else None

    def set_release(self, release: Release) -> None:
        assert self.rollout is not None
        self.rollout = state_of(self.rollout.type, release)


KINDS = {Strategy.CANARY: RolloutType.CANARY, Strategy.BLUE_GREEN: RolloutType.BLUE_GREEN,
         Strategy.AB_TEST: RolloutType.AB_TEST, Strategy.SHADOW: RolloutType.SHADOW}
#: Strategies that route the new version by a rule of their own (not by weight) for a while.
EXPERIMENTS = (Strategy.AB_TEST, Strategy.SHADOW)


def state_of(kind: RolloutType, release: Release) -> RolloutState:
    member = kind.value[0].lower() + kind.value[1:]
    return RolloutState.model_validate({"type": kind, member: release})


def progressive(rollout: Rollout | None) -> bool:
    return rollout is not None and rollout.strategy in KINDS


@dataclass(frozen=True)
class Facts:
    """What advance() may look at besides the working copy."""

    #: spec.rollout (None only when no release is in flight: a request then does nothing).
    rollout_spec: Rollout | None
    now: dt.datetime
    #: The new version runs the current spec with its replicas Ready (and is not stuck).
    candidate_ready: bool
    candidate_stuck: bool
    #: Whether a weight for the new version is what the live objects do now.
    in_place: Callable[[int], bool]
    #: The registry's current answer is the release's version (retry needs that).
    resolved_version: str | None
    request: str | None = None
    #: The apiserver refused one of the children this observation asked for: nothing that
    #: assumes the plan is live (a blue-green switch) may happen.
    apply_refused: bool = False
    measurements: tuple[Measurement, ...] = ()
    requests: tuple[MeasurementRequest, ...] = ()
    #: The release's version and the stable one as the registry knows them (gate requests).
    candidate: ResolvedVersion | None = None
    stable: ResolvedVersion | None = None
    #: The new version's Service (smoke test) and the port it listens on.
    candidate_service: str = ""
    candidate_port: int = 80
    #: How often missing required registry marks are looked for again (spec.model.pollInterval).
    recheck_after: float = 30.0
    gate_answers: GateAnswers | None = None

    @property
    def ts(self) -> str:
        return timestamp(self.now)

    @property
    def rollout(self) -> Rollout:
        assert self.rollout_spec is not None, "a release in flight has a spec.rollout"
        return self.rollout_spec


_at = parse_time


def _since(text: str | None) -> dt.datetime | None:
    """A stored start of a delay (``switchedAt``, ``notReadySince``) as the *end* of the second
    it names: status times are whole seconds rounded down, and a delay counted from the start
    of that second could end up to a second early. Never shorter than configured, as
    ``_later`` rounds an end up."""
    at = _at(text)
    return at + dt.timedelta(seconds=1) if at is not None else None


def _later(now: dt.datetime, seconds: float) -> str:
    """``now + seconds`` as a status time, rounded *up* to the whole second status times
    have: a pause is never shorter than configured."""
    when = now + dt.timedelta(seconds=seconds)
    if when.microsecond:
        when += dt.timedelta(microseconds=1_000_000 - when.microsecond)
    return timestamp(when)


def wanted_weight(rollout: Rollout, release: Release, *, candidate_ready: bool) -> int:
    """The new version's weight in the state ``release`` is in (what the route is asked
    for). Blue-green never splits: its switch is the promotion."""
    if rollout.strategy is Strategy.BLUE_GREEN:
        return 0
    if rollout.strategy in EXPERIMENTS:  # the audience or the mirror, until promotion
        return 100 if release.state is S.PROMOTING and candidate_ready else 0
    steps = rollout.steps or []
    if release.state in (S.STEPPING, S.PAUSED) and steps:
        return steps[min(release.step, len(steps) - 1)].weight
    if release.state is S.PROMOTING:
        return 100 if candidate_ready else (steps[-1].weight if steps else 0)
    return 0


def summary(rel: Release | None) -> str:
    """One line about a release's gates and analysis, for the registry's outcome tag."""
    if rel is None:
        return ""
    parts = [f"{g.gate} {g.result.value}" + (f" ({g.latencyMs:.0f} ms)" if g.latencyMs else "")
             for g in rel.gates or ()]
    a = rel.analysis
    if a is not None and (a.successful or a.failed or a.inconclusive):
        parts.append(f"analysis: {a.successful} successful, {a.failed} failed, "
                     f"{a.inconclusive} inconclusive")
        parts += [m.message for m in a.measurements if m.message]
    return "; ".join(parts)
