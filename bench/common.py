"""What the benchmarks share: a stack (the running one, or a temporary one) and an operator."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kubernetes import client, config

from devstack import stack as devstack
from devstack.operator_process import OperatorProcess
from devstack.stack import kubectl

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def stack_with_operator() -> Iterator[tuple[devstack.StackInfo, OperatorProcess,
                                            client.CustomObjectsApi]]:
    """The running stack (or a temporary one), the CRD, and a fresh operator process."""
    info = devstack.load()
    tmp = None
    if info is None or devstack.healthy(info):
        tmp = tempfile.TemporaryDirectory(prefix="modeldeploy-bench-")
        info = devstack.up(state=Path(tmp.name), quiet=True)
    kubectl(info, "apply", "--server-side", "--force-conflicts", "-f",
            str(REPO / "crds" / "modeldeployment.yaml"))
    op = OperatorProcess.create(info, Path(tempfile.mkdtemp(prefix="modeldeploy-op-")))
    op.start()
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=info.kubeconfig))
    try:
        yield info, op, custom
    finally:
        op.stop()
        if tmp is not None:
            devstack.down(state=Path(tmp.name), quiet=True)
            tmp.cleanup()
