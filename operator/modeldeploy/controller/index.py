"""What the watches have seen: ModelDeployments and compact summaries of their children.

The reconciler observes from here instead of GETting objects, so an object whose children
are as desired costs no API call at all. Children are kept as small frozen
:class:`~modeldeploy.core.world.Child` records (not bodies), grouped by owner uid; the
ModelDeployment bodies are kept with ``managedFields`` stripped. That is what keeps memory flat
at a thousand objects.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.adapters.kube import FIELD_MANAGER
from modeldeploy.api import KIND
from modeldeploy.core import render
from modeldeploy.core.world import Child

Key = tuple[str, str]  # (namespace, name)


def key_of(body: dict[str, Any]) -> Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])


def _owns_replicas(meta: dict[str, Any]) -> bool:
    """Our own apply set ``spec.replicas`` (so it must be handed over before we stop)."""
    for entry in meta.get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            return "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    return False


def _catch_all(match: dict[str, Any]) -> bool:
    """A match every request meets: the Gateway API CRD defaults a rule without matches to
    ``path: {type: PathPrefix, value: /}``; an empty match is one too."""
    path = match.get("path") or {}
    rest = {k: v for k, v in match.items() if k != "path" and v}
    return not rest and (not path or (path.get("type", "PathPrefix") == "PathPrefix"
                                      and path.get("value", "/") == "/"))


def _plain(rule: dict[str, Any], match_key: str) -> bool:
    return all(_catch_all(m) for m in rule.get(match_key) or [])


def _default_rule(rules: list[dict[str, Any]], match_key: str) -> dict[str, Any]:
    """The rule all other traffic takes: the last one without real matches, else the first."""
    return next((r for r in reversed(rules) if _plain(r, match_key)),
                rules[0] if rules else {})


def _matched_rule(rules: list[dict[str, Any]], match_key: str) -> dict[str, Any] | None:
    """The first rule with real matches (an A/B audience), unless it is the default rule."""
    default = _default_rule(rules, match_key)
    return next((r for r in rules if not _plain(r, match_key) and r is not default), None)


def _host(destination: dict[str, Any] | None) -> str:
    return str((destination or {}).get("host", "")).split(".")[0]


def _route_view(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """(backend Service name, weight) of a route's default rule, the backend of its A/B rule
    and its default rule's mirror, as the object says them."""
    spec = body.get("spec") or {}
    if kind == "VirtualService":
        rules = spec.get("http") or []
        default = _default_rule(rules, "match")
        route = default.get("route") or []
        weight = 100 if len(route) == 1 else 0
        matched = _matched_rule(rules, "match")
        mirror = None
        if (default.get("mirror") or {}).get("host"):
            pct = (default.get("mirrorPercentage") or {}).get("value", 100)
            mirror = (_host(default["mirror"]), round(float(pct)))
        return {"backends": tuple((_host(d.get("destination")), int(d.get("weight", weight)))
                                  for d in route),
                "audience": _host((matched.get("route") or [{}])[0].get("destination"))
                if matched else None, "mirror": mirror}
    rules = spec.get("rules") or []
    default = _default_rule(rules, "matches")
    matched = _matched_rule(rules, "matches")
    mirror = None
    for f in default.get("filters") or []:
        req = f.get("requestMirror") if f.get("type") == "RequestMirror" else None
        if req and (req.get("backendRef") or {}).get("name"):
            frac = req.get("fraction") or {}
            pct = req.get("percent", 100 * int(frac.get("numerator", 1)) /
                          max(int(frac.get("denominator", 100) or 100), 1)
                          if frac else 100)
            mirror = (str(req["backendRef"]["name"]), round(float(pct)))
            break
    return {"backends": tuple((str(b.get("name")), int(b.get("weight", 1)))
                              for b in default.get("backendRefs") or []),
            "audience": str((matched.get("backendRefs") or [{}])[0].get("name"))
            if matched and matched.get("backendRefs") else None, "mirror": mirror}


def child_of(kind: str, body: dict[str, Any]) -> Child:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    base: dict[str, Any] = {
        "kind": kind, "name": meta["name"], "version": labels.get(render.LABEL_VERSION),
        "hash": annotations.get(render.ANNOTATION_HASH), "uid": meta.get("uid"),
        "fingerprint": render.fingerprint(kind, body)}
    if kind in ("HTTPRoute", "VirtualService"):
        return Child(**base, **_route_view(kind, body))
    if kind != "Deployment":
        return Child(**base)
    spec, status = body.get("spec") or {}, body.get("status") or {}
    conditions = status.get("conditions") or []
    return Child(
        **base,
        replicas_owned=_owns_replicas(meta),
        replicas=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        current=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
        deadline_exceeded=any(c.get("type") == "Progressing" and
                              c.get("reason") == "ProgressDeadlineExceeded" for c in conditions),
    )


