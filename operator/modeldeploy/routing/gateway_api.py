"""Gateway API router: one ``HTTPRoute <name>`` whose backendRefs weigh each version's
Service (``<name>-vV``). Any Gateway implementation that honours weights splits traffic so."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Split
from modeldeploy.routing.base import same_split

KIND = "HTTPRoute"
API_VERSION = "gateway.networking.k8s.io/v1"


class GatewayAPIRouter:
    name = "gatewayAPI"
    entry_all_versions = False

    def kinds(self) -> tuple[str, ...]:
        return (KIND,)

    def render(self, owner: Owner, spec: ModelDeploymentSpec,
               split: Split) -> list[dict[str, Any]]:
        gw = spec.traffic.gatewayAPI if spec.traffic else None
        if gw is None:  # validation guarantees it for this router
            return []
        route_spec: dict[str, Any] = {
            "parentRefs": [p.model_dump(exclude_none=True) for p in gw.parentRefs],
            "rules": [{"backendRefs": [
                {"name": render.child_name(owner.name, v), "port": 80, "weight": w}
                for v, w in split.weights]}],
        }
        if gw.hostnames:
            route_spec["hostnames"] = list(gw.hostnames)
        return [render.finish({"apiVersion": API_VERSION, "kind": KIND,
                               "metadata": render.meta(owner, spec,
                                                       render.child_name(owner.name), None),
                               "spec": route_spec})]

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        name = render.child_name(owner.name)
        route = next((c for c in children if c.kind == KIND and c.name == name), None)
        if route is None:
            return None
        # Backends are version Services; a name we did not render reads as itself.
        versions = {c.name: c.version for c in children if c.kind == "Service" and c.version}
        return Split.of({versions.get(svc) or svc: w for svc, w in route.backends})

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        return None

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        return same_split(self.live_split(owner, children), split)

    def describe(self, split: Split) -> str:
        return "HTTPRoute weights " + (
            ", ".join(f"version {v}: {w}" for v, w in split.weights) or "none")
