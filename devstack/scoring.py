"""Real model servers behind the Services of simulated pods: the local stack's scoring path.

kwok's pods run nothing, so a version's Service has nobody to answer a smoke test. For the
Deployments the operator manages (``app.kubernetes.io/managed-by: modeldeploy``) in namespaces
that opt in (``modeldeploy.io/scoring: enabled``), this process runs what their pods would:
``mlflow models serve -m $MODEL_URI --env-manager local`` from the MLflow server's virtualenv,
on a free loopback port, one per Deployment with ``spec.replicas`` > 0 (at most
``--max-backends`` at once; the others wait, ``Queued``). It stops a backend (its whole process
group) when its Deployment goes, scales to 0 or changes model, and every backend when it stops.
A backend costs ~420 MB (two processes) and seconds of CPU: that is why namespaces opt in.

The service gateway is a reverse proxy on loopback:

    http://127.0.0.1:<port>/<namespace>/<service>/<path>  ->  the backend behind that Service

A Service resolves through its selector to the managed Deployments whose pod template matches
it (one for a version's Service and for the stable entry Service; every version for the
replicas router's Service, taken in turn). Pod readiness plays no part. So the operator reaches a
Service through one URL template: ``http://{service}.{namespace}.svc:{port}`` in a cluster,
``http://127.0.0.1:<port>/{namespace}/{service}`` here. Status, content type and body pass
through unchanged; while a backend starts, or when there is none, the gateway answers 503 with
a JSON body ``{"error", "reason", "namespace", "service"}`` (with ``Retry-After: 1`` while a
server is on its way). kwok's pods are Ready at once, a server takes seconds: a smoke test
should wait for ``GET <service>/ping`` to answer 200 (in a cluster the pod's readiness probe
has already done so) before it sends its input example and times the answer.

Control paths (a namespace name cannot start with ``_``):
    GET /_healthz   -> "ok"
    GET /_backends  -> [{namespace, deployment, version, model, modelUri, state, port, pid,
                         pids, readySeconds, message, log}], state: Queued | Starting | Ready |
                         Failed (retried after RETRY_SECONDS)

Which Deployment answers for a Service is decided in :mod:`devstack.scoring_services` (pure).
The labels mirror ``modeldeploy.core.render``: like a cluster's infrastructure, this process
reads the objects the operator writes and imports none of its code.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from devstack import procs
from devstack.ports import free_port
from devstack.scoring_services import (
    MANAGED_SELECTOR,
    MODEL_LABEL,
    SCORING_ENABLED,
    SCORING_LABEL,
    VERSION_LABEL,
    Refusal,
    Snapshot,
    Workload,
    resolve,
    snapshot,
)

__all__ = ["SCORING_ENABLED", "SCORING_LABEL", "Backends", "Refusal", "Snapshot", "Workload",
           "main", "resolve", "snapshot"]

#: Pidfile and log names of the backends: ``scoring-<namespace>.<deployment>``.
BACKEND_PREFIX = "scoring-"
RETRY_SECONDS = 5.0
START_TIMEOUT = 120.0
PROXY_TIMEOUT = 120.0  # above `mlflow models serve`'s own 60 s request timeout
#: Request and response headers that belong to one connection, not to the message.
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-connection",
                         "te", "trailer", "transfer-encoding", "upgrade", "content-length",
                         "host", "server", "date"})

log = logging.getLogger("scoring")


@dataclass
class Backend:
    """One `mlflow models serve` process for one Workload."""

    workload: Workload
    state: str = "Queued"  # Queued | Starting | Ready | Failed
    port: int | None = None
    proc: procs.Proc | None = None
    started: float = 0.0
    ready_seconds: float | None = None
    message: str = ""
    retry_at: float = 0.0
    #: Requests proxied to it, by "METHOD /path" (what a test checks a probe by).
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{BACKEND_PREFIX}{self.workload.namespace}.{self.workload.name}"

    def view(self) -> dict[str, Any]:
        w, pid = self.workload, self.proc.pid if self.proc else None
        return {"namespace": w.namespace, "deployment": w.name,
                "version": w.pod_labels.get(VERSION_LABEL, ""),
                "model": w.pod_labels.get(MODEL_LABEL, ""), "modelUri": w.model_uri,
                "state": self.state, "port": self.port, "pid": pid,
                "pids": procs.group_members(pid, since=0) if pid else [],
                "readySeconds": self.ready_seconds, "message": self.message,
                "requests": dict(self.requests),
                "log": str(self.proc.log) if self.proc else ""}


class Backends:
    """Starts and stops the model servers so that they follow a Snapshot."""

    def __init__(self, *, state: Path, venv: Path, tracking_uri: str, max_backends: int) -> None:
        self.state, self.venv, self.tracking_uri = state, venv, tracking_uri
        self.max_backends = max_backends
        self._backends: dict[tuple[str, str], Backend] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._closed = False

    def sweep_orphans(self) -> None:
        """Stop backends a predecessor of this process left behind (it was killed -9)."""
        for pidfile in sorted((self.state / "pids").glob(f"{BACKEND_PREFIX}*.pid")):
            if procs.stop(self.state, pidfile.stem, timeout=5):
                log.info("stopped %s, left by an earlier scoring process", pidfile.stem)

    def sync(self, snap: Snapshot) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            wanted = {k: w for k, w in snap.workloads.items() if w.replicas > 0 and w.model_uri}
            for key, b in list(self._backends.items()):
                w = snap.workloads.get(key)
                why = ("its Deployment is gone" if w is None else "scaled to 0" if w.replicas < 1
                       else "no MODEL_URI" if not w.model_uri
                       else "it was replaced, or its model or registry changed"
                       if w.identity != b.workload.identity else "")
                if why:
                    self._stop(b, why)
                    del self._backends[key]
            for key, w in wanted.items():
                b = self._backends.setdefault(key, Backend(workload=w))
                b.workload = w
                if b.state in ("Starting", "Ready") and b.proc and not procs.alive(b.proc.pid):
                    b.state, b.retry_at = "Failed", now + RETRY_SECONDS
                    b.message = (f"the server exited; retrying in {RETRY_SECONDS:.0f}s; "
                                 f"log {b.proc.log}: {procs.log_tail(b.proc.log, 3)}")
                    log.warning("%s: %s", b.name, b.message)
            running = sum(b.state in ("Starting", "Ready") for b in self._backends.values())
            for b in sorted(self._backends.values(), key=lambda b: b.name):
                if running >= self.max_backends:
                    break
                if b.state == "Queued" or (b.state == "Failed" and now >= b.retry_at):
                    self._start(b)
                    running += 1
            for b in self._backends.values():
                if b.state == "Queued":
                    b.message = f"waiting: {self.max_backends} servers run already"

    def _start(self, b: Backend) -> None:
        if b.proc is not None:
            procs.stop(self.state, b.name, timeout=5)
        w, b.port = b.workload, free_port()
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update({
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # uvicorn
            "MLFLOW_TRACKING_URI": w.env.get("MLFLOW_TRACKING_URI") or self.tracking_uri,
            "MLFLOW_REGISTRY_URI": w.env.get("MLFLOW_REGISTRY_URI") or self.tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
        })
        cwd = self.state / "scoring"
        cwd.mkdir(exist_ok=True)
        b.proc = procs.start(b.name, [
            str(self.venv / "bin" / "mlflow"), "models", "serve", "-m", w.model_uri,
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(b.port),
        ], state=self.state, env=env, cwd=cwd)
        b.state, b.started, b.ready_seconds = "Starting", time.monotonic(), None
        b.message = f"mlflow models serve -m {w.model_uri} on port {b.port}"
        log.info("%s: starting (pid %d) %s", b.name, b.proc.pid, b.message)
        threading.Thread(target=self._await_ready, args=(b, b.proc), daemon=True).start()

    def _await_ready(self, b: Backend, proc: procs.Proc) -> None:
        url = f"http://127.0.0.1:{b.port}/ping"
        while b.proc is proc and procs.alive(proc.pid):
            if procs.http_ok(url):
                with self._lock:
                    if b.proc is proc and b.state == "Starting":
                        b.state, b.ready_seconds = "Ready", round(time.monotonic() - b.started, 2)
                        b.message = f"serving {b.workload.model_uri} on port {b.port}"
                        log.info("%s: ready in %.1fs", b.name, b.ready_seconds)
                return
            if time.monotonic() - b.started > START_TIMEOUT:
                with self._lock:
                    if b.proc is proc:
                        b.state, b.retry_at = "Failed", time.monotonic() + RETRY_SECONDS
                        b.message = f"not answering /ping after {START_TIMEOUT:.0f}s"
                        procs.stop(self.state, b.name, timeout=5)
                return
            time.sleep(0.1)

    def _stop(self, b: Backend, why: str) -> None:
        if b.proc is not None:
            procs.stop(self.state, b.name, timeout=5)
            log.info("%s: stopped (pid %d): %s", b.name, b.proc.pid, why)
        b.proc = None

    def stop_all(self) -> None:
        with self._lock:
            self._closed = True
            for b in self._backends.values():
                self._stop(b, "the scoring component stops")
            self._backends.clear()

    def pick(self, found: list[Workload]) -> Backend | Refusal:
        """A Ready backend among ``found``'s (in turn), or why there is none yet."""
        with self._lock:
            backends = [self._backends.get((w.namespace, w.name)) for w in found]
            ready = [b for b in backends if b is not None and b.state == "Ready"]
            if ready:
                return ready[next(self._turn) % len(ready)]
            known = [b for b in backends if b is not None]
            if known:
                return Refusal(known[0].state, f"{known[0].name}: {known[0].state}: "
                               f"{known[0].message}")
            return Refusal("ScaledToZero", "the matching Deployments have 0 replicas or no "
                           f"MODEL_URI: {', '.join(w.name for w in found)}")

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b.view() for _, b in sorted(self._backends.items())]


