"""Generate ``crds/modeldeployment.yaml`` from the pydantic models.

    python -m modeldeploy.api.crd > crds/modeldeployment.yaml

pydantic emits JSON Schema with ``$defs``/``$ref``, ``anyOf [X, null]`` for optional fields and
titles; Kubernetes wants a *structural* OpenAPI v3 schema: everything inlined, one type per
node, no nulls. :func:`structural` performs that translation and refuses anything it does not
understand, so a new kind of field fails here instead of producing a schema the apiserver
rejects or, worse, silently prunes.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel

from modeldeploy.api import GROUP, KIND, PLURAL, VERSION
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus

SINGULAR = "modeldeployment"
SHORT_NAMES = ["mdep"]

#: Keys copied through unchanged from pydantic's schema nodes.
_KEEP = {
    "type", "description", "default", "enum", "pattern", "minLength", "maxLength", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "format",
    "minProperties", "maxProperties",
    "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields",
}
#: Keys handled structurally or dropped on purpose.
_HANDLED = {"properties", "items", "additionalProperties", "required", "$ref", "anyOf", "allOf",
            "title", "$defs", "const"}

#: `kubectl get mdep` shows the first group; `-o wide` adds the priority-1 columns, which are
#: empty most of the time (a canary exists only while a version comes up).
PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Selector", "type": "string", "jsonPath": ".status.selector", "priority": 1},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stable.version"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canary.version", "priority": 1},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight", "priority": 1},
    {"name": "Step", "type": "string", "jsonPath": ".status.canary.step", "priority": 1},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class SchemaError(ValueError):
    """A pydantic schema construct with no structural OpenAPI equivalent."""


def structural(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return _convert(schema, schema.get("$defs", {}), path=model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], *, path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path=path)
    unknown = set(node) - _KEEP - _HANDLED
    if unknown:
        raise SchemaError(f"{path}: unsupported schema keys {sorted(unknown)}")
    out = {k: v for k, v in node.items() if k in _KEEP}
    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {
            name: _convert(sub, defs, path=f"{path}.{name}")
            for name, sub in node["properties"].items()
        }
        required = [r for r in node.get("required", []) if r in node["properties"]]
        if required:
            out["required"] = required
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        if "properties" in node:
            raise SchemaError(f"{path}: properties and additionalProperties together")
        out["type"] = "object"
        if extra:
            out["additionalProperties"] = _convert(extra, defs, path=f"{path}.*")
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = _convert(node["items"], defs, path=f"{path}[]")
    if out.get("type") == "object" and "properties" not in out and \
            "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out:
        raise SchemaError(f"{path}: no type")
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any], *, path: str) -> dict[str, Any]:
    """Inline ``$ref``/``allOf``, and turn ``anyOf [X, null]`` into X (optionality lives in
    ``required``). Sibling keys (description, default) win over the referenced schema's."""
    node = dict(node)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"{path}: unions other than Optional[X] are not supported")
        node = {**_resolve(options[0], defs, path=path), **node}
        if node.get("default", ...) is None:
            del node["default"]
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path}: allOf with several parts")
        node = {**_resolve(parts[0], defs, path=path), **node}
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        node = {**_resolve(defs[name], defs, path=path), **node}
    return node


def custom_resource_definition() -> dict[str, Any]:
    spec = structural(ModelDeploymentSpec)
    status = structural(ModelDeploymentStatus)
    spec["description"] = "What to serve and how to release it."
    status["description"] = "Observed state, written by the operator. All rollout progress."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                "singular": SINGULAR, "shortNames": SHORT_NAMES, "categories": ["modeldeploy"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": (
                        "ModelDeployment serves a model from the MLflow Model Registry and "
                        "releases new versions of it safely."),
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": "API version."},
                        "kind": {"type": "string", "description": "Kind."},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    }


def render() -> str:
    header = ("# Generated by `python -m modeldeploy.api.crd` from operator/modeldeploy/api/.\n"
              "# Do not edit by hand: tests fail when this file differs from the models.\n")
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
