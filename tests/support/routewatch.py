"""Independent watchers of live objects: every state an object ever had, with the time it was
seen. Tests assert on this history (every weight a route had, every state a release passed
through), not only on the operator's final status."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from modeldeploy.api import GROUP, PLURAL, VERSION

T = TypeVar("T")

ROUTES = {
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices"),
}
MODELDEPLOYMENTS = (GROUP, VERSION, PLURAL)


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


class ObjectWatch(Generic[T]):
    """Watches one namespaced custom object by name in a thread, from now on, and records
    ``digest(object)`` (``digest(None)`` once it is deleted) each time it changes. A watch
    that ends is resumed from the last resourceVersion seen, so no change in between is
    missed; only a 410 Gone starts over from a fresh list."""

    def __init__(self, api: client.ApiClient, namespace: str, resource: tuple[str, str, str],
                 name: str, digest: Callable[[dict[str, Any] | None], T]) -> None:
        self.api, self.namespace, self.resource, self.name = api, namespace, resource, name
        self.digest = digest
        self.seen: list[tuple[float, T]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ObjectWatch[T]:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        group, version, plural = self.resource
        custom = client.CustomObjectsApi(self.api)
        resource_version: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(custom.list_namespaced_custom_object, group, version,
                                      self.namespace, plural, timeout_seconds=5,
                                      resource_version=resource_version,
                                      field_selector=f"metadata.name={self.name}"):
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    self._record(None if event["type"] == "DELETED" else obj)
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                time.sleep(0.2)
            except Exception:  # noqa: BLE001 - not there yet, or a dropped stream: again
                time.sleep(0.2)
            finally:
                w.stop()

    def _record(self, obj: dict[str, Any] | None) -> None:
        value = self.digest(obj)
        if not self.seen or self.seen[-1][1] != value:
            self.seen.append((time.monotonic(), value))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def current(self) -> T | None:
        return self.seen[-1][1] if self.seen else None


class RouteWatch(ObjectWatch[dict[str, int]]):
    """Every split a route object (HTTPRoute or VirtualService) ever had."""

    def __init__(self, api: client.ApiClient, namespace: str, kind: str, name: str) -> None:
        super().__init__(api, namespace, ROUTES[kind], name,
                         lambda obj: route_weights(kind, obj) if obj is not None else {})

    def start(self) -> RouteWatch:
        super().start()
        return self

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
