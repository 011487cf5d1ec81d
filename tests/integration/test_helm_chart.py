"""The Helm chart against the real apiserver: lint, least-privilege RBAC (rendered, and as
`kubectl auth can-i` sees it), Pod Security `restricted` enforced by the apiserver, and the
operator running as the chart's ServiceAccount (a TokenRequest token) through a canary, a
namespaced install and a `helm upgrade` that changes nothing that serves.

The chart's own pods are kwok pods (no image runs here): the operator process under test runs
from the local source, authenticated as the ServiceAccount the chart created.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import build, kube
from devstack.operator_process import OperatorProcess
from devstack.seed import seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl, stand_in
from tests.integration.test_canary import ANALYSIS, GATEWAY, _good_canary
from tests.integration.test_modeldeployment import spec
from tests.support.helm import CHART, Helm, pods_of, rules, token_kubeconfig
from tests.support.mdep import get, manifest, serving, wait_status
from tests.support.routewatch import RouteWatch
from tests.support.scrape import parse, total
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

SA = "{release}-modeldeploy-operator"  # the chart's default ServiceAccount name
NAMESPACED = {"watchNamespaces": ["team-a", "team-b"], "registryCredentials": {
    "namespaces": ["team-b"]}}
WITH_EVERYTHING = {"webhook": {"enabled": True, "secretName": "mlflow-webhook"},
                   "config": {"logFormat": "json", "prometheusUrl": "http://prometheus:9090",
                              "serviceUrlTemplate": "http://{service}.{namespace}:{port}"},
                   "metrics": {"serviceMonitor": {"enabled": True}}}
VARIANTS = {"default": {}, "namespaced": NAMESPACED, "everything": WITH_EVERYTHING}


@pytest.fixture()
def helm(stack: StackInfo, tmp_path: Path) -> Helm:
    return Helm(stack, tmp_path)


@pytest.fixture()
def release() -> str:
    """A release name of its own: its ClusterRole never meets another test's."""
    return f"md-{uuid.uuid4().hex[:6]}"


@pytest.fixture()
def release_ns(core: client.CoreV1Api) -> Iterator[str]:
    """The operator's namespace, with Pod Security `restricted` enforced."""
    name = f"md-system-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {
        "modeldeploy.io/test": "1", "pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_helm_lint_is_clean(helm: Helm, values: dict[str, Any]) -> None:
    out = helm.lint(values)
    assert "0 chart(s) failed" in out and "[WARNING]" not in out and "[ERROR]" not in out, out


def test_rendered_rbac_has_no_wildcard_and_no_cluster_wide_secrets(helm: Helm) -> None:
    for name, values in {**VARIANTS, "credentials": {
            "registryCredentials": {"namespaces": ["ml"]}}}.items():
        docs = helm.render(values)
        assert list(rules(docs)), f"{name}: no rules rendered"
        for role, rule in rules(docs):
            where = f"{name}: {role['kind']} {role['metadata']['name']} {rule}"
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"wildcard in {where}"
            if role["kind"] == "ClusterRole":
                assert "secrets" not in rule["resources"], f"cluster-wide Secrets: {where}"
                if "customresourcedefinitions" in rule["resources"]:
                    assert set(rule["verbs"]) <= {"get", "list", "watch"}, where
        secret_roles = {r["metadata"]["namespace"] for r, rule in rules(docs)
                        if "secrets" in rule["resources"]}
        assert secret_roles == set((values.get("registryCredentials") or {}).get(
            "namespaces", [])), f"{name}: Secrets readable in {secret_roles}"
        kinds = {d["kind"] for d in docs}
        if values.get("watchNamespaces"):
            assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, (
                f"{name}: a namespaced install has no cluster-scoped rights")
            assert {r["metadata"]["namespace"] for r, _ in rules(docs)} == {
                "team-a", "team-b", "modeldeploy-system"}
    refused = helm.run("template", "r", str(CHART), values={
        "watchNamespaces": ["team-a"], "registryCredentials": {"namespaces": ["other"]}},
        check=False)
    assert refused.returncode != 0 and '"other" is not in watchNamespaces' in refused.stderr


