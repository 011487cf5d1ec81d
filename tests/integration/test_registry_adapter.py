"""The registry adapter against the real MLflow server (no operator involved)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from mlflow.exceptions import MlflowException

from devstack.seed import mlflow_client, seed_model
from devstack.stack import StackInfo
from modeldeploy.adapters.registry import Registry, ResolveKey
from modeldeploy.core.world import RegistryOutcome
from tests.support.dropproxy import drop_proxy


@pytest.fixture(autouse=True)
def _operator_http_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's own HTTP retries as the operator process runs them (none: it retries itself),
    whatever the test harness configured for its own MLflow calls."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def key(uri: str, model: str, kind: str, value: str = "") -> ResolveKey:
    return ResolveKey(tracking_uri=uri, registry_uri=uri, model=model, kind=kind, value=value)


def test_every_selector_kind_resolves_and_misses_are_classified(stack: StackInfo) -> None:
    model = f"adapter-kinds-{uuid.uuid4().hex[:6]}"
    seed_model(stack, name=model, alias="champion", stage="Staging")
    seed_model(stack, name=model, stage="Production")
    registry = Registry(timeout=10)

    async def resolve(kind: str, value: str = "", name: str = model) -> tuple[str, str, str]:
        res = await registry.resolve(key(stack.mlflow_tracking_uri, name, kind, value), None)
        return (res.outcome.value, res.reason, res.version.version if res.version else "")

    async def scenario() -> dict[str, tuple[str, str, str]]:
        return {
            "alias": await resolve("alias", "champion"),
            "stage": await resolve("stage", "Production"),
            "version": await resolve("version", "1"),
            "latest": await resolve("latest"),
            "no alias": await resolve("alias", "nope"),
            "no version": await resolve("version", "99"),
            "empty stage": await resolve("stage", "Archived"),
            "no model": await resolve("alias", "champion", name="adapter-missing"),
        }

    got = asyncio.run(scenario())
    assert got["alias"] == ("ok", "Resolved", "1")
    assert got["stage"] == ("ok", "Resolved", "2")
    assert got["version"] == ("ok", "Resolved", "1")
    assert got["latest"] == ("ok", "Resolved", "2")
    assert got["no alias"][:2] == ("not_found", "AliasNotFound")
    assert got["no version"][:2] == ("not_found", "VersionNotFound")
    assert got["empty stage"][:2] == ("not_found", "StageEmpty")
    assert got["no model"][:2] == ("not_found", "ModelNotFound")


def test_version_details_carry_metrics_signature_and_input_example(stack: StackInfo) -> None:
    model = f"adapter-details-{uuid.uuid4().hex[:6]}"
    seeded = seed_model(stack, name=model, alias="champion", metrics={"rmse": 0.27, "auc": 0.91})
    registry = Registry(timeout=10)
    k = key(stack.mlflow_tracking_uri, model, "alias", "champion")

    async def scenario() -> object:
        res = await registry.resolve(k, None)
        assert res.version is not None and res.version.run_id == seeded["run_id"]
        return await registry.details(k, None, res.version)

    details = asyncio.run(scenario())
    assert details.metrics == pytest.approx({"rmse": 0.27, "auc": 0.91})  # type: ignore[attr-defined]
    assert "x" in details.signature["inputs"]  # type: ignore[attr-defined]
    assert details.input_example == {"columns": ["x"], "data": [[1.0], [2.0]]}  # type: ignore[attr-defined]
    # What /invocations takes: MLflow's own serving input example.
    assert details.serving_example == {  # type: ignore[attr-defined]
        "dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}
    assert details.aliases == ("champion",) and details.status == "READY"  # type: ignore[attr-defined]
    assert details.exists and details.run_found  # type: ignore[attr-defined]


def test_write_back_tags_and_aliases_and_a_deleted_version_is_told(stack: StackInfo) -> None:
    model = f"adapter-write-{uuid.uuid4().hex[:6]}"
    v1 = seed_model(stack, name=model, alias="champion")
    v2 = seed_model(stack, name=model)
    registry = Registry(timeout=10)
    k = key(stack.mlflow_tracking_uri, model, "alias", "champion")
    outcome = {"modeldeploy.outcome": "RolledBack", "modeldeploy.reason": "AnalysisFailed"}

    async def scenario() -> tuple[object, object]:
        await registry.write_back(k, None, v2["version"], tags=outcome)
        await registry.write_back(k, None, v1["version"], tags={}, aliases=("previous",))
        await registry.write_back(k, None, v2["version"], tags=outcome)  # idempotent
        res = await registry.resolve(key(stack.mlflow_tracking_uri, model, "version",
                                         v2["version"]), None)
        assert res.version is not None
        return res.version, await registry.details(k, None, res.version)

    version, details = asyncio.run(scenario())
    assert details.tags == outcome  # type: ignore[attr-defined]
    mlflow = mlflow_client(stack)
    assert mlflow.get_model_version_by_alias(model, "previous").version == v1["version"]
    assert mlflow.get_model_version(model, v2["version"]).tags == outcome

    mlflow.delete_model_version(model, v2["version"])
    gone = asyncio.run(registry.details(k, None, version))  # type: ignore[arg-type]
    assert not gone.exists and not gone.run_found

    with pytest.raises(MlflowException) as refused:
        asyncio.run(registry.write_back(k, None, v2["version"], tags=outcome))
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_an_unreachable_registry_is_an_answer_not_an_exception() -> None:
    res = asyncio.run(Registry(timeout=5).resolve(
        key("http://127.0.0.1:9", "m", "alias", "a"), None))
    assert res.outcome is RegistryOutcome.UNREACHABLE
    assert res.reason == "RegistryUnreachable" and "127.0.0.1:9" in res.message


def test_a_dropped_connection_is_retried_not_reported_as_an_outage(stack: StackInfo) -> None:
    """A server closing a keep-alive connection as it is reused must not flip the registry to
    unreachable (this flaked CI once, in a test's own MLflow call)."""
    model = f"adapter-drop-{uuid.uuid4().hex[:6]}"
    seeded = seed_model(stack, name=model, alias="champion")
    registry = Registry(timeout=10)

    with drop_proxy(stack.mlflow_tracking_uri, drop=1) as proxy:
        res = asyncio.run(registry.resolve(
            key(proxy.url, model, "alias", "champion"), None))
        assert proxy.dropped == 1 and proxy.connections >= 2
    assert (res.outcome, res.reason) == (RegistryOutcome.OK, "Resolved"), res.message
    assert res.version is not None and res.version.run_id == seeded["run_id"]

    with drop_proxy(stack.mlflow_tracking_uri, drop=-1) as proxy:
        res = asyncio.run(registry.resolve(
            key(proxy.url, model, "alias", "champion"), None))
        assert proxy.dropped == 2, "one retry, not more"
    assert (res.outcome, res.reason) == (RegistryOutcome.UNREACHABLE, "RegistryUnreachable")
    assert "without response" in res.message, res.message


def test_a_hanging_registry_is_not_asked_twice(
        stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read timeout is an answer ("no answer"), not a drop: retrying would double the wait
    and hold a registry thread past the operator's own timeout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with drop_proxy(stack.mlflow_tracking_uri, drop=-1, hang=True) as proxy:
        res = asyncio.run(Registry(timeout=10).resolve(
            key(proxy.url, "any-model", "alias", "champion"), None))
        assert proxy.connections == 1, "asked once"
    assert (res.outcome, res.reason) == (RegistryOutcome.UNREACHABLE, "RegistryUnreachable")
    assert "timed out" in res.message, res.message
