"""Register model versions in the stack's MLflow, as a data scientist would.

The registration runs ``mlflow_seed.py`` with the MLflow server's own virtualenv (full
``mlflow``); the operator's environment only has mlflow-skinny.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.build import mlflow_venv_dir
from devstack.stack import StackInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient

SEED_SCRIPT = Path(__file__).resolve().parent / "mlflow_seed.py"

#: MLflow's HTTP retries for the harness's own calls (tests, benches, the demo). The MLflow
#: server (uvicorn) closes idle keep-alive connections after 5 s; a call that reuses one at
#: that instant fails with "Remote end closed connection without response" unless retried.
#: The operator process is not affected: it sets its own policy (see OperatorProcess.env).
HARNESS_HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def mlflow_client(stack: StackInfo) -> MlflowClient:
    """An MLflow client on the stack's server, as a data scientist's script would use."""
    from mlflow import MlflowClient

    os.environ.update(HARNESS_HTTP_RETRIES)  # read by MLflow at each call
    return MlflowClient(tracking_uri=stack.mlflow_tracking_uri,
                        registry_uri=stack.mlflow_tracking_uri)


def seed_model(stack: StackInfo, *, name: str, alias: str | None = None,
               metrics: dict[str, float] | None = None, bias: float = 0.0,
               stage: str | None = None, kind: str = "good",
               delay: float = 1.0, input_column: str = "x",
               example: bool = True) -> dict[str, Any]:
    """Log and register a pyfunc version with the MLflow server's own (full mlflow) venv.

    ``kind`` is how the version behaves when served (``good``, ``breaks-signature``, ``slow``
    answering after ``delay`` seconds, ``error``; see ``mlflow_seed.py``). Every kind is logged
    with the good model's signature and the same input example (``input_column`` renames the
    input, a breaking signature change; ``example=False`` logs none). MLflow runs predict twice
    while logging (requirements inference, input example validation): a ``slow`` version
    takes about 2 x ``delay`` longer to register."""
    python = mlflow_venv_dir() / "bin" / "python"
    argv = [str(python), str(SEED_SCRIPT), "--tracking-uri", stack.mlflow_tracking_uri,
            "--name", name, "--bias", str(bias), "--kind", kind, "--delay", str(delay),
            "--input-column", input_column] + ([] if example else ["--no-example"])
    if alias:
        argv += ["--alias", alias]
    if stage:
        argv += ["--stage", stage]
    for key, value in (metrics or {}).items():
        argv += ["--metric", f"{key}={value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"seeding {name} failed:\n{out.stderr[-3000:]}"
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
