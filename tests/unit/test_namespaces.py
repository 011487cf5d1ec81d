"""Namespace scoping: the configuration, the Kopf command line it becomes, and the index's
per-namespace relist (a list of one namespace says nothing about another)."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.config import OperatorConfig
from modeldeploy.controller.index import Index
from modeldeploy.main import kopf_args

pytestmark = pytest.mark.unit


def test_watch_and_credential_namespaces_from_the_environment() -> None:
    config = OperatorConfig.from_env({"MODELDEPLOY_WATCH_NAMESPACES": " team-a, team-b,team-a,"})
    assert config.watch_namespaces == ("team-a", "team-b")
    assert config.secret_namespaces == ("team-a", "team-b"), "default: where objects are"
    assert OperatorConfig.from_env({}).secret_namespaces is None, "everywhere, like the objects"


@pytest.mark.parametrize(("env", "where"), [
    ({"MODELDEPLOY_CREDENTIAL_NAMESPACES": ""}, ()),
    ({"MODELDEPLOY_CREDENTIAL_NAMESPACES": "vault-ns"}, ("vault-ns",)),
    ({"MODELDEPLOY_WATCH_NAMESPACES": "a,b", "MODELDEPLOY_CREDENTIAL_NAMESPACES": "b,c"}, ("b",)),
])
def test_credential_namespaces_narrow_where_secrets_are_read(
        env: dict[str, str], where: tuple[str, ...]) -> None:
    config = OperatorConfig.from_env(env)
    assert config.secret_namespaces == where
    assert "elsewhere" not in (config.secret_namespaces or ())


def test_the_kopf_command_line_follows_the_watched_namespaces() -> None:
    scoped = kopf_args(OperatorConfig(watch_namespaces=("a", "b")), ["--log-format=json"])
    assert scoped == ["run", "--standalone", "--namespace=a", "--namespace=b",
                      "--log-format=json", "-m", "modeldeploy.handlers"]
    assert "--all-namespaces" in kopf_args(OperatorConfig(), [])


def _body(namespace: str, name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid,
                         "resourceVersion": "1"}, "spec": {}}


def _child(namespace: str, name: str, owner: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"c-{name}",
                         "resourceVersion": "2", "ownerReferences": [
                             {"kind": "ModelDeployment", "uid": owner, "controller": True}]}}


def test_a_relist_of_one_namespace_keeps_the_children_of_another() -> None:
    index = Index()
    index.upsert(_body("a", "m", "ua"))
    index.upsert(_body("b", "m", "ub"))
    index.upsert_child("HTTPRoute", _child("a", "route-a", "ua"))
    index.upsert_child("HTTPRoute", _child("b", "route-b", "ub"))
    touched = index.resync_children("HTTPRoute", [], 10, namespace="a")
    assert touched == {("a", "m")}
    assert [c.name for c in index.children("ub")] == ["route-b"]
    assert index.children("ua") == ()
