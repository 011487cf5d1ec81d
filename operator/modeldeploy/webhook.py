"""MLflow registry webhook receiver: verify, then poll the affected model at once.

MLflow signs ``"{delivery_id}.{timestamp}.{body}"`` with HMAC-SHA256 and sends
``X-MLflow-Signature: v1,<base64>``, ``X-MLflow-Timestamp`` and ``X-MLflow-Delivery-Id``.
A delivery is accepted only with a valid signature, a timestamp within five minutes, and a
delivery id not seen before (replays are acknowledged and ignored). The receiver never trusts
the payload's version: it only tells the resolver to ask the registry now, so a forged or
stale delivery cannot change what serves. Polling stays on as the backstop for lost
deliveries.

Events handled: ``model_version_alias.created`` / ``.deleted`` and ``model_version.created``
(any other entity/action is acknowledged and ignored).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
MAX_SKEW = 300.0
HANDLED = {("model_version_alias", "created"), ("model_version_alias", "deleted"),
           ("model_version", "created")}


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(),
                      hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, *, signature: str, delivery_id: str, timestamp: str, body: str,
           now: float) -> str | None:
    """None when the delivery is authentic and fresh, else why not."""
    if not (signature and delivery_id and timestamp):
        return "missing signature headers"
    try:
        sent = float(timestamp)
    except ValueError:
        return "malformed timestamp"
    if abs(now - sent) > MAX_SKEW:
        return "timestamp outside the allowed window"
    if not hmac.compare_digest(sign(secret, delivery_id, timestamp, body), signature):
        return "signature mismatch"
    return None


class Receiver:
    def __init__(self, *, secret: str, invalidate: Callable[[str], int],
                 clock: Callable[[], float] = time.time,
                 count: Callable[[str], None] = lambda result: None,
                 active: Callable[[], bool] = lambda: True) -> None:
        self._secret = secret
        self._active = active
        self._count = count
        self._invalidate = invalidate
        self._clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def handle(self, request: web.Request) -> web.Response:
        result = "error"  # e.g. a body over the size limit (aiohttp answers 413)
        try:
            result, response = await self._handle(request)
            return response
        finally:
            self._count(result)

    async def _handle(self, request: web.Request) -> tuple[str, web.Response]:
        """(result for the metrics, response)."""
        if not self._active():
            # A standby replica: MLflow retries a 503 (honouring Retry-After), and the
            # retry may reach the leader through the Service.
            return "standby", web.json_response(
                {"error": "not the leader"}, status=503, headers={"Retry-After": "1"})
        body = (await request.read()).decode(errors="replace")
        delivery = request.headers.get(DELIVERY_HEADER, "")
        problem = verify(self._secret, signature=request.headers.get(SIGNATURE_HEADER, ""),
                         delivery_id=delivery, timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                         body=body, now=self._clock())
        if problem:
            log.warning("rejected MLflow webhook delivery %r: %s", delivery, problem)
            return "unauthorized", web.json_response({"error": problem}, status=401)
        if delivery in self._seen:
            return "duplicate", web.json_response({"status": "duplicate"}, status=200)
        self._seen[delivery] = None
        while len(self._seen) > 4096:
            self._seen.popitem(last=False)
        try:
            payload = json.loads(body)
            entity, action = payload["entity"], payload["action"]
            model = str(payload["data"]["name"])
        except (ValueError, KeyError, TypeError):
            return "invalid", web.json_response({"error": "unexpected payload"}, status=400)
        if (entity, action) not in HANDLED:
            return "ignored", web.json_response({"status": "ignored"}, status=200)
        keys = self._invalidate(model)
        log.info("webhook %s.%s for %r: re-resolving %d key(s)", entity, action, model, keys)
        return "accepted", web.json_response({"status": "accepted", "keys": keys}, status=202)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/webhooks/mlflow", self.handle)
        app.router.add_get("/healthz", lambda _: _ok())
        return app


async def _ok() -> web.Response:
    return web.Response(text="ok")
