"""Synthetic request traffic for model versions, split the way the operator's routers say.

No request is ever sent anywhere. This process reads the traffic objects in the local
apiserver (the ones the operator writes): HTTPRoutes (router ``gatewayAPI``), Istio
VirtualServices (``istio``) and Services labelled ``modeldeploy.io/router: replicas`` with their
EndpointSlices (``replicas``); :mod:`devstack.traffic_routes` turns them into one split per
model. For each split it *simulates* ``rps`` requests per second, divided between versions by
weight (for ``replicas``: by Ready endpoints). A test sets per-version error rate and latency at
run time through a small JSON API, and Prometheus scrapes the result from ``/metrics``:

    model_requests_total{namespace, model, version, code}
    model_request_duration_seconds_bucket{namespace, model, version, le}

and, for VirtualService-routed models only, what Istio's sidecars would report, so Istio query
templates run against a real Prometheus:

    istio_requests_total{reporter="destination", destination_workload_namespace,
                         destination_app, destination_version, response_code}
    istio_request_duration_milliseconds_bucket{reporter, destination_workload_namespace,
                                               destination_app, destination_version, le}

The split is deterministic (fractional accumulators, no random numbers), so a 90/10 route
produces exactly 9 requests to one version for every 1 to the other, and an error rate of
0.25 turns exactly every fourth request into a 500.

Control API (JSON bodies):
    GET  /healthz                  -> "ok"
    GET  /metrics                  -> Prometheus exposition
    GET  /state                    -> splits seen (with their router), behaviours, rates
    PUT  /behaviour {namespace, model, version, errorRate?, latencySeconds?}
    DELETE /behaviour[?namespace=ns]
    PUT  /rate {namespace, model, rps}
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from devstack import traffic_routes
from devstack.traffic_routes import ISTIO, Backend, RouteSplit, splits_from_objects

__all__ = ["Backend", "RouteSplit", "Simulator", "splits_from_objects"]

DEFAULT_RPS = 20.0
DEFAULT_LATENCY = 0.05
#: Share of a model's users who carry an A/B route's header or cookie (PUT /audience).
DEFAULT_AUDIENCE = 0.25
LIVE, MIRROR = "live", "mirror"  # the `source` label: users' requests, or mirrored copies
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
                   0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
ISTIO_LABELS = ("reporter", "destination_workload_namespace", "destination_app",
                "destination_version")
#: Latency samples cycle through these multiples of the configured latency (mean 1.0):
#: a spread wide enough that p50 and p99 differ, and still fully deterministic.
LATENCY_SPREAD = tuple(0.5 + i / 20 for i in range(21))

log = logging.getLogger("traffic")


@dataclass
class Behaviour:
    error_rate: float = 0.0
    latency_seconds: float = DEFAULT_LATENCY


@dataclass
class _Accumulators:
    requests: float = 0.0
    errors: float = 0.0
    samples: int = 0


@dataclass
class Simulator:
    """Turns route splits into counted requests. Pure apart from the metric objects."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    default_rps: float = DEFAULT_RPS

    def __post_init__(self) -> None:
        # source: "live" (users see the answer) or "mirror" (a copy; nobody sees it).
        self.requests = Counter(
            "model_requests_total", "Simulated requests to a model version.",
            ["namespace", "model", "version", "code", "source"], registry=self.registry,
        )
        self.latency = Histogram(
            "model_request_duration_seconds", "Simulated request latency of a model version.",
            ["namespace", "model", "version", "source"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.istio_requests = Counter(
            "istio_requests", "Simulated requests, as an Istio sidecar reports them.",
            [*ISTIO_LABELS, "response_code"], registry=self.registry,
        )
        self.istio_latency = Histogram(
            "istio_request_duration_milliseconds",
            "Simulated request latency, as an Istio sidecar reports it.",
            ISTIO_LABELS, buckets=ISTIO_BUCKETS_MS, registry=self.registry,
        )
        self.routes: list[RouteSplit] = []
        self.behaviours: dict[tuple[str, str, str], Behaviour] = {}
        self.rates: dict[tuple[str, str], float] = {}
        self.audiences: dict[tuple[str, str], float] = {}
        self._acc: dict[tuple[str, str, str, str], _Accumulators] = {}
        self._lock = threading.Lock()

    def set_routes(self, routes: list[RouteSplit]) -> None:
        with self._lock:
            self.routes = routes

    def set_behaviour(self, namespace: str, model: str, version: str, **changes: float) -> None:
        with self._lock:
            b = self.behaviours.setdefault((namespace, model, version), Behaviour())
            if "error_rate" in changes:
                if not 0.0 <= changes["error_rate"] <= 1.0:
                    raise ValueError("errorRate must be within 0..1")
                b.error_rate = changes["error_rate"]
            if "latency_seconds" in changes:
                if changes["latency_seconds"] < 0:
                    raise ValueError("latencySeconds must be >= 0")
                b.latency_seconds = changes["latency_seconds"]

    def reset(self, namespace: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self.behaviours if namespace in (None, k[0])]:
                del self.behaviours[key]
            for rkey in [k for k in self.rates if namespace in (None, k[0])]:
                del self.rates[rkey]
            for akey in [k for k in self.audiences if namespace in (None, k[0])]:
                del self.audiences[akey]

    def set_rate(self, namespace: str, model: str, rps: float) -> None:
        if rps < 0:
            raise ValueError("rps must be >= 0")
        with self._lock:
            self.rates[(namespace, model)] = rps

    def set_audience(self, namespace: str, model: str, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be within 0..1")
        with self._lock:
            self.audiences[(namespace, model)] = share

    def tick(self, dt: float) -> None:
        """Account ``dt`` seconds of traffic on every route: the A/B audience (if the route
        has a matched rule) to its backends, everyone else to the default rule's, and the
        mirrored percentage of the default rule's requests copied to the mirror."""
        with self._lock:
            for route in self.routes:
                rps = self.rates.get((route.namespace, route.model), self.default_rps)
                cohort = (self.audiences.get((route.namespace, route.model), DEFAULT_AUDIENCE)
                          if sum(b.weight for b in route.audience) > 0 else 0.0)
                self._spread(route, route.audience, rps * dt * cohort)
                main = rps * dt * (1.0 - cohort)
                if self._spread(route, route.backends, main) and route.mirror is not None:
                    self._simulate(route, route.mirror.version,
                                   main * route.mirror.percent / 100.0, MIRROR)

    def _spread(self, route: RouteSplit, backends: tuple[Backend, ...], n: float) -> bool:
        """``n`` requests over ``backends`` by weight; False when they take none."""
        total = sum(b.weight for b in backends)
        if total <= 0 or n <= 0:
            return False
        for backend in backends:
            self._simulate(route, backend.version, n * backend.weight / total)
        return True

    def _simulate(self, route: RouteSplit, version: str, share: float,
                  source: str = LIVE) -> None:
        key = (route.namespace, route.model, version)
        acc = self._acc.setdefault((*key, source), _Accumulators())
        behaviour = self.behaviours.get(key, Behaviour())
        acc.requests += share
        n = int(acc.requests)
        if n == 0:
            return
        acc.requests -= n
        acc.errors += n * behaviour.error_rate
        errors = min(n, int(acc.errors))
        acc.errors -= errors
        labels = {"namespace": route.namespace, "model": route.model, "version": version,
                  "source": source}
        istio = istio_labels(route, version) if route.router == ISTIO else None
        for code, count in (("200", n - errors), ("500", errors)):
            if count:
                self.requests.labels(code=code, **labels).inc(count)
                if istio is not None:
                    self.istio_requests.labels(response_code=code, **istio).inc(count)
        hist = self.latency.labels(**labels)
        istio_hist = self.istio_latency.labels(**istio) if istio is not None else None
        for _ in range(n):
            seconds = behaviour.latency_seconds * LATENCY_SPREAD[
                acc.samples % len(LATENCY_SPREAD)]
            hist.observe(seconds)
            if istio_hist is not None:
                istio_hist.observe(seconds * 1000)
            acc.samples += 1

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "routes": [asdict(r) for r in self.routes],
                "behaviours": [
                    {"namespace": k[0], "model": k[1], "version": k[2],
                     "errorRate": b.error_rate, "latencySeconds": b.latency_seconds}
                    for k, b in self.behaviours.items()
                ],
                "rates": [{"namespace": k[0], "model": k[1], "rps": v}
                          for k, v in self.rates.items()],
                "audiences": [{"namespace": k[0], "model": k[1], "share": v}
                              for k, v in self.audiences.items()],
            }


def istio_labels(route: RouteSplit, version: str) -> dict[str, str]:
    """The labels an Istio sidecar in front of ``version`` would put on its request metrics
    (``destination_app``: the pods' ``app``, here the ModelDeployment's name label)."""
    return {"reporter": "destination", "destination_workload_namespace": route.namespace,
            "destination_app": route.app or route.route, "destination_version": version}


def _route_reader(sim: Simulator, kubeconfig: str, period: float, stop: threading.Event) -> None:
    from kubernetes import client, config  # test-support process: sync client in its own thread
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)

    def items(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        # Raw JSON: building client models for every pod twice a second costs more than it says.
        resp = call(*args, _preload_content=False, **kwargs)
        return cast(list[dict[str, Any]], json.loads(resp.data)["items"])

    def custom_items(group: str, plural: str) -> list[dict[str, Any]]:
        try:
            return items(custom.list_cluster_custom_object, group, "v1", plural)
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: no such routes, not an error
                return []
            raise

    while not stop.is_set():
        try:
            services = items(core.list_service_for_all_namespaces)
            slices: list[dict[str, Any]] = []
            pods: list[dict[str, Any]] = []
            for ns in sorted(traffic_routes.replicas_namespaces(services)):
                slices += items(discovery.list_namespaced_endpoint_slice, ns,
                                label_selector=traffic_routes.SERVICE_NAME_LABEL)
                pods += items(core.list_namespaced_pod, ns)
            sim.set_routes(splits_from_objects(
                services=services,
                httproutes=custom_items("gateway.networking.k8s.io", "httproutes"),
                virtualservices=custom_items("networking.istio.io", "virtualservices"),
                endpointslices=slices, pods=pods))
        except Exception as exc:  # noqa: BLE001 - keep simulating the last known routes
            log.warning("reading routes failed: %s", exc)
        stop.wait(period)


def _ticker(sim: Simulator, period: float, stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(period):
        now = time.monotonic()
        sim.tick(now - last)
        last = now


def _handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj).encode())

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/healthz":
                self._send(200, b"ok", "text/plain")
            elif path == "/metrics":
                self._send(200, generate_latest(sim.registry), CONTENT_TYPE_LATEST)
            elif path == "/state":
                self._json(200, sim.state())
            else:
                self._json(404, {"error": f"no such path {path}"})

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            return data

        def do_PUT(self) -> None:
            path = urlparse(self.path).path
            try:
                body = self._body()
                if path == "/behaviour":
                    changes = {}
                    if "errorRate" in body:
                        changes["error_rate"] = float(body["errorRate"])
                    if "latencySeconds" in body:
                        changes["latency_seconds"] = float(body["latencySeconds"])
                    sim.set_behaviour(str(body["namespace"]), str(body["model"]),
                                      str(body["version"]), **changes)
                elif path == "/rate":
                    sim.set_rate(str(body["namespace"]), str(body["model"]), float(body["rps"]))
                elif path == "/audience":
                    sim.set_audience(str(body["namespace"]), str(body["model"]),
                                     float(body["share"]))
                else:
                    self._json(404, {"error": f"no such path {path}"})
                    return
            except (KeyError, ValueError, TypeError) as exc:
                self._json(400, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._json(200, sim.state())

        def do_DELETE(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path != "/behaviour":
                self._json(404, {"error": f"no such path {parsed.path}"})
                return
            ns = parse_qs(parsed.query).get("namespace", [None])[0]
            sim.reset(ns)
            self._json(200, sim.state())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Synthetic per-version model traffic.")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--rps", type=float, default=DEFAULT_RPS)
    parser.add_argument("--refresh", type=float, default=0.5, help="route re-read period (s)")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        parser.error("the traffic exporter only listens on loopback")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sim = Simulator(default_rps=args.rps)
    stop = threading.Event()
    threading.Thread(target=_route_reader, args=(sim, args.kubeconfig, args.refresh, stop),
                     daemon=True).start()
    threading.Thread(target=_ticker, args=(sim, 0.1, stop), daemon=True).start()
    server = ThreadingHTTPServer((host, int(port)), _handler(sim))
    log.info("traffic exporter listening on %s:%s", host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