def _watch(kubeconfig: str, backends: Backends, holder: list[Snapshot], period: float,
           stop: threading.Event) -> None:
    """Every ``period`` s: list opted-in namespaces, their managed Deployments and Services."""
    from kubernetes import client, config  # test-support process: sync client in its own thread

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)

    def items(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        resp = call(*args, _preload_content=False, **kwargs)  # raw JSON: cheap at 2 Hz
        return cast(list[dict[str, Any]], json.loads(resp.data)["items"])

    while not stop.is_set():
        try:
            namespaces = [n["metadata"]["name"] for n in items(
                core.list_namespace, label_selector=f"{SCORING_LABEL}={SCORING_ENABLED}")
                if not n["metadata"].get("deletionTimestamp")]
            deployments: list[dict[str, Any]] = []
            services: list[dict[str, Any]] = []
            for ns in namespaces:
                deployments += items(apps.list_namespaced_deployment, ns,
                                     label_selector=MANAGED_SELECTOR)
                services += items(core.list_namespaced_service, ns)
            holder[0] = snapshot(namespaces, deployments, services)
            backends.sync(holder[0])
        except Exception as exc:  # noqa: BLE001 - keep serving the last known state
            log.warning("reading the cluster failed: %s", exc)
        stop.wait(period)


def _handler(backends: Backends, holder: list[Snapshot]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
        # One write per response, sent at once: headers and body written apart would wait
        # for the client's delayed ACK (40 ms) on a kept-alive connection.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

        def _send(self, code: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response_only(code)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any, *extra: tuple[str, str]) -> None:
            self._send(code, json.dumps(obj).encode(),
                       [("Content-Type", "application/json"), *extra])

        def _body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/_healthz":
                return self._send(200, b"ok", [("Content-Type", "text/plain")])
            if parts.path == "/_backends":
                return self._json(200, backends.listing())
            body = self._body()
            namespace, _, rest = parts.path.lstrip("/").partition("/")
            service, _, path = rest.partition("/")
            if not namespace or not service:
                return self._json(404, {"error": "use /<namespace>/<service>/<path>",
                                        "reason": "BadPath"})
            found = resolve(holder[0], namespace, service)
            picked = backends.pick(found) if isinstance(found, list) else found
            if isinstance(picked, Refusal):
                # A server on its way (Queued, Starting, Failed and retried) is worth a retry.
                soon = picked.reason in ("Queued", "Starting", "Failed")
                return self._json(503, {"error": picked.message, "reason": picked.reason,
                                        "namespace": namespace, "service": service},
                                  *([("Retry-After", "1")] if soon else []))
            self._proxy(picked, "/" + path + (f"?{parts.query}" if parts.query else ""), body)

        def _proxy(self, backend: Backend, target: str, body: bytes | None) -> None:
            what = f"{self.command} {urlsplit(target).path}"
            backend.requests[what] = backend.requests.get(what, 0) + 1
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=PROXY_TIMEOUT)
            try:
                conn.request(self.command, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                return self._json(502, {"error": f"{backend.name}: {exc}",
                                        "reason": "BackendUnreachable"})
            finally:
                conn.close()
            self._send(resp.status, data, [
                *((k, v) for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS),
                ("X-Modeldeploy-Backend", f"{backend.workload.namespace}/{backend.workload.name}"),
            ])

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Model servers and a service gateway.")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state", required=True, type=Path, help="pids/ and logs/ go here")
    parser.add_argument("--venv", required=True, type=Path, help="the MLflow server's venv")
    parser.add_argument("--tracking-uri", required=True, help="when a Deployment names none")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--max-backends", type=int, default=10)
    parser.add_argument("--refresh", type=float, default=0.5, help="re-read period (s)")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if not host.startswith("127."):
        parser.error("the service gateway only listens on loopback")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    backends = Backends(state=args.state, venv=args.venv, tracking_uri=args.tracking_uri,
                        max_backends=args.max_backends)
    backends.sweep_orphans()
    holder = [Snapshot()]
    stop = threading.Event()

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    server = ThreadingHTTPServer((host, int(port)), _handler(backends, holder))
    server.daemon_threads = True
    threading.Thread(target=_watch, args=(args.kubeconfig, backends, holder, args.refresh,
                                          stop), daemon=True).start()
    log.info("service gateway listening on %s:%s", host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        stop.set()
        backends.stop_all()
        log.info("stopped")


if __name__ == "__main__":
    main()
