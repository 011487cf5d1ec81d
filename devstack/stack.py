"""Bring the whole local stack up or down; used by ``make cluster-up`` and the pytest fixture.

``up`` builds what is missing (cached by version), starts every component on loopback, waits
for each to be really ready, and writes two files into the state directory:

* ``kubeconfig`` — admin access to the local apiserver;
* ``stack.env`` / ``stack.json`` — the same facts as shell variables and as JSON
  (KUBECONFIG, MLFLOW_TRACKING_URI, PROMETHEUS_URL, TRAFFIC_URL, SCORING_URL,
  SERVICE_URL_TEMPLATE, KUBECTL, HELM, KSTATUS, ...).

On a running stack ``up`` changes nothing, except to bring it up to this checkout
(:func:`refresh`): CRDs added to bring-up since it started are installed, and a traffic exporter
or scoring gateway running older code is restarted. If some of its processes died, it starts
just those again, on the same ports and the data they left (etcd, MLflow's sqlite, Prometheus'
TSDB); only when that fails does it say so and start the whole stack over from empty data.

``down`` stops exactly the processes ``up`` recorded, by pid, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    #: The service gateway in front of the model servers (:mod:`devstack.scoring`); empty in a
    #: stack.json written before it existed.
    scoring_url: str = ""

    @property
    def service_url_template(self) -> str:
        """How a version's Service is reached here (the operator's
        MODELDEPLOY_SERVICE_URL_TEMPLATE; in a cluster ``http://{service}.{namespace}.svc:{port}``)."""
        return f"{self.scoring_url}/{{namespace}}/{{service}}" if self.scoring_url else ""

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
            "SCORING_URL": self.scoring_url,
            "SERVICE_URL_TEMPLATE": self.service_url_template,
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
    kube.wait_established(info.kubectl, info.kubeconfig, "modeldeployments.modeldeploy.io")


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
    return [name for name in ALL_COMPONENTS if not _running(state, name)]


def _running(state: Path, name: str) -> bool:
    """Alive and not a zombie: a killed process stays one until init reaps it (here that
    takes a second or two), and must already count as dead."""
    pid = procs.running(state, name)
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def up(*, state: Path | None = None, quiet: bool = False) -> StackInfo:
    """The stack, running: as it was, with its dead components restarted, or started anew."""
    state = state or state_dir()
    existing = load(state)
    if existing is not None:
        dead = healthy(existing)
        if not dead:
            _say(quiet, f"already running (state {state})")
            return refresh(replace(existing, kstatus=str(build.build_kstatus() / "kstatus")),
                           quiet=quiet)
        revived = _revive(existing, dead, quiet=quiet)
        if revived is not None:
            return refresh(revived, quiet=quiet)
    down(state=state, quiet=True)
    _fresh_state(state)
    return _start(state, quiet=quiet)


def refresh(info: StackInfo, *, quiet: bool = True) -> StackInfo:
    """A running stack, brought up to this checkout's devstack; cheap when it already is.

    * Istio's CRDs, installed (idempotent server-side apply): a stack started before they
      were part of bring-up lacks them.
    * The traffic exporter and the scoring gateway, each restarted on its port if it runs
      other code than this checkout's (the digest of its source is recorded at start). The
      restart forgets the behaviours and rates tests had set (traffic) or restarts the model
      servers (scoring), so it happens only when the code really changed.
    """
    kube.install_istio_crds(info.kubectl, info.kubeconfig, build.fetch_istio_crds()
                            / build.ISTIO_CRDS)
    state = Path(info.state)
    for name in SOURCES:
        if _recorded_source(state, name) != source_digest(name):
            _say(quiet, f"{name} runs older code; restarting it on its port")
            procs.stop(state, name)
            info = _restart_service(info, name)
    return _publish(info)


#: The modules each of these processes runs: :func:`refresh` restarts it when they change.
SOURCES = {"traffic": ("traffic.py", "traffic_routes.py"),
           "scoring": ("scoring.py", "scoring_services.py", "procs.py", "ports.py")}
TRAFFIC_SOURCES = SOURCES["traffic"]


