"""A real Kubernetes control plane on loopback: etcd, apiserver, controller-manager, scheduler.

Nodes and pods are the only fakes: kwok owns nodes annotated ``kwok.x-k8s.io/node=fake`` and
moves their pods through the Stages of :mod:`devstack.kwok_stages`. Everything else (admission,
CEL validation, garbage collection, Deployments, ReplicaSets, EndpointSlices, scheduling) is the
real Kubernetes code built from the pinned module.
"""

from __future__ import annotations

import functools
import json
import ssl
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from devstack import kwok_stages, procs
from devstack import pki as pki_mod
from devstack.ports import free_port

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_COUNT = 2


@dataclass(frozen=True)
class Binaries:
    kube: Path  # dir with kube-apiserver, kube-controller-manager, kube-scheduler
    etcd: Path
    kwok: Path  # dir with the kwok binary and kwok's upstream stages/
    kubectl: Path
    gateway_crds: Path
    istio_crds: Path  # the one file of istio.io/api's CRDs


@dataclass(frozen=True)
class ControlPlane:
    server: str
    kubeconfig: Path


def write_kubeconfig(path: Path, *, server: str, pki: pki_mod.Pki, user: str) -> Path:
    """A kubeconfig using client-certificate ``user`` from the stack's PKI."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modeldeploy-local", "cluster": {
            "server": server, "certificate-authority": str(pki.ca_crt)}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(pki.crt(user)), "client-key": str(pki.key(user))}}],
        "contexts": [{"name": "modeldeploy-local", "context": {
            "cluster": "modeldeploy-local", "user": user}}],
        "current-context": "modeldeploy-local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def token_kubeconfig(admin: Path | str, path: Path, *, token: str, user: str) -> Path:
    """A copy of the ``admin`` kubeconfig that authenticates with a bearer ``token`` (a
    ServiceAccount's TokenRequest token) as ``user``: to run as exactly what RBAC grants it."""
    config = yaml.safe_load(Path(admin).read_text())
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = user
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _tls(pki: pki_mod.Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.crt("admin")), str(pki.key("admin")))
    return ctx


