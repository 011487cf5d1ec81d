"""A real HTTP server on 127.0.0.1 for one handler, for tests of HTTP clients (Prometheus,
model servers) in situations a real server rarely produces on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def loopback_server(method: str, path: str, handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` at ``method path`` on a free loopback port; yields the base URL."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
