"""Kopf glue: watches in, keys out. Run with ``kopf run -m modeldeploy.handlers``.

Every handler is an ``on.event`` handler: Kopf stores no progress annotations on our objects
and adds no finalizers, so deleting a ModelDeployment (or its namespace) never waits on the
operator; its children go by garbage collection.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf

from modeldeploy.config import OperatorConfig
from modeldeploy.controller.operator import Operator
from modeldeploy.core import render

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
MANAGED = {render.LABEL_MANAGED: render.MANAGED_BY}

_state: dict[str, Operator] = {}


def _operator() -> Operator:
    return _state["operator"]


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    # Every watch event would log "Handler ... succeeded" at INFO: one line per child update.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    _state["operator"] = await Operator.start(OperatorConfig.from_env())


@kopf.on.cleanup()
async def _cleanup(**_: Any) -> None:
    if "operator" in _state:
        await _state.pop("operator").stop()


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A private copy: Kopf's body is a live view that changes under us."""
    return copy.deepcopy(dict(body))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def _model_deployment(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    _operator().model_deployment_event(event.get("type"), _plain(body))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def _deployment(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    _operator().child_event("Deployment", event.get("type"), _plain(body))


@kopf.on.event("", "v1", "services", labels=MANAGED)
async def _service(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    _operator().child_event("Service", event.get("type"), _plain(body))


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
async def _hpa(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    _operator().child_event("HorizontalPodAutoscaler", event.get("type"), _plain(body))


@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", labels=MANAGED)
async def _route(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    _operator().child_event("HTTPRoute", event.get("type"), _plain(body))
