"""What the benchmarks share: a stack (the running one, or a temporary one) and an operator."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kubernetes import client, config

from devstack import procs
from devstack import stack as devstack
from devstack.operator_process import OperatorProcess


def group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in process group ``pgid`` (MiB)."""
    total_kib = 0
    for pid in procs.group_members(pgid, since=0):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # it exited meanwhile
        total_kib += sum(int(line.split()[1]) for line in status.splitlines()
                         if line.startswith("VmRSS:"))
    return total_kib / 1024


@contextlib.contextmanager
def stack_with_operator() -> Iterator[tuple[devstack.StackInfo, OperatorProcess,
                                            client.CustomObjectsApi]]:
    """The running stack (or a temporary one), the CRD, and a fresh operator process."""
    info = devstack.load()
    tmp = None
    if info is None or devstack.healthy(info):
        tmp = tempfile.TemporaryDirectory(prefix="modeldeploy-bench-")
        info = devstack.up(state=Path(tmp.name), quiet=True)
    devstack.install_crd(info)
    op_state = tempfile.TemporaryDirectory(prefix="modeldeploy-op-")
    op = OperatorProcess.create(info, Path(op_state.name))
    op.start()
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=info.kubeconfig))
    try:
        yield info, op, custom
    finally:
        op.stop()
        op_state.cleanup()
        if tmp is not None:
            devstack.down(state=Path(tmp.name), quiet=True)
            tmp.cleanup()
