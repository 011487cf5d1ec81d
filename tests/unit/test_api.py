"""The API models: defaults, validation mirrored from CEL, and the generated CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api import crd, docs
from modeldeploy.api.spec import ModelDeploymentSpec, Runtime
from modeldeploy.core import durations

REPO = Path(__file__).resolve().parents[2]


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": {"name": "fraud-scorer", "alias": "champion"}}
    base.update(overrides)
    return base


def test_minimal_spec_gets_defaults() -> None:
    s = ModelDeploymentSpec.model_validate({"model": {"name": "m", "alias": "champion"}})
    assert s.model.selector() == ("alias", "champion")
    assert s.model.pollInterval == "30s"
    assert s.serving.runtime is Runtime.MLFLOW
    assert (s.serving.replicas, s.serving.port) == (1, 8080)


@pytest.mark.parametrize(
    ("model", "selector"),
    [
        ({"name": "m", "alias": "champion"}, ("alias", "champion")),
        ({"name": "m", "stage": "Production"}, ("stage", "Production")),
        ({"name": "m", "version": "12"}, ("version", "12")),
        ({"name": "m", "version": "latest"}, ("latest", "")),
    ],
)
def test_selector(model: dict[str, Any], selector: tuple[str, str]) -> None:
    assert ModelDeploymentSpec.model_validate({"model": model}).model.selector() == selector


GATEWAY = {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
INVALID = [
    ("two metric limits", spec(rollout={"gates": {"registryMetrics": [
        {"name": "rmse", "direction": "lower", "maxRegression": "2%", "maxDelta": 0.1}]}}),
     "at most one of maxRegression"),
    ("relative limit not a percentage", spec(rollout={"gates": {"registryMetrics": [
        {"name": "rmse", "direction": "lower", "maxRegression": "0.02"}]}}), "maxRegression"),
    ("unknown breaking-change policy", spec(rollout={"gates": {"signature": {
        "onBreakingChange": "ignore"}}}), "onBreakingChange"),
    ("unknown missing-example policy", spec(rollout={"gates": {"smokeTest": {
        "onMissingExample": "maybe"}}}), "onMissingExample"),
    ("two selectors", spec(model={"name": "m", "alias": "a", "version": "3"}),
     "exactly one of alias, stage and version"),
    ("no selector", spec(model={"name": "m"}), "exactly one of alias, stage and version"),
    ("unknown stage", spec(model={"name": "m", "stage": "Prod"}), "stage"),
    ("version not a number", spec(model={"name": "m", "version": "v3"}), "version"),
    ("negative replicas", spec(serving={"replicas": -1}), "replicas"),
    ("custom without image", spec(serving={"runtime": "custom"}), "custom needs an image"),
    ("autoscaling bounds", spec(serving={"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
     "minReplicas must not exceed maxReplicas"),
    ("bad duration", spec(model={"name": "m", "alias": "a", "pollInterval": "5 minutes"}),
     "pollInterval"),
    ("weights not increasing", spec(rollout={"steps": [{"weight": 50}, {"weight": 10}]}),
     "strictly increasing"),
    ("weights repeated", spec(rollout={"steps": [{"weight": 10}, {"weight": 10}]}),
     "strictly increasing"),
    ("weight above 100", spec(rollout={"steps": [{"weight": 120}]}), "weight"),
    ("gatewayAPI without section", spec(traffic={"router": "gatewayAPI"}),
     "needs the gatewayAPI section"),
    ("metric with query and template",
     spec(rollout={"steps": [{"weight": 10}], "analysis": {"metrics": [
         {"name": "e", "template": "error-rate", "query": "q", "max": 1}]}}),
     "exactly one of template and query"),
    ("unknown template",
     spec(rollout={"steps": [{"weight": 10}], "analysis": {"metrics": [
         {"name": "e", "template": "http-error-rate", "max": 1}]}}),
     "template"),
    ("unknown placeholder",
     spec(rollout={"steps": [{"weight": 10}], "analysis": {"metrics": [
         {"name": "e", "query": "up{job=\"{{ job }}\"}", "max": 1}]}}),
     "unknown placeholder(s) job"),
    ("metric without a threshold",
     spec(rollout={"steps": [{"weight": 10}], "analysis": {"metrics": [
         {"name": "e", "template": "error-rate"}]}}),
     "at least one of min, max and maxIncrease"),
    ("canary without steps", spec(rollout={"strategy": "canary"}), "at least one step"),
    ("analysis interval 0s", spec(rollout={"steps": [{"weight": 10}], "analysis": {
        "interval": "0s", "metrics": [{"name": "e", "template": "error-rate", "max": 1}]}}),
     "analysis interval must be at least 1s"),
    ("replicas canary with an autoscaler",
     spec(serving={"autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
          rollout={"steps": [{"weight": 10}]}), "splits traffic by replica counts"),
    ("pause that is not a duration", spec(rollout={"steps": [{"weight": 10, "pause": "soon"}]}),
     "pause"),
    ("unknown field", spec(serving={"replicaz": 2}), "replicaz"),
    ("http-only tracking uri", spec(model={"name": "m", "alias": "a", "registry": {"trackingUri": "ftp://x"}}),
     "trackingUri"),
    ("poll interval below the floor", spec(model={"name": "m", "alias": "a",
                                                  "pollInterval": "0s"}), "at least 5s"),
    ("poll interval 4.9s", spec(model={"name": "m", "alias": "a", "pollInterval": "4900ms"}),
     "at least 5s"),
    ("model name with a slash", spec(model={"name": "team/fraud", "alias": "a"}),
     "contain '/' or ':'"),
    ("reserved env name", spec(serving={"env": [{"name": "MODEL_URI", "value": "x"}]}),
     "env names set by the operator"),
    ("duplicate env name", spec(serving={"env": [{"name": "A", "value": "1"},
                                                 {"name": "A", "value": "2"}]}),
     "env names must be unique"),
    ("previous alias is the tracked alias", spec(model={
        "name": "m", "alias": "champion", "writeBack": {"previousAlias": "champion"}}),
     "may not move the alias this object tracks"),
    ("bake window with the replicas router",
     spec(rollout={"steps": [{"weight": 10}], "bakeWindow": "5m"}),
     "use traffic.router gatewayAPI or istio"),
    ("shadow with the replicas router", spec(rollout={"strategy": "shadow"}),
     "need a route object"),
    ("abTest without its audience", spec(traffic=GATEWAY, rollout={"strategy": "abTest"}),
     "needs the abTest section"),
    ("audience by header and cookie", spec(traffic=GATEWAY, rollout={
        "strategy": "abTest", "abTest": {"match": {"header": "x", "cookie": "c", "value": "v"}}}),
     "exactly one of header and cookie"),
    ("audience header with a space", spec(traffic=GATEWAY, rollout={
        "strategy": "abTest", "abTest": {"match": {"header": "x group", "value": "v"}}}),
     "header"),
]


@pytest.mark.parametrize(("case", "body", "needle"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_are_rejected_naming_the_problem(
    case: str, body: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate(body)
    assert needle in str(err.value), f"{case}: {err.value}"


def test_committed_crd_matches_the_models() -> None:
    committed = (REPO / "crds" / "modeldeployment.yaml").read_text()
    assert committed == crd.render(), (
        "crds/modeldeployment.yaml is stale: run `python -m modeldeploy.api.crd > "
        "crds/modeldeployment.yaml`")


def test_the_spec_reference_is_generated_from_the_models() -> None:
    committed = (REPO / "docs" / "spec.md").read_text()
    assert committed == docs.render(), "docs/spec.md is stale: run `make crd`"
    assert "| `spec.rollout.steps[].weight` |" in committed


def test_the_helm_chart_ships_the_same_crd() -> None:
    chart = REPO / "charts" / "modeldeploy-operator" / "crds" / "modeldeployment.yaml"
    assert chart.read_text() == (REPO / "crds" / "modeldeployment.yaml").read_text(), (
        "the chart's CRD differs from crds/: run `make crd`")


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in node:
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_crd_schema_is_structural_and_documented() -> None:
    version = crd.custom_resource_definition()["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["spec"], "spec"):
        assert "type" in node, path
        assert not {"anyOf", "allOf", "$ref", "oneOf", "title"} & set(node), path
        if path.count(".") and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description for kubectl explain"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Model", "Selector", "Stable", "Canary", "Weight", "Step", "Phase",
                       "Age"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("2h", 7200)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert durations.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "1d", "-5s", "m5"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        durations.parse(text)


def test_a_full_gates_section_is_accepted_with_its_defaults() -> None:
    parsed = ModelDeploymentSpec.model_validate(spec(rollout={"steps": [{"weight": 10}], "gates": {
        "smokeTest": {},
        "registryMetrics": [{"name": "rmse", "direction": "lower", "maxRegression": "2%"},
                            {"name": "auc", "direction": "higher", "maxDelta": 0.01,
                             "onMissing": "allow"}],
        "signature": {"onBreakingChange": "approve"},
        "required": {"tags": {"validation_status": "approved", "fairness": "*"},
                     "aliases": ["staging"]}}}))
    assert parsed.rollout is not None
    gates = parsed.rollout.gates
    assert gates is not None and gates.smokeTest is not None
    assert (gates.smokeTest.attempts, gates.smokeTest.timeout, gates.smokeTest.maxLatency,
            gates.smokeTest.onMissingExample) == (3, "10s", "1s", "skip")
    assert [m.onMissing for m in gates.registryMetrics or []] == ["block", "allow"]
    assert gates.signature is not None and gates.signature.onBreakingChange == "approve"
