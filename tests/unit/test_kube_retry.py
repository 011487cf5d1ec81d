"""The kube adapter retries conflicts, throttling and server errors, and nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modeldeploy.adapters.kube import ApiError, Kube


class Flaky(Kube):
    def __init__(self, failures: list[int]) -> None:
        super().__init__(api=None)  # type: ignore[arg-type]
        object.__setattr__(self, "failures", failures)
        object.__setattr__(self, "calls", 0)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        object.__setattr__(self, "calls", self.calls + 1)  # type: ignore[attr-defined]
        if self.failures:  # type: ignore[attr-defined]
            status = self.failures.pop(0)  # type: ignore[attr-defined]
            raise ApiError(status, "x", "y")
        return {"ok": True}


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_transient_errors_are_retried(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    kube = Flaky([status, status])
    assert asyncio.run(kube.request("PATCH", "/x")) == {"ok": True}
    assert kube.calls == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_client_errors_are_not_retried(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    kube = Flaky([status])
    with pytest.raises(ApiError):
        asyncio.run(kube.request("PATCH", "/x"))
    assert kube.calls == 1  # type: ignore[attr-defined]


def test_retries_give_up_after_the_attempt_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    kube = Flaky([409] * 10)
    with pytest.raises(ApiError):
        asyncio.run(kube.request("PATCH", "/x"))
    assert kube.calls == kube.attempts  # type: ignore[attr-defined]


async def _no_sleep(_: float) -> None:
    return None
