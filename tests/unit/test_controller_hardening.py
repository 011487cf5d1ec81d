"""Controller pieces after the hardening: forgetting what a watch missed, who holds a name,
per-registry limits, and the credentials cache."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import Any

from modeldeploy.adapters.kube import ApiError
from modeldeploy.adapters.registry import Registry, ResolveKey, registry_host
from modeldeploy.config import OperatorConfig
from modeldeploy.controller.credentials import CREDENTIALS_LABEL, CredentialsCache
from modeldeploy.controller.index import Index
from modeldeploy.controller.operator import Operator
from modeldeploy.controller.reconciler import refusal_message
from modeldeploy.core.world import SecretRef
from tests.support.scrape import parse, total
from tests.unit.fakeresolver import Clock, FakeRegistry, make_resolver


def _md(name: str, uid: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": rv},
            "spec": {"model": {"name": "m", "alias": "a"}}, "status": {"phase": "Stable"}}


def _svc(name: str, owner_uid: str, rv: str = "5") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"svc-{name}",
                         "resourceVersion": rv, "ownerReferences": [{
                             "kind": "ModelDeployment", "uid": owner_uid, "controller": True}]},
            "spec": {"selector": {}}}


def test_a_relist_forgets_objects_whose_deletion_the_watch_missed() -> None:
    index = Index()
    index.upsert(_md("gone", "u1", "10"))
    index.upsert(_md("kept", "u2", "11"))
    index.upsert(_md("newer", "u3", "30"))  # learnt of after the list was taken
    index.upsert_child("Service", _svc("gone", "u1"))
    forgotten = index.resync_objects([_md("kept", "u2", "11")], list_rv=20)
    assert forgotten == [("ns", "gone")]
    assert {b["metadata"]["name"] for b in index.objects()} == {"kept", "newer"}
    assert index.children("u1") == () and index.holder("ns", "Service", "gone") is None


def test_the_index_knows_who_holds_a_child_name() -> None:
    index = Index()
    index.upsert(_md("fraud", "u1", "1"))
    index.upsert_child("Service", _svc("fraud-v2", "u1"))
    assert index.holder("ns", "Service", "fraud-v2") == "u1"
    assert index.holder("other", "Service", "fraud-v2") is None
    index.deleted_by_us("u1", "Service", "fraud-v2")
    assert index.holder("ns", "Service", "fraud-v2") is None


class _FakeKube:
    """list_all and get only: what the relist and the credentials cache use."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.gets = 0

    async def list_all(self, kind: str, label_selector: str = "",
                       namespaces: tuple[str, ...] = ()) -> Any:
        objects = [o for o in self.objects
                   if not namespaces or o["metadata"]["namespace"] in namespaces]
        return (objects, 100) if kind == "ModelDeployment" else ([], 100)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.secrets.get((namespace, name))


def test_the_operator_relist_stops_polling_and_reporting_a_deleted_object() -> None:
    async def scenario() -> tuple[float, float, int]:
        kube = _FakeKube()
        op = Operator(OperatorConfig(metrics_port=0), kube)  # type: ignore[arg-type]
        op.leading = True  # only the leader reports objects
        op.model_deployment_event("ADDED", _md("gone", "u1", "10"))
        rkey = ResolveKey("http://r", "http://r", "m", "alias", "a")
        op.resolver.subscribe(("ns", "gone"), rkey, 30.0)
        before = parse(op.metrics.exposition().decode())
        await op.relist_once()  # the list no longer has it: its DELETED event was lost
        after = parse(op.metrics.exposition().decode())
        info = "modeldeploy_model_deployment_info"
        return total(before, info, name="gone"), total(after, info, name="gone"), \
            op.resolver.stats()["keys"]

    assert asyncio.run(scenario()) == (1, 0, 0)


def test_a_hanging_registry_holds_only_its_own_slots() -> None:
    release = threading.Event()

    def hang() -> str:
        release.wait(10)
        return "late"

    def answer() -> str:
        return "ok"

    async def scenario() -> tuple[list[str], str, float]:
        registry = Registry(timeout=0.3, threads=4, per_host=2)
        hung = [registry._run("http://hung:5000", hang) for _ in range(6)]
        results = await asyncio.gather(*hung, return_exceptions=True)
        started = time.monotonic()
        other = await registry._run("http://fine:5000", answer)
        return [type(r).__name__ for r in results], other, time.monotonic() - started

    try:
        kinds, other, _ = asyncio.run(scenario())
    finally:
        release.set()
    assert kinds == ["TimeoutError"] * 6
    assert other == "ok", "another registry still gets a thread"


def test_registry_hosts_are_scheme_host_and_port() -> None:
    assert registry_host("https://MLflow.corp:8443/api/x") == "https://mlflow.corp:8443"
    assert registry_host("http://a") != registry_host("https://a")


def _secret(name: str, *, labelled: bool, token: str = "t0ken") -> dict[str, Any]:  # noqa: S107
    labels = {CREDENTIALS_LABEL: "true"} if labelled else {}
    return {"metadata": {"namespace": "ns", "name": name, "labels": labels},
            "data": {"token": base64.b64encode(token.encode()).decode()}}