def source_digest(name: str) -> str:
    """Digest of component ``name``'s code in this checkout."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for module in SOURCES[name]:
        h.update((here / module).read_bytes())
    return h.hexdigest()[:16]


def traffic_digest() -> str:
    """Digest of the traffic exporter's code in this checkout."""
    return source_digest("traffic")


def _source_path(state: Path, name: str) -> Path:
    return state / f"{name}.source"


def _recorded_source(state: Path, name: str) -> str:
    path = _source_path(state, name)
    return path.read_text().strip() if path.exists() else ""


def _start_traffic(state: Path, kubeconfig: Path, port: int | None = None) -> services.Endpoint:
    digest = traffic_digest()  # before the start: the code the process is about to import
    endpoint = services.start_traffic(state=state, kubeconfig=kubeconfig, port=port)
    _source_path(state, "traffic").write_text(digest + "\n")
    return endpoint


def _start_scoring(state: Path, kubeconfig: Path, tracking_uri: str,
                   port: int | None = None) -> services.Endpoint:
    digest = source_digest("scoring")
    endpoint = services.start_scoring(state=state, kubeconfig=kubeconfig,
                                      venv=build.mlflow_venv(), tracking_uri=tracking_uri,
                                      port=port)
    _source_path(state, "scoring").write_text(digest + "\n")
    return endpoint


def _binaries() -> kube.Binaries:
    return kube.Binaries(
        kube=bin_dir("kube", versions.KUBERNETES),
        etcd=bin_dir("etcd", versions.ETCD),
        kwok=bin_dir("kwok", versions.KWOK),
        kubectl=bin_dir("kubectl-helm", versions.KUBECTL_LAYER_VERSION) / "kubectl",
        gateway_crds=bin_dir("gateway-api", versions.GATEWAY_API),
        istio_crds=build.istio_crds(),
    )


def _prometheus_targets(traffic_url: str) -> dict[str, str]:
    return {"traffic": traffic_url.removeprefix("http://")}


def _start(state: Path, *, quiet: bool) -> StackInfo:
    """Every component, from the (empty) data in ``state``."""
    started = time.monotonic()
    build.build_all()
    bins = _binaries()
    prometheus_bin = build.prometheus()
    try:
        # MLflow takes ~12 s to boot; let it do so while the control plane comes up.
        mlflow = _in_background(lambda: services.start_mlflow(build.mlflow_venv_dir(),
                                                              state=state))
        cp = kube.start(bins, state=state)
        _say(quiet, f"control plane ready at {cp.server} ({time.monotonic() - started:.1f}s)")
        traffic = _start_traffic(state, cp.kubeconfig)
        prom = services.start_prometheus(prometheus_bin, state=state,
                                         targets=_prometheus_targets(traffic.url))
        mlflow_url = mlflow().url
        scoring = _start_scoring(state, cp.kubeconfig, mlflow_url)
    except BaseException:
        down(state=state, quiet=True)
        raise
    info = _publish(StackInfo(
        state=str(state),
        kubeconfig=str(cp.kubeconfig),
        apiserver=cp.server,
        mlflow_tracking_uri=mlflow_url,
        prometheus_url=prom.url,
        traffic_url=traffic.url,
        kubectl=str(bins.kubectl),
        helm=str(bins.kubectl.parent / "helm"),
        kubernetes_version=versions.KUBERNETES,
        started_seconds=round(time.monotonic() - started, 1),
        kstatus=str(build.kstatus_binary()),
        scoring_url=scoring.url,
    ))
    _say(quiet, f"stack ready in {info.started_seconds}s; env: {state / 'stack.env'}")
    return info


def _in_background(start: Callable[[], services.Endpoint]) -> Callable[[], services.Endpoint]:
    """Run ``start`` in a thread; the returned function joins it and returns (or raises)."""
    outcome: list[services.Endpoint | BaseException] = []

    def run() -> None:
        try:
            outcome.append(start())
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> services.Endpoint:
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return join


def _publish(info: StackInfo) -> StackInfo:
    """Write ``stack.json`` and ``stack.env`` for ``info``."""
    state = Path(info.state)
    info_path(state).write_text(json.dumps(asdict(info), indent=2))
    (state / "stack.env").write_text(
        "".join(f"export {k}={v}\n" for k, v in info.env().items())
        + f"export PATH={Path(info.kubectl).parent}:$PATH\n"
    )
    return info