def owner_uid(body: dict[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("controller"):
            return str(ref["uid"])
    return None


def _rv(body: dict[str, Any]) -> int | None:
    value = (body.get("metadata") or {}).get("resourceVersion")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class Index:
    """Watch events and our own write responses, newest resourceVersion wins.

    The reconciler writes the responses of its own status patches and applies back into the
    index; a watch event that is older than such a write (it was in flight) is ignored, so a
    reconcile never decides on a status it has itself already replaced. resourceVersions are
    compared as integers, which holds for etcd-backed apiservers.
    """

    def __init__(self) -> None:
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._uid_to_key: dict[str, Key] = {}
        self._children: dict[str, dict[tuple[str, str], Child]] = {}
        self._child_rv: dict[tuple[str, str, str], int] = {}
        self._child_uid: dict[tuple[str, str, str], str] = {}
        self._tombstones: dict[tuple[str, str, str], str] = {}
        #: (namespace, kind, name) -> owner uid, for every managed child: who holds a name.
        self._holders: dict[tuple[str, str, str], str] = {}
        self._child_ns: dict[tuple[str, str, str], str] = {}

    # ModelDeployments

    def upsert(self, body: dict[str, Any]) -> Key:
        key = key_of(body)
        meta = body.setdefault("metadata", {})
        meta.pop("managedFields", None)
        known = self._bodies.get(key)
        if known is not None and known["metadata"].get("uid") == meta.get("uid"):
            old, new = _rv(known), _rv(body)
            if old is not None and new is not None and new < old:
                return key  # an event older than what we already know
        self._bodies[key] = body
        self._uid_to_key[str(meta.get("uid"))] = key
        return key

    def remove(self, key: Key) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            uid = str(body["metadata"].get("uid"))
            for kind, name in list(self._children.get(uid, {})):
                self._drop((uid, kind, name))
            self._uid_to_key.pop(uid, None)

    def get(self, key: Key) -> dict[str, Any] | None:
        return self._bodies.get(key)

    def objects(self) -> list[dict[str, Any]]:
        return list(self._bodies.values())

    # Children

    def upsert_child(self, kind: str, body: dict[str, Any]) -> Key | None:
        """Record a child; returns its owner's key when the owner is known."""
        uid = owner_uid(body)
        if uid is None:
            return None
        meta = body["metadata"]
        slot = (uid, kind, meta["name"])
        tomb = self._tombstones.get(slot)
        if tomb is not None and tomb == meta.get("uid"):
            return None  # a late event about an object we deleted
        self._tombstones.pop(slot, None)
        rv = _rv(body)
        if rv is not None and self._child_rv.get(slot, -1) > rv:
            return self._uid_to_key.get(uid)
        self._children.setdefault(uid, {})[(kind, meta["name"])] = child_of(kind, body)
        self._holders[(str(meta.get("namespace")), kind, meta["name"])] = uid
        self._child_ns[slot] = str(meta.get("namespace"))
        if meta.get("uid"):
            self._child_uid[slot] = str(meta["uid"])
        if rv is not None:
            self._child_rv[slot] = rv
        return self._uid_to_key.get(uid)

    def remove_child(self, kind: str, body: dict[str, Any]) -> Key | None:
        """A watch DELETED event."""
        uid = owner_uid(body)
        if uid is None:
            return None
        slot = (uid, kind, body["metadata"]["name"])
        self._drop(slot)
        self._tombstones.pop(slot, None)
        return self._uid_to_key.get(uid)

    def deleted_by_us(self, owner: str, kind: str, name: str) -> None:
        """We deleted it: forget it now, and ignore late events about that same object."""
        slot = (owner, kind, name)
        if slot in self._child_uid:
            self._tombstones[slot] = self._child_uid[slot]
        self._drop(slot)

    def _drop(self, slot: tuple[str, str, str]) -> None:
        uid, kind, name = slot
        namespace = self._child_ns.pop(slot, None)
        if namespace is not None and self._holders.get((namespace, kind, name)) == uid:
            del self._holders[(namespace, kind, name)]
        children = self._children.get(uid)
        if children is not None:
            children.pop((kind, name), None)
            if not children:
                del self._children[uid]
        self._child_rv.pop(slot, None)
        self._child_uid.pop(slot, None)

    def resync_children(self, kind: str, listed: list[dict[str, Any]],
                        list_rv: int | None, *, namespace: str | None = None) -> set[Key]:
        """Reconcile the index with a fresh LIST of ``kind`` (in ``namespace``, or all): drop
        what the list no longer has (a DELETED event missed while a watch was down) unless we
        learnt of it after the list was taken, and drop children whose owner is gone.
        Returns owners to re-check."""
        present = {(owner_uid(b), b["metadata"]["name"]) for b in listed}
        touched: set[Key] = set()
        for uid, children in list(self._children.items()):
            owner = self._uid_to_key.get(uid)
            if namespace is not None and owner is not None and owner[0] != namespace:
                continue  # that list did not look there
            for ckind, name in list(children):
                if ckind != kind:
                    continue
                slot = (uid, kind, name)
                newer = list_rv is not None and self._child_rv.get(slot, -1) > list_rv
                if uid not in self._uid_to_key or ((uid, name) not in present and not newer):
                    self._drop(slot)
                    if uid in self._uid_to_key:
                        touched.add(self._uid_to_key[uid])
        for body in listed:
            owner = self.upsert_child(kind, body)
            if owner is not None:
                touched.add(owner)
        self._tombstones = {k: v for k, v in self._tombstones.items() if k[0] in self._uid_to_key}
        return touched

    def holder(self, namespace: str, kind: str, name: str) -> str | None:
        """UID of the ModelDeployment whose child holds this name, if the watches saw one."""
        return self._holders.get((namespace, kind, name))

    def resync_objects(self, listed: list[dict[str, Any]], list_rv: int | None) -> list[Key]:
        """Reconcile the index with a fresh LIST of ModelDeployments: forget every object the
        list no longer has (its DELETED event was lost while a watch was down, e.g. after a
        410 Gone), unless we learnt of it after the list was taken. Returns the forgotten."""
        present = {key_of(b) for b in listed}
        gone = []
        for key, body in list(self._bodies.items()):
            rv = _rv(body)
            if key not in present and not (list_rv is not None and rv is not None
                                           and rv > list_rv):
                self.remove(key)
                gone.append(key)
        for body in listed:
            self.upsert(body)
        return gone

    def children(self, uid: str) -> tuple[Child, ...]:
        return tuple(self._children.get(uid, {}).values())

    def __len__(self) -> int:
        return len(self._bodies)
