"""The only code that writes to the Kubernetes API (Kopf's watches read it).

The official client is synchronous; every call here runs in a worker thread so the event loop
never blocks. Writes are idempotent: server-side apply with our field manager, deletes that
treat 404 as done and carry a UID precondition (so a name that now belongs to another object
is never deleted), and status written exactly: a PUT of the whole status on the ``/status``
subresource with a resourceVersion and UID precondition, so a field that is gone from our
status is gone from the object (a merge patch would keep it). Throttling (429) and server
errors (5xx) are retried with backoff; conflicts (409) are retried for applies only, since a
status conflict means the decision was made on a stale object and must be made again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from modeldeploy.api import API_VERSION, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

FIELD_MANAGER = "modeldeploy"

#: kind -> (API path prefix, plural) for every kind the operator writes.
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
    "VirtualService": ("/apis/networking.istio.io/v1", "virtualservices"),
    "Secret": ("/api/v1", "secrets"),
    "Event": ("/api/v1", "events"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    KIND: (f"/apis/{GROUP}/{VERSION}", PLURAL),
}
_RETRY_STATUSES = {409, 429, 500, 502, 503, 504}
#: Answers that will not change by asking again: the request itself is wrong (bad value,
#: unknown kind, forbidden). They become a status condition, not a retry loop.
PERMANENT_STATUSES = {400, 403, 404, 422}


def _selector(label_selector: str) -> list[tuple[str, str]]:
    return [("labelSelector", label_selector)] if label_selector else []


def _items(listed: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    rv = (listed.get("metadata") or {}).get("resourceVersion")
    return list(listed.get("items") or []), int(rv) if rv and rv.isdigit() else None


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def _kube_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube")


@dataclass(frozen=True)
class Kube:
    api: client.ApiClient
    attempts: int = 5
    #: Our own threads: a slow registry (which has its own pool) never delays API writes.
    pool: ThreadPoolExecutor = field(default_factory=_kube_pool, repr=False)

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster config when running in a pod, else the kubeconfig (``$KUBECONFIG``)."""
        try:
            config.load_incluster_config()
            return cls(client.ApiClient())
        except config.ConfigException:
            return cls(config.new_client_from_config(config_file=kubeconfig))

    # --- primitives ------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
              body: Any = None, content_type: str = "application/json",
              timeout: Any = 30) -> Any:
        """The raw response (its body unread), or ApiError for a status >= 400."""
        serialized = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"])
        resp = self.api.call_api(*serialized, _request_timeout=timeout)
        if resp.status >= 400:
            resp.read()
            text = resp.data.decode(errors="replace") if resp.data else ""
            try:
                detail = json.loads(text)
                raise ApiError(resp.status, str(detail.get("reason", "")),
                               str(detail.get("message", text)))
            except ValueError:
                raise ApiError(resp.status, "", text[:500]) from None
        return resp

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._send(method, path, **kwargs)
        resp.read()
        return json.loads(resp.data) if resp.data else None

    async def request(self, method: str, path: str, *, retry_conflicts: bool = True,
                      **kwargs: Any) -> Any:
        delay = 0.2
        for attempt in range(1, self.attempts + 1):
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self.pool, functools.partial(self._call, method, path, **kwargs))
            except ApiError as exc:
                retry = exc.status in _RETRY_STATUSES and (retry_conflicts or exc.status != 409)
                if not retry or attempt == self.attempts:
                    raise
                log.info("%s %s: %s; retry %d", method, path, exc, attempt)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None) -> str:
        prefix, plural = KINDS[kind]
        return f"{prefix}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")

    # --- operations ------------------------------------------------------------------------

    async def apply(self, manifest: dict[str, Any], *,
                    field_manager: str = FIELD_MANAGER) -> Any:
        """Server-side apply ``manifest`` as ``field_manager`` (force: we own these objects;
        the reconciler checks the owner before it creates or takes over anything)."""
        meta = manifest["metadata"]
        return await self.request(
            "PATCH", self.path(manifest["kind"], meta["namespace"], meta["name"]),
            query=[("fieldManager", field_manager), ("force", "true")],
            body=manifest, content_type="application/apply-patch+yaml")

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            found: dict[str, Any] = await self.request("GET", self.path(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def list_all(self, kind: str, label_selector: str = "",
                       namespaces: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], int | None]:
        """Every object of ``kind`` matching ``label_selector`` (in ``namespaces``, or all
        namespaces when empty), and the list's resourceVersion (([], None) when the kind is
        not served, e.g. no Gateway API CRDs). Over several namespaces it is the oldest of
        their lists' versions: whatever the index learnt after it stays."""
        items: list[dict[str, Any]] = []
        oldest: int | None = None
        for namespace in namespaces or (None,):
            try:
                listed = await self.request("GET", self._collection(kind, namespace),
                                            query=_selector(label_selector))
            except ApiError as exc:
                if exc.status == 404:
                    return [], None
                raise
            got, rv = _items(listed)
            items += got
            oldest = rv if oldest is None or (rv is not None and rv < oldest) else oldest
        return items, oldest

    def list_blocking(self, kind: str, label_selector: str = "",
                      namespace: str | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """One LIST (one namespace, or all) for a thread of its own (one attempt, no
        retries)."""
        try:
            listed = self._call("GET", self._collection(kind, namespace),
                                query=_selector(label_selector))
        except ApiError as exc:
            if exc.status == 404:
                return [], None
            raise
        return _items(listed)

    def watch_blocking(self, kind: str, label_selector: str, resource_version: int, *,
                       timeout_seconds: int,
                       namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """The watch events of ``kind`` (in ``namespace``, or all) after ``resource_version``,
        until the server ends the stream (``timeout_seconds``), for a thread of its own.
        ApiError 404 when the kind is not served (its CRD was deleted); an ``ERROR`` event
        (410: the version is too old) is yielded like any other."""
        query = [("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("resourceVersion", str(resource_version)),
                 ("timeoutSeconds", str(timeout_seconds)), *_selector(label_selector)]
        resp = self._send("GET", self._collection(kind, namespace), query=query,
                          timeout=(10, timeout_seconds + 30))
        try:
            for line in iter_resp_lines(resp.response):
                if line:
                    yield json.loads(line)
        finally:
            resp.response.release_conn()

    @staticmethod
    def _collection(kind: str, namespace: str | None = None) -> str:
        if namespace:
            return Kube.path(kind, namespace)
        prefix, plural = KINDS[kind]
        return f"{prefix}/{plural}"

    async def delete(self, kind: str, namespace: str, name: str, *, uid: str | None) -> bool:
        """Delete (background propagation) the object with this UID. False when it was
        already gone, or the name now belongs to another object (the UID precondition)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", self.path(kind, namespace, name), body=body,
                               retry_conflicts=False)
        except ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def replace_status(self, namespace: str, name: str, *, uid: str,
                             resource_version: str, status: dict[str, Any]) -> Any:
        """Replace the whole status of the object we decided on: a 409 means it changed
        since (or was recreated), and the caller decides again on the newer object."""
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace, "uid": uid,
                             "resourceVersion": resource_version},
                "status": status}
        return await self.request("PUT", self.path(KIND, namespace, name) + "/status",
                                  body=body, retry_conflicts=False)

    async def post_event(self, owner: dict[str, Any], *, type_: str, reason: str,
                         message: str) -> None:
        """A core/v1 Event on ``owner`` (reason is a stable CamelCase name)."""
        meta = owner["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name'][:200]}.",
                         "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": owner.get("apiVersion", API_VERSION),
                               "kind": KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": "modeldeploy"},
            "reportingComponent": "modeldeploy.io/operator",
            "reportingInstance": "modeldeploy",
            "action": reason,
            "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z",
            "eventTime": now, "count": 1,
        }
        await self.request("POST", self.path("Event", meta["namespace"]), body=event)
