"""Gateway API router: one ``HTTPRoute <name>`` whose backendRefs weigh each version's
Service (``<name>-vV``). Any Gateway implementation that honours weights splits traffic so."""

from __future__ import annotations

import re
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Split
from modeldeploy.routing.base import WeightedRouter

KIND = "HTTPRoute"
API_VERSION = "gateway.networking.k8s.io/v1"


def cookie_pattern(name: str, value: str) -> str:
    """A regular expression for a Cookie header that carries ``name=value``."""
    return rf"(^|;\s*){re.escape(name)}={re.escape(value)}(;|$)"


class GatewayAPIRouter(WeightedRouter):
    name = "gatewayAPI"
    kind = KIND
    api_version = API_VERSION

    def render(self, owner: Owner, spec: ModelDeploymentSpec,
               split: Split) -> list[dict[str, Any]]:
        gw = spec.traffic.gatewayAPI if spec.traffic else None
        if gw is None:  # validation guarantees it for this router
            return []
        default: dict[str, Any] = {"backendRefs": [
            {"name": render.child_name(owner.name, v), "port": 80, "weight": w}
            for v, w in split.weights]}
        if split.mirror is not None:
            default["filters"] = [{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"name": render.child_name(owner.name, split.mirror.version),
                               "port": 80},
                "percent": split.mirror.percent}}]
        rules = [default]
        if split.audience is not None:
            a = split.audience
            header = ({"type": "Exact", "name": a.header, "value": a.value} if a.header else
                      {"type": "RegularExpression", "name": "Cookie",
                       "value": cookie_pattern(a.cookie or "", a.value)})
            rules.insert(0, {"matches": [{"headers": [header]}], "backendRefs": [
                {"name": render.child_name(owner.name, a.version), "port": 80}]})
        route_spec: dict[str, Any] = {
            "parentRefs": [p.model_dump(exclude_none=True) for p in gw.parentRefs],
            "rules": rules,
        }
        if gw.hostnames:
            route_spec["hostnames"] = list(gw.hostnames)
        return [self.route_object(owner, spec, route_spec)]
