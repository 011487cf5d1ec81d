"""How the traffic exporter learns each model's split: one pure function per router.

:mod:`devstack.traffic` simulates requests; this module decides, from plain API objects (the
dicts the apiserver returns), how they divide between versions. There is one reader per
traffic router the operator can drive, and one :class:`RouteSplit` per model it finds:

* ``gatewayAPI`` — an ``HTTPRoute``: the default rule's ``backendRefs``, split by ``weight``
  (default 1); each backend Service's ``modeldeploy.io/version`` label names the version.
* ``istio`` — a ``VirtualService`` (``networking.istio.io/v1``): the default ``http`` rule's
  ``route`` destinations, split by ``weight``. A destination ``host`` is a Service, short
  (``fraud-v8``) or qualified (``fraud-v8.ml``, ``fraud-v8.ml.svc``,
  ``fraud-v8.ml.svc.cluster.local``); its ``modeldeploy.io/version`` label names the version.
  A lone destination without ``weight`` takes everything (Istio's rule); beside others, a
  missing weight is 0. ``subset`` is ignored: the operator routes by host, one per version.
* ``replicas`` — no route object: the Service labelled ``modeldeploy.io/router: replicas``
  selects the pods of every version, so traffic divides by the number of Ready endpoints per
  version, as kube-proxy would spread it. Ready endpoints come from the Service's
  EndpointSlices (``kubernetes.io/service-name``; the local controller-manager keeps them for
  kwok's pods, whose fake IPs are never contacted), each mapped to a version through the
  ``modeldeploy.io/version`` label of its ``targetRef`` pod. ``conditions.ready`` unset counts
  as Ready (the API's rule); an endpoint whose pod is gone is skipped, one whose pod has no
  version label counts as version ``unknown``.

"Default rule": the last rule without matches (``matches`` / ``match``), else the first one.
Header-matched rules carry a chosen audience (an A/B cohort), not a share of all traffic: the
first rule with matches becomes the split's ``audience`` (the exporter sends it a configurable
share of users, 25% by default). A mirror on the default rule (Gateway API ``RequestMirror``
filter with ``percent`` or ``fraction``; Istio ``mirror`` + ``mirrorPercentage``, or
``mirrors``) becomes the split's ``mirror``: that percentage of the default rule's requests is
copied to the mirrored version, whose answers nobody sees.

A model is ``(namespace, modeldeploy.io/model label)``. If more than one router serves the
same model (a router switch caught half-way), only the first in :data:`PRECEDENCE` counts, so
no request is simulated twice: a route object beats the replicas Service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MODEL_LABEL = "modeldeploy.io/model"
VERSION_LABEL = "modeldeploy.io/version"
NAME_LABEL = "modeldeploy.io/name"
ROUTER_LABEL = "modeldeploy.io/router"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller
UNKNOWN_VERSION = "unknown"

GATEWAY_API = "gatewayAPI"  # router names as the ModelDeployment spells them
ISTIO = "istio"
REPLICAS = "replicas"
PREVIEW = "preview"  # a blue-green preview Service: test traffic of its own, never merged
PREVIEW_LABEL = "modeldeploy.io/preview"
#: When routers overlap on one model, the first one here wins.
PRECEDENCE = (GATEWAY_API, ISTIO, REPLICAS, PREVIEW)

_CLUSTER_SUFFIXES = ((), ("svc",), ("svc", "cluster", "local"))

Obj = dict[str, Any]


@dataclass(frozen=True)
class Backend:
    version: str
    weight: int


@dataclass(frozen=True)
class Mirror:
    version: str
    #: Percent of the default rule's requests copied to ``version`` (0..100).
    percent: float


@dataclass(frozen=True)
class RouteSplit:
    """One model's traffic: who routes it (``router``), through which object (``route``)."""

    namespace: str
    model: str
    route: str
    backends: tuple[Backend, ...]
    router: str = GATEWAY_API
    #: The ``modeldeploy.io/name`` label (the ModelDeployment): Istio's ``destination_app``.
    app: str = ""
    #: Backends of the first header/cookie-matched rule: where the A/B audience goes.
    audience: tuple[Backend, ...] = ()
    mirror: Mirror | None = None


def _meta(obj: Obj) -> tuple[str, str, dict[str, str]]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"], meta.get("labels") or {}


def _split(obj: Obj, backends: list[Backend], router: str, *,
           audience: list[Backend] | None = None, mirror: Mirror | None = None) -> RouteSplit:
    ns, name, labels = _meta(obj)
    return RouteSplit(namespace=ns, model=labels.get(MODEL_LABEL, name), route=name,
                      backends=tuple(backends), router=router,
                      app=labels.get(NAME_LABEL, name), audience=tuple(audience or ()),
                      mirror=mirror)


