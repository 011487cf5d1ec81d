"""Traffic routers: one module per router, each behind the :class:`Router` Protocol.

``router_for(spec)`` picks the router a spec asks for. Every router is pure: it renders the
objects that carry a traffic split and reads the split back from what the watches saw. The
per-object entry Service ``<name>`` exists whatever the router: it selects the stable version,
or (replicas router) every version.
"""

from __future__ import annotations

from modeldeploy.api.spec import ModelDeploymentSpec, Strategy
from modeldeploy.api.spec import Router as RouterKind
from modeldeploy.routing.base import Router
from modeldeploy.routing.gateway_api import GatewayAPIRouter
from modeldeploy.routing.istio import IstioRouter
from modeldeploy.routing.null import NullRouter
from modeldeploy.routing.replicas import ReplicasRouter


def router_for(spec: ModelDeploymentSpec) -> Router:
    """The router for ``spec``.

    Without a mesh (``traffic`` unset or ``router: replicas``) a canary splits by Ready
    replicas behind one shared Service; any other release switches the entry Service's
    selector, which is all the null router needs."""
    traffic = spec.traffic
    if traffic is None or traffic.router is RouterKind.REPLICAS:
        rollout = spec.rollout
        if rollout is not None and rollout.strategy is Strategy.CANARY:
            return ReplicasRouter()
        return NullRouter()
    if traffic.router is RouterKind.GATEWAY_API:
        return GatewayAPIRouter()
    return IstioRouter()


__all__ = ["GatewayAPIRouter", "IstioRouter", "NullRouter", "ReplicasRouter", "Router",
           "router_for"]
