"""Controller pieces without I/O: the work queue, the watch index, the shared resolver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modeldeploy.adapters.registry import Credentials, ResolveKey
from modeldeploy.controller.index import Index
from modeldeploy.controller.queue import WorkQueue
from modeldeploy.core import render
from modeldeploy.core.world import RegistryOutcome, Resolution, ResolvedVersion
from tests.unit.fakeresolver import KEY, Clock, FakeRegistry, make_resolver


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- queue ---------------------------------------------------------------------------------


def test_queue_deduplicates_and_never_hands_out_a_key_twice_at_once() -> None:
    async def scenario() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        for k in ("a", "b", "a", "a"):
            q.add(k)
        assert len(q) == 2
        first = await q.get()
        q.add(first)  # an event while it is being processed: marked dirty, not queued
        second = await q.get()
        assert len(q) == 0
        q.done(first)  # dirty -> queued again
        third = await q.get()
        q.done(second)
        q.done(third)
        return [first, second, third]

    assert run(scenario()) == ["a", "b", "a"]


def test_queue_add_after_keeps_the_earliest_wake_up() -> None:
    async def scenario() -> tuple[str, float]:
        q: WorkQueue[str] = WorkQueue()
        loop = asyncio.get_running_loop()
        start = loop.time()
        q.add_after("k", 5.0)
        q.add_after("k", 0.05)
        q.add_after("k", 3.0)
        assert q.pending_timers == 1
        key = await asyncio.wait_for(q.get(), timeout=1.0)
        return key, loop.time() - start

    key, waited = run(scenario())
    assert key == "k" and waited < 1.0


def test_queue_forget_cancels_pending_wake_ups() -> None:
    async def scenario() -> int:
        q: WorkQueue[str] = WorkQueue()
        q.add_after("k", 0.05)
        q.forget("k")
        await asyncio.sleep(0.1)
        return len(q)

    assert run(scenario()) == 0


# --- index ---------------------------------------------------------------------------------


def _md(rv: str, phase: str, uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "md", "uid": uid, "resourceVersion": rv,
                         "managedFields": [{"big": "x"}]},
            "status": {"phase": phase}}


def _deployment(rv: str, ready: int, owner: str = "u1") -> dict[str, Any]:
    return {"metadata": {"name": "md-v1", "generation": 2, "resourceVersion": rv,
                         "labels": {render.LABEL_VERSION: "1"},
                         "annotations": {render.ANNOTATION_HASH: "h"},
                         "ownerReferences": [{"kind": "ModelDeployment", "controller": True,
                                              "uid": owner}]},
            "spec": {"replicas": 2},
            "status": {"readyReplicas": ready, "updatedReplicas": 2, "observedGeneration": 2}}


def test_index_ignores_events_older_than_what_it_knows() -> None:
    index = Index()
    index.upsert(_md("10", "Stable"))
    index.upsert(_md("9", "Pending"))  # an event that was in flight before our own write
    body = index.get(("ns", "md"))
    assert body is not None and body["status"]["phase"] == "Stable"
    assert "managedFields" not in body["metadata"]
    index.upsert(_md("11", "Progressing"))
    body = index.get(("ns", "md"))
    assert body is not None and body["status"]["phase"] == "Progressing"


def test_index_keeps_child_summaries_by_owner() -> None:
    index = Index()
    assert index.upsert_child("Deployment", _deployment("5", 1)) is None  # owner not seen yet
    index.upsert(_md("1", "Stable"))
    assert index.upsert_child("Deployment", _deployment("6", 2)) == ("ns", "md")
    index.upsert_child("Deployment", _deployment("4", 0))  # stale
    [child] = index.children("u1")
    assert (child.version, child.hash, child.ready, child.ready_for(2)) == ("1", "h", 2, True)
    assert index.remove_child("Deployment", _deployment("7", 2)) == ("ns", "md")
    assert index.children("u1") == ()


def test_unowned_children_are_not_indexed() -> None:
    index = Index()
    body = _deployment("1", 1)
    body["metadata"]["ownerReferences"] = []
    assert index.upsert_child("Deployment", body) is None
    assert index.children("u1") == ()


# --- resolver ------------------------------------------------------------------------------


def test_many_subscribers_share_one_resolution() -> None:
    async def scenario() -> tuple[int, int]:
        registry, woken, clock = FakeRegistry(), [], Clock()
        resolver = make_resolver(registry, woken, clock)
        objs = [("ns", f"md{i}") for i in range(100)]
        for obj in objs:
            resolver.subscribe(obj, KEY, 30.0)
        results = await asyncio.gather(*(resolver.ensure(KEY) for _ in objs))
        assert {r.version.version for r in results if r.version} == {"1"}
        return registry.calls, resolver.stats()["keys"]

    calls, keys = run(scenario())
    assert (calls, keys) == (1, 1)


def test_changes_wake_every_subscriber_and_repeats_wake_nobody() -> None:
    async def scenario() -> list[tuple[str, str]]:
        registry, woken, clock = FakeRegistry(), [], Clock()
        resolver = make_resolver(registry, woken, clock)
        resolver.subscribe(("ns", "a"), KEY, 30.0)
        resolver.subscribe(("ns", "b"), KEY, 30.0)
        await resolver.ensure(KEY)
        woken.clear()
        first = resolver.current(KEY)
        assert resolver.invalidate("fraud") == 1
        task = asyncio.create_task(resolver.run())
        await asyncio.sleep(0.1)
        assert woken == [] and resolver.current(KEY) is first, "same answer: no wake, kept"
        registry.answer = "2"
        resolver.invalidate("fraud")
        await asyncio.sleep(0.1)
        task.cancel()
        return sorted(woken)

    assert run(scenario()) == [("ns", "a"), ("ns", "b")]


def test_failures_back_off_but_never_beyond_the_poll_interval() -> None:
    async def scenario() -> list[float]:
        registry, woken, clock = FakeRegistry(), [], Clock()
        registry.down = True
        resolver = make_resolver(registry, woken, clock)
        resolver.subscribe(("ns", "a"), KEY, 10.0)
        delays = []
        for _ in range(6):
            entry = resolver._entries[KEY]
            await resolver._poll(KEY, entry)
            delays.append(entry.due - clock.now)
        return delays

    assert run(scenario()) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_unsubscribing_the_last_object_drops_the_key() -> None:
    async def scenario() -> dict[str, int]:
        resolver = make_resolver(FakeRegistry(), [], Clock())
        resolver.subscribe(("ns", "a"), KEY, 30.0)
        other = ResolveKey("http://r", "http://r", "fraud", "alias", "challenger")
        resolver.subscribe(("ns", "a"), other, 30.0)  # spec changed: moves the subscription
        assert resolver.stats()["keys"] == 1
        resolver.unsubscribe(("ns", "a"))
        return resolver.stats()

    assert run(scenario()) == {"keys": 0, "subscribers": 0, "polls": 0}


# --- webhook signature -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [({}, None), ({"secret": "other"}, "signature mismatch"),
     ({"body": '{"tampered": 1}'}, "signature mismatch"),
     ({"now": 2000.0 + 301}, "timestamp outside the allowed window"),
     ({"timestamp": "soon"}, "malformed timestamp"),
     ({"signature": ""}, "missing signature headers")],
)
def test_webhook_signature_verification(change: dict[str, Any], problem: str | None) -> None:
    from modeldeploy.webhook import sign, verify

    body = '{"entity": "model_version_alias"}'
    args: dict[str, Any] = {"signature": sign("s3cret", "d1", "2000", body),
                            "delivery_id": "d1", "timestamp": "2000", "body": body,
                            "now": 2000.0}
    secret = change.pop("secret", "s3cret")
    args.update(change)
    assert verify(secret, **args) == problem


def test_signature_matches_mlflows_format() -> None:
    import base64
    import hashlib
    import hmac

    from modeldeploy.webhook import sign

    expected = base64.b64encode(hmac.new(b"k", b"id.1700000000.{}", hashlib.sha256).digest())
    assert sign("k", "id", "1700000000", "{}") == "v1," + expected.decode()


class SlowRegistry(FakeRegistry):
    """Answers after ``gate`` opens, with whatever ``answer`` was when the call started."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def resolve(self, key: ResolveKey, creds: Credentials | None) -> Resolution:
        seen = self.answer
        self.calls += 1
        await self.gate.wait()
        return Resolution(outcome=RegistryOutcome.OK, reason="Resolved", version=ResolvedVersion(
            seen, "run", "src", f"models:/fraud/{seen}"))


