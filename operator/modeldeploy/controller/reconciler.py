"""One reconcile of one ModelDeployment: observe → decide → apply.

Observe reads only memory (the watch index and the shared resolver; the registry is asked
only when a key was never resolved). Decide is :func:`modeldeploy.core.rollout.decide`.
Apply server-side-applies the children that differ, deletes what the plan drops (after every
apply, so traffic moves before anything goes away), posts the plan's events and writes the
status once, only if it changed. Applying the same plan twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import ValidationError

from modeldeploy.adapters.kube import ApiError, Kube
from modeldeploy.adapters.registry import Credentials, ResolveKey
from modeldeploy.api import KIND
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.config import OperatorConfig
from modeldeploy.controller.index import Index, Key
from modeldeploy.controller.resolver import Resolver
from modeldeploy.core import durations
from modeldeploy.core.rollout import decide
from modeldeploy.core.world import (
    Observed,
    Plan,
    RegistryOutcome,
    RegistryTarget,
    Resolution,
    SecretRef,
)
from modeldeploy.metrics import Metrics

log = logging.getLogger(__name__)

#: A Secret must carry this label (value "true") before its values are sent to a registry.
CREDENTIALS_LABEL = "modeldeploy.io/registry-credentials"


def spec_error_text(exc: ValidationError) -> str:
    """``spec.serving.replicas: Input should be greater than or equal to 0; ...``"""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in ("spec", *err["loc"]))
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_spec(raw: Any) -> tuple[ModelDeploymentSpec | None, str | None]:
    try:
        return ModelDeploymentSpec.model_validate(raw or {}), None
    except ValidationError as exc:
        return None, spec_error_text(exc)


def parse_status(raw: Any) -> ModelDeploymentStatus:
    """The stored status; an unreadable one is treated as empty (decide() deletes nothing
    without a known Ready stable version, so this can only cause a re-apply, never a loss)."""
    try:
        return ModelDeploymentStatus.model_validate(raw or {})
    except ValidationError as exc:
        log.warning("ignoring unreadable status: %s", exc)
        return ModelDeploymentStatus()


def status_dict(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", exclude_none=True)


def registry_key(spec: ModelDeploymentSpec, namespace: str,
                 config: OperatorConfig) -> tuple[ResolveKey, RegistryTarget] | str:
    """The shared resolution key and the registry target, or an error naming the field."""
    reg = spec.model.registry
    tracking = (reg.trackingUri if reg else None) or config.default_tracking_uri
    if not tracking:
        return ("spec.model.registry.trackingUri: required, because the operator has no "
                "default registry (MODELDEPLOY_DEFAULT_TRACKING_URI)")
    if reg and reg.trackingUri:  # a registry named in the spec never mixes with defaults
        registry = reg.registryUri or reg.trackingUri
    else:
        registry = (reg.registryUri if reg else None) or config.default_registry_uri or tracking
    if config.allowed_registries:
        for field, uri in (("trackingUri", tracking), ("registryUri", registry)):
            if not any(uri.startswith(prefix) for prefix in config.allowed_registries):
                return (f"spec.model.registry.{field}: {uri} is not one of the registries "
                        f"this operator may call ({', '.join(config.allowed_registries)})")
    secret = reg.credentialsSecret if reg else None
    creds = SecretRef(namespace=namespace, name=secret.name, token_key=secret.tokenKey,
                      username_key=secret.usernameKey,
                      password_key=secret.passwordKey) if secret else None
    kind, value = spec.model.selector()
    rkey = ResolveKey(tracking_uri=tracking, registry_uri=registry, model=spec.model.name,
                      kind=kind, value=value, credentials=creds)
    return rkey, RegistryTarget(tracking_uri=tracking, registry_uri=registry, credentials=creds)


async def read_credentials(kube: Kube, rkey: ResolveKey) -> Credentials | None:
    """Read a registry's credentials Secret; LookupError when it cannot (or may not) be used."""
    ref = rkey.credentials
    if ref is None:
        return None
    where = f"credentials Secret {ref.namespace}/{ref.name}"
    try:
        data, labels = await kube.read_secret(ref.namespace, ref.name)
    except ApiError as exc:
        raise LookupError(f"{where}: {exc.message}") from exc
    except Exception as exc:  # network trouble reading it is the same answer
        raise LookupError(f"{where}: {exc}") from exc
    if labels.get(CREDENTIALS_LABEL) != "true":
        # Whoever may create a ModelDeployment chooses the URL credentials are sent to;
        # only Secrets an owner marked for this purpose are ever sent anywhere.
        raise LookupError(f"{where} is not labelled {CREDENTIALS_LABEL}=true, "
                          "so the operator will not use it")
    return Credentials(token=data.get(ref.token_key), username=data.get(ref.username_key),
                       password=data.get(ref.password_key))


