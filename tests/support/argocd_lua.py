"""Run Argo CD resource customizations (health check, action discovery, actions) the way
Argo CD does: Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1), the object as the global
``obj``, and only the safe part of ``os`` (``require("os")``: date, time, clock).

The file layout and the test files (``health_test.yaml``, ``actions/action_test.yaml``) follow
Argo CD's own ``resource_customizations/<group>/<Kind>/`` convention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import yaml

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZATION = REPO / "argocd" / "resource_customizations" / "modeldeploy.io" / "ModelDeployment"
#: The time the safe ``os`` reports in tests, so an action's output is reproducible.
FIXED_TIME = 1796300000  # 2026-12-03T12:13:20Z

_SANDBOX = """
local fixed = ...
local real = os
local safe = {
  time = function(t) if t == nil then return fixed end return real.time(t) end,
  date = function(format, t) return real.date(format, t or fixed) end,
  clock = function() return 0 end,
  difftime = real.difftime,
}
package.loaded["os"] = safe
os, io, debug, dofile, loadfile = nil, nil, nil, nil, nil
"""


def runtime(clock: int) -> Any:
    rt = lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    rt.execute(_SANDBOX, clock)
    return rt


def _to_lua(rt: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return rt.table_from({k: _to_lua(rt, v) for k, v in value.items()})
    if isinstance(value, list):
        return rt.table_from([_to_lua(rt, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if lua51.lua_type(value) == "table":
        items = dict(value.items())
        if items and all(isinstance(k, int) for k in items) and \
                sorted(items) == list(range(1, len(items) + 1)):
            return [_from_lua(items[i]) for i in range(1, len(items) + 1)]
        return {k: _from_lua(v) for k, v in items.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run(script: Path, obj: dict[str, Any], *, clock: int = FIXED_TIME) -> Any:
    """Run ``script`` with ``obj`` bound to the global ``obj`` (and ``os.time()`` at
    ``clock``); its return value as Python."""
    rt = runtime(clock)
    rt.globals().obj = _to_lua(rt, obj)
    return _from_lua(rt.execute(script.read_text()))


def health(obj: dict[str, Any], base: Path = CUSTOMIZATION) -> dict[str, Any]:
    return dict(run(base / "health.lua", obj))


def discover(obj: dict[str, Any], base: Path = CUSTOMIZATION) -> dict[str, bool]:
    """Action name -> disabled."""
    found = run(base / "actions" / "discovery.lua", obj)
    return {name: bool(spec.get("disabled", False)) for name, spec in found.items()}


def act(action: str, obj: dict[str, Any], base: Path = CUSTOMIZATION, *,
        clock: int = FIXED_TIME) -> dict[str, Any]:
    return dict(run(base / "actions" / action / "action.lua", obj, clock=clock))


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


class _Literal(yaml.SafeDumper):
    """Multi-line strings (the scripts) as literal blocks, readable in the ConfigMap."""


_Literal.add_representer(str, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def argocd_cm() -> str:
    """The ``argocd-cm`` ConfigMap keys that install this customization into Argo CD,
    rendered from the files (``python -m tests.support.argocd_lua > argocd/argocd-cm.yaml``)."""
    actions = CUSTOMIZATION / "actions"
    definitions = [{"name": d.name, "action.lua": (d / "action.lua").read_text()}
                   for d in sorted(actions.iterdir()) if (d / "action.lua").is_file()]
    data = {
        "resource.customizations.health.modeldeploy.io_ModelDeployment":
            (CUSTOMIZATION / "health.lua").read_text(),
        "resource.customizations.actions.modeldeploy.io_ModelDeployment": yaml.dump(
            {"discovery.lua": (actions / "discovery.lua").read_text(),
             "definitions": definitions}, Dumper=_Literal, sort_keys=False),
    }
    header = ("# Generated from argocd/resource_customizations/modeldeploy.io/ModelDeployment by\n"
              "# `python -m tests.support.argocd_lua`: merge these keys into argocd-cm.\n")
    return header + yaml.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "argocd-cm", "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"}}, "data": data},
        Dumper=_Literal, sort_keys=False, width=100)


if __name__ == "__main__":
    print(argocd_cm(), end="")
