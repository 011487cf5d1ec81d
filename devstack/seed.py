"""Register model versions in the stack's MLflow, as a data scientist would.

The registration runs ``mlflow_seed.py`` with the MLflow server's own virtualenv (full
``mlflow``); the operator's environment only has mlflow-skinny.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from devstack.build import mlflow_venv_dir
from devstack.stack import StackInfo

SEED_SCRIPT = Path(__file__).resolve().parent / "mlflow_seed.py"


def seed_model(stack: StackInfo, *, name: str, alias: str | None = None,
               metrics: dict[str, float] | None = None, bias: float = 0.0,
               stage: str | None = None) -> dict[str, Any]:
    """Log and register a pyfunc version with the MLflow server's own (full mlflow) venv."""
    python = mlflow_venv_dir() / "bin" / "python"
    argv = [str(python), str(SEED_SCRIPT), "--tracking-uri", stack.mlflow_tracking_uri,
            "--name", name, "--bias", str(bias)]
    if alias:
        argv += ["--alias", alias]
    if stage:
        argv += ["--stage", stage]
    for key, value in (metrics or {}).items():
        argv += ["--metric", f"{key}={value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"seeding {name} failed:\n{out.stderr[-3000:]}"
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
