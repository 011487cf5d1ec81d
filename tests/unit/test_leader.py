"""Leader election against an in-memory Lease that behaves like the apiserver's (optimistic
concurrency on resourceVersion), with a clock the test moves."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest

from modeldeploy.adapters.lease import LeaseConflictError
from modeldeploy.controller.leader import LeaderElector, LeaseConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        #: Seconds this node's wall clock is off: election must not depend on it.
        self.skew = 0.0

    def wall(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=self.now + self.skew)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Store:
    """One Lease; every write bumps resourceVersion and must carry the current one."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.down = False
        self.writes = 0
        #: Called between a get and the following write: another candidate's write lands.
        self.interleave: Any = None

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("apiserver unreachable")

    async def get(self) -> dict[str, Any] | None:
        self._check()
        found = copy.deepcopy(self.lease)
        if self.interleave is not None:
            hook, self.interleave = self.interleave, None
            hook()
        return found

    def _store(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.writes += 1
        stored = copy.deepcopy(lease)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.lease = stored
        return copy.deepcopy(stored)

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise LeaseConflictError("already exists")
        return self._store(lease)

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if lease["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflictError("the object has been modified")
        return self._store(lease)

    @property
    def spec(self) -> dict[str, Any]:
        assert self.lease is not None
        return dict(self.lease["spec"])


def elector(store: Store, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(store, LeaseConfig(namespace="ns", identity=identity),
                         clock=lambda: clock.now, wall=clock.wall, sleep=clock.sleep,
                         jitter=lambda: 0.0)


def attempt(e: LeaderElector) -> bool:
    return asyncio.run(e._attempt(5.0))


def test_the_first_candidate_creates_the_lease_and_the_second_waits_while_it_is_renewed() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert attempt(a) is True
    assert store.spec["holderIdentity"] == "a"
    assert store.spec["leaseDurationSeconds"] == 12
    assert store.spec["leaseTransitions"] == 0
    for _ in range(10):  # a renews every 2 s for 20 s; b never gets in
        clock.now += 2
        assert attempt(a) is True
        assert attempt(b) is False
    assert store.spec["holderIdentity"] == "a"
    assert b.holder == "a"


def test_a_lease_not_renewed_is_taken_once_its_duration_has_passed_since_it_was_seen() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    attempt(a)
    first_acquire = store.spec["acquireTime"]
    assert attempt(b) is False  # b first sees the record now
    clock.now += 11.9
    assert attempt(b) is False
    clock.now += 0.2
    assert attempt(b) is True
    spec = store.spec
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert spec["acquireTime"] != first_acquire
    assert attempt(a) is False  # the old leader does not take it back


def test_expiry_is_judged_by_the_local_clock_not_the_holders_timestamps() -> None:
    store, clock = Store(), Clock()
    a = elector(store, clock, "a")
    attempt(a)
    skewed = Clock()
    skewed.now, skewed.skew = clock.now, 3600.0  # b's wall clock is an hour ahead
    b = elector(store, skewed, "b")
    assert attempt(b) is False
    skewed.now += 5
    assert attempt(b) is False  # renewTime looks an hour old to b: it must not matter


def test_of_two_candidates_the_one_whose_write_lands_second_loses_quietly() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    attempt(a)
    attempt(b)
    clock.now += 13

    def a_renews_meanwhile() -> None:  # a was slow, not dead: its renewal lands first
        store._store(a._lease(copy.deepcopy(store.lease), clock.wall()))

    store.interleave = a_renews_meanwhile
    assert attempt(b) is False
    assert store.spec["holderIdentity"] == "a"


def test_a_released_lease_is_taken_at_the_next_try() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    attempt(a)
    a.leading = True
    assert attempt(b) is False
    asyncio.run(a.release())
    assert (store.spec["holderIdentity"], store.spec["leaseDurationSeconds"]) == ("", 1)
    assert a.leading is False
    clock.now += 2  # b's next retry, long before the 12 s lease would have expired
    assert attempt(b) is True
    assert store.spec["holderIdentity"] == "b"
    writes = store.writes
    asyncio.run(a.release())  # a no longer leads: nothing is written
    assert store.writes == writes and store.spec["holderIdentity"] == "b"


def test_release_never_clears_a_lease_someone_else_holds() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    attempt(a)
    a.leading = True  # a believes it leads, but b took over (a was paused too long)
    attempt(b)
    clock.now += 13
    assert attempt(b) is True
    asyncio.run(a.release())
    assert store.spec["holderIdentity"] == "b"


def test_run_leads_while_renewals_succeed_and_stops_within_the_renew_deadline() -> None:
    store, clock = Store(), Clock()
    a = elector(store, clock, "a")
    events: list[tuple[str, float]] = []
    renewals = 0
    real_replace = store.replace

    async def replace(lease: dict[str, Any]) -> dict[str, Any]:
        nonlocal renewals
        renewals += 1
        if renewals == 5:
            store.down = True  # the apiserver goes away after 4 renewals
            store._check()
        return await real_replace(lease)

    store.replace = replace  # type: ignore[method-assign]
    start = clock.now
    asyncio.run(a.run(lambda: events.append(("started", clock.now - start)),
                      lambda: events.append(("stopped", clock.now - start))))
    assert [e for e, _ in events] == ["started", "stopped"]
    assert a.leading is False
    last_renewal = 4 * 2.0  # renewals at 2, 4, 6, 8 s after acquiring
    stopped_at = events[1][1]
    assert last_renewal < stopped_at <= last_renewal + 8.0  # within the renew deadline
    assert stopped_at < last_renewal + 12.0  # before anyone else could take the lease


def test_run_keeps_trying_while_the_lease_is_held_elsewhere() -> None:
    store, clock = Store(), Clock()
    other = elector(store, clock, "other")
    attempt(other)
    other.leading = True
    # Time stands still here: the lease never expires, only a release frees it.
    me = LeaderElector(store, LeaseConfig(namespace="ns", identity="me"),
                       clock=lambda: clock.now, wall=clock.wall,
                       sleep=lambda _: asyncio.sleep(0), jitter=lambda: 0.0)
    started: list[float] = []

    async def scenario() -> None:
        task = asyncio.create_task(me.run(lambda: started.append(clock.now),
                                          lambda: None))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not started  # held and fresh
        await other.release()
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert len(started) == 1
    assert store.spec["holderIdentity"] == "me"
    assert me.leading is True  # cancelled (a graceful stop): the caller releases


@pytest.mark.parametrize("timings", [(2.0, 8.0, 8.0), (0.0, 8.0, 12.0), (9.0, 8.0, 12.0)])
def test_lease_timings_must_be_ordered(timings: tuple[float, float, float]) -> None:
    retry, deadline, duration = timings
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaseConfig(namespace="ns", identity="x", retry_period=retry, renew_deadline=deadline,
                    lease_duration=duration)


def test_identities_are_unique_per_process_object() -> None:
    assert LeaseConfig(namespace="ns").identity != LeaseConfig(namespace="ns").identity
