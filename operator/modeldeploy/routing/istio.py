"""Istio router: one ``VirtualService <name>`` whose default HTTP route weighs each version's
Service (``<name>-vV``), so the mesh splits traffic. No DestinationRule is needed: every
version has a Service of its own, so destinations are hosts, not subsets."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Split
from modeldeploy.routing.base import WeightedRouter

KIND = "VirtualService"
API_VERSION = "networking.istio.io/v1"


class IstioRouter(WeightedRouter):
    name = "istio"
    kind = KIND
    api_version = API_VERSION

    def render(self, owner: Owner, spec: ModelDeploymentSpec,
               split: Split) -> list[dict[str, Any]]:
        istio = spec.traffic.istio if spec.traffic else None
        if istio is None:  # validation guarantees it for this router
            return []
        vs_spec: dict[str, Any] = {
            "hosts": list(istio.hosts),
            "http": [{"route": [
                {"destination": {"host": render.child_name(owner.name, v),
                                 "port": {"number": 80}}, "weight": w}
                for v, w in split.weights]}],
        }
        if istio.gateways:
            vs_spec["gateways"] = list(istio.gateways)
        return [self.route_object(owner, spec, vs_spec)]