class Reconciler:
    def __init__(self, *, kube: Kube, index: Index, resolver: Resolver,
                 config: OperatorConfig, metrics: Metrics | None = None) -> None:
        self.kube, self.index, self.resolver, self.config = kube, index, resolver, config
        self.metrics = metrics or Metrics()

    async def observe(self, body: dict[str, Any], key: Key) -> Observed:
        meta = body["metadata"]
        spec, spec_error = parse_spec(body.get("spec"))
        resolution = Resolution(outcome=RegistryOutcome.UNKNOWN)
        target = RegistryTarget(tracking_uri="", registry_uri="")
        if spec is not None:
            found = registry_key(spec, meta["namespace"], self.config)
            if isinstance(found, str):
                spec, spec_error = None, found
                self.resolver.unsubscribe(key)
            else:
                rkey, target = found
                self.resolver.subscribe(key, rkey, durations.parse(spec.model.pollInterval))
                resolution = await self.resolver.ensure(rkey)
        return Observed(
            name=meta["name"], namespace=meta["namespace"], uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 1), spec=spec, spec_error=spec_error,
            status=parse_status(body.get("status")), registry=resolution, target=target,
            children=self.index.children(str(meta["uid"])),
            default_image=self.config.mlflow_image)

    async def reconcile(self, key: Key) -> float | None:
        """Reconcile ``key``; returns when to look again (None: only on change)."""
        body = self.index.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Children go by garbage collection (ownerReferences): no finalizer to get stuck.
            self.resolver.unsubscribe(key)
            return None
        observed = await self.observe(body, key)
        plan = decide(observed, dt.datetime.now(dt.UTC))
        await self.apply(body, observed, plan)
        return plan.requeue_after

    async def apply(self, body: dict[str, Any], observed: Observed, plan: Plan) -> None:
        meta = body["metadata"]
        for manifest in plan.apply:
            applied = await self.kube.apply(manifest)
            self.metrics.wrote("apply", manifest["kind"])
            if isinstance(applied, dict):
                self.index.upsert_child(manifest["kind"], applied)
        for kind, name in plan.delete:
            if await self.kube.delete(kind, meta["namespace"], name):  # False: already gone
                self.metrics.wrote("delete", kind)
            self.index.deleted_by_us(str(meta["uid"]), kind, name)
        # Status before events: events are derived from status transitions, so once the new
        # status is stored a crash can only lose an event, never post it twice.
        new, old = status_dict(plan.status), status_dict(observed.status)
        if new != old:
            patch: dict[str, Any] = {k: None for k in old if k not in new}
            patch.update(new)
            written = await self.kube.patch_status(meta["namespace"], meta["name"], patch)
            self.metrics.wrote("status", KIND)
            if isinstance(written, dict):
                self.index.upsert(written)
        for event in plan.events:
            try:
                await self.kube.post_event(body, type_=event.type, reason=event.reason,
                                           message=event.message)
                self.metrics.wrote("event", "Event")
            except ApiError as exc:  # an event is not worth failing a reconcile for
                log.warning("posting event %s failed: %s", event.reason, exc)
