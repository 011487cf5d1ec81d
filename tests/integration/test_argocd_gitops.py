"""GitOps with a real Argo CD: its application controller, repo server and API server (built
from the argo-cd Go module, see devstack/argocd.py) sync a ModelDeployment from a git
repository served on loopback, and read its health with this repository's health check and
actions, installed in argocd-cm as a user installs them.

A release is a commit that pins the next model version. Argo CD must report the Application
Healthy once the ModelDeployment is Stable, Progressing during the canary, Suspended at a
human step, Degraded after a rollback, and Synced throughout: the operator's writes (status,
bookkeeping) and the actions' request annotations must never make it OutOfSync. Actions run
through Argo CD's API server with the ``argocd`` CLI, which runs Argo CD's own action code.

If Argo CD does not start, the test errors with the component's log: it never skips."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack import argocd as argo
from devstack.seed import seed_model
from devstack.stack import StackInfo
from devstack.stackclient import Traffic
from modeldeploy.api import API_VERSION, KIND
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import ANALYSIS, GATEWAY, canary_spec, release
from tests.support.mdep import get, serving, wait_status
from tests.support.routewatch import MODELDEPLOYMENTS, ObjectWatch
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

APPLICATIONS = ("argoproj.io", "v1alpha1", "applications")
#: (sync status, compared revision, health, operation phase, operation's revision)
AppState = tuple[str | None, str | None, str | None, str | None, str | None]
#: (version, release state or phase)
MdepState = tuple[str | None, str | None]


@pytest.fixture(scope="module")
def argocd(stack: StackInfo, crd: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[argo.ArgoCD]:
    """Argo CD's processes for this module; a failed start errors every test here."""
    proc = argo.ArgoCD(stack=stack, state=tmp_path_factory.mktemp("argocd"))
    try:
        started = time.monotonic()
        proc.start()
        print(f"\nArgo CD up in {time.monotonic() - started:.1f}s")
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def git_server(argocd: argo.ArgoCD) -> Iterator[argo.GitServer]:
    server = argo.GitServer(state=argocd.state, root=argocd.state / "git").start()
    try:
        yield server
    finally:
        server.stop()


def app_state(obj: dict[str, Any] | None) -> AppState:
    st = (obj or {}).get("status") or {}
    sync, op = st.get("sync") or {}, st.get("operationState") or {}
    return (sync.get("status"), sync.get("revision"), (st.get("health") or {}).get("status"),
            op.get("phase"), (op.get("syncResult") or {}).get("revision"))


def drifts(seen: list[tuple[float, AppState]]) -> list[AppState]:
    """OutOfSync at a revision Argo CD had already reported Synced: the live object drifted
    from git with git unchanged, i.e. someone other than git (the operator) changed it.
    OutOfSync at a new commit until it is synced is GitOps working, not drift."""
    synced: set[str] = set()
    out = []
    for _, state in seen:
        sync, revision = state[0], state[1]
        if sync == "Synced" and revision:
            synced.add(revision)
        elif sync == "OutOfSync" and revision in synced:
            out.append(state)
    return out


def mdep_state(obj: dict[str, Any] | None) -> MdepState:
    """(version of the release in flight or the stable one, its state or the phase)."""
    st = (obj or {}).get("status") or {}
    rel = release(st)
    if rel:
        return rel.get("version"), rel.get("state")
    return (st.get("stable") or {}).get("version"), st.get("phase")


def health_while(app: list[tuple[float, AppState]],
                 mdep: list[tuple[float, MdepState]]) -> set[tuple[str | None, MdepState]]:
    """Every (Application health, ModelDeployment state) pair that held at once, from the two
    independent watches merged in time order."""
    events = sorted([(t, a, None) for t, a in app] + [(t, None, m) for t, m in mdep],
                    key=lambda e: e[0])
    health: str | None = None
    state: MdepState = (None, None)
    pairs = set()
    for _, a, m in events:
        if a is not None:
            health = a[2]
        if m is not None:
            state = m
        pairs.add((health, state))
    return pairs


