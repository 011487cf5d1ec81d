"""Traffic routers: one module per router, each behind the :class:`Router` Protocol.

``router_for(spec)`` picks the router a spec asks for. Every router is pure: it renders the
objects that carry a traffic split and reads the split back from what the watches saw. The
per-object entry Service (``<name>``, selecting the stable version) exists whatever the router.
"""

from __future__ import annotations

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.spec import Router as RouterKind
from modeldeploy.routing.base import Router
from modeldeploy.routing.gateway_api import GatewayAPIRouter
from modeldeploy.routing.null import NullRouter

#: Said in a condition message while a validated router is not acted on yet.
NOT_YET = {
    RouterKind.ISTIO: ("traffic.router istio is not implemented yet: no VirtualService is "
                       "created; the entry Service carries all traffic"),
}


def router_for(spec: ModelDeploymentSpec) -> tuple[Router, str | None]:
    """The router for ``spec`` and, when the spec asks for something not acted on yet, a
    note saying so (shown in a condition message, never silently ignored)."""
    traffic = spec.traffic
    if traffic is None or traffic.router is RouterKind.REPLICAS:
        return NullRouter(), None
    if traffic.router is RouterKind.GATEWAY_API:
        return GatewayAPIRouter(), None
    return NullRouter(), NOT_YET[traffic.router]


__all__ = ["GatewayAPIRouter", "NullRouter", "Router", "router_for"]
