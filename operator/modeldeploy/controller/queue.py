"""A work queue of object keys, with the semantics of client-go's workqueue.

* A key is queued at most once, however many events arrive for it.
* A key is processed by at most one worker at a time; an event arriving while it is being
  processed marks it dirty, and it is queued again when the worker is done.
* ``add_after`` keeps only the earliest pending wake-up per key.

So reconciles are never lost, never concurrent for one object, and bursts collapse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: K) -> None:
        """Drop any pending wake-up (the object is gone)."""
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def pending_timers(self) -> int:
        return len(self._timers)
