"""Holds: the real apiserver refuses some writes in one namespace for a while, through a
ValidatingAdmissionPolicy. A test uses one to keep a release in a state that otherwise lasts
milliseconds on a simulated cluster: a route change that cannot be applied yet (Promoting,
RollingBack, a step not yet confirmed), pods that cannot be created yet (Starting).

A hold is in force only once a dry-run write like the ones it refuses is refused with its
message (the apiserver loads policies asynchronously), and over only once that write passes
it again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modeldeploy.api import GROUP, PLURAL, VERSION
from modeldeploy.api.status import RELEASE_MEMBERS
from modeldeploy.core.render import LABEL_VERSION
from tests.support.wait import eventually


class Hold:
    def __init__(self, api: client.ApiClient, namespace: str, *, what: str,
                 rules: list[dict[str, Any]], refuse_if: str,
                 probe: Callable[[], object]) -> None:
        self.api, self.namespace, self.what = api, namespace, what
        self.rules, self.refuse_if, self.probe = rules, refuse_if, probe
        self.name = f"test-hold-{uuid.uuid4().hex[:10]}"
        self.message = f"held by a test: {what}"

    def _held(self) -> bool:
        try:
            self.probe()
        except ApiException as exc:
            if self.message in (exc.body or ""):
                return True
            raise
        return False

    def __enter__(self) -> Hold:
        admission = client.AdmissionregistrationV1Api(self.api)
        admission.create_validating_admission_policy({
            "metadata": {"name": self.name},
            "spec": {"failurePolicy": "Fail",
                     "matchConstraints": {"resourceRules": self.rules},
                     "validations": [{"expression": f"!({self.refuse_if})",
                                      "message": self.message}]}})
        admission.create_validating_admission_policy_binding({
            "metadata": {"name": self.name},
            "spec": {"policyName": self.name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {
                         "kubernetes.io/metadata.name": self.namespace}}}}})
        try:
            eventually(self._held, timeout=30, interval=0.1, what=f"hold in force: {self.what}")
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        admission = client.AdmissionregistrationV1Api(self.api)
        for delete in (admission.delete_validating_admission_policy_binding,
                       admission.delete_validating_admission_policy):
            try:
                delete(self.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        eventually(lambda: not self._held(), timeout=30, interval=0.1,
                   what=f"hold lifted: {self.what}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def route_hold(api: client.ApiClient, namespace: str, name: str) -> Hold:
    """No change to the HTTPRoute ``name`` is accepted."""
    custom = client.CustomObjectsApi(api)
    group, version, plural = "gateway.networking.k8s.io", "v1", "httproutes"
    return Hold(
        api, namespace, what=f"HTTPRoute {name} frozen",
        rules=[{"apiGroups": [group], "apiVersions": ["*"], "operations": ["UPDATE"],
                "resources": [plural]}],
        refuse_if=f"object.metadata.name == '{name}'",
        probe=lambda: custom.patch_namespaced_custom_object(
            group, version, namespace, plural, name,
            {"metadata": {"annotations": {"test-probe": uuid.uuid4().hex}}}, dry_run="All"))


def pods_hold(api: client.ApiClient, namespace: str, version: str) -> Hold:
    """No pod of model version ``version`` can be created."""
    core = client.CoreV1Api(api)
    probe_pod = {
        "metadata": {"generateName": "hold-probe-", "labels": {LABEL_VERSION: version}},
        "spec": {"containers": [{
            "name": "probe", "image": "probe",
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "runAsUser": 1000, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}}]}}
    return Hold(
        api, namespace, what=f"no pod of version {version}",
        rules=[{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["pods"]}],
        refuse_if=(f"has(object.metadata.labels) && '{LABEL_VERSION}' in object.metadata.labels"
                   f" && object.metadata.labels['{LABEL_VERSION}'] == '{version}'"),
        probe=lambda: core.create_namespaced_pod(namespace, probe_pod, dry_run="All"))


#: A status message no operator writes: the dry-run a status hold is probed with.
STATUS_PROBE = "test-hold-probe"


def status_hold(api: client.ApiClient, namespace: str, name: str, state: str) -> Hold:
    """No status of ModelDeployment ``name`` whose release is in ``state`` is stored."""
    custom = client.CustomObjectsApi(api)
    rollout = "object.status.rollout"
    releases = " || ".join(
        f"(has({rollout}.{kind}) && has({rollout}.{kind}.state) && "
        f"{rollout}.{kind}.state == '{state}')"
        for kind in RELEASE_MEMBERS)
    return Hold(
        api, namespace, what=f"no {state} status stored for {name}",
        rules=[{"apiGroups": [GROUP], "apiVersions": ["*"], "operations": ["UPDATE"],
                "resources": [f"{PLURAL}/status"]}],
        refuse_if=(f"object.metadata.name == '{name}' && has(object.status) && ("
                   f"(has(object.status.message) && object.status.message == '{STATUS_PROBE}')"
                   f" || (has({rollout}) && ({releases})))"),
        probe=lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": {"message": STATUS_PROBE}},
            dry_run="All"))