def kubectl(binary: Path | str, kubeconfig: Path | str, *args: str,
            stdin: str | None = None) -> str:
    """Run kubectl; StackError with kubectl's own error text when it fails."""
    result = subprocess.run(
        [str(binary), "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise procs.StackError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one control plane, recorded so a dead component can come back
    on the same address (its clients' URLs and kubeconfigs stay valid)."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> Ports:
        return cls(*(free_port() for _ in fields(cls)))

    @staticmethod
    def path(state: Path) -> Path:
        return state / "ports.json"

    def save(self, state: Path) -> None:
        self.path(state).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state: Path) -> Ports | None:
        path = cls.path(state)
        return cls(**json.loads(path.read_text())) if path.exists() else None


@dataclass(frozen=True)
class Plane:
    """Everything needed to start any one control-plane component, first time or again."""

    bins: Binaries
    state: Path
    ports: Ports
    pki: pki_mod.Pki

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd}"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def user_kubeconfig(self, user: str) -> Path:
        """A kubeconfig for ``user`` (rewritten each time: same server, same certificates)."""
        path = self.kubeconfig if user == "admin" else self.state / f"{user}.kubeconfig"
        return write_kubeconfig(path, server=self.server, pki=self.pki, user=user)


def _launch_etcd(plane: Plane) -> procs.Proc:
    peer = f"http://127.0.0.1:{plane.ports.etcd_peer}"
    # On a data dir that already holds a member, etcd ignores the --initial-* flags and
    # resumes from its WAL: the same command serves a first start and a restart.
    return procs.start("etcd", [
        str(plane.bins.etcd / "etcd"),
        "--name=local",
        f"--data-dir={plane.state / 'etcd'}",
        f"--listen-client-urls={plane.etcd_url}",
        f"--advertise-client-urls={plane.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        # Test data is disposable; fsync on every write would dominate start-up time.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ], state=plane.state)


def _launch_apiserver(plane: Plane) -> procs.Proc:
    pki = plane.pki
    return procs.start("kube-apiserver", [
        str(plane.bins.kube / "kube-apiserver"),
        f"--etcd-servers={plane.etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={plane.ports.apiserver}",
        f"--tls-cert-file={pki.crt('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_crt}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={pki_mod.SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--profiling=false",
        f"--cert-dir={plane.state / 'pki' / 'apiserver-generated'}",
        "--v=1",
    ], state=plane.state)


def _launch_controller_manager(plane: Plane) -> procs.Proc:
    kc, pki = plane.user_kubeconfig("controller-manager"), plane.pki
    return procs.start("kube-controller-manager", [
        str(plane.bins.kube / "kube-controller-manager"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={plane.ports.controller_manager}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_crt}",
        f"--cluster-signing-cert-file={pki.ca_crt}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={pki_mod.SERVICE_CIDR}",
        # The default client limit (20 QPS) makes a thousand Deployments take many minutes;
        # large clusters raise it, and so do we, so benchmarks measure the operator.
        "--kube-api-qps=300",
        "--kube-api-burst=500",
        "--concurrent-deployment-syncs=20",
        "--concurrent-replicaset-syncs=20",
        "--profiling=false",
        "--v=1",
    ], state=plane.state)


def _launch_scheduler(plane: Plane) -> procs.Proc:
    kc = plane.user_kubeconfig("scheduler")
    return procs.start("kube-scheduler", [
        str(plane.bins.kube / "kube-scheduler"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={plane.ports.scheduler}",
        "--leader-elect=false",
        "--kube-api-qps=300",
        "--kube-api-burst=500",
        "--profiling=false",
        "--v=1",
    ], state=plane.state)


def _launch_kwok(plane: Plane) -> procs.Proc:
    stages = plane.state / "kwok-stages.yaml"
    stages.write_text(kwok_stages.render(plane.bins.kwok / "stages"))
    return procs.start("kwok", [
        str(plane.bins.kwok / "kwok"),
        f"--kubeconfig={plane.user_kubeconfig('kwok')}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        f"--server-address=127.0.0.1:{plane.ports.kwok}",
        "--node-lease-duration-seconds=40",
    ], state=plane.state)


@dataclass(frozen=True)
class _Component:
    launch: Callable[[Plane], procs.Proc]
    what: str  # named in the error when it never gets ready
    ready: Callable[[Plane], bool]
    timeout: float


def _healthz(port: int) -> bool:
    return procs.http_ok(f"https://127.0.0.1:{port}/healthz", context=procs._INSECURE)


_COMPONENTS: dict[str, _Component] = {
    "etcd": _Component(_launch_etcd, "etcd /health", lambda p: procs.http_ok(
        f"{p.etcd_url}/health", body='"health":"true"'), 30),
    "kube-apiserver": _Component(_launch_apiserver, "kube-apiserver /readyz",
                                 lambda p: procs.http_ok(f"{p.server}/readyz",
                                                         context=_tls(p.pki)), 120),
    "kube-controller-manager": _Component(
        _launch_controller_manager, "kube-controller-manager /healthz",
        lambda p: _healthz(p.ports.controller_manager), 60),
    "kube-scheduler": _Component(_launch_scheduler, "kube-scheduler /healthz",
                                 lambda p: _healthz(p.ports.scheduler), 60),
    "kwok": _Component(_launch_kwok, "kwok /healthz", lambda p: procs.http_ok(
        f"http://127.0.0.1:{p.ports.kwok}/healthz"), 60),
}
#: Start order: each group needs the one before it; members of a group start side by side.
_GROUPS = (("etcd",), ("kube-apiserver",),
           ("kube-controller-manager", "kube-scheduler", "kwok"))


def _start_group(plane: Plane, names: Sequence[str]) -> dict[str, procs.Proc]:
    """Launch ``names`` side by side, then wait until each is really ready."""
    launched = {n: _COMPONENTS[n].launch(plane) for n in names}
    for name, proc in launched.items():
        comp = _COMPONENTS[name]
        procs.wait_until(comp.what, functools.partial(comp.ready, plane),
                         timeout=comp.timeout, proc=proc)
    return launched


def start(bins: Binaries, *, state: Path) -> ControlPlane:
    """A new control plane on fresh ports; nodes, the default ServiceAccount and the
    Gateway API and Istio CRDs ready."""
    plane = Plane(bins, state, Ports.allocate(), pki_mod.ensure(state / "pki"))
    plane.ports.save(state)
    plane.user_kubeconfig("admin")
    started: dict[str, procs.Proc] = {}
    for group in _GROUPS:
        started |= _start_group(plane, group)
    _bootstrap(plane, started)
    return ControlPlane(server=plane.server, kubeconfig=plane.kubeconfig)


def restart(bins: Binaries, *, state: Path, names: Sequence[str]) -> None:
    """Start the named components again on their recorded ports, on the data they left.

    StackError when that cannot be done (no recorded ports, or a component does not come
    back); the caller decides whether to start over.
    """
    ports = Ports.load(state)
    if ports is None:
        raise procs.StackError(f"no recorded ports in {Ports.path(state)} (a stack started "
                               "by an older devstack)")
    plane = Plane(bins, state, ports, pki_mod.ensure(state / "pki", renew=False))
    for group in _GROUPS:
        wanted = [n for n in group if n in names]
        for name in wanted:
            procs.stop(state, name)  # sweeps whatever the dead leader left in its group
        _start_group(plane, wanted)
    # The apiserver is ready again only with etcd back, and the nodes only once kwok has
    # renewed them (their leases lapse after 40 s without it).
    procs.wait_until("kube-apiserver /readyz", functools.partial(
        _COMPONENTS["kube-apiserver"].ready, plane), timeout=120)
    procs.wait_until(f"{NODE_COUNT} kwok nodes Ready",
                     functools.partial(_nodes_ready, bins, plane.kubeconfig), timeout=60)


def wait_established(binary: Path | str, kubeconfig: Path | str, *names: str,
                     timeout: float = 60.0) -> None:
    """Wait until every named CRD is Established. Polled, not `kubectl wait`: until the
    apiserver writes a new CRD's first status, `.status.conditions` is null and kubectl wait
    fails at once ("accessor error") instead of waiting."""
    def established() -> bool:
        for name in names:
            crd = json.loads(kubectl(binary, kubeconfig, "get", f"crd/{name}", "-o", "json"))
            if not any(c.get("type") == "Established" and c.get("status") == "True"
                       for c in (crd.get("status") or {}).get("conditions") or []):
                return False
        return True

    procs.wait_until(f"CRDs Established: {', '.join(names)}", established, timeout=timeout,
                     interval=0.2)


def _bootstrap(plane: Plane, started: dict[str, procs.Proc]) -> None:
    """Fake nodes Ready, the default ServiceAccount there, Gateway API and Istio CRDs
    Established."""
    bins, kubeconfig = plane.bins, plane.kubeconfig
    kubectl(bins.kubectl, kubeconfig, "apply", "-f", "-", stdin=json.dumps(_nodes()))
    procs.wait_until(f"{NODE_COUNT} kwok nodes Ready", lambda: _nodes_ready(bins, kubeconfig),
                     timeout=60, proc=started["kwok"])
    # The default ServiceAccount is what lets pods be admitted in a namespace at all.
    procs.wait_until("default ServiceAccount (token controller)", lambda: bool(kubectl(
        bins.kubectl, kubeconfig, "get", "serviceaccount", "default", "-o", "name")),
        timeout=60, proc=started["kube-controller-manager"])
    kubectl(bins.kubectl, kubeconfig, "apply", "--server-side", "-f", str(bins.gateway_crds))
    wait_established(bins.kubectl, kubeconfig, "httproutes.gateway.networking.k8s.io",
                     "gateways.gateway.networking.k8s.io")
    install_istio_crds(bins.kubectl, kubeconfig, bins.istio_crds)


#: The Istio kinds the operator's istio router writes; bring-up waits for these.
ISTIO_ROUTING_CRDS = ("virtualservices.networking.istio.io",
                      "destinationrules.networking.istio.io")


def install_istio_crds(binary: Path | str, kubeconfig: Path | str, crds: Path) -> None:
    """Every CRD of the pinned istio.io/api (networking, security, telemetry, extensions),
    applied server-side and the routing ones Established. Idempotent, so also cheap on a
    stack that has them: `up` calls it on a running stack started before they were added.

    Their real OpenAPI schemas come along, so the apiserver validates VirtualServices as a
    cluster with Istio installed would; no istiod runs, nothing acts on them but our
    traffic exporter."""
    # --force-conflicts: the pinned file owns these CRDs; a field someone changed with another
    # tool (kubectl edit, a helm chart) must not make bring-up fail.
    kubectl(binary, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    wait_established(binary, kubeconfig, *ISTIO_ROUTING_CRDS)


def _nodes() -> dict[str, object]:
    items = []
    for i in range(NODE_COUNT):
        name = f"kwok-node-{i}"
        items.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": f"zone-{i}",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            },
        })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _nodes_ready(bins: Binaries, kubeconfig: Path) -> bool:
    nodes = json.loads(kubectl(bins.kubectl, kubeconfig, "get", "nodes", "-o", "json"))["items"]
    ready = [
        n for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in n.get("status", {}).get("conditions", []))
    ]
    return len(ready) >= NODE_COUNT


COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
