"""The running operator: watch index, work queue, workers, resolver loop, webhook receiver.

Kopf delivers watch events (:mod:`modeldeploy.handlers`); this object turns them into queued
keys and runs everything else. Start-up lists the existing children *before* any
ModelDeployment is reconciled (the informer "cache sync"), so a restarted operator sees the
world as it is and neither re-creates nor flaps anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from modeldeploy.adapters.kube import ApiError, Kube
from modeldeploy.adapters.lease import KubeLeaseStore
from modeldeploy.adapters.prometheus import PrometheusProvider
from modeldeploy.adapters.registry import Registry
from modeldeploy.adapters.scoring import ScoringClient
from modeldeploy.api import KIND
from modeldeploy.config import OperatorConfig
from modeldeploy.controller import credentials
from modeldeploy.controller.credentials import CredentialsCache
from modeldeploy.controller.index import Index, Key, key_of
from modeldeploy.controller.kind_watch import KindWatch
from modeldeploy.controller.leader import LeaderElector, LeaseConfig
from modeldeploy.controller.queue import WorkQueue
from modeldeploy.controller.reconciler import (
    Reconciler,
    StatusConflictError,
    namespace_terminating,
)
from modeldeploy.controller.resolver import Resolver
from modeldeploy.core import render
from modeldeploy.metrics import Metrics, StateView
from modeldeploy.webhook import Receiver

log = logging.getLogger(__name__)

#: Children of built-in kinds, watched through Kopf: kind -> (group, version, plural).
CHILD_RESOURCES = {
    "Deployment": ("apps", "v1", "deployments"),
    "Service": ("", "v1", "services"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
}
#: Children whose CRDs may be missing or deleted at any time, watched by KindWatch (a 404
#: stops a Kopf watcher and the whole operator with it).
OPTIONAL_CHILD_KINDS = ("HTTPRoute", "VirtualService")
CHILD_KINDS = (*CHILD_RESOURCES, *OPTIONAL_CHILD_KINDS)
MANAGED_SELECTOR = f"{render.LABEL_MANAGED}={render.MANAGED_BY}"


def _exit_process() -> None:
    """Leadership lost: stop the whole process (Kopf stops gracefully on SIGTERM), as
    controller-runtime does; its restart comes back as a standby."""
    os.kill(os.getpid(), signal.SIGTERM)


class Operator:
    """Every replica watches (its index stays warm); only the leader runs the workers, the
    resolver and the relist, so only the leader polls registries and writes."""

    def __init__(self, config: OperatorConfig, kube: Kube, *,
                 lost_leadership: Callable[[], None] = _exit_process) -> None:
        self.config = config
        self.kube = kube
        self.elector: LeaderElector | None = None
        if config.leader_election:
            self.elector = LeaderElector(
                KubeLeaseStore(kube, config.lease_namespace, config.lease_name),
                LeaseConfig(namespace=config.lease_namespace, name=config.lease_name,
                            identity=config.lease_identity,
                            lease_duration=config.lease_duration,
                            renew_deadline=config.lease_renew_deadline,
                            retry_period=config.lease_retry_period))
        self._lost_leadership = lost_leadership
        self.index = Index()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.metrics = Metrics()
        self.credentials = CredentialsCache(
            kube, changed=lambda ns, name: self.resolver.invalidate_secret(ns, name),
            namespaces=config.secret_namespaces)
        self.registry = Registry(timeout=config.registry_timeout)
        self.resolver = Resolver(self.registry, wake=self.queue.add,
                                 credentials=self.credentials, metrics=self.metrics)
        self.scoring = ScoringClient()
        self.provider = (PrometheusProvider(base_url=config.prometheus_url,
                                            timeout=config.prometheus_timeout)
                         if config.prometheus_url else None)
        self.reconciler = Reconciler(kube=kube, index=self.index, resolver=self.resolver,
                                     config=config, metrics=self.metrics,
                                     provider=self.provider, registry=self.registry,
                                     credentials=self.credentials, scoring=self.scoring)
        self.metrics.watch_state(StateView(objects=self.index.objects,
                                           queue_depth=lambda: len(self.queue),
                                           registry_stats=self.resolver.stats,
                                           leading=lambda: self.leading))
        self.receiver: Receiver | None = None
        self.leading = False
        #: Leader-only tasks (workers, resolver, relist) and the elector.
        self._tasks: list[asyncio.Task[Any]] = []
        self._election: asyncio.Task[Any] | None = None
        self._kind_watches: list[KindWatch] = []
        self._failures: dict[Key, int] = {}
        self._web: list[web.AppRunner] = []
        #: The children are listed and the watches run: /readyz answers 200 (leader or not).
        self.ready = False

    @classmethod
    async def start(cls, config: OperatorConfig, kube: Kube | None = None) -> Operator:
        op = cls(config, kube or Kube.from_environment())
        try:
            await op._listen()  # first: a port in use fails start-up before anything runs
            for kind in CHILD_RESOURCES:
                listed, _ = await op.kube.list_all(kind, MANAGED_SELECTOR,
                                                   config.watch_namespaces)
                for body in listed:
                    op.index.upsert_child(kind, body)
            for namespace in config.watch_namespaces or (None,):
                for kind in OPTIONAL_CHILD_KINDS:
                    listed, rv = await op.kube.list_all(kind, MANAGED_SELECTOR,
                                                        (namespace,) if namespace else ())
                    for body in listed:
                        op.index.upsert_child(kind, body)
                    op._watch_kind(kind, rv, namespace)
            op._watch_secrets()
            op.ready = True
        except BaseException:
            await op.stop()
            raise
        if op.elector is None:
            op._lead()
        else:
            log.info("leader election on lease %s/%s as %s", config.lease_namespace,
                     config.lease_name, op.elector.identity)
            op._election = asyncio.create_task(
                op.elector.run(op._lead, op._lose), name="leader-election")
        return op

    def _watch_kind(self, kind: str, since: int | None, namespace: str | None) -> None:
        def resync(listed: list[dict[str, Any]], rv: int | None) -> None:
            for key in self.index.resync_children(kind, listed, rv, namespace=namespace):
                self.queue.add(key)

        self._start_watch(KindWatch(
            self.kube, kind, MANAGED_SELECTOR, loop=asyncio.get_running_loop(),
            deliver=lambda type_, body: self.child_event(kind, type_, body),
            resync=resync, since=since, namespace=namespace))

    def _watch_secrets(self) -> None:
        """Labelled credential Secrets, only where the configuration says they are read."""
        where = self.config.secret_namespaces
        for namespace in (None,) if where is None else where:
            self._start_watch(KindWatch(
                self.kube, "Secret", credentials.SELECTOR, loop=asyncio.get_running_loop(),
                deliver=self.credentials.secret_event,
                resync=functools.partial(self.credentials.resync, namespace),
                namespace=namespace))

    def _start_watch(self, watch: KindWatch) -> None:
        self._kind_watches.append(watch)
        watch.start()

    def _lead(self) -> None:
        """Start acting: everything the watches have seen is reconciled once."""
        self.leading = True
        for body in self.index.objects():
            self.queue.add(key_of(body))
        self._tasks = [asyncio.create_task(self._worker(i), name=f"worker-{i}")
                       for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self.resolver.run(), name="resolver"))
        self._tasks.append(asyncio.create_task(self._relist(), name="relist"))

    def _lose(self) -> None:
        """Stop acting at once (another replica may take the Lease soon), then exit."""
        self.leading = False
        for task in self._tasks:
            task.cancel()
        self._lost_leadership()

    async def _listen(self) -> None:
        config = self.config
        if config.webhook_secret and config.webhook_port:
            deliveries = self.metrics.webhook_deliveries
            self.receiver = Receiver(secret=config.webhook_secret,
                                     invalidate=self.resolver.invalidate,
                                     count=lambda result: deliveries.labels(result).inc(),
                                     active=lambda: self.leading)
            await self._serve(self.receiver.app(), config.webhook_host, config.webhook_port)
            log.info("MLflow webhook receiver on %s:%d/webhooks/mlflow", config.webhook_host,
                     config.webhook_port)
        if config.metrics_port:
            await self._serve(self._metrics_app(), config.metrics_host, config.metrics_port)
            log.info("metrics on %s:%d/metrics", config.metrics_host, config.metrics_port)

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._web.append(runner)
        await web.TCPSite(runner, host, port).start()

    def _metrics_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.exposition(),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def readyz(_: web.Request) -> web.Response:
            ready = self.ready
            return web.Response(status=200 if ready else 503,
                                text="ok\n" if ready else "starting\n")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        # Readiness (the chart's probe): the index is warm, so this replica can lead.
        app.router.add_get("/readyz", readyz)
        return app

    async def stop(self) -> None:
        """Stop renewing, stop acting (in-flight writes finish), then release the Lease so a
        standby takes over on its next try, not after the Lease expires."""
        for watch in self._kind_watches:
            watch.stop()
        tasks = [t for t in (self._election, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.leading = False
        if self.elector is not None:
            await self.elector.release()
        for runner in self._web:
            await runner.cleanup()
        if self.provider is not None:
            await self.provider.close()
        await self.scoring.close()

    # --- watch events ----------------------------------------------------------------------

    def model_deployment_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        key = key_of(body)
        if event_type == "DELETED":
            self._forget(key)
            return
        self.index.upsert(body)
        self.queue.add(key)

    def _forget(self, key: Key) -> None:
        self.reconciler.forget(key)
        self.queue.forget(key)
        self._failures.pop(key, None)

    def child_event(self, kind: str, event_type: str | None, body: dict[str, Any]) -> None:
        owner = (self.index.remove_child(kind, body) if event_type == "DELETED"
                 else self.index.upsert_child(kind, body))
        if owner is not None:
            self.queue.add(owner)

    # --- workers ---------------------------------------------------------------------------

    async def _worker(self, number: int) -> None:
        while True:
            key = await self.queue.get()
            started = time.monotonic()
            result: str | None = "error"  # the reconcile_total label; None: not counted
            try:
                requeue = await self.reconciler.reconcile(key)
                result = "ok"
            except StatusConflictError:
                # Decided on an object that has changed since: decide again on the newer one
                # (its watch event is on the way, or already in the index).
                result = "conflict"
                self.queue.add_after(key, 0.5)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    result = None
                    raise  # we are being stopped
                self._retry_later(key, exc)  # something we awaited was cancelled, not us
            except Exception as exc:  # noqa: BLE001 - one object's failure never stops others
                if namespace_terminating(exc):
                    # Its namespace is going away and takes the object with it: nothing to do.
                    result = "skipped"
                    log.debug("%s/%s: namespace terminating", *key)
                else:
                    self._retry_later(key, exc)
                    if self._failures[key] == 1:
                        await self._report_failure(key, exc)
            else:
                self._failures.pop(key, None)
                if self.index.get(key) is not None:
                    if requeue is not None:
                        self.queue.add_after(key, requeue)
                    self.queue.add_after(key, self.config.resync_seconds)
            finally:
                self.queue.done(key)
                if result is not None:
                    self.metrics.reconciles.labels(result).inc()
                    self.metrics.reconcile_seconds.observe(time.monotonic() - started)

    def _retry_later(self, key: Key, exc: BaseException) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(0.5 * 2 ** failures, 300.0)
        log.warning("reconcile %s/%s failed (%d in a row, retry in %.0fs): %s",
                    *key, failures, delay, exc)
        self.queue.add_after(key, delay)

    async def _relist(self) -> None:
        """Every resync period, LIST the ModelDeployments and their children again: a watch
        that was down (410 Gone, then Kopf re-lists) misses DELETED events, and only a fresh
        list tells the index what is really gone. Forgotten objects stop being polled,
        reported in /metrics and written to."""
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            await self.relist_once()

    async def relist_once(self) -> None:
        try:
            objects, rv = await self.kube.list_all(KIND, namespaces=self.config.watch_namespaces)
        except Exception as exc:  # noqa: BLE001 - try again next period
            log.warning("relisting %s failed: %s", KIND, exc)
        else:
            for key in self.index.resync_objects(objects, rv):
                log.info("%s/%s is gone (its deletion was missed by the watch)", *key)
                self._forget(key)
        for kind in CHILD_KINDS:
            try:
                listed, rv = await self.kube.list_all(kind, MANAGED_SELECTOR,
                                                      self.config.watch_namespaces)
            except Exception as exc:  # noqa: BLE001 - try again next period
                log.warning("relisting %s failed: %s", kind, exc)
                continue
            for key in self.index.resync_children(kind, listed, rv):
                self.queue.add(key)

    async def _report_failure(self, key: Key, exc: Exception) -> None:
        body = self.index.get(key)
        if body is None:
            return
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        with contextlib.suppress(Exception):
            await self.kube.post_event(body, type_="Warning", reason="ReconcileError",
                                       message=f"{type(exc).__name__}: {message}"[:1000])
            self.metrics.wrote("event", "Event")