def test_a_webhook_during_an_in_flight_poll_is_not_lost() -> None:
    async def scenario() -> str | None:
        registry, woken, clock = SlowRegistry(), [], Clock()
        resolver = make_resolver(registry, woken, clock)
        resolver.subscribe(("ns", "a"), KEY, 600.0)
        first = asyncio.create_task(resolver.ensure(KEY))
        await asyncio.sleep(0.01)  # the poll has read alias -> "1" and waits on the network
        registry.answer = "2"
        resolver.invalidate("fraud")  # the webhook arrives now
        registry.gate.set()
        await first
        task = asyncio.create_task(resolver.run())
        await asyncio.sleep(0.1)
        task.cancel()
        res = resolver.current(KEY)
        return res.version.version if res and res.version else None

    assert run(scenario()) == "2"


def test_unsubscribing_never_cancels_a_poll_someone_awaits() -> None:
    async def scenario() -> str:
        registry, woken, clock = SlowRegistry(), [], Clock()
        resolver = make_resolver(registry, woken, clock)
        resolver.subscribe(("ns", "a"), KEY, 30.0)
        waiting = asyncio.create_task(resolver.ensure(KEY))
        await asyncio.sleep(0.01)
        resolver.unsubscribe(("ns", "a"))  # e.g. the object was deleted meanwhile
        registry.gate.set()
        res = await waiting  # must not raise CancelledError into the awaiting worker
        return res.reason

    assert run(scenario()) == "Resolved"


