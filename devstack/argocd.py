"""Real Argo CD beside the local stack: its application controller, repo server and API server
as processes (the binary ``devstack.build.build_argocd`` compiles from the Go module), Debian's
redis as their cache, and ``git daemon`` serving a repository on loopback.

In a cluster Argo CD runs inside the cluster it manages. Here each component runs as a plain
process, the way Argo CD's own ``Procfile`` runs them for development: with
``ARGOCD_FAKE_IN_CLUSTER=true`` the in-cluster destination (``https://kubernetes.default.svc``)
is the cluster of the kubeconfig. Settings are what Argo CD reads from its namespace: ``argocd-cm``
with this repository's health check and actions (``argocd/argocd-cm.yaml``, as a user installs
them), ``argocd-rbac-cm``, ``argocd-secret`` (server key and an admin password we choose), and
the ``default`` AppProject.

Everything listens on 127.0.0.1, except the application controller's metrics server: Argo CD
binds it to ``0.0.0.0`` (hard-coded in ``controller/appcontroller.go``); it gets a free port and
is only ever contacted on 127.0.0.1. Every process is started with :mod:`devstack.procs` and
stopped by the pid it recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack import build, kube, procs
from devstack.ports import free_port
from devstack.stack import StackInfo, kubectl

NAMESPACE = "argocd"
REPO = Path(__file__).resolve().parent.parent
#: The snippet users merge into their argocd-cm (generated from resource_customizations/).
ARGOCD_CM = REPO / "argocd" / "argocd-cm.yaml"
#: Argo CD's informers only see settings objects with this label.
PART_OF = {"app.kubernetes.io/part-of": "argocd"}
ADMIN = "admin"


def _ping_redis(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


@dataclass
class GitServer:
    """``git daemon`` on 127.0.0.1 exporting every repository under ``root`` (read-only)."""

    state: Path
    root: Path
    port: int = field(default_factory=free_port)
    proc: procs.Proc | None = None

    def start(self) -> GitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start("argocd-git", [
            "git", "daemon", "--listen=127.0.0.1", f"--port={self.port}", "--reuseaddr",
            "--export-all", "--informative-errors", f"--base-path={self.root}", str(self.root),
        ], state=self.state)
        procs.wait_until("git daemon", self._listening, timeout=15, proc=self.proc)
        return self

    def _listening(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def repo(self, name: str) -> GitRepo:
        """A new (emptied) repository ``name`` with a ``main`` branch, served at :meth:`url`."""
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        repo = GitRepo(path)
        repo.git("init", "--quiet", "--initial-branch=main")
        return repo

    def stop(self) -> None:
        procs.stop(self.state, "argocd-git")


@dataclass
class GitRepo:
    """A working repository that tests commit manifests into, as a person would."""

    path: Path

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "GIT_AUTHOR_NAME": "modeldeploy tests", "GIT_AUTHOR_EMAIL": "tests@modeldeploy.io",
               "GIT_COMMITTER_NAME": "modeldeploy tests",
               "GIT_COMMITTER_EMAIL": "tests@modeldeploy.io"}
        out = subprocess.run(["git", "-C", str(self.path), *args], env=env, capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise procs.StackError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def commit(self, files: Mapping[str, str], message: str) -> str:
        """Write ``files`` (path -> text), commit them on main; the new commit's sha."""
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@dataclass
class ArgoCD:
    """Argo CD's controller, repo server and API server, with redis, against one stack."""

    stack: StackInfo
    state: Path
    redis_port: int = field(default_factory=free_port)
    repo_port: int = field(default_factory=free_port)
    repo_metrics_port: int = field(default_factory=free_port)
    controller_metrics_port: int = field(default_factory=free_port)
    server_port: int = field(default_factory=free_port)
    server_metrics_port: int = field(default_factory=free_port)
    #: Seconds between the controller's periodic comparisons with git (Argo CD's default is
    #: 120 s plus jitter; tests force a refresh after each commit instead of waiting).
    app_resync: int = 30
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    binary: Path = field(default_factory=lambda: build.argocd_binary())

    #: The processes, in start order (stopped in reverse).
    COMPONENTS = ("argocd-redis", "argocd-repo-server", "argocd-application-controller",
                  "argocd-server")

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.server_port}"

    def env(self) -> dict[str, str]:
        data = self.state / "argocd"
        for sub in ("tls", "ssh", "gnupg", "gpg-source", "plugins", "tmp"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        return {
            **procs.host_env(),
            "KUBECONFIG": self.stack.kubeconfig,
            # The repo server runs git: this user's ~/.gitconfig (url rewrites, hooks) is not
            # what a pod of Argo CD's has.
            "GIT_CONFIG_GLOBAL": os.devnull,
            # The in-cluster destination is the kubeconfig's cluster (as in Argo CD's Procfile).
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_CONTROLLER_REPLICAS": "1",
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_GNUPGHOME": str(data / "gnupg"),
            "ARGOCD_GPG_DATA_PATH": str(data / "gpg-source"),
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_PLUGINSOCKFILEPATH": str(data / "plugins"),
            "ARGOCD_ASK_PASS_SOCK": str(data / "askpass.sock"),
            # The repo server checks repositories out under $TMPDIR/_argocd-repo.
            "TMPDIR": str(data / "tmp"),
            # git's askpass helper is the argocd binary itself, and the repo server runs
            # git-verify-wrapper.sh on each commit: both found on PATH, as in Argo CD's image.
            "PATH": os.pathsep.join((str(self.binary.parent), str(build.argocd_files() / "bin"),
                                     os.environ.get("PATH", ""))),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    # -- settings -------------------------------------------------------------------------

    def settings(self) -> list[dict[str, Any]]:
        """The objects Argo CD reads in its namespace."""
        cm = yaml.safe_load(ARGOCD_CM.read_text())
        meta = {"namespace": NAMESPACE, "labels": PART_OF}
        bcrypt = self.cli_raw("account", "bcrypt", "--password", self.password).strip()
        return [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "argocd-cm", **meta},
             "data": {**cm["data"], "admin.enabled": "true"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "argocd-rbac-cm", **meta}, "data": {}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "argocd-cmd-params-cm", **meta}, "data": {}},
            *({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
               "data": {}} for name in ("argocd-ssh-known-hosts-cm", "argocd-tls-certs-cm",
                                        "argocd-gpg-keys-cm")),
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "argocd-secret", **meta},
             "stringData": {"server.secretkey": secrets.token_urlsafe(32),
                            "admin.password": bcrypt,
                            "admin.passwordMtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}},
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
             "metadata": {"name": "default", "namespace": NAMESPACE},
             "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                      "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
        ]

    def install(self) -> None:
        """Namespace, Argo CD's CRDs (from the Go module) and its settings objects."""
        crds = build.fetch_argocd_files() / "crds"
        kubectl(self.stack, "apply", "--server-side", "--force-conflicts",
                "--field-manager=devstack-argocd",
                *(a for c in build.ARGOCD_CRDS for a in ("-f", str(crds / c))))
        kube.wait_established(self.stack.kubectl, self.stack.kubeconfig,
                              *(f"{kind}.argoproj.io"
                                for kind in ("applications", "appprojects", "applicationsets")))
        kubectl(self.stack, "apply", "--server-side", "--force-conflicts",
                "--field-manager=devstack-argocd", "-f", "-", stdin=json.dumps(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        docs = self.settings()
        kubectl(self.stack, "apply", "--server-side", "--force-conflicts",
                "--field-manager=devstack-argocd", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    # -- processes ------------------------------------------------------------------------

    def _start(self, name: str, args: list[str]) -> procs.Proc:
        """Start Argo CD component ``name``: the binary dispatches on the name it runs as,
        and the symlinks next to it carry those names."""
        return procs.start(name, [str(self.binary.parent / name), *args], state=self.state,
                           env=self.env())

    def start(self) -> ArgoCD:
        if build.build_argocd() != self.binary.parent:  # cached: returns at once
            raise procs.StackError(f"Argo CD is not at {self.binary}")
        self.install()
        redis_dir = self.state / "argocd" / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis = procs.start("argocd-redis", [
            str(build.redis_server()), "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--save", "", "--appendonly", "no", "--dir", str(redis_dir)], state=self.state)
        procs.wait_until("argocd redis", lambda: _ping_redis(self.redis_port), timeout=15,
                         proc=redis)
        redis_addr = f"127.0.0.1:{self.redis_port}"
        repo_addr = f"127.0.0.1:{self.repo_port}"
        common = ["--loglevel", "info", "--logformat", "text", "--redis", redis_addr]
        repo = self._start("argocd-repo-server", [
            *common, "--address", "127.0.0.1", "--port", str(self.repo_port),
            "--metrics-address", "127.0.0.1", "--metrics-port", str(self.repo_metrics_port),
            "--disable-tls", "--client-ca-path", ""])
        controller = self._start("argocd-application-controller", [
            *common, "--kubeconfig", self.stack.kubeconfig, "--namespace", NAMESPACE,
            "--repo-server", repo_addr, "--repo-server-plaintext",
            # No commit server runs (the source hydrator is off); never a name to resolve.
            "--commit-server", "127.0.0.1:1",
            "--metrics-port", str(self.controller_metrics_port),
            "--app-resync", str(self.app_resync), "--status-processors", "4",
            "--operation-processors", "2"])
        static = self.state / "argocd" / "static"
        static.mkdir(parents=True, exist_ok=True)
        server = self._start("argocd-server", [
            *common, "--kubeconfig", self.stack.kubeconfig, "--namespace", NAMESPACE,
            "--address", "127.0.0.1", "--port", str(self.server_port),
            "--metrics-address", "127.0.0.1", "--metrics-port", str(self.server_metrics_port),
            "--insecure", "--repo-server", repo_addr, "--repo-server-plaintext",
            "--dex-server", "http://127.0.0.1:1", "--staticassets", str(static)])
        procs.wait_until("argocd repo server", lambda: procs.http_ok(
            f"http://127.0.0.1:{self.repo_metrics_port}/healthz"), timeout=60, proc=repo)
        procs.wait_until("argocd application controller", lambda: procs.http_ok(
            f"http://127.0.0.1:{self.controller_metrics_port}/healthz"), timeout=60,
            proc=controller)
        procs.wait_until("argocd server", lambda: procs.http_ok(
            f"http://{self.server}/healthz"), timeout=60, proc=server)
        self.cli("login", self.server, "--username", ADMIN, "--password", self.password)
        return self

    def stop(self) -> None:
        for name in reversed(self.COMPONENTS):
            procs.stop(self.state, name)

    def logs(self, name: str, lines: int = 40) -> str:
        return procs.log_tail(self.state / "logs" / f"{name}.log", lines)

    # -- the CLI --------------------------------------------------------------------------

    def cli_raw(self, *args: str) -> str:
        """The ``argocd`` CLI, as is; StackError with its message on failure."""
        out = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                             timeout=60, env=self.env())
        if out.returncode != 0:
            raise procs.StackError(f"argocd {' '.join(args)} failed: "
                                   f"{(out.stderr or out.stdout).strip()}")
        return out.stdout

    def cli(self, *args: str) -> str:
        """The ``argocd`` CLI against this API server, logged in as admin."""
        return self.cli_raw(*args, "--server", self.server, "--plaintext",
                            "--config", str(self.state / "argocd" / "cli-config"))

    # -- Applications ---------------------------------------------------------------------

    def refresh(self, app: str, kind: str = "hard") -> None:
        """What a git webhook does: compare with git now (``hard``: regenerate manifests)."""
        kubectl(self.stack, "-n", NAMESPACE, "annotate", "application", app,
                f"argocd.argoproj.io/refresh={kind}", "--overwrite")


def application(name: str, *, repo_url: str, path: str, namespace: str,
                automated: bool = True) -> dict[str, Any]:
    """An Application syncing directory ``path`` of ``repo_url`` (branch main) into
    ``namespace`` of the cluster Argo CD runs in."""
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": repo_url, "path": path, "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
    }
    if automated:
        # No self-heal: a drift must stay visible as OutOfSync, not be repaired quietly.
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": False}}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
