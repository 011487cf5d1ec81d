"""Splits read from each router's objects: HTTPRoute, VirtualService, replicas Service."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.traffic_routes import (
    GATEWAY_API,
    ISTIO,
    REPLICAS,
    Backend,
    Mirror,
    httproute_splits,
    replicas_namespaces,
    replicas_splits,
    service_of_host,
    splits_from_objects,
    virtualservice_splits,
)

NS = "ml"


def _svc(name: str, version: str, *, ns: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns,
                         "labels": {"modeldeploy.io/version": version}}}


VERSION_SERVICES = [_svc("fraud-v7", "7"), _svc("fraud-v8", "8"),
                    _svc("fraud-v9", "9", ns="other")]


def _vs(*rules: dict[str, Any], name: str = "fraud", ns: str = NS,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels if labels is not None
                         else {"modeldeploy.io/name": "fraud", "modeldeploy.io/model": "fraud-m"}},
            "spec": {"hosts": ["fraud.example.com"], "http": list(rules)}}


def _dest(host: str, weight: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"destination": {"host": host, "port": {"number": 80}}}
    if weight is not None:
        d["weight"] = weight
    return d


# -- VirtualService -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("fraud-v8", (NS, "fraud-v8")),
        ("fraud-v8.ml", ("ml", "fraud-v8")),
        ("fraud-v8.other.svc", ("other", "fraud-v8")),
        ("fraud-v8.other.svc.cluster.local", ("other", "fraud-v8")),
        ("fraud.example.com", None),
        ("fraud-v8.ml.svc.cluster.example", None),
    ],
)
def test_host_names_a_service(host: str, expected: tuple[str, str] | None) -> None:
    assert service_of_host(host, NS) == expected


@pytest.mark.parametrize(
    ("rules", "backends"),
    [
        pytest.param([{"route": [_dest("fraud-v7", 80), _dest("fraud-v8", 20)]}],
                     (Backend("7", 80), Backend("8", 20)), id="short hosts"),
        pytest.param([{"route": [_dest("fraud-v7.ml.svc.cluster.local", 90),
                                 _dest("fraud-v8.ml.svc.cluster.local", 10)]}],
                     (Backend("7", 90), Backend("8", 10)), id="fully qualified hosts"),
        pytest.param([{"route": [_dest("fraud-v9.other.svc.cluster.local", 100)]}],
                     (Backend("9", 100),), id="service in another namespace"),
        pytest.param([{"route": [_dest("fraud-v8")]}], (Backend("8", 100),),
                     id="lone destination without weight takes all"),
        pytest.param([{"route": [_dest("fraud-v7", 100), _dest("fraud-v8")]}],
                     (Backend("7", 100), Backend("8", 0)),
                     id="missing weight beside others is 0"),
        pytest.param([{"match": [{"headers": {"x-cohort": {"exact": "b"}}}],
                       "route": [_dest("fraud-v8", 100)]},
                      {"route": [_dest("fraud-v7", 95), _dest("fraud-v8", 5)]}],
                     (Backend("7", 95), Backend("8", 5)), id="match rules skipped"),
        pytest.param([{"route": [_dest("fraud-v7", 100)]},
                      {"route": [_dest("fraud-v8", 100)]}],
                     (Backend("8", 100),), id="last rule without match wins"),
        pytest.param([{"match": [{"uri": {"prefix": "/a"}}], "route": [_dest("fraud-v8", 1)]},
                      {"match": [{"uri": {"prefix": "/b"}}], "route": [_dest("fraud-v7", 1)]}],
                     (Backend("8", 1),), id="only match rules: the first"),
        pytest.param([{"route": [_dest("fraud-v6", 50), _dest("payments.example.com", 50)]}],
                     (Backend("fraud-v6", 50), Backend("payments.example.com", 50)),
                     id="unknown Service or outside host: its name"),
    ],
)
def test_virtualservice_split(rules: list[dict[str, Any]],
                              backends: tuple[Backend, ...]) -> None:
    [split] = virtualservice_splits([_vs(*rules)], VERSION_SERVICES)
    assert split.backends == backends
    assert (split.namespace, split.model, split.route, split.router, split.app) == (
        NS, "fraud-m", "fraud", ISTIO, "fraud")


def test_virtualservice_without_labels_is_named_by_itself() -> None:
    [split] = virtualservice_splits([_vs({"route": [_dest("fraud-v7")]}, labels={})],
                                    VERSION_SERVICES)
    assert (split.model, split.app) == ("fraud", "fraud")


def test_virtualservice_without_http_rules_is_ignored() -> None:
    assert virtualservice_splits([_vs()], VERSION_SERVICES) == []


# -- replicas -------------------------------------------------------------------------------


def _replicas_svc(name: str = "fraud", *, router: str = REPLICAS,
                  ns: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": {
        "modeldeploy.io/name": name, "modeldeploy.io/model": "fraud-m",
        "app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.io/router": router}}}


def _pod(name: str, version: str | None, ns: str = NS) -> dict[str, Any]:
    labels = {"modeldeploy.io/version": version} if version else {}
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}}


def _slice(service: str, *endpoints: tuple[str, bool | None], ns: str = NS) -> dict[str, Any]:
    eps = []
    for pod, ready in endpoints:
        ep: dict[str, Any] = {"addresses": ["10.0.0.1"],
                              "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}
        if ready is not None:
            ep["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
        eps.append(ep)
    return {"metadata": {"name": f"{service}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": eps}


PODS = [_pod("a1", "7"), _pod("a2", "7"), _pod("a3", "7"), _pod("b1", "8"), _pod("b2", "8"),
        _pod("x1", None)]


@pytest.mark.parametrize(
    ("slices", "backends"),
    [
        pytest.param([_slice("fraud", ("a1", True), ("a2", True), ("a3", True), ("b1", True))],
                     (Backend("7", 3), Backend("8", 1)), id="3 and 1 Ready"),
        pytest.param([_slice("fraud", ("a1", True), ("a2", False), ("b1", True),
                             ("b2", False))],
                     (Backend("7", 1), Backend("8", 1)), id="not Ready endpoints carry nothing"),
        pytest.param([_slice("fraud", ("a1", None), ("b1", True))],
                     (Backend("7", 1), Backend("8", 1)), id="unset ready counts as Ready"),
        pytest.param([_slice("fraud", ("a1", True), ("b1", True)),
                      _slice("fraud", ("a2", True), ("b1", True))],
                     (Backend("7", 2), Backend("8", 1)),
                     id="several slices, an endpoint in two counts once"),
        pytest.param([_slice("fraud", ("a1", True), ("gone", True))], (Backend("7", 1),),
                     id="endpoint of a deleted pod skipped"),
        pytest.param([_slice("fraud", ("a1", True), ("x1", True))],
                     (Backend("7", 1), Backend("unknown", 1)), id="pod without version label"),
        pytest.param([_slice("other", ("a1", True)), _slice("fraud", ("b1", True))],
                     (Backend("8", 1),), id="only the Service's own slices"),
        pytest.param([_slice("fraud", ("b1", False))], (), id="nothing Ready: no backends"),
        pytest.param([], (), id="no slices yet"),
    ],
)
def test_replicas_split_follows_ready_endpoints(slices: list[dict[str, Any]],
                                                backends: tuple[Backend, ...]) -> None:
    [split] = replicas_splits([_replicas_svc()], slices, PODS)
    assert split.backends == backends
    assert (split.namespace, split.model, split.route, split.router, split.app) == (
        NS, "fraud-m", "fraud", REPLICAS, "fraud")


def test_only_services_labelled_replicas_are_routers() -> None:
    services = [_replicas_svc(router="gatewayAPI"), _svc("fraud-v7", "7"),
                _replicas_svc("payments", ns="pay")]
    slices = [_slice("fraud", ("a1", True))]
    assert [s.route for s in replicas_splits(services, slices, PODS)] == ["payments"]
    assert replicas_namespaces(services) == {"pay"}


def test_endpoint_pods_are_looked_up_in_their_namespace() -> None:
    split, = replicas_splits([_replicas_svc()], [_slice("fraud", ("a1", True))],
                             [_pod("a1", "7", ns="elsewhere")])
    assert split.backends == ()


# -- all routers together -------------------------------------------------------------------


def _route(name: str, model: str, backends: dict[str, int]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS,
                         "labels": {"modeldeploy.io/model": model}},
            "spec": {"rules": [{"backendRefs": [{"name": n, "weight": w}
                                                for n, w in backends.items()]}]}}


def _replicas_for(model: str) -> dict[str, Any]:
    svc = _replicas_svc(model)
    svc["metadata"]["labels"]["modeldeploy.io/model"] = model
    return svc


def _vs_for(model: str) -> dict[str, Any]:
    return _vs({"route": [_dest("fraud-v8")]}, name=model,
               labels={"modeldeploy.io/name": model, "modeldeploy.io/model": model})


@pytest.mark.parametrize(
    ("routers", "counted"),
    [
        pytest.param({GATEWAY_API}, GATEWAY_API, id="HTTPRoute alone"),
        pytest.param({ISTIO}, ISTIO, id="VirtualService alone"),
        pytest.param({REPLICAS}, REPLICAS, id="replicas Service alone"),
        pytest.param({GATEWAY_API, REPLICAS}, GATEWAY_API, id="HTTPRoute beats replicas"),
        pytest.param({ISTIO, REPLICAS}, ISTIO, id="VirtualService beats replicas"),
        pytest.param({GATEWAY_API, ISTIO, REPLICAS}, GATEWAY_API, id="all three"),
    ],
)
def test_a_model_is_counted_through_one_router(routers: set[str], counted: str) -> None:
    """A model served by two routers at once (a router switch caught half-way) must not get
    its traffic twice; other models are untouched."""
    splits = splits_from_objects(
        services=[*VERSION_SERVICES, _replicas_for("m"), _replicas_for("solo")],
        httproutes=[_route("m", "m", {"fraud-v7": 1})] if GATEWAY_API in routers else [],
        virtualservices=[_vs_for("m")] if ISTIO in routers else [],
        endpointslices=[_slice("m", ("a1", True)), _slice("solo", ("b1", True))]
        if REPLICAS in routers else [_slice("solo", ("b1", True))],
        pods=PODS)
    by_model = {(s.model, s.router) for s in splits}
    assert by_model == {("m", counted), ("solo", REPLICAS)}


def test_a_blue_green_preview_service_gets_test_traffic_next_to_the_main_route() -> None:
    from devstack.traffic_routes import PREVIEW, merge, preview_splits

    preview = {"metadata": {"namespace": "ml", "name": "pricing-preview", "labels": {
        "modeldeploy.io/model": "pricing", "modeldeploy.io/preview": "true"}},
        "spec": {"selector": {"modeldeploy.io/name": "pricing", "modeldeploy.io/version": "3"}}}
    plain = {"metadata": {"namespace": "ml", "name": "pricing", "labels": {
        "modeldeploy.io/model": "pricing"}},
        "spec": {"selector": {"modeldeploy.io/version": "2"}}}
    splits = preview_splits([preview, plain])
    assert [(s.router, s.route, [(b.version, b.weight) for b in s.backends]) for s in splits] \
        == [(PREVIEW, "pricing-preview", [("3", 1)])]
    assert merge(splits, splits[:0]) == splits


def _httproute(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "namespace": NS, "labels": {
        "modeldeploy.io/name": "fraud", "modeldeploy.io/model": "fraud-m"}},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": list(rules)}}


def _ref(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": 8080}
    if weight is not None:
        ref["weight"] = weight
    return ref


HEADER = [{"headers": [{"name": "x-cohort", "value": "b"}]}]


@pytest.mark.parametrize(("mirror", "expected"), [
    ({"backendRef": _ref("fraud-v8"), "percent": 10}, Mirror("8", 10.0)),
    ({"backendRef": _ref("fraud-v8"), "fraction": {"numerator": 1, "denominator": 4}},
     Mirror("8", 25.0)),
    ({"backendRef": _ref("fraud-v8")}, Mirror("8", 100.0)),
], ids=["percent", "fraction", "everything"])
def test_httproute_ab_audience_and_mirror(mirror: dict[str, Any], expected: Mirror) -> None:
    [split] = httproute_splits([_httproute(
        {"matches": HEADER, "backendRefs": [_ref("fraud-v8")]},
        {"backendRefs": [_ref("fraud-v7", 100)],
         "filters": [{"type": "RequestMirror", "requestMirror": mirror}]})], VERSION_SERVICES)
    assert split.backends == (Backend("7", 100),)
    assert split.audience == (Backend("8", 1),)
    assert split.mirror == expected


def test_a_plain_httproute_has_no_audience_and_no_mirror() -> None:
    [split] = httproute_splits([_httproute({"backendRefs": [_ref("fraud-v7", 100)]})],
                               VERSION_SERVICES)
    assert split.audience == () and split.mirror is None


@pytest.mark.parametrize(("rule", "expected"), [
    ({"mirror": {"host": "fraud-v8"}, "mirrorPercentage": {"value": 5.5}}, Mirror("8", 5.5)),
    ({"mirror": {"host": "fraud-v8.ml.svc.cluster.local"}}, Mirror("8", 100.0)),
    ({"mirrors": [{"destination": {"host": "fraud-v8"}, "percentage": {"value": 30}}]},
     Mirror("8", 30.0)),
], ids=["mirrorPercentage", "no percentage", "mirrors"])
def test_virtualservice_ab_audience_and_mirror(rule: dict[str, Any], expected: Mirror) -> None:
    [split] = virtualservice_splits([_vs(
        {"match": [{"headers": {"x-cohort": {"exact": "b"}}}], "route": [_dest("fraud-v8")]},
        {"route": [_dest("fraud-v7", 100)], **rule})], VERSION_SERVICES)
    assert split.backends == (Backend("7", 100),)
    assert split.audience == (Backend("8", 100),)
    assert split.mirror == expected


def test_the_crds_defaulted_catch_all_match_is_the_default_rule() -> None:
    """The apiserver stores a rule without matches as matching PathPrefix "/"."""
    catch_all = [{"path": {"type": "PathPrefix", "value": "/"}}]
    [split] = httproute_splits([_httproute(
        {"matches": HEADER, "backendRefs": [_ref("fraud-v8")]},
        {"matches": catch_all, "backendRefs": [_ref("fraud-v7", 100)]})], VERSION_SERVICES)
    assert split.backends == (Backend("7", 100),) and split.audience == (Backend("8", 1),)
