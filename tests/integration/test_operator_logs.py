"""Structured logs: `kopf run --log-format=json` makes every line the operator writes (Kopf's
and the operator's own loggers alike) one JSON object, ready for a log pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from devstack.operator_process import OperatorProcess
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl, stand_in
from tests.integration.test_modeldeployment import deploy_stable
from tests.support.wait import eventually


@pytest.fixture()
def json_logging(stack: StackInfo, operator: OperatorProcess,
                 tmp_path: Path) -> Iterator[OperatorProcess]:
    """The session's operator steps aside for one that logs JSON."""
    with stand_in(stack, operator, tmp_path / "json", args=["--log-format=json"]) as proc:
        yield proc


def test_json_logs_are_one_object_per_line_from_every_logger(
    stack: StackInfo, json_logging: OperatorProcess, kubectl: Kubectl,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    deploy_stable(stack, kubectl, custom, namespace)

    def records() -> list[dict[str, object]]:
        # The harness marks each start with a "=== <time> starting: <command>" line.
        lines = [ln for ln in json_logging.log().splitlines()
                 if ln.strip() and not ln.startswith("=== ")]
        return [json.loads(ln) for ln in lines]  # any line that is not JSON fails here

    def messages() -> list[str]:
        return [str(r.get("message")) for r in records()]

    # The operator's own loggers (leader election) and Kopf's (activities) alike.
    eventually(lambda: any(m.startswith("leader election:") for m in messages()),
               timeout=30, what="a line from the operator's own loggers")
    assert any(m.startswith("Activity '_startup'") for m in messages())
    for record in records():
        assert {"message", "severity", "timestamp"} <= set(record), record
