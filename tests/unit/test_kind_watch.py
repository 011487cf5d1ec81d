"""KindWatch against a scripted apiserver: a kind that is missing, appears, expires (410) and
is deleted again (404) never stops the watch, and the index is told each time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from modeldeploy.adapters.kube import ApiError
from modeldeploy.controller.kind_watch import KindWatch


def _route(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


class ScriptedKube:
    """Each list and each watch takes the next step of its script."""

    def __init__(self) -> None:
        self.lists: list[tuple[list[dict[str, Any]], int | None]] = [
            ([], None),                       # the CRD is not installed
            ([_route("a", 10)], 10),          # installed
            ([_route("a", 10)], 20),          # after the 410
            ([], None),                       # deleted again
        ]
        self.watches: list[Any] = [
            [{"type": "ADDED", "object": _route("b", 11)},
             {"type": "BOOKMARK", "object": _route("", 15)},
             {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}],
            ApiError(404, "NotFound", "the server could not find the requested resource"),
        ]
        self.watched_from: list[int] = []

    def list_blocking(self, kind: str, selector: str, namespace: str | None = None) -> Any:
        return self.lists.pop(0) if self.lists else ([], None)

    def watch_blocking(self, kind: str, selector: str, rv: int, *, timeout_seconds: int,
                       namespace: str | None = None) -> Iterator[dict[str, Any]]:
        self.watched_from.append(rv)
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        yield from step


def test_a_kind_that_comes_and_goes_is_followed_and_never_stops_the_watch() -> None:
    kube = ScriptedKube()
    seen: list[tuple[str, Any]] = []

    async def scenario() -> None:
        done = asyncio.Event()

        def resync(items: list[dict[str, Any]], rv: int | None) -> None:
            seen.append(("resync", ([i["metadata"]["name"] for i in items], rv)))
            if len([s for s in seen if s[0] == "resync"]) == 4:
                done.set()

        watch = KindWatch(kube, "HTTPRoute", "sel",  # type: ignore[arg-type]
                          loop=asyncio.get_running_loop(), resync=resync,
                          deliver=lambda t, b: seen.append((t or "", b["metadata"]["name"])),
                          absent_period=0.01)
        watch.start()
        await asyncio.wait_for(done.wait(), 5)
        watch.stop()
        assert watch.served is False

    asyncio.run(scenario())
    assert seen == [
        ("resync", ([], None)),        # not served: every HTTPRoute child is gone
        ("resync", (["a"], 10)),
        ("ADDED", "b"),                # the bookmark is not delivered
        ("resync", (["a"], 20)),       # 410: listed again
        ("resync", ([], None)),        # 404 mid-watch: listed again, not served
    ]
    assert kube.watched_from == [10, 20]
