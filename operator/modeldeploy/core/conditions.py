"""Standard Kubernetes conditions, updated without I/O.

``lastTransitionTime`` moves only when ``status`` changes, as clients (kubectl wait, Argo CD)
expect; reason and message may change freely.
"""

from __future__ import annotations

import datetime as dt

from modeldeploy.api.status import Condition


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    """A status time; None when absent or unreadable (a hand-edited status is not a crash)."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int,
) -> list[Condition]:
    """A copy of ``conditions`` with ``type_`` set (True/False, or Unknown for None)."""
    value = "Unknown" if status is None else ("True" if status else "False")
    old = get(conditions, type_)
    since = timestamp(now) if old is None or old.status != value else old.lastTransitionTime
    new = Condition(
        type=type_, status=value, reason=reason, message=message,
        lastTransitionTime=since,
        observedGeneration=generation,
    )
    return [c for c in conditions if c.type != type_] + [new]


def get(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)

