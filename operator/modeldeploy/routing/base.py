"""The Router Protocol: what every traffic router provides to ``decide()``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core import render
from modeldeploy.core.render import Owner, child_name
from modeldeploy.core.world import Audience, Child, Mirror, Split


class Router(Protocol):
    """Moves traffic between the versions of one ModelDeployment."""

    name: str
    #: The entry Service selects every version's pods (traffic follows Ready replicas)
    #: instead of the stable version's only.
    entry_all_versions: bool

    def kinds(self) -> tuple[str, ...]:
        """The kinds of object this router creates (watched and garbage-collected by the
        operator); empty when the router needs no object of its own."""
        ...

    def render(self, owner: Owner, spec: ModelDeploymentSpec,
               split: Split) -> list[dict[str, Any]]:
        """The route objects that send ``split`` of the traffic to each version's Service.
        Pure: the same inputs give byte-identical manifests (their content hash decides
        whether anything is applied)."""
        ...

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        """The split traffic really follows right now, read from the live objects as the
        watches last saw them (route weights, or Ready replicas); None when there is no
        route object yet (or the router has none)."""
        ...

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        """Replicas the new version runs to get ``weight`` percent of the traffic; None when
        the router sets weights itself (the new version runs its full replica count)."""
        ...

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        """Whether ``split`` (``stable`` the version serving before the release) is what the
        live objects do now: a step's weight is confirmed only then, and status never
        claims a weight the route does not have."""
        ...

    def describe(self, split: Split) -> str:
        """One human-readable line about ``split`` for status messages and events."""
        ...


def same_split(live: Split | None, wanted: Split) -> bool:
    """Equal as weights, where a version with weight 0 may also be absent; the A/B audience
    goes to the same version (its match is the route's, checked by its content hash) and
    the mirror is the same."""
    if live is None:
        return False
    have = {v: w for v, w in live.weights if w}
    want = {v: w for v, w in wanted.weights if w}
    audience = (live.audience.version if live.audience else None,
                wanted.audience.version if wanted.audience else None)
    return have == want and audience[0] == audience[1] and live.mirror == wanted.mirror


class WeightedRouter:
    """What the routers with a route object of their own share: the split is the route's
    default rule, read back from the watched object, and it is in place when it equals the
    wanted one; the new version runs its full replica count."""

    #: The kind of the route object (``HTTPRoute``, ``VirtualService``), named ``<name>``.
    kind: str
    api_version: str
    entry_all_versions = False

    def route_object(self, owner: Owner, spec: ModelDeploymentSpec,
                     route_spec: dict[str, Any]) -> dict[str, Any]:
        """The route object ``<name>`` with ``route_spec``, owned and labelled like every
        child."""
        return render.finish({"apiVersion": self.api_version, "kind": self.kind,
                              "metadata": render.meta(owner, spec, child_name(owner.name), None),
                              "spec": route_spec})

    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    def live_split(self, owner: Owner, children: tuple[Child, ...]) -> Split | None:
        name = child_name(owner.name)
        route = next((c for c in children if c.kind == self.kind and c.name == name), None)
        if route is None:
            return None
        # Backends are version Services; a name we did not render reads as itself.
        versions = {c.name: c.version for c in children if c.kind == "Service" and c.version}
        split = Split.of({versions.get(svc) or svc: w for svc, w in route.backends})
        audience = (Audience(version=versions.get(route.audience) or route.audience, value="")
                    if route.audience else None)
        mirror = (Mirror(version=versions.get(route.mirror[0]) or route.mirror[0],
                         percent=route.mirror[1]) if route.mirror else None)
        return replace(split, audience=audience, mirror=mirror)

    def candidate_replicas(self, weight: int, stable_replicas: int) -> int | None:
        return None

    def in_place(self, owner: Owner, children: tuple[Child, ...], split: Split, *,
                 stable: str) -> bool:
        return same_split(self.live_split(owner, children), split)

    def describe(self, split: Split) -> str:
        text = f"{self.kind} weights " + (
            ", ".join(f"version {v}: {w}" for v, w in split.weights) or "none")
        if split.audience is not None:
            text += f"; A/B audience -> version {split.audience.version}"
        if split.mirror is not None:
            text += f"; mirroring {split.mirror.percent}% to version {split.mirror.version}"
        return text