def _revive(info: StackInfo, dead: Sequence[str], *, quiet: bool) -> StackInfo | None:
    """Restart only the ``dead`` components, on their ports and data; None when that failed
    (what is left running then is stopped by the caller, which starts over)."""
    started = time.monotonic()
    _say(quiet, f"not running: {', '.join(dead)}; starting them again on their ports, "
                "with the data they left")
    try:
        build.build_all()
        restarted, info = _restart(info, dead)
    except procs.StackError as exc:
        print(f"[stack] could not restart {', '.join(dead)} in place: {exc}\n"
              "[stack] restarting the whole stack from empty data", file=sys.stderr, flush=True)
        return None
    _say(quiet, f"restarted {', '.join(restarted)} in {time.monotonic() - started:.1f}s "
                "(same ports, data kept)")
    return _publish(replace(info, kstatus=str(build.kstatus_binary())))


def _restart(info: StackInfo, dead: Sequence[str]) -> tuple[list[str], StackInfo]:
    """Control plane first (traffic needs the apiserver), then the services; the names
    restarted, in that order, and the info with their URLs."""
    state = Path(info.state)
    plane = [n for n in reversed(kube.COMPONENTS) if n in dead]
    if plane:
        kube.restart(_binaries(), state=state, names=plane)
    rest = [n for n in reversed(services.COMPONENTS) if n in dead]
    for name in rest:
        procs.stop(state, name)  # sweeps children the dead leader left (MLflow's workers)
        info = _restart_service(info, name)
    return plane + rest, info


def _restart_service(info: StackInfo, name: str) -> StackInfo:
    """Start service ``name`` again on its port; a gateway a stack started before it existed
    gets a new one."""
    endpoint = _SERVICE_RESTARTS[name](info)
    return replace(info, scoring_url=endpoint.url) if name == "scoring" else info


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _restart_mlflow(info: StackInfo) -> services.Endpoint:
    return services.start_mlflow(build.mlflow_venv(), state=Path(info.state),
                                 port=_port(info.mlflow_tracking_uri))


def _restart_traffic(info: StackInfo) -> services.Endpoint:
    return _start_traffic(Path(info.state), Path(info.kubeconfig), _port(info.traffic_url))


def _restart_scoring(info: StackInfo) -> services.Endpoint:
    return _start_scoring(Path(info.state), Path(info.kubeconfig), info.mlflow_tracking_uri,
                          _port(info.scoring_url) if info.scoring_url else None)


def _restart_prometheus(info: StackInfo) -> services.Endpoint:
    return services.start_prometheus(build.prometheus(), state=Path(info.state),
                                     targets=_prometheus_targets(info.traffic_url),
                                     port=_port(info.prometheus_url))


_SERVICE_RESTARTS: dict[str, Callable[[StackInfo], services.Endpoint]] = {
    "mlflow": _restart_mlflow,
    "traffic": _restart_traffic,
    "prometheus": _restart_prometheus,
    "scoring": _restart_scoring,
}


def down(*, state: Path | None = None, quiet: bool = False) -> list[str]:
    """Stop what ``up`` started (recorded pids only), newest first."""
    state = state or state_dir()
    stopped = [name for name in EXTRA_COMPONENTS + ALL_COMPONENTS if procs.stop(state, name)]
    # The scoring component stops its model servers; these are any a killed one left.
    for pidfile in sorted((state / "pids").glob("scoring-*.pid")):
        procs.stop(state, pidfile.stem, timeout=5)
    info_path(state).unlink(missing_ok=True)
    if stopped:
        _say(quiet, f"stopped: {', '.join(stopped)}")
    return stopped


def _fresh_state(state: Path) -> None:
    """A new stack starts from empty data (etcd, MLflow, Prometheus); the PKI is kept."""
    state.mkdir(parents=True, exist_ok=True)
    for sub in ("etcd", "mlflow", "prometheus", "logs"):
        shutil.rmtree(state / sub, ignore_errors=True)


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"[stack] {message}", flush=True)
