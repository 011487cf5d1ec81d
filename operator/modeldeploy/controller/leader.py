"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Every replica of the operator watches and keeps its index warm; only the one holding the Lease
reconciles, polls registries and writes. A candidate takes the Lease when it is free (no
holder: released by a graceful stop) or expired; "expired" is judged by the candidate's own
clock from the moment it last saw the Lease *change*, never by comparing the holder's
timestamps with ours, so clock skew between nodes cannot hand the Lease over early (this is
what client-go does). Every write is a PUT with the resourceVersion read just before, so two
candidates can never both win: the second gets 409 and stays a candidate.

The leader renews every ``retry_period``; if it has not renewed for ``renew_deadline`` it
stops acting at once (before anyone else may take the Lease: ``renew_deadline`` is shorter
than ``lease_duration``) and the process exits, as controller-runtime's managers do. A
graceful stop releases the Lease (no holder, a one-second duration), so a standby takes over
on its next try instead of waiting out the Lease.

Timings: a killed leader is replaced within ``lease_duration + retry_period`` (plus jitter)
of its last renewal; a stopped one within ``retry_period``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from modeldeploy.adapters.lease import LeaseConflictError

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    """The one Lease, as the apiserver holds it (``adapters.lease.KubeLeaseStore``); a
    write that lost a race raises LeaseConflictError."""

    async def get(self) -> dict[str, Any] | None: ...

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]: ...


def default_identity() -> str:
    """``<pod or host name>_<random>``: unique per process, readable in ``kubectl get lease``."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = "modeldeploy-operator"
    identity: str = ""
    #: How long a Lease not renewed stays taken; the renew deadline must be shorter (the
    #: leader gives up before anyone may take over) and the retry period shorter still.
    lease_duration: float = 12.0
    renew_deadline: float = 8.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration, got "
                             f"{self.retry_period}, {self.renew_deadline}, "
                             f"{self.lease_duration}")
        if not self.identity:
            object.__setattr__(self, "identity", default_identity())


def _micro_time(at: dt.datetime) -> str:
    """A Kubernetes MicroTime."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(self, store: LeaseStore, config: LeaseConfig, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], dt.datetime] = _utcnow,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.store, self.config = store, config
        self._clock, self._wall, self._sleep, self._jitter = clock, wall, sleep, jitter
        self.leading = False
        #: The Lease as we last saw it (its resourceVersion) and when, by our clock.
        self._observed: str | None = None
        self._observed_at = 0.0
        self.holder: str | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    async def run(self, started: Callable[[], None], stopped: Callable[[], None]) -> None:
        """Become leader (``started``), stay leader while renewals succeed, then call
        ``stopped`` and return: leadership lost is never regained by the same process."""
        await self._acquire()
        self.leading = True
        log.info("leader election: %s is the leader of %s/%s", self.identity,
                 self.config.namespace, self.config.name)
        started()
        await self._renew()  # cancelled: still ours until release()
        self.leading = False
        log.error("leader election: %s lost %s/%s (not renewed for %.0fs)", self.identity,
                  self.config.namespace, self.config.name, self.config.renew_deadline)
        stopped()

    async def _acquire(self) -> None:
        while True:
            if await self._attempt(self.config.renew_deadline):
                return
            await self._sleep(self.config.retry_period * (1 + 0.2 * self._jitter()))

    async def _renew(self) -> None:
        last = self._clock()
        while True:
            await self._sleep(self.config.retry_period)
            left = last + self.config.renew_deadline - self._clock()
            if left <= 0:
                return
            if await self._attempt(left):
                last = self._clock()
            elif self._clock() - last >= self.config.renew_deadline:
                return

    async def _attempt(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout)
        except LeaseConflictError:
            return False
        except TimeoutError:
            log.warning("leader election: no answer from the apiserver within %.1fs", timeout)
            return False
        except Exception as exc:  # noqa: BLE001 - the apiserver may be down for a while
            log.warning("leader election: %s", exc)
            return False

    async def try_acquire_or_renew(self) -> bool:
        """One round: take or renew the Lease if it is ours to take. LeaseConflictError when
        someone else wrote it since we read it."""
        now = self._wall()
        lease = await self.store.get()
        if lease is None:
            created = await self.store.create(self._lease(None, now))
            self._saw(created)
            return True
        self._saw(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or math.ceil(self.config.lease_duration)
        if holder and holder != self.identity and \
                self._clock() < self._observed_at + float(duration):
            return False  # held, and renewed within its duration as far as we have seen
        updated = await self.store.replace(self._lease(lease, now))
        self._saw(updated)
        return True

    def _lease(self, current: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
        spec = dict((current or {}).get("spec") or {})
        ours = spec.get("holderIdentity") == self.identity
        spec.update({
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.config.lease_duration),
            "renewTime": _micro_time(now),
            "acquireTime": spec.get("acquireTime") if ours and spec.get("acquireTime")
            else _micro_time(now),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (
                0 if ours or current is None else 1),
        })
        meta = {"name": self.config.name, "namespace": self.config.namespace}
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}

    def _saw(self, lease: dict[str, Any]) -> None:
        version = (lease.get("metadata") or {}).get("resourceVersion")
        self.holder = (lease.get("spec") or {}).get("holderIdentity") or None
        if version != self._observed:
            self._observed, self._observed_at = version, self._clock()

    async def release(self) -> None:
        """Give the Lease up (graceful stop): no holder and a one-second duration, so a
        standby takes it on its next try. Only while we still hold it."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.store.get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease = dict(lease)
            lease["spec"] = {**lease["spec"], "holderIdentity": "",
                             "leaseDurationSeconds": 1, "renewTime": _micro_time(self._wall())}
            await self.store.replace(lease)
            log.info("leader election: %s released %s/%s", self.identity,
                     self.config.namespace, self.config.name)
        except Exception as exc:  # noqa: BLE001 - then the Lease expires on its own
            log.warning("leader election: releasing the lease failed: %s", exc)