class Release:
    """The git repository an Application syncs, and what Argo CD makes of each commit."""

    def __init__(self, argocd: argo.ArgoCD, git: argo.GitServer, custom: client.CustomObjectsApi,
                 namespace: str, model: str) -> None:
        self.argocd, self.custom, self.namespace, self.model = argocd, custom, namespace, model
        self.app = namespace
        self.repo = git.repo(namespace)
        self.url = git.url(namespace)

    def commit(self, version: str, steps: list[dict[str, Any]]) -> str:
        spec = canary_spec(self.model, steps=steps, analysis=ANALYSIS, traffic=GATEWAY)
        spec["model"] = {"name": self.model, "version": version, "pollInterval": "5s"}
        doc = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "scorer"},
               "spec": spec}
        return self.repo.commit({"scorer/modeldeployment.yaml": yaml.safe_dump(doc)},
                                f"scorer: model version {version}")

    def application(self) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(
            *APPLICATIONS[:2], argo.NAMESPACE, APPLICATIONS[2], self.app))

    def wait_app(self, *, revision: str, health: str, timeout: float = 60) -> AppState:
        """Until Argo CD reports ``revision`` synced (by its own sync operation) with
        ``health``."""
        def check() -> AppState | None:
            state = app_state(self.application())
            return state if state == ("Synced", revision, health, "Succeeded", revision) \
                else None
        return eventually(check, timeout=timeout, interval=0.2,
                          what=f"Application Synced at {revision[:8]} and {health}")

    def action(self, name: str) -> str:
        return self.argocd.cli("app", "actions", "run", self.app, name, "--kind", KIND,
                               "--group", "modeldeploy.io", "--resource-name", "scorer",
                               "--namespace", self.namespace)

    def enabled_actions(self) -> set[str]:
        out = self.argocd.cli("app", "actions", "list", self.app, "--kind", KIND,
                              "--group", "modeldeploy.io", "-o", "json")
        return {a["Action"] for a in json.loads(out) if not a["Disabled"]}


def test_argo_cd_syncs_a_model_deployment_from_git_and_reports_each_release_state(
    stack: StackInfo, argocd: argo.ArgoCD, git_server: argo.GitServer,
    api: client.ApiClient, custom: client.CustomObjectsApi, kubectl: Kubectl,
    namespace: str, traffic: Traffic,
) -> None:
    model = f"gitops-{namespace}"
    for i in range(4):  # versions 1..4
        seed_model(stack, name=model, bias=float(i))
    rel = Release(argocd, git_server, custom, namespace, model)
    rev1 = rel.commit("1", [{"weight": 30, "pause": "2s"}])
    watch = ObjectWatch(api, argo.NAMESPACE, APPLICATIONS, rel.app, app_state).start()
    live = ObjectWatch(api, namespace, MODELDEPLOYMENTS, "scorer", mdep_state).start()
    custom.create_namespaced_custom_object(*APPLICATIONS[:2], argo.NAMESPACE, APPLICATIONS[2],
                                           argo.application(rel.app, repo_url=rel.url,
                                                            path="scorer", namespace=namespace))
    try:
        rev4 = _releases(rel, argocd, custom, namespace, traffic, rev1)
        # Argo CD saw each release state for what it is, while it lasted.
        pairs = health_while(watch.seen, live.seen)
        assert ("Progressing", ("2", "Stepping")) in pairs, pairs
        assert ("Suspended", ("3", "Paused")) in pairs, pairs
        assert ("Degraded", ("3", "Aborted")) in pairs, pairs
        assert ("Degraded", ("4", "Aborted")) in pairs, pairs
        # Synced throughout: the operator's writes and the action never made it OutOfSync.
        assert not drifts(watch.seen), f"OutOfSync with git unchanged: {drifts(watch.seen)}"

        # The control: a change to the spec that is not in git is drift, and is seen as such.
        kubectl("patch", "mdep", "scorer", "--type=merge",
                "-p", '{"spec": {"model": {"pollInterval": "7s"}}}')
        eventually(lambda: app_state(rel.application())[:2] == ("OutOfSync", rev4),
                   timeout=30, what="a live spec edit reported OutOfSync")
        assert drifts(watch.seen)
    except BaseException:
        print("Application seen:", *watch.seen, "ModelDeployment seen:", *live.seen,
              sep="\n  ")
        for name in argo.ArgoCD.COMPONENTS[1:]:
            print(f"--- {name}\n{argocd.logs(name)}")
        raise
    finally:
        watch.stop()
        live.stop()
        custom.delete_namespaced_custom_object(*APPLICATIONS[:2], argo.NAMESPACE,
                                               APPLICATIONS[2], rel.app)