def test_a_registry_bug_becomes_an_answer_not_a_crash() -> None:
    class Broken(FakeRegistry):
        async def resolve(self, key: ResolveKey, creds: Credentials | None) -> Resolution:
            raise ValueError("HTML where JSON was expected")

    async def scenario() -> tuple[str, float]:
        clock = Clock()
        resolver = make_resolver(Broken(), [], clock)
        resolver.subscribe(("ns", "a"), KEY, 30.0)
        res = await resolver.ensure(KEY)
        return res.reason, resolver._entries[KEY].due - clock.now

    reason, backoff = run(scenario())
    assert reason == "RegistryError" and backoff == 1.0


def _owned(name: str, uid: str, rv: str) -> dict[str, Any]:
    body = _deployment(rv, 2)
    body["metadata"].update({"name": name, "uid": uid})
    return body


def test_a_late_event_cannot_resurrect_a_child_we_deleted() -> None:
    index = Index()
    index.upsert(_md("1", "Stable"))
    index.upsert_child("Deployment", _owned("md-v1", "obj-a", "5"))
    index.deleted_by_us("u1", "Deployment", "md-v1")
    assert index.children("u1") == ()
    # A MODIFIED event that was in flight when we deleted it (even with a newer rv):
    index.upsert_child("Deployment", _owned("md-v1", "obj-a", "7"))
    assert index.children("u1") == ()
    # A new object with the same name (we re-created the version) is accepted at once:
    index.upsert_child("Deployment", _owned("md-v1", "obj-b", "9"))
    assert [c.name for c in index.children("u1")] == ["md-v1"]


def test_resync_drops_children_missed_while_the_watch_was_down() -> None:
    index = Index()
    index.upsert(_md("1", "Stable"))
    index.upsert_child("Deployment", _owned("md-v1", "obj-a", "5"))
    index.upsert_child("Deployment", _owned("md-v2", "obj-b", "50"))  # written after the list
    orphan = _owned("gone-v1", "obj-c", "6")
    orphan["metadata"]["ownerReferences"][0]["uid"] = "deleted-owner"
    index.upsert_child("Deployment", orphan)
    touched = index.resync_children("Deployment", [], list_rv=10)
    assert [c.name for c in index.children("u1")] == ["md-v2"], "newer than the list: kept"
    assert index.children("deleted-owner") == ()
    assert touched == {("ns", "md")}


def test_failure_messages_are_stable_across_polls() -> None:
    from modeldeploy.adapters.registry import stable_text

    a = ("HTTPConnectionPool: Max retries exceeded (Caused by NewConnectionError("
         "'<urllib3.connection.HTTPConnection object at 0x7f3a1c2b>: refused'))")
    b = a.replace("0x7f3a1c2b", "0x7f99ee01")
    assert stable_text(a) == stable_text(b) and "0x" not in stable_text(a)
