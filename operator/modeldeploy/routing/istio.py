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
from modeldeploy.routing.gateway_api import cookie_pattern

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
        default: dict[str, Any] = {"route": [
            {"destination": {"host": render.child_name(owner.name, v),
                             "port": {"number": 80}}, "weight": w}
            for v, w in split.weights]}
        if split.mirror is not None:
            default["mirror"] = {"host": render.child_name(owner.name, split.mirror.version),
                                 "port": {"number": 80}}
            default["mirrorPercentage"] = {"value": float(split.mirror.percent)}
        http = [default]
        if split.audience is not None:
            a = split.audience
            match = ({a.header.lower(): {"exact": a.value}} if a.header else
                     {"cookie": {"regex": cookie_pattern(a.cookie or "", a.value)}})
            http.insert(0, {"match": [{"headers": match}], "route": [
                {"destination": {"host": render.child_name(owner.name, a.version),
                                 "port": {"number": 80}}}]})
        vs_spec: dict[str, Any] = {"hosts": list(istio.hosts), "http": http}
        if istio.gateways:
            vs_spec["gateways"] = list(istio.gateways)
        return [self.route_object(owner, spec, vs_spec)]
