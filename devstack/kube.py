"""A real Kubernetes control plane on loopback: etcd, apiserver, controller-manager, scheduler.

Nodes and pods are the only fakes: kwok owns nodes annotated ``kwok.x-k8s.io/node=fake`` and
moves their pods through the Stages of :mod:`devstack.kwok_stages`. Everything else (admission,
CEL validation, garbage collection, Deployments, ReplicaSets, EndpointSlices, scheduling) is the
real Kubernetes code built from the pinned module.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

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


def start(bins: Binaries, *, state: Path, timeout: float = 120.0) -> ControlPlane:
    pki = pki_mod.ensure(state / "pki")
    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    cm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    etcd_url = f"http://127.0.0.1:{etcd_port}"

    etcd = procs.start("etcd", [
        str(bins.etcd / "etcd"),
        "--name=local",
        f"--data-dir={state / 'etcd'}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-cluster=local=http://127.0.0.1:{etcd_peer}",
        # Test data is disposable; fsync on every write would dominate start-up time.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ], state=state)
    procs.wait_until("etcd /health", lambda: procs.http_ok(
        f"{etcd_url}/health", body='"health":"true"'), timeout=30, proc=etcd)

    apiserver = procs.start("kube-apiserver", [
        str(bins.kube / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}",
        f"--tls-cert-file={pki.crt('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_crt}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={pki_mod.SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--profiling=false",
        f"--cert-dir={state / 'pki' / 'apiserver-generated'}",
        "--v=1",
    ], state=state)
    ctx = _tls(pki)
    procs.wait_until("kube-apiserver /readyz", lambda: procs.http_ok(
        f"{server}/readyz", context=ctx), timeout=timeout, proc=apiserver)

    kubeconfig = write_kubeconfig(state / "kubeconfig", server=server, pki=pki, user="admin")
    cm_kc = write_kubeconfig(state / "controller-manager.kubeconfig", server=server, pki=pki,
                             user="controller-manager")
    sched_kc = write_kubeconfig(state / "scheduler.kubeconfig", server=server, pki=pki,
                                user="scheduler")
    kwok_kc = write_kubeconfig(state / "kwok.kubeconfig", server=server, pki=pki, user="kwok")

    cm = procs.start("kube-controller-manager", [
        str(bins.kube / "kube-controller-manager"),
        f"--kubeconfig={cm_kc}",
        f"--authentication-kubeconfig={cm_kc}",
        f"--authorization-kubeconfig={cm_kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cm_port}",
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
    ], state=state)
    sched = procs.start("kube-scheduler", [
        str(bins.kube / "kube-scheduler"),
        f"--kubeconfig={sched_kc}",
        f"--authentication-kubeconfig={sched_kc}",
        f"--authorization-kubeconfig={sched_kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={sched_port}",
        "--leader-elect=false",
        "--kube-api-qps=300",
        "--kube-api-burst=500",
        "--profiling=false",
        "--v=1",
    ], state=state)
    stages = state / "kwok-stages.yaml"
    stages.write_text(kwok_stages.render(bins.kwok / "stages"))
    kwok = procs.start("kwok", [
        str(bins.kwok / "kwok"),
        f"--kubeconfig={kwok_kc}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        f"--server-address=127.0.0.1:{kwok_port}",
        "--node-lease-duration-seconds=40",
    ], state=state)

    procs.wait_until("kube-controller-manager /healthz", lambda: procs.http_ok(
        f"https://127.0.0.1:{cm_port}/healthz", context=procs._INSECURE), timeout=60, proc=cm)
    procs.wait_until("kube-scheduler /healthz", lambda: procs.http_ok(
        f"https://127.0.0.1:{sched_port}/healthz", context=procs._INSECURE),
        timeout=60, proc=sched)
    procs.wait_until("kwok /healthz", lambda: procs.http_ok(
        f"http://127.0.0.1:{kwok_port}/healthz"), timeout=60, proc=kwok)

    kubectl(bins.kubectl, kubeconfig, "apply", "-f", "-", stdin=json.dumps(_nodes()))
    procs.wait_until(f"{NODE_COUNT} kwok nodes Ready", lambda: _nodes_ready(bins, kubeconfig),
                     timeout=60, proc=kwok)
    # The default ServiceAccount is what lets pods be admitted in a namespace at all.
    procs.wait_until("default ServiceAccount (token controller)", lambda: bool(kubectl(
        bins.kubectl, kubeconfig, "get", "serviceaccount", "default", "-o", "name")),
        timeout=60, proc=cm)

    kubectl(bins.kubectl, kubeconfig, "apply", "--server-side", "-f", str(bins.gateway_crds))
    kubectl(bins.kubectl, kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
            "crd/httproutes.gateway.networking.k8s.io", "crd/gateways.gateway.networking.k8s.io")
    return ControlPlane(server=server, kubeconfig=kubeconfig)


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
