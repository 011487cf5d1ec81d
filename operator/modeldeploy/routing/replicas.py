"""The replicas router: no mesh, no route object. The entry Service ``<name>`` selects every
version's pods, so a version's share of the traffic is its share of the Ready endpoints.

A weight becomes a replica count for the new version while the stable version keeps its
full count (a rollback is instant and capacity never drops): ``c = round(n * w / (100 - w))``
replicas next to ``n`` stable ones, at least one. It is approximate — 10 % with two stable
replicas is one new replica, a third of the traffic — and the status shows the real ratio,
read from the Ready replicas, never the requested weight.
"""

from __future__ import annotations

from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Split
from modeldeploy.routing.null import NullRouter


class ReplicasRouter(NullRouter):
    """Like the null router, no route object; the entry Service selects every version."""

    name = "replicas"
    entry_all_versions = True

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        ready = {c.version: c.ready for c in children
                 if c.kind == "Deployment" and c.version is not None and c.ready > 0}
        total = sum(ready.values())
        if not total:
            return None
        return Split.of({v: round(100 * n / total) for v, n in ready.items()})

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        if weight <= 0:
            return 0
        if weight >= 100:
            return max(stable_replicas, 1)
        return max(1, round(stable_replicas * weight / (100 - weight)))

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        """Every other version of the split runs its replica count next to the stable
        version's, all Ready (and none Ready for a weight of 0)."""
        deployments = {c.version: c for c in children if c.kind == "Deployment"}
        base = deployments.get(stable)
        stable_replicas = base.replicas if base is not None else 0
        for version, weight in split.weights:
            if version == stable:
                continue
            dep = deployments.get(version)
            want = self.candidate_replicas(weight, stable_replicas) or 0
            if want == 0:
                if dep is not None and dep.ready > 0:
                    return False
            elif dep is None or not dep.ready_for(want):
                return False
        return True

    def describe(self, split: Split) -> str:
        return "Ready replicas " + (
            ", ".join(f"version {v}: {w}%" for v, w in split.weights) or "none")
