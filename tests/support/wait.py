"""Polling helpers: tests wait on conditions, never on fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """The condition never held; the message carries the last value seen."""


def eventually(
    fn: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``fn`` until it returns something truthy; return that value.

    Exceptions raised by ``fn`` count as "not yet" but the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - reported below
            last = exc
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"{what} did not hold within {timeout}s; last: {last!r}")
        time.sleep(interval)