def test_every_rendered_pod_spec_passes_the_restricted_profile(
    helm: Helm, core: client.CoreV1Api, namespace: str,
) -> None:
    """The test namespace enforces `restricted`: the apiserver's own PodSecurity admission
    judges each pod the chart would create (server-side dry run), and refuses a weakened one
    (the check can fail)."""
    checked = 0
    core.create_namespaced_service_account(namespace, {"metadata": {
        "name": SA.format(release="r")}})
    for name, values in VARIANTS.items():
        for pod in pods_of(helm.render(values, namespace=namespace), namespace):
            core.create_namespaced_pod(namespace, pod, dry_run="All")
            checked += 1
            weak = {**pod, "spec": {**pod["spec"], "containers": [
                {**c, "securityContext": {**c["securityContext"],
                                          "allowPrivilegeEscalation": True}}
                for c in pod["spec"]["containers"]]}}
            with pytest.raises(ApiException) as refused:
                core.create_namespaced_pod(namespace, weak, dry_run="All")
            assert refused.value.status == 403 and "restricted" in str(refused.value.body), name
    assert checked == len(VARIANTS)


def _can_i_list(stack: StackInfo, kubeconfig: Path, namespace: str) -> list[str]:
    out = subprocess.run([stack.kubectl, "--kubeconfig", str(kubeconfig), "auth", "can-i",
                          "--list", "-n", namespace], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return out.splitlines()


def _can_i(stack: StackInfo, kubeconfig: Path, *args: str) -> bool:
    result = subprocess.run([stack.kubectl, "--kubeconfig", str(kubeconfig), "auth", "can-i",
                             *args], capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.strip() == "yes"


def _serving_versions(apps: client.AppsV1Api, core: client.CoreV1Api,
                      custom: client.CustomObjectsApi, namespace: str) -> dict[str, str]:
    """resourceVersion of everything that serves in ``namespace``."""
    out = {f"Deployment/{d.metadata.name}": d.metadata.resource_version
           for d in apps.list_namespaced_deployment(namespace).items}
    out |= {f"Service/{s.metadata.name}": s.metadata.resource_version
            for s in core.list_namespaced_service(namespace).items}
    out |= {f"HTTPRoute/{r['metadata']['name']}": r["metadata"]["resourceVersion"]
            for r in custom.list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", namespace, "httproutes")["items"]}
    return out


def _no_rbac_denial(proc: OperatorProcess) -> None:
    """Nothing the operator asked was refused by RBAC (the apiserver's words for a denial
    name the ServiceAccount; a terminating namespace's 403 does not)."""
    denied = [line for line in proc.log().splitlines()
              if "system:serviceaccount:" in line and " cannot " in line]
    assert not denied, "\n".join(denied[:10])


def _reconciled_and_polled(proc: OperatorProcess) -> bool:
    with urllib.request.urlopen(proc.metrics_url, timeout=5) as resp:
        samples = parse(resp.read().decode())
    return (total(samples, "modeldeploy_reconcile_total") >= 1
            and total(samples, "modeldeploy_registry_polls_total") >= 1)


def test_the_service_monitor_passes_the_prometheus_operators_own_schema(
    helm: Helm, stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    """The chart's optional ServiceMonitor, judged by the apiserver against the Prometheus
    Operator's own CRD (server-side dry run), selects the chart's metrics Service by its port
    name; a malformed interval is refused (the check can fail)."""
    crd = build.fetch_servicemonitor_crd() / build.SERVICEMONITOR_CRD
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kube.wait_established(stack.kubectl, stack.kubeconfig, "servicemonitors.monitoring.coreos.com")

    def monitor(values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        docs = helm.render(values, namespace=namespace)
        found = [d for d in docs if d["kind"] == "ServiceMonitor"]
        assert len(found) == 1, [d["kind"] for d in docs]
        return found[0], docs

    sm, docs = monitor(WITH_EVERYTHING)
    created = custom.create_namespaced_custom_object(
        "monitoring.coreos.com", "v1", namespace, "servicemonitors", sm, dry_run="All")
    assert created["spec"]["endpoints"][0]["interval"] == "30s"
    wanted = sm["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"
                and wanted.items() <= d["metadata"]["labels"].items()
                and any(p["name"] == sm["spec"]["endpoints"][0]["port"]
                        for p in d["spec"]["ports"])]
    assert [d["metadata"]["name"] for d in services] == ["r-modeldeploy-operator-metrics"]

    # The chart's values schema refuses a malformed interval; were one rendered anyway, the
    # Prometheus Operator's schema would refuse it too.
    values = {**WITH_EVERYTHING, "metrics": {"serviceMonitor": {
        "enabled": True, "interval": "30 seconds"}}}
    result = helm.run("template", "r", str(CHART), values=values, check=False)
    assert result.returncode != 0 and "/metrics/serviceMonitor/interval" in result.stderr
    bad = {**sm, "spec": {**sm["spec"], "endpoints": [
        {**sm["spec"]["endpoints"][0], "interval": "30 seconds"}]}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, "servicemonitors", bad, dry_run="All")
    assert refused.value.status == 422 and "spec.endpoints[0].interval" in refused.value.body


def test_the_operator_as_the_charts_service_account_releases_a_canary_and_survives_upgrade(
    stack: StackInfo, helm: Helm, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
    namespace: str, release: str, release_ns: str, operator: OperatorProcess, tmp_path: Path,
) -> None:
    values = {"registryCredentials": {"namespaces": [namespace]},
              "config": {"prometheusUrl": stack.prometheus_url}}
    route = RouteWatch(api, namespace, "HTTPRoute", "scorer").start()
    try:
        _install_canary_upgrade(stack, helm, api, kubectl, custom, apps, core, namespace,
                                release, release_ns, operator, tmp_path, values, route)
    finally:
        route.stop()
        helm.run("uninstall", release, "--namespace", release_ns, "--wait", check=False)


def _install_canary_upgrade(
    stack: StackInfo, helm: Helm, api: client.ApiClient, kubectl: Kubectl,
    custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api,
    namespace: str, release: str, release_ns: str, operator: OperatorProcess, tmp_path: Path,
    values: dict[str, Any], route: RouteWatch,
) -> None:
    helm.run("install", release, str(CHART), "--namespace", release_ns, "--wait",
             "--timeout", "120s", values=values)
    chart_pods = core.list_namespaced_pod(
        release_ns, label_selector=f"app.kubernetes.io/instance={release}").items
    assert len(chart_pods) == 2, "two replicas admitted under `restricted`"

    # What the ServiceAccount may do, as the apiserver's authorizer answers it.
    token = token_kubeconfig(stack, core, release_ns, SA.format(release=release),
                             tmp_path / "sa.kubeconfig")
    for ns in (namespace, release_ns, "default"):
        listed = _can_i_list(stack, token, ns)
        assert not [line for line in listed if line.startswith("*") or "[*]" in line], listed
        secrets = [line for line in listed if line.startswith("secrets ")]
        assert bool(secrets) == (ns == namespace), (ns, secrets)
    assert not _can_i(stack, token, "list", "secrets", "--all-namespaces")
    assert not _can_i(stack, token, "get", "secrets", "-n", "default")
    assert _can_i(stack, token, "watch", "secrets", "-n", namespace)
    assert not _can_i(stack, token, "create", "pods", "-n", namespace)
    assert not _can_i(stack, token, "update", "modeldeployments", "-n", namespace)
    assert _can_i(stack, token, "update", "modeldeployments", "--subresource=status", "-n",
                  namespace)
    assert _can_i(stack, token, "update", "leases/modeldeploy-operator", "-n", release_ns)
    assert not _can_i(stack, token, "update", "leases/other", "-n", release_ns)

    env = {"KUBECONFIG": str(token), "MODELDEPLOY_CREDENTIAL_NAMESPACES": namespace,
           "MODELDEPLOY_LEASE_NAMESPACE": release_ns}
    with stand_in(stack, operator, tmp_path / "sa-operator", env=env) as proc:
        _good_canary(stack, kubectl, custom, apps, core, namespace, route, GATEWAY, ANALYSIS)
        # The serving pods the operator renders pass the same `restricted` check (this
        # namespace enforces it: their ReplicaSets could not have created them otherwise).
        served = [api.sanitize_for_serialization(d)
                  for d in apps.list_namespaced_deployment(namespace).items]
        assert served and core.list_namespaced_pod(namespace).items
        for pod in pods_of(served, namespace):
            core.create_namespaced_pod(namespace, pod, dry_run="All")
        _no_rbac_denial(proc)
        lease = client.CoordinationV1Api(api).read_namespaced_lease(
            "modeldeploy-operator", release_ns)
        assert lease.spec.holder_identity, "leader election through the chart's Role"

        # helm upgrade with new values, while the object is live; then the operator restarts
        # as the upgrade's rollout would restart its pod.
        before = _serving_versions(apps, core, custom, namespace)
        md_before = get(custom, namespace, "scorer")
        helm.run("upgrade", release, str(CHART), "--namespace", release_ns, "--wait",
                 "--timeout", "120s", values={**values, "config": {
                     **values["config"], "workers": 8, "logFormat": "json"}})
        proc.stop()
        proc.start()
        eventually(lambda: _reconciled_and_polled(proc), timeout=30,
                   what="the restarted operator reconciled the object and polled MLflow")
        wait_status(custom, namespace, "scorer", serving(
            md_before["status"]["stable"]["version"]), what="still serving")
        md_after = get(custom, namespace, "scorer")
        assert _serving_versions(apps, core, custom, namespace) == before
        assert md_after["metadata"]["generation"] == md_before["metadata"]["generation"]
        assert route.weights_of("scorer-v2")[-1] == 100
        _no_rbac_denial(proc)


def test_a_namespaced_install_acts_only_in_its_namespaces(
    stack: StackInfo, helm: Helm, kubectl: Kubectl, custom: client.CustomObjectsApi,
    core: client.CoreV1Api, namespace: str, release: str, release_ns: str,
    operator: OperatorProcess, tmp_path: Path,
) -> None:
    other = f"{namespace[:50]}-other"
    core.create_namespace({"metadata": {"name": other, "labels": {"modeldeploy.io/test": "1"}}})
    try:
        helm.run("install", release, str(CHART), "--namespace", release_ns, values={
            "watchNamespaces": [namespace], "replicaCount": 1})
        token = token_kubeconfig(stack, core, release_ns, SA.format(release=release),
                                 tmp_path / "sa.kubeconfig")
        assert not _can_i(stack, token, "list", "modeldeployments", "-n", other)
        assert not _can_i(stack, token, "list", "customresourcedefinitions")
        assert not _can_i(stack, token, "get", "secrets", "-n", namespace)
        model = f"ns-{namespace}"
        seed_model(stack, name=model, alias="champion")
        env = {"KUBECONFIG": str(token), "MODELDEPLOY_WATCH_NAMESPACES": namespace,
               "MODELDEPLOY_CREDENTIAL_NAMESPACES": "",
               "MODELDEPLOY_LEASE_NAMESPACE": release_ns}
        with stand_in(stack, operator, tmp_path / "ns-operator", env=env) as proc:
            for ns in (other, namespace):  # while only the namespaced operator runs
                Kubectl(stack, ns)("apply", "-f", "-", stdin=manifest("scorer", spec(model)))
            wait_status(custom, namespace, "scorer", serving("1"), what="Stable in its namespace")
            time.sleep(3)
            assert not get(custom, other, "scorer").get("status"), "not watched: untouched"
            _no_rbac_denial(proc)
    finally:
        helm.run("uninstall", release, "--namespace", release_ns, "--wait", check=False)
        core.delete_namespace(other, propagation_policy="Background")