def _releases(rel: Release, argocd: argo.ArgoCD, custom: client.CustomObjectsApi,
              namespace: str, traffic: Traffic, rev1: str) -> str:
    """Four commits, four versions; returns the last commit."""
    # The first sync creates the object; Healthy once the operator serves version 1.
    rel.wait_app(revision=rev1, health="Healthy")
    assert serving("1")(get(custom, namespace, "scorer")["status"])

    # A commit pins version 2: a canary (Progressing), promoted (Healthy again).
    rev2 = rel.commit("2", [{"weight": 30, "pause": "3s"}])
    argocd.refresh(rel.app)
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("state") == "Stepping",
                what="version 2 canary stepping")
    rel.wait_app(revision=rev2, health="Healthy")
    assert serving("2")(get(custom, namespace, "scorer")["status"])

    # Version 3 waits at a human step (Suspended). Through Argo CD: abort rolls it back
    # (Degraded), retry releases it again, promote finishes it (Healthy).
    rev3 = rel.commit("3", [{"weight": 30, "pause": ""}])
    argocd.refresh(rel.app)

    def paused(s: dict[str, Any]) -> bool:
        return release(s).get("version") == "3" and release(s).get("state") == "Paused"

    wait_status(custom, namespace, "scorer", paused, what="version 3 paused at the human step")
    rel.wait_app(revision=rev3, health="Suspended")
    assert rel.enabled_actions() == {"promote", "abort", "resume"}
    rel.action("abort")
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("state") == "Aborted",
                what="version 3 aborted by Argo CD's action")
    rel.wait_app(revision=rev3, health="Degraded")
    assert rel.enabled_actions() == {"retry"}
    rel.action("retry")
    wait_status(custom, namespace, "scorer", paused, what="version 3 retried by the action")
    rel.wait_app(revision=rev3, health="Suspended")
    rel.action("promote")
    wait_status(custom, namespace, "scorer", serving("3"), what="promoted by Argo CD's action")
    rel.wait_app(revision=rev3, health="Healthy")
    live = get(custom, namespace, "scorer")
    assert live["metadata"]["annotations"]["modeldeploy.io/request"].startswith("promote:")
    assert live["status"]["lastRequest"]["action"] == "promote"
    outcomes = [(h["version"], h["outcome"]) for h in live["status"]["history"][:3]]
    assert outcomes == [("3", "Promoted"), ("2", "Replaced"), ("3", "Retried")], outcomes

    # Version 4 fails its analysis: rolled back, Degraded; still Synced (git did not change).
    traffic.behaviour(namespace=namespace, model=rel.model, version="4", error_rate=0.2)
    rev4 = rel.commit("4", [{"weight": 30, "pause": "60s"}])
    argocd.refresh(rel.app)
    st = wait_status(custom, namespace, "scorer", lambda s: release(s).get("state") == "Aborted",
                     timeout=60, what="version 4 rolled back")
    assert st["stable"]["version"] == "3" and release(st)["reason"] == "AnalysisFailed"
    rel.wait_app(revision=rev4, health="Degraded")
    assert rel.enabled_actions() == {"retry"}
    return rev4
