"""In-memory stand-ins for the shared resolver's collaborators: a registry, a clock, no creds."""

from __future__ import annotations

import asyncio

from modeldeploy.adapters.registry import Credentials, ResolveKey
from modeldeploy.controller.resolver import Resolver
from modeldeploy.core.world import RegistryOutcome, Resolution, ResolvedVersion
from modeldeploy.metrics import Metrics

KEY = ResolveKey("http://r", "http://r", "fraud", "alias", "champion")


class FakeRegistry:
    def __init__(self) -> None:
        self.answer = "1"
        self.calls = 0
        self.down = False

    async def resolve(self, key: ResolveKey, creds: Credentials | None) -> Resolution:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            return Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable")
        return Resolution(outcome=RegistryOutcome.OK, reason="Resolved", version=ResolvedVersion(
            self.answer, "run", "src", f"models:/fraud/{self.answer}"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_creds(_: ResolveKey) -> Credentials | None:
    return None


def make_resolver(registry: FakeRegistry, woken: list[tuple[str, str]], clock: Clock,
                  metrics: Metrics | None = None) -> Resolver:
    return Resolver(registry, wake=woken.append, credentials=no_creds,  # type: ignore[arg-type]
                    clock=clock, metrics=metrics)
