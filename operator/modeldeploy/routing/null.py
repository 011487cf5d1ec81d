"""The null router: no route object of its own (``traffic`` unset, or ``router: replicas``,
for any release but a canary).

Traffic reaches the stable version through the entry Service ``<name>``, whose selector moves
when a version is promoted. The replicas router builds on it for canaries.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Split


class NullRouter:
    name = "none"
    entry_all_versions = False

    def kinds(self) -> tuple[str, ...]:
        return ()

    def render(self, owner: Owner, spec: ModelDeploymentSpec,
               split: Split) -> list[dict[str, Any]]:
        return []

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        return None

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        return None

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        return True  # the entry Service's selector is all there is

    def describe(self, split: Split) -> str:
        return ", ".join(f"version {v}: {w}%" for v, w in split.weights) or "no traffic"
