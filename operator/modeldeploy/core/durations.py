"""Durations as users write them (``30s``, ``5m``, ``1h30m``, ``500ms``), parsed without I/O."""

from __future__ import annotations

import re

#: Go-style durations restricted to the units that make sense for releases.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming the text when it is not a duration."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 500ms")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))

