"""The Router Protocol: what every traffic router provides to ``decide()``."""

from __future__ import annotations

from typing import Any, Protocol

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.core.render import Owner
from modeldeploy.core.world import Child, Split


class Router(Protocol):
    """Moves traffic between the versions of one ModelDeployment."""

    name: str

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
        """The split the route objects carry right now, as the watches last saw them; None
        when there is no route object yet (or the router has none)."""
        ...

    def describe(self, split: Split) -> str:
        """One human-readable line about ``split`` for status messages and events."""
        ...
