"""The operator image, read as text (it cannot be built here: no Docker engine; `make lint`
runs hadolint on it): multi-stage, a slim base, a non-root numeric user in the final stage,
mlflow-skinny rather than mlflow, and the README's command as the entrypoint."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]


def test_multi_stage_on_a_slim_python_base() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert len(bases) >= 2, bases
    assert all(re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]{64})?", b) for b in bases), bases


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_leftovers() -> None:
    final = _final_stage()
    users = re.findall(r"^USER (\d+)(?::(\d+))?$", final, re.M)
    assert users and all(int(u) > 0 and (not g or int(g) > 0) for u, g in users), users
    assert "--no-cache-dir" in final and "rm -rf /wheels" in final
    assert not re.search(r"apt-get|gcc|build-essential", final), "no compilers in the image"


def test_the_image_installs_mlflow_skinny_not_the_full_mlflow() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[=<>\[ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert "mlflow-skinny" in names and "mlflow" not in names, names


def test_the_entrypoint_is_the_readme_command() -> None:
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", _final_stage(), re.M).group(1))  # type: ignore[union-attr]
    readme = (REPO / "README.md").read_text()
    command = re.search(r"Run it: `(modeldeploy-operator[^`]*)`", readme).group(1).split()  # type: ignore[union-attr]
    assert [a for a in entry if not a.startswith("--liveness")] == command, (entry, command)