def test_credentials_come_from_the_watch_and_a_change_re_polls_its_keys() -> None:
    changed: list[tuple[str, str]] = []
    kube = _FakeKube()
    cache = CredentialsCache(kube, changed=lambda ns, n: changed.append((ns, n)))  # type: ignore[arg-type]
    rkey = ResolveKey("http://r", "http://r", "m", "alias", "a",
                      credentials=SecretRef(namespace="ns", name="tok"))
    cache.secret_event("ADDED", _secret("tok", labelled=True))
    creds = asyncio.run(cache(rkey))
    assert creds is not None and creds.token == "t0ken" and kube.gets == 0, "no GET per poll"
    cache.secret_event("MODIFIED", _secret("tok", labelled=True))
    assert changed == [("ns", "tok")], "unchanged data wakes nobody"
    cache.secret_event("MODIFIED", _secret("tok", labelled=True, token="new"))
    cache.secret_event("MODIFIED", _secret("tok", labelled=False))
    assert changed == [("ns", "tok")] * 3 and len(cache) == 0


def test_a_secret_the_watch_does_not_hold_is_explained() -> None:
    kube = _FakeKube()
    cache = CredentialsCache(kube, changed=lambda ns, n: None)  # type: ignore[arg-type]
    rkey = ResolveKey("http://r", "http://r", "m", "alias", "a",
                      credentials=SecretRef(namespace="ns", name="tok"))
    for secret, expected in ((None, 'secrets "tok" not found'),
                             (_secret("tok", labelled=False), "is not labelled")):
        if secret is not None:
            kube.secrets[("ns", "tok")] = secret
        try:
            asyncio.run(cache(rkey))
        except LookupError as exc:
            assert expected in str(exc)
        else:
            raise AssertionError("expected a LookupError")
    kube.secrets[("ns", "tok")] = _secret("tok", labelled=True)
    creds = asyncio.run(cache(rkey))
    assert creds is not None and creds.token == "t0ken", "labelled: used, and cached"
    assert len(cache) == 1


def test_a_relist_of_one_namespace_forgets_only_its_own_missing_secrets() -> None:
    changed: list[tuple[str, str]] = []
    cache = CredentialsCache(_FakeKube(), changed=lambda ns, n: changed.append((ns, n)))  # type: ignore[arg-type]
    other = _secret("b", labelled=True)
    other["metadata"]["namespace"] = "other"
    for body in (_secret("a", labelled=True), _secret("gone", labelled=True), other):
        cache.secret_event("ADDED", body)
    changed.clear()
    cache.resync("ns", [_secret("a", labelled=True)])
    assert changed == [("ns", "gone")] and len(cache) == 2, "other/b was not in that list"
    cache.resync(None, [])
    assert sorted(changed) == [("ns", "a"), ("ns", "gone"), ("other", "b")] and len(cache) == 0


def test_a_secret_outside_the_credential_namespaces_is_refused_without_asking() -> None:
    kube = _FakeKube()
    kube.secrets[("ns", "tok")] = _secret("tok", labelled=True)
    cache = CredentialsCache(kube, changed=lambda ns, n: None,  # type: ignore[arg-type]
                             namespaces=("team-a", "team-b"))
    rkey = ResolveKey("http://r", "http://r", "m", "alias", "a",
                      credentials=SecretRef(namespace="ns", name="tok"))
    try:
        asyncio.run(cache(rkey))
    except LookupError as exc:
        assert "only in namespaces: team-a, team-b" in str(exc), exc
        assert "registryCredentials.namespaces" in str(exc)
    else:
        raise AssertionError("expected a LookupError")
    assert kube.gets == 0, "no request the operator's RBAC would refuse"


def test_the_relist_looks_only_in_the_watched_namespaces() -> None:
    async def scenario() -> list[str]:
        kube = _FakeKube()
        kube.objects = [_md("here", "u1", "10"), _md("there", "u2", "11")]
        kube.objects[1]["metadata"]["namespace"] = "elsewhere"
        op = Operator(OperatorConfig(metrics_port=0, watch_namespaces=("ns",)), kube)  # type: ignore[arg-type]
        await op.relist_once()
        return sorted(b["metadata"]["name"] for b in op.index.objects())

    assert asyncio.run(scenario()) == ["here"]


def test_a_secret_change_makes_every_key_using_it_due_now() -> None:
    registry, woken, clock = FakeRegistry(), [], Clock()
    resolver = make_resolver(registry, woken, clock)
    ref = SecretRef(namespace="ns", name="tok")
    with_secret = ResolveKey("http://r", "http://r", "m", "alias", "a", credentials=ref)
    without = ResolveKey("http://r", "http://r", "m2", "alias", "a")

    async def scenario() -> int:
        resolver.subscribe(("ns", "a"), with_secret, 60)
        resolver.subscribe(("ns", "b"), without, 60)
        return resolver.invalidate_secret("ns", "tok")

    assert asyncio.run(scenario()) == 1


def test_a_refusal_says_what_to_do() -> None:
    route = {"kind": "HTTPRoute", "apiVersion": "gateway.networking.k8s.io/v1"}
    unserved = refusal_message(route, ApiError(404, "", "404 page not found\n"))
    assert unserved.startswith("the apiserver does not serve HTTPRoute "
                               "(gateway.networking.k8s.io/v1; 404: 404 page not found)")
    assert "install its CRDs" in unserved
    invalid = refusal_message({"kind": "Deployment", "apiVersion": "apps/v1"}, ApiError(
        422, "Invalid", 'Deployment.apps "x" is invalid: spec.template...'))
    assert invalid == ('the apiserver refused it (422 Invalid): Deployment.apps "x" is '
                       'invalid: spec.template...')
