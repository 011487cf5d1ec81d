"""An independent watcher of the live route: every weight a route object ever had, with the
time it was seen. Tests assert on this history, not only on the operator's final status."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

ROUTES = {
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices"),
}


def route_weights(kind: str, obj: dict[str, Any]) -> dict[str, int]:
    """Backend Service name -> weight of the route's default rule."""
    spec = obj.get("spec") or {}
    if kind == "VirtualService":
        rules = [r for r in spec.get("http") or [] if not r.get("match")] or spec.get("http") or []
        route = rules[-1].get("route") if rules else []
        return {str(d["destination"]["host"]).split(".")[0]: int(d.get("weight", 100))
                for d in route or []}
    rules = [r for r in spec.get("rules") or [] if not r.get("matches")] or spec.get("rules") or []
    refs = rules[-1].get("backendRefs") if rules else []
    return {str(b["name"]): int(b.get("weight", 1)) for b in refs or []}


@dataclass
class RouteWatch:
    """Watches one route object (by kind and name) in a thread, from now on."""

    api: client.ApiClient
    namespace: str
    kind: str
    name: str
    seen: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RouteWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        group, version, plural = ROUTES[self.kind]
        custom = client.CustomObjectsApi(self.api)
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(custom.list_namespaced_custom_object, group, version,
                                      self.namespace, plural, timeout_seconds=5,
                                      field_selector=f"metadata.name={self.name}"):
                    obj = event["object"]
                    weights = route_weights(self.kind, obj)
                    if event["type"] == "DELETED":
                        weights = {}
                    if not self.seen or self.seen[-1][1] != weights:
                        self.seen.append((time.monotonic(), weights))
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - the route may not exist yet: look again
                time.sleep(0.2)
            finally:
                w.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def weights_of(self, backend: str) -> list[int]:
        """Every distinct weight ``backend`` had, in order (0 when absent)."""
        out: list[int] = []
        for _, weights in self.seen:
            weight = weights.get(backend, 0)
            if not out or out[-1] != weight:
                out.append(weight)
        return out

    def first_time(self, backend: str, weight: int, *, after: float = 0.0) -> float | None:
        return next((t for t, w in self.seen if t >= after and w.get(backend, 0) == weight),
                    None)
