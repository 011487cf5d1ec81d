"""What a release's end writes to the registry (pure): tags on the version and alias moves.

A promotion tags the new version ``<prefix>.outcome=Promoted`` (with the reason, cluster,
namespace, object name, time and an analysis summary), moves ``promotedAliases`` to it and
``previousAlias`` to the version it replaced. A rollback tags the version
``<prefix>.outcome=Rejected`` with its reason, so a data scientist sees in the registry why.
The writes are idempotent: the same plan written twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modeldeploy.api.spec import WriteBack

#: MLflow accepts tag values up to 5000 characters; a summary is kept far shorter.
MAX_VALUE = 500
PROMOTED = "Promoted"
REJECTED = "Rejected"
#: Promoted here but still in its bake window: no alias moves yet.
BAKING = "Baking"


@dataclass(frozen=True)
class Write:
    version: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """A release's end as the registry should learn it."""

    version: str
    promoted: bool
    reason: str
    at: str
    namespace: str
    name: str
    cluster: str = ""
    #: The version a promotion replaced (None: a first release, or a rollback).
    previous: str | None = None
    #: One line about the analysis, e.g. "error-rate 0.01 <= 0.05 (3 measurements)".
    analysis: str = ""
    #: Promoted but baking (spec.rollout.bakeWindow): tagged Baking, aliases not moved until
    #: the window has passed (a version that fails its bake never carries them).
    baking: bool = False


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def plan(spec: WriteBack, outcome: Outcome) -> list[Write]:
    """The writes for ``outcome``: the version's tags (and aliases when promoted), then the
    previous version's alias. Empty values are not written."""
    prefix = spec.tagPrefix
    values = {
        "outcome": (BAKING if outcome.baking else PROMOTED) if outcome.promoted else REJECTED,
        "reason": outcome.reason,
        "cluster": outcome.cluster,
        "namespace": outcome.namespace,
        "name": outcome.name,
        "at": outcome.at,
        "analysis": outcome.analysis,
    }
    tags = {f"{prefix}.{k}": _clip(v) for k, v in values.items() if v}
    if not outcome.promoted or outcome.baking:
        return [Write(outcome.version, tags)]
    writes = [Write(outcome.version, tags, tuple(spec.promotedAliases or ()))]
    if spec.previousAlias and outcome.previous and outcome.previous != outcome.version:
        writes.append(Write(outcome.previous, {}, (spec.previousAlias,)))
    return writes