def _catch_all(match: Obj) -> bool:
    """A match every request meets: what the Gateway API CRD defaults a rule without matches
    to (``path: {type: PathPrefix, value: /}``), or an empty match."""
    path = match.get("path")
    rest = {k: v for k, v in match.items() if k != "path" and v}
    return not rest and (not path or (path.get("type", "PathPrefix") == "PathPrefix"
                                      and path.get("value", "/") == "/"))


def _plain(rule: Obj, match_key: str) -> bool:
    return all(_catch_all(m) for m in rule.get(match_key) or [])


def _default_rule(rules: list[Obj], match_key: str) -> Obj:
    plain = [rule for rule in rules if _plain(rule, match_key)]
    return plain[-1] if plain else rules[0]


def _matched_rule(rules: list[Obj], match_key: str) -> Obj | None:
    """The first rule with real matches (headers, cookies, paths), unless it is also the
    default rule (every rule matches something)."""
    default = _default_rule(rules, match_key)
    return next((r for r in rules if not _plain(r, match_key) and r is not default), None)


def _percent(value: Any, default: float = 100.0) -> float:
    try:
        return max(0.0, min(100.0, float(value)))
    except (TypeError, ValueError):
        return default


def _versions(services: Iterable[Obj]) -> dict[tuple[str, str], str | None]:
    return {(ns, name): labels.get(VERSION_LABEL)
            for ns, name, labels in map(_meta, services)}


def httproute_splits(routes: Sequence[Obj], services: Sequence[Obj]) -> list[RouteSplit]:
    """Splits of HTTPRoutes (gateway.networking.k8s.io); backends resolve through Services."""
    version_of = _versions(services)
    out: list[RouteSplit] = []
    for r in routes:
        rules = (r.get("spec") or {}).get("rules") or []
        if not rules:
            continue
        ns = r["metadata"]["namespace"]

        def version(ref: Obj, ns: str = ns) -> str:
            return version_of.get((ref.get("namespace", ns), ref["name"])) or ref["name"]

        def backends_of(rule: Obj) -> list[Backend]:
            return [Backend(version=version(ref), weight=int(ref.get("weight", 1)))
                    for ref in rule.get("backendRefs") or []
                    if ref.get("kind", "Service") == "Service"]

        default = _default_rule(rules, "matches")
        matched = _matched_rule(rules, "matches")
        out.append(_split(r, backends_of(default), GATEWAY_API,
                          audience=backends_of(matched) if matched else None,
                          mirror=_httproute_mirror(default, version)))
    return out


def _httproute_mirror(rule: Obj, version: Any) -> Mirror | None:
    """A RequestMirror filter: ``percent``, or ``fraction`` (numerator / denominator, default
    denominator 100), else everything."""
    for f in rule.get("filters") or []:
        mirror = f.get("requestMirror") if f.get("type") == "RequestMirror" else None
        if not mirror or not (mirror.get("backendRef") or {}).get("name"):
            continue
        if "percent" in mirror:
            percent = _percent(mirror["percent"])
        elif "fraction" in mirror:
            frac = mirror["fraction"] or {}
            percent = _percent(100.0 * float(frac.get("numerator", 0))
                               / float(frac.get("denominator", 100) or 100))
        else:
            percent = 100.0
        return Mirror(version=version(mirror["backendRef"]), percent=percent)
    return None


def service_of_host(host: str, namespace: str) -> tuple[str, str] | None:
    """``(namespace, service)`` a VirtualService host names, or None for a host outside the
    cluster's Services. Short names are relative to the VirtualService's namespace."""
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, host
    if tuple(parts[2:]) in _CLUSTER_SUFFIXES:
        return parts[1], parts[0]
    return None


def virtualservice_splits(vss: Sequence[Obj], services: Sequence[Obj]) -> list[RouteSplit]:
    """Splits of VirtualServices (networking.istio.io); hosts resolve through Services."""
    version_of = _versions(services)
    out: list[RouteSplit] = []
    for vs in vss:
        rules = (vs.get("spec") or {}).get("http") or []
        if not rules:
            continue
        ns = vs["metadata"]["namespace"]

        def version(host: str, ns: str = ns) -> str:
            svc = service_of_host(host, ns)
            return (version_of.get(svc) if svc else None) or (svc[1] if svc else host)

        def backends_of(rule: Obj) -> list[Backend]:
            routes = rule.get("route") or []
            backends = []
            for dest in routes:
                host = str((dest.get("destination") or {}).get("host", ""))
                if host:
                    default = 100 if len(routes) == 1 else 0
                    backends.append(Backend(version=version(host),
                                            weight=int(dest.get("weight", default))))
            return backends

        default = _default_rule(rules, "match")
        matched = _matched_rule(rules, "match")
        out.append(_split(vs, backends_of(default), ISTIO,
                          audience=backends_of(matched) if matched else None,
                          mirror=_istio_mirror(default, version)))
    return out


