"""Pure helpers of the reconciler: registry keys, defaults, allow-list, spec error text."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.config import OperatorConfig, registry_allowed
from modeldeploy.controller.reconciler import parse_spec, refusal_backoff, registry_key
from modeldeploy.core.world import SecretRef


def spec(**model: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"name": "m", "alias": "a", **model}})


def test_default_registry_comes_from_the_operator() -> None:
    found = registry_key(spec(alias="champion"), "ns",
                         OperatorConfig(default_tracking_uri="http://mlflow:5000"))
    assert not isinstance(found, str)
    rkey, target = found
    assert (rkey.tracking_uri, rkey.registry_uri, rkey.kind, rkey.value) == (
        "http://mlflow:5000", "http://mlflow:5000", "alias", "champion")
    assert target.credentials is None


def test_no_registry_anywhere_is_a_spec_error_naming_the_field() -> None:
    assert "spec.model.registry.trackingUri" in str(registry_key(spec(), "ns", OperatorConfig()))


def test_credentials_reference_is_namespaced_and_part_of_the_key() -> None:
    reg = {"trackingUri": "https://mlflow.example.com", "credentialsSecret": {"name": "tok"}}
    found = registry_key(spec(registry=reg), "team-a", OperatorConfig())
    assert not isinstance(found, str)
    assert found[0].credentials == SecretRef(namespace="team-a", name="tok")
    other = registry_key(spec(registry=reg), "team-b", OperatorConfig())
    assert not isinstance(other, str) and other[0] != found[0], "never shared across namespaces"


@pytest.mark.parametrize(("uri", "allowed"), [
    ("https://mlflow.example.com", True), ("https://mlflow.example.com.evil.io", False),
    ("https://mlflow.example.com@evil.io", False), ("https://x@mlflow.example.com", False),
    ("https://MLFLOW.example.com", True), ("http://mlflow.example.com", False),
    ("https://mlflow.example.com:8443", False), ("http://169.254.169.254", False)])
def test_allow_list_limits_where_requests_and_credentials_go(uri: str, allowed: bool) -> None:
    config = OperatorConfig(allowed_registries=("https://mlflow.example.com/",
                                                "https://mlflow.example.com:443/"))
    found = registry_key(spec(registry={"trackingUri": uri + "/"}), "ns", config)
    assert isinstance(found, str) != allowed
    if not allowed:
        assert "spec.model.registry.trackingUri" in str(found)


def test_allow_list_from_environment() -> None:
    config = OperatorConfig.from_env({"MODELDEPLOY_ALLOWED_REGISTRIES": " http://a/ ,http://b/"})
    assert config.allowed_registries == ("http://a/", "http://b/")


def test_spec_errors_name_the_field() -> None:
    parsed, error = parse_spec({"model": {"name": "m", "alias": "a"}, "serving": {"replicas": -1}})
    assert parsed is None and error is not None
    assert error.startswith("spec.serving.replicas:")


@pytest.mark.parametrize(("uri", "allowed"), [
    ("https://mlflow.corp", True), ("https://mlflow.corp/", True),
    ("https://mlflow.corp:443/api", True), ("https://mlflow.corp.evil.io", False),
    ("https://mlflow.corp@evil.io", False), ("https://mlflow.corp:444", False),
    ("https://gw.corp/mlflow", True), ("https://gw.corp/mlflow/team-a", True),
    ("https://gw.corp/mlflow-evil", False), ("https://gw.corp/", False),
    ("ftp://mlflow.corp", False), ("https://mlflow.corp:notaport", False), ("nonsense", False),
])
def test_allow_list_compares_scheme_host_port_and_whole_path_segments(
    uri: str, allowed: bool,
) -> None:
    assert registry_allowed(uri, ["https://mlflow.corp", "https://gw.corp/mlflow/"]) is allowed


def test_refused_children_are_retried_with_a_growing_backoff() -> None:
    assert [refusal_backoff(n) for n in (1, 2, 3, 10)] == [5.0, 10.0, 20.0, 300.0]
