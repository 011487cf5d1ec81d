"""Where the stack keeps its build cache and its run state.

The cache lives outside the clone (``$MODELDEPLOY_CACHE``, default ``~/.cache/modeldeploy``) so a
fresh clone reuses binaries built by an earlier one. Run state (data dirs, logs, pids, the
kubeconfig and env file) lives in ``$MODELDEPLOY_STATE`` (default ``<cache>/run``) so that
``make cluster-down`` from any shell finds what ``make cluster-up`` started.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "modeldeploy"
    return Path(os.environ.get("MODELDEPLOY_CACHE", str(default)))


def state_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_STATE", str(cache_dir() / "run")))


def bin_dir(component: str, version: str) -> Path:
    """A per-(component, version) directory, so a version bump never reuses a stale build."""
    return cache_dir() / "bin" / f"{component}-{version}"
