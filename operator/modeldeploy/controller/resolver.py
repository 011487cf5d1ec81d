"""Shared registry resolutions: one read per unique key per poll interval, not one per object.

Every ModelDeployment subscribes to exactly one :class:`ResolveKey` (registry, credentials,
model, selector). The resolver keeps one entry per key with its last answer and polls it at the
shortest interval its subscribers ask for; a thousand objects tracking ``fraud@champion`` cost
one request per interval. When an answer changes (new version, model gone, registry down or
back), every subscriber is woken. A failed poll is retried with exponential backoff capped at
the poll interval. Webhooks call :meth:`Resolver.invalidate` to poll a model at once.

Polling is driven by one loop for all keys: there is no timer per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from modeldeploy.adapters.registry import Credentials, Registry, ResolveKey
from modeldeploy.core.world import RegistryOutcome, Resolution
from modeldeploy.metrics import Metrics

log = logging.getLogger(__name__)

Key = tuple[str, str]
CredentialsProvider = Callable[[ResolveKey], Awaitable[Credentials | None]]
#: Backoff after a failed poll: 1, 2, 4, ... seconds, capped at the poll interval.
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0


@dataclass
class _Entry:
    resolution: Resolution | None = None
    due: float = 0.0
    failures: int = 0
    intervals: dict[Key, float] = field(default_factory=dict)  # subscriber -> poll interval
    inflight: asyncio.Task[Resolution] | None = None
    polls: int = 0
    #: Set by invalidate(); a poll clears it when it starts, so an invalidation that lands
    #: while a poll is in flight (which may have read the old answer) triggers another one.
    stale: bool = False

    @property
    def interval(self) -> float:
        return min(self.intervals.values(), default=60.0)


def _signature(res: Resolution | None) -> tuple[object, ...]:
    """What makes two answers different. For failures the message is the substance (Secret
    missing vs not labelled); for successes it is derived from the version."""
    if res is None:
        return ()
    message = res.message if res.outcome is not RegistryOutcome.OK else ""
    return (res.outcome, res.reason, res.version.version if res.version else None,
            res.version.run_id if res.version else None, message)


def _clear_inflight(entry: _Entry) -> Callable[[asyncio.Task[Resolution]], None]:
    def clear(task: asyncio.Task[Resolution]) -> None:
        if entry.inflight is task:
            entry.inflight = None
    return clear


class Resolver:
    def __init__(self, registry: Registry, *, wake: Callable[[Key], None],
                 credentials: CredentialsProvider,
                 clock: Callable[[], float] = time.monotonic,
                 metrics: Metrics | None = None) -> None:
        self._registry = registry
        self._metrics = metrics
        self._wake = wake
        self._credentials = credentials
        self._clock = clock
        self._entries: dict[ResolveKey, _Entry] = {}
        self._subscriptions: dict[Key, ResolveKey] = {}
        self._changed = asyncio.Event()

    # --- subscriptions ---------------------------------------------------------------------

    def subscribe(self, obj: Key, rkey: ResolveKey, interval: float) -> None:
        old = self._subscriptions.get(obj)
        if old is not None and old != rkey:
            self.unsubscribe(obj)
        entry = self._entries.setdefault(rkey, _Entry(due=self._clock()))
        shorter = interval < entry.interval
        entry.intervals[obj] = interval
        self._subscriptions[obj] = rkey
        if shorter and entry.resolution is not None:
            entry.due = min(entry.due, self._clock() + interval)
            self._changed.set()

    def unsubscribe(self, obj: Key) -> None:
        rkey = self._subscriptions.pop(obj, None)
        if rkey is None:
            return
        entry = self._entries.get(rkey)
        if entry is not None:
            entry.intervals.pop(obj, None)
            if not entry.intervals:
                # An in-flight poll is left to finish (a reconcile may be awaiting it); its
                # answer is simply dropped with the entry.
                del self._entries[rkey]

    def current(self, rkey: ResolveKey) -> Resolution | None:
        entry = self._entries.get(rkey)
        return entry.resolution if entry else None

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._entries), "subscribers": len(self._subscriptions),
                "polls": sum(e.polls for e in self._entries.values())}

    # --- resolving -------------------------------------------------------------------------

    async def ensure(self, rkey: ResolveKey) -> Resolution:
        """The current answer, resolving now if this key was never resolved."""
        entry = self._entries.setdefault(rkey, _Entry(due=self._clock()))
        if entry.resolution is not None:
            return entry.resolution
        return await self._refresh(rkey, entry)

    def invalidate(self, model: str) -> int:
        """Poll every key of ``model`` now (a webhook said something changed)."""
        return self._poll_now(lambda rkey: rkey.model == model)

    def invalidate_secret(self, namespace: str, name: str) -> int:
        """Poll every key that uses this credentials Secret now (it changed)."""
        return self._poll_now(lambda rkey: rkey.credentials is not None and (
            rkey.credentials.namespace, rkey.credentials.name) == (namespace, name))

    def _poll_now(self, which: Callable[[ResolveKey], bool]) -> int:
        hits = 0
        for rkey, entry in self._entries.items():
            if which(rkey):
                entry.due = self._clock()
                entry.stale = True
                hits += 1
        if hits:
            self._changed.set()
        return hits

    async def _refresh(self, rkey: ResolveKey, entry: _Entry) -> Resolution:
        # Shielded: a waiter being cancelled never cancels a poll others share.
        return await asyncio.shield(self._start(rkey, entry))

    def _start(self, rkey: ResolveKey, entry: _Entry) -> asyncio.Task[Resolution]:
        """The key's in-flight poll, started now if there is none."""
        if entry.inflight is None:
            entry.inflight = asyncio.create_task(self._poll(rkey, entry))
            entry.inflight.add_done_callback(_clear_inflight(entry))
        return entry.inflight

    async def _poll(self, rkey: ResolveKey, entry: _Entry) -> Resolution:
        # No resolver-wide limit: the registry adapter bounds calls per registry host, so a
        # registry that hangs holds only its own slots, never other registries' polls.
        entry.stale = False
        started = time.monotonic()
        try:
            creds = await self._credentials(rkey)
        except LookupError as exc:
            res = Resolution(outcome=RegistryOutcome.UNREACHABLE,
                             reason="CredentialsUnavailable", message=str(exc))
        else:
            try:
                res = await self._registry.resolve(rkey, creds)
            except Exception as exc:  # a poll must always end in an answer
                log.exception("resolving %s failed unexpectedly", rkey.describe())
                res = Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryError",
                                 message=f"{type(exc).__name__}: {exc}")
        entry.polls += 1
        if self._metrics is not None:
            self._metrics.registry_polls.labels(res.outcome.value, res.reason).inc()
            self._metrics.registry_poll_seconds.observe(time.monotonic() - started)
        changed = _signature(res) != _signature(entry.resolution)
        if changed:
            entry.resolution = res  # an unchanged answer keeps the time it first appeared
        if res.outcome is RegistryOutcome.UNREACHABLE:
            entry.failures += 1
            backoff = min(BACKOFF_START * 2 ** (entry.failures - 1), BACKOFF_MAX)
            entry.due = self._clock() + min(backoff, entry.interval)
        else:
            entry.failures = 0
            entry.due = self._clock() + entry.interval
        if entry.stale:
            entry.due = self._clock()
            self._changed.set()
        if changed:
            log.info("%s", res.message or f"{rkey.describe()}: {res.reason}")
            for obj in list(entry.intervals):
                self._wake(obj)
        return res

    async def run(self) -> None:
        """Poll due keys forever; sleep until the next one is due (or a change arrives)."""
        while True:
            now = self._clock()
            due = [(k, e) for k, e in self._entries.items()
                   if e.due <= now and e.inflight is None and e.intervals]
            for rkey, entry in due:
                self._start(rkey, entry)
            upcoming = [e.due for e in self._entries.values()
                        if e.intervals and e.inflight is None]
            wait = max(0.05, min(upcoming) - self._clock()) if upcoming else 5.0
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(wait, 5.0))
