"""``kubectl modeldeploy`` against the real cluster, run through the real kubectl (which finds
the ``kubectl-modeldeploy`` console script on PATH): get, status, history and every request
command; the live view (``status -w``) in a real terminal (tmux: capture-pane while the
release moves); and one clear line with exit code 1 for a missing object, no kubeconfig and
no permission."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_canary import GATEWAY, canary_spec, release
from tests.support.helm import token_kubeconfig
from tests.support.mdep import manifest, serving, wait_status
from tests.support.wait import eventually

pytestmark = pytest.mark.usefixtures("operator")

BIN = Path(sys.executable).parent


def plugin(stack: StackInfo, *args: str, kubeconfig: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "KUBECONFIG": kubeconfig or stack.kubeconfig}
    result = subprocess.run([stack.kubectl, "modeldeploy", *args], capture_output=True,
                            text=True, timeout=60, env=env)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture()
def tmux(stack: StackInfo) -> Iterator[list[str]]:
    """A private tmux server (its own socket): a real terminal for the live view."""
    base = ["tmux", "-L", f"modeldeploy-{uuid.uuid4().hex[:8]}"]
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True, check=False)


def _pane(tmux: list[str]) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", "live"], capture_output=True,
                          text=True, check=True).stdout


def test_the_plugin_drives_and_shows_a_release_live(
    stack: StackInfo, kubectl: Kubectl, custom: client.CustomObjectsApi,
    namespace: str, tmux: list[str],
) -> None:
    model = f"plugin-{namespace}"
    seed_model(stack, name=model, alias="champion")
    v2 = str(seed_model(stack, name=model, bias=1.0)["version"])
    steps = [{"weight": 20, "pause": ""}, {"weight": 50, "pause": "1h"}]
    kubectl("apply", "-f", "-", stdin=manifest("scorer", canary_spec(
        model, steps=steps, analysis=None, traffic=GATEWAY)))
    wait_status(custom, namespace, "scorer", serving("1"), what="version 1 Stable")

    listed = plugin(stack, "-n", namespace, "get").stdout
    assert listed.splitlines()[0].split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT",
                                              "STEP", "AGE"]
    assert listed.splitlines()[1].split()[:3] == ["scorer", "Stable", "1"]
    assert namespace in plugin(stack, "get", "-A").stdout

    # The live view, in a real terminal, from before the release starts.
    command = shlex.join(["env", f"KUBECONFIG={stack.kubeconfig}",
                          f"PATH={BIN}:{os.environ.get('PATH', '')}", str(stack.kubectl),
                          "modeldeploy", "-n", namespace, "status", "scorer", "-w"])
    subprocess.run([*tmux, "new-session", "-d", "-s", "live", "-x", "160", "-y", "50",
                    command], check=True)
    eventually(lambda: "Stable" in _pane(tmux), timeout=30, what="the live view shows Stable")

    mlflow_client(stack).set_registered_model_alias(model, "champion", v2)
    wait_status(custom, namespace, "scorer", lambda s: s.get("phase") == "Paused",
                timeout=60, what="paused at the human step")
    pane = eventually(lambda: (p := _pane(tmux)) and "Paused (by Step)" in p and p,
                      timeout=30, what="the live view shows the pause")
    assert "[20% (wait)] → 50% (1h) → 100%" in pane, pane
    status = plugin(stack, "-n", namespace, "status", "scorer").stdout
    assert f"Canary of version {v2}: Paused (by Step), weight 20%" in status, status

    out = plugin(stack, "-n", namespace, "resume", "scorer").stdout
    assert "resume requested" in out
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("step") == 1
                and release(s).get("weight") == 50, what="step 2 after the plugin's resume")
    pane = eventually(lambda: (p := _pane(tmux)) and "20% (wait) → [50% (1h)] → 100%" in p and p,
                      timeout=30, what="the live view follows to 50 %")
    timeline = pane[pane.index("timeline"):]
    assert "20%" in timeline and "50%" in timeline, timeline

    plugin(stack, "-n", namespace, "pause", "scorer")
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("pausedBy") == "Request",
                what="paused by the plugin")
    plugin(stack, "-n", namespace, "promote", "scorer")
    st = wait_status(custom, namespace, "scorer", serving(v2), what="promoted by the plugin")
    assert st["lastRequest"]["action"] == "promote"
    eventually(lambda: f"stable    version {v2}" in _pane(tmux), timeout=30,
               what="the live view shows the promotion")
    subprocess.run([*tmux, "send-keys", "-t", "live", "C-c"], check=True)

    history = plugin(stack, "-n", namespace, "history", "scorer").stdout.splitlines()
    assert history[1].split()[:2] == [v2, "Promoted"] and history[2].split()[:2] == [
        "1", "Replaced"], history

    # abort and retry: a version rolled back by the plugin, then released again.
    v3 = str(seed_model(stack, name=model, bias=2.0)["version"])
    mlflow_client(stack).set_registered_model_alias(model, "champion", v3)
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("version") == v3
                and release(s).get("state") == "Paused", what="version 3 paused")
    plugin(stack, "-n", namespace, "abort", "scorer")
    wait_status(custom, namespace, "scorer", lambda s: release(s).get("state") == "Aborted",
                what="aborted by the plugin")
    plugin(stack, "-n", namespace, "retry", "scorer")
    st = wait_status(custom, namespace, "scorer", lambda s: release(s).get("version") == v3
                     and release(s).get("state") == "Paused", what="retried by the plugin")
    assert st["lastRequest"]["action"] == "retry"


def _one_line_failure(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_missing_object_no_kubeconfig_and_no_permission_are_one_clear_line(
    stack: StackInfo, core: client.CoreV1Api, namespace: str, tmp_path: Path,
) -> None:
    _one_line_failure(plugin(stack, "-n", namespace, "status", "nothing", check=False),
                      f"modeldeployment {namespace}/nothing not found")
    _one_line_failure(plugin(stack, "-n", namespace, "promote", "nothing", check=False),
                      "not found")
    _one_line_failure(plugin(stack, "get", kubeconfig=str(tmp_path / "none"), check=False),
                      "no usable kubeconfig")

    # A ServiceAccount with no RBAC at all, authenticated by a TokenRequest token.
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    path = token_kubeconfig(stack, core, namespace, "nobody", tmp_path / "nobody.kubeconfig")
    _one_line_failure(plugin(stack, "-n", namespace, "get", kubeconfig=str(path),
                             check=False), "forbidden")
    _one_line_failure(plugin(stack, "-n", namespace, "pause", "scorer", kubeconfig=str(path),
                             check=False), "forbidden")
