"""`make demo` is the main job: its story must happen as told, unattended, with exit code 0.

It runs `python -m devstack.demo` (what `make demo` runs once the stack is up) against this
session's stack, while the session's operator steps aside: the demo installs the chart and runs
its own operator as the chart's ServiceAccount."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack import procs
from devstack.operator_process import OperatorProcess
from devstack.stack import StackInfo

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_tells_its_story_and_exits_zero(
    stack: StackInfo, operator: OperatorProcess,
) -> None:
    operator.stop()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "devstack.demo"], cwd=REPO, stdin=subprocess.DEVNULL,
            env={**os.environ, "MODELDEPLOY_STATE": stack.state}, capture_output=True,
            text=True, timeout=600, check=False)
    finally:
        procs.stop(Path(stack.state), "operator")  # the demo's operator
        operator.start()
    out = result.stdout
    assert result.returncode == 0, f"{out[-4000:]}\n{result.stderr[-3000:]}"
    assert "\x1b[" not in out, "no terminal: frames are printed, not redrawn"
    for chapter in ("promoted through 2 canary steps", "rolled back automatically",
                    "stopped before any traffic", "story complete in"):
        assert chapter in out, out[-4000:]
    summary = out[out.index("== summary"):]
    assert "RolledBack" in summary and "Promoted" in summary and "Replaced" in summary
    assert "AnalysisFailed" in summary, "the rollback's reason is among the events"
    assert "weight 20%" in out and "weight 50%" in out, "the live view showed each step"
    assert "GateFailed" in summary and "Rejected" in summary, "the gate's verdict is told"
    registry = out[out.index("the registry (MLflow tags"):]
    assert "Rejected  MetricRegression" in registry, registry
    assert registry.count("Promoted") >= 2, registry
