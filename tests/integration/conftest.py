"""Fixtures for tests on the real local stack.

Tests run on stacks of their own, in ``<cache>/test`` (``<cache>/test-gwN`` for the other
xdist workers), never on the one ``make demo`` or ``make cluster-up`` left in ``<cache>/run``:
the demo's objects and its operator would be in every cluster-wide check, and the tests would
stop the demo's operator. Setting ``MODELDEPLOY_STATE`` picks a stack on purpose (e.g.
cluster-up's, for a quick loop).

The ``stack`` fixture reuses the stack in its state directory if every one of its processes is
alive (kept by ``MODELDEPLOY_KEEP_STACK=1``); otherwise it starts one (building what is
missing) and stops it at the end of the session. If the stack cannot start, every integration
test errors with the message of the component that failed: nothing here ever skips.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from devstack import paths, procs
from devstack import stack as devstack
from devstack.operator_process import OperatorProcess
from devstack.stack import StackInfo
from devstack.stackclient import Prometheus, Traffic

# Under pytest-xdist every worker gets a stack of its own (its own apiserver, MLflow,
# Prometheus and traffic): workers never see each other's objects, operators or restarts.
# The first worker uses the tests' state, so a stack kept from an earlier run is reused.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if "MODELDEPLOY_STATE" not in os.environ:
    os.environ["MODELDEPLOY_STATE"] = str(paths.cache_dir() / "test")
if _WORKER not in ("", "gw0") and not str(paths.state_dir()).endswith(f"-{_WORKER}"):
    # (this module is imported twice: as pytest's conftest and by the tests that import it)
    os.environ["MODELDEPLOY_STATE"] = f"{paths.state_dir()}-{_WORKER}"


@contextlib.contextmanager
def stand_in(stack: StackInfo, operator: OperatorProcess, state: Path, *,
             env: dict[str, str] | None = None,
             args: Sequence[str] = ()) -> Iterator[OperatorProcess]:
    """The session's operator steps aside for one configured for a test, and comes back."""
    operator.stop()
    proc = OperatorProcess.create(stack, state)
    proc.extra_env.update(env or {})
    proc.extra_args += list(args)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        operator.start()


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    existing = devstack.load()
    if existing is not None and not devstack.healthy(existing):
        # A stack started by older code gets what bring-up has gained since (CRDs, the
        # current traffic exporter).
        yield devstack.refresh(existing)
        return
    info = devstack.up()
    try:
        yield info
    finally:
        if os.environ.get("MODELDEPLOY_KEEP_STACK") != "1":
            devstack.down()


@pytest.fixture(scope="session")
def crd(stack: StackInfo) -> None:
    """The ModelDeployment CRD from crds/, installed and Established."""
    devstack.install_crd(stack)


@pytest.fixture(scope="session")
def operator(stack: StackInfo, crd: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator under test, a real `kopf run` process for the whole session."""
    proc = OperatorProcess.create(stack, tmp_path_factory.mktemp("operator"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def api(stack: StackInfo) -> client.ApiClient:
    return config.new_client_from_config(config_file=stack.kubeconfig)


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="session")
def prom(stack: StackInfo) -> Prometheus:
    return Prometheus(stack.prometheus_url)


@pytest.fixture(scope="session")
def traffic(stack: StackInfo) -> Traffic:
    return Traffic(stack.traffic_url)


class Kubectl:
    def __init__(self, stack: StackInfo, namespace: str | None = None) -> None:
        self.stack, self.namespace = stack, namespace

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        scope = ("-n", self.namespace) if self.namespace else ()
        try:
            return devstack.kubectl(self.stack, *scope, *args, stdin=stdin)
        except procs.StackError as exc:  # in a test, a failed kubectl is a failed assertion
            raise AssertionError(str(exc)) from exc


@pytest.fixture()
def namespace(request: pytest.FixtureRequest, core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    # Pod Security "restricted" is enforced by the real apiserver: whatever the operator
    # renders must pass it, or no pod is created.
    core.create_namespace({"metadata": {"name": name, "labels": {
        "modeldeploy.io/test": "1", "pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture()
def kubectl(stack: StackInfo, namespace: str) -> Kubectl:
    return Kubectl(stack, namespace)


def condition(obj: Any, type_: str) -> str | None:
    """The status of condition ``type_`` on an API object (model or dict), or None."""
    status = obj["status"] if isinstance(obj, dict) else obj.status
    conditions = (status.get("conditions") if isinstance(status, dict)
                  else getattr(status, "conditions", None)) or []
    for c in conditions:
        ctype = c["type"] if isinstance(c, dict) else c.type
        if ctype == type_:
            return str(c["status"] if isinstance(c, dict) else c.status)
    return None