def _istio_mirror(rule: Obj, version: Any) -> Mirror | None:
    """``mirror`` + ``mirrorPercentage.value`` (absent: 100), or the first of ``mirrors``."""
    if (rule.get("mirror") or {}).get("host"):
        pct = (rule.get("mirrorPercentage") or {}).get("value", 100.0)
        return Mirror(version=version(rule["mirror"]["host"]), percent=_percent(pct))
    for m in rule.get("mirrors") or []:
        host = (m.get("destination") or {}).get("host")
        if host:
            pct = (m.get("percentage") or {}).get("value", 100.0)
            return Mirror(version=version(host), percent=_percent(pct))
    return None


def _ready(endpoint: Obj) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is not False


def replicas_splits(services: Sequence[Obj], slices: Sequence[Obj],
                    pods: Sequence[Obj]) -> list[RouteSplit]:
    """Splits of Services labelled ``modeldeploy.io/router: replicas``: one share per Ready
    endpoint, so a version's weight is its number of Ready pods behind the Service."""
    pod_version = {(ns, name): labels.get(VERSION_LABEL) or UNKNOWN_VERSION
                   for ns, name, labels in map(_meta, pods)}
    slices_of: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        ns, _, labels = _meta(s)
        if SERVICE_NAME_LABEL in labels:
            slices_of.setdefault((ns, labels[SERVICE_NAME_LABEL]), []).append(s)
    out: list[RouteSplit] = []
    for svc in services:
        ns, name, labels = _meta(svc)
        if labels.get(ROUTER_LABEL) != REPLICAS:
            continue
        # Keyed by pod: while a slice is rewritten an endpoint may briefly sit in two.
        ready: dict[str, str] = {}
        for s in slices_of.get((ns, name), []):
            for ep in s.get("endpoints") or []:
                ref = ep.get("targetRef") or {}
                version = pod_version.get((ref.get("namespace", ns), ref.get("name", "")))
                if ref.get("kind") == "Pod" and version is not None and _ready(ep):
                    ready[ref["name"]] = version
        counts: dict[str, int] = {}
        for version in ready.values():
            counts[version] = counts.get(version, 0) + 1
        backends = [Backend(version=v, weight=n) for v, n in sorted(counts.items())]
        out.append(_split(svc, backends, REPLICAS))
    return out


def preview_splits(services: Sequence[Obj]) -> list[RouteSplit]:
    """Blue-green preview Services (``modeldeploy.io/preview: "true"``): the version they
    select gets a stream of test traffic of its own, as a smoke tester or a QA team would
    send, so analysis can judge it before the switch."""
    out: list[RouteSplit] = []
    for svc in services:
        _, _, labels = _meta(svc)
        version = ((svc.get("spec") or {}).get("selector") or {}).get(VERSION_LABEL)
        if labels.get(PREVIEW_LABEL) == "true" and version:
            out.append(_split(svc, [Backend(version=version, weight=1)], PREVIEW))
    return out


def replicas_namespaces(services: Sequence[Obj]) -> set[str]:
    """Namespaces whose EndpointSlices and pods the replicas router needs read."""
    return {ns for ns, _, labels in map(_meta, services) if labels.get(ROUTER_LABEL) == REPLICAS}


def merge(*groups: list[RouteSplit]) -> list[RouteSplit]:
    """All splits, minus those of a model that a router earlier in :data:`PRECEDENCE`
    already serves (per router, every object still counts)."""
    rank = {router: i for i, router in enumerate(PRECEDENCE)}
    splits = sorted((s for g in groups for s in g), key=lambda s: rank[s.router])
    winner: dict[tuple[str, str], str] = {}
    out = []
    for split in splits:
        if split.router == PREVIEW:  # in addition to the model's main traffic
            out.append(split)
            continue
        key = (split.namespace, split.model)
        if winner.setdefault(key, split.router) == split.router:
            out.append(split)
    return out


def splits_from_objects(
    *,
    services: Sequence[Obj],
    httproutes: Sequence[Obj] = (),
    virtualservices: Sequence[Obj] = (),
    endpointslices: Sequence[Obj] = (),
    pods: Sequence[Obj] = (),
) -> list[RouteSplit]:
    """Every model's split, from everything the exporter read in one pass."""
    return merge(httproute_splits(httproutes, services),
                 virtualservice_splits(virtualservices, services),
                 replicas_splits(services, endpointslices, pods),
                 preview_splits(services))
