"""Bring the whole local stack up or down; used by ``make cluster-up`` and the pytest fixture.

``up`` builds what is missing (cached by version), starts every component on loopback, waits
for each to be really ready, and writes two files into the state directory:

* ``kubeconfig`` — admin access to the local apiserver;
* ``stack.env`` / ``stack.json`` — the same facts as shell variables and as JSON
  (KUBECONFIG, MLFLOW_TRACKING_URI, PROMETHEUS_URL, TRAFFIC_URL, KUBECTL, HELM, KSTATUS, ...).

``down`` stops exactly the processes ``up`` recorded, by pid, and nothing else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from devstack import build, kube, procs, services, versions
from devstack.paths import bin_dir, state_dir

ALL_COMPONENTS = services.COMPONENTS + kube.COMPONENTS
#: Started on top of the stack (by `make demo`); stopped with it, never required by it.
EXTRA_COMPONENTS = ("operator",)


@dataclass(frozen=True)
class StackInfo:
    """What a client of the stack needs; persisted as ``stack.json``."""

    state: str
    kubeconfig: str
    apiserver: str
    mlflow_tracking_uri: str
    prometheus_url: str
    traffic_url: str
    kubectl: str
    helm: str
    kubernetes_version: str
    started_seconds: float
    #: The kstatus tool (:func:`kstatus`); empty in a stack.json written before it existed.
    kstatus: str = ""

    def env(self) -> dict[str, str]:
        return {
            "MODELDEPLOY_STATE": self.state,
            "KUBECONFIG": self.kubeconfig,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "PROMETHEUS_URL": self.prometheus_url,
            "TRAFFIC_URL": self.traffic_url,
            "KUBECTL": self.kubectl,
            "HELM": self.helm,
            "KSTATUS": self.kstatus,
        }


def kubectl(info: StackInfo, *args: str, stdin: str | None = None) -> str:
    """Run the stack's kubectl against it; StackError (with kubectl's message) on failure."""
    return kube.kubectl(info.kubectl, info.kubeconfig, *args, stdin=stdin)


def run_kstatus(binary: Path | str, obj: Mapping[str, Any]) -> dict[str, str]:
    """What kstatus (sigs.k8s.io/cli-utils, as Flux and kpt use it) makes of one object:
    ``{"status": "Current" | "InProgress" | "Failed" | "Terminating" | ..., "message": ...}``.
    StackError with the tool's message when it refuses the object."""
    result = subprocess.run([str(binary)], input=json.dumps(obj), capture_output=True,
                            text=True, timeout=30)
    if result.returncode != 0:
        raise procs.StackError(f"kstatus failed: {result.stderr.strip()}")
    parsed = json.loads(result.stdout)
    return {"status": str(parsed["status"]), "message": str(parsed["message"])}


def kstatus(info: StackInfo, obj: Mapping[str, Any]) -> dict[str, str]:
    """:func:`run_kstatus` with the stack's own build of the tool."""
    return run_kstatus(info.kstatus or build.kstatus_binary(), obj)


CRD = Path(__file__).resolve().parent.parent / "crds" / "modeldeployment.yaml"


def install_crd(info: StackInfo) -> None:
    """The ModelDeployment CRD from crds/, applied and Established."""
    kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl(info, "wait", "--for=condition=Established", "--timeout=60s",
            "crd/modeldeployments.modeldeploy.io")


def info_path(state: Path | None = None) -> Path:
    return (state or state_dir()) / "stack.json"


def load(state: Path | None = None) -> StackInfo | None:
    path = info_path(state)
    if not path.exists():
        return None
    known = {f.name for f in fields(StackInfo)}
    recorded = json.loads(path.read_text())
    return StackInfo(**{k: v for k, v in recorded.items() if k in known})


def healthy(info: StackInfo) -> list[str]:
    """Names of the stack's processes that are not running (empty: all up)."""
    state = Path(info.state)
    return [name for name in ALL_COMPONENTS if procs.running(state, name) is None]


def up(*, state: Path | None = None, quiet: bool = False) -> StackInfo:
    state = state or state_dir()
    existing = load(state)
    if existing and not healthy(existing):
        if not quiet:
            print(f"[stack] already running (state {state})")
        return existing
    down(state=state, quiet=True)
    _fresh_state(state)
    started = time.monotonic()

    build.build_all()
    bins = kube.Binaries(
        kube=bin_dir("kube", versions.KUBERNETES),
        etcd=bin_dir("etcd", versions.ETCD),
        kwok=bin_dir("kwok", versions.KWOK),
        kubectl=bin_dir("kubectl-helm", versions.KUBECTL_LAYER_VERSION) / "kubectl",
        gateway_crds=bin_dir("gateway-api", versions.GATEWAY_API),
    )
    helm = bins.kubectl.parent / "helm"
    mlflow_venv = build.mlflow_venv_dir()
    prometheus_bin = build.prometheus()

    try:
        # MLflow takes ~12 s to boot; let it do so while the control plane comes up.
        mlflow: dict[str, services.Endpoint] = {}
        errors: list[BaseException] = []

        def _mlflow() -> None:
            try:
                mlflow["ep"] = services.start_mlflow(mlflow_venv, state=state)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        thread = threading.Thread(target=_mlflow, daemon=True)
        thread.start()
        cp = kube.start(bins, state=state)
        _say(quiet, f"control plane ready at {cp.server} ({time.monotonic() - started:.1f}s)")
        traffic = services.start_traffic(state=state, kubeconfig=cp.kubeconfig)
        prom = services.start_prometheus(
            prometheus_bin, state=state,
            targets={"traffic": traffic.url.removeprefix("http://")},
        )
        thread.join()
        if errors:
            raise errors[0]
    except BaseException:
        down(state=state, quiet=True)
        raise

    info = StackInfo(
        state=str(state),
        kubeconfig=str(cp.kubeconfig),
        apiserver=cp.server,
        mlflow_tracking_uri=mlflow["ep"].url,
        prometheus_url=prom.url,
        traffic_url=traffic.url,
        kubectl=str(bins.kubectl),
        helm=str(helm),
        kubernetes_version=versions.KUBERNETES,
        started_seconds=round(time.monotonic() - started, 1),
        kstatus=str(build.kstatus_binary()),
    )
    info_path(state).write_text(json.dumps(asdict(info), indent=2))
    (state / "stack.env").write_text(
        "".join(f"export {k}={v}\n" for k, v in info.env().items())
        + f"export PATH={bins.kubectl.parent}:$PATH\n"
    )
    _say(quiet, f"stack ready in {info.started_seconds}s; env: {state / 'stack.env'}")
    return info


def down(*, state: Path | None = None, quiet: bool = False) -> list[str]:
    """Stop what ``up`` started (recorded pids only), newest first."""
    state = state or state_dir()
    stopped = [name for name in EXTRA_COMPONENTS + ALL_COMPONENTS if procs.stop(state, name)]
    info_path(state).unlink(missing_ok=True)
    if stopped:
        _say(quiet, f"stopped: {', '.join(stopped)}")
    return stopped


def _fresh_state(state: Path) -> None:
    """Each ``up`` starts from empty data (etcd, MLflow, Prometheus); the PKI is kept."""
    state.mkdir(parents=True, exist_ok=True)
    for sub in ("etcd", "mlflow", "prometheus", "logs"):
        shutil.rmtree(state / sub, ignore_errors=True)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"[stack] {message}", flush=True)
