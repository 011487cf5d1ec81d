"""Gateway API router: one ``HTTPRoute <name>`` whose backendRefs weigh each version's
Service (``<name>-vV``). Any Gateway implementation that honours weights splits traffic so."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Split
from modeldeploy.routing.base import WeightedRouter

KIND = "HTTPRoute"
API_VERSION = "gateway.networking.k8s.io/v1"


class GatewayAPIRouter(WeightedRouter):
    name = "gatewayAPI"
    kind = KIND
    api_version = API_VERSION

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
        return [self.route_object(owner, spec, route_spec)]
