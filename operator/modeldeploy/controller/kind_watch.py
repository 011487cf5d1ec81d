"""List+watch for child kinds that may not be served: HTTPRoute exists only where the Gateway
API CRDs are installed, and an administrator may delete or reinstall them at any time.

Kopf's watcher treats a 404 on reconnect as fatal (the whole operator stops when a watched
CRD is deleted), so these kinds are watched here instead, in a daemon thread each: list,
then watch from the list's resourceVersion, re-list after a 410, and when the kind is not
served, tell the index (every child of that kind is gone) and look again every
``absent_period`` seconds. Events reach the operator on its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from modeldeploy.adapters.kube import ApiError, Kube

log = logging.getLogger(__name__)

Deliver = Callable[[str | None, dict[str, Any]], None]
Resync = Callable[[list[dict[str, Any]], int | None], None]


class ExpiredError(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class KindWatch:
    def __init__(self, kube: Kube, kind: str, label_selector: str, *,
                 loop: asyncio.AbstractEventLoop, deliver: Deliver, resync: Resync,
                 since: int | None = None, namespace: str | None = None,
                 absent_period: float = 10.0, timeout_seconds: int = 270) -> None:
        self.kube, self.kind, self.selector = kube, kind, label_selector
        #: One namespace, or None for all of them.
        self.namespace = namespace
        self._loop, self._deliver, self._resync = loop, deliver, resync
        self._since = since
        self.absent_period, self.timeout_seconds = absent_period, timeout_seconds
        self._stop = threading.Event()
        #: Whether the apiserver served the kind at the last list (for logs and tests).
        self.served: bool | None = None if since is None else True
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{kind}" + (f"-{namespace}" if namespace else ""),
            daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The thread ends at its next event or when the server ends the stream; it is a
        daemon, so it never holds up the process. (Closing the response from this thread
        could block on the reader's lock: measured, it hung the operator's shutdown.)"""
        self._stop.set()

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        rv, failures = self._since, 0
        while not self._stop.is_set():
            try:
                if rv is None:
                    items, rv = self.kube.list_blocking(self.kind, self.selector, self.namespace)
                    self._served(rv is not None)
                    self._post(self._resync, items, rv)
                    if rv is None:
                        self._stop.wait(self.absent_period)
                        continue
                rv = self._watch(rv)
                failures = 0
            except ExpiredError:
                rv = None
            except ApiError as exc:
                if exc.status != 404:
                    failures = self._failed(failures, exc)
                rv = None  # 404: the kind went away mid-watch; the list says so
            except Exception as exc:  # noqa: BLE001 - a watch must never die
                if self._stop.is_set():
                    return
                failures = self._failed(failures, exc)
                rv = None

    def _watch(self, rv: int) -> int:
        """Stream events after ``rv`` until the server ends the stream; the newest rv."""
        for event in self.kube.watch_blocking(self.kind, self.selector, rv,
                                              timeout_seconds=self.timeout_seconds,
                                              namespace=self.namespace):
            if self._stop.is_set():
                break
            kind, body = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if body.get("code") == 410:
                    raise ExpiredError()
                raise ApiError(int(body.get("code") or 500), str(body.get("reason", "")),
                               str(body.get("message", "")))
            version = (body.get("metadata") or {}).get("resourceVersion")
            if version and version.isdigit():
                rv = int(version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._post(self._deliver, kind, body)
        return rv

    def _served(self, served: bool) -> None:
        if served != self.served:
            where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
            if served:
                log.info("watching %s in %s", self.kind, where)
            else:
                log.warning("%s is not served by the apiserver (CRD not installed?); "
                            "checking again every %.0fs", self.kind, self.absent_period)
        self.served = served

    def _failed(self, failures: int, exc: Exception) -> int:
        failures += 1
        delay = min(0.5 * 2 ** failures, 30.0)
        log.warning("watching %s failed (%d in a row, again in %.0fs): %s", self.kind,
                    failures, delay, exc)
        self._stop.wait(delay)
        return failures
