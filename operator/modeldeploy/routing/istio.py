"""Istio router: one ``VirtualService <name>`` whose default HTTP route weighs each version's
Service (``<name>-vV``), so the mesh splits traffic. No DestinationRule is needed: every
version has a Service of its own, so destinations are hosts, not subsets."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Split
from modeldeploy.routing.base import same_split

KIND = "VirtualService"
API_VERSION = "networking.istio.io/v1"


class IstioRouter:
    name = "istio"
    entry_all_versions = False

    def kinds(self) -> tuple[str, ...]:
        return (KIND,)

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
        return [render.finish({"apiVersion": API_VERSION, "kind": KIND,
                               "metadata": render.meta(owner, spec,
                                                       render.child_name(owner.name), None),
                               "spec": vs_spec})]

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        name = render.child_name(owner.name)
        vs = next((c for c in children if c.kind == KIND and c.name == name), None)
        if vs is None:
            return None
        versions = {c.name: c.version for c in children if c.kind == "Service" and c.version}
        return Split.of({versions.get(host) or host: w for host, w in vs.backends})

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        return None

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        return same_split(self.live_split(owner, children), split)

    def describe(self, split: Split) -> str:
        return "VirtualService weights " + (
            ", ".join(f"version {v}: {w}" for v, w in split.weights) or "none")
