"""Kopf glue: watches in, keys out. Run with ``modeldeploy-operator`` (it runs ``kopf run``).

Every handler is an ``on.event`` handler: Kopf stores no progress annotations on our objects
and adds no finalizers, so deleting a ModelDeployment (or its namespace) never waits on the
operator; its children go by garbage collection.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf

from modeldeploy.api import GROUP, PLURAL, VERSION
from modeldeploy.config import OperatorConfig
from modeldeploy.controller.operator import CHILD_RESOURCES, MANAGED_SELECTOR, Operator
from modeldeploy.core import render

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
    # Filter child watches on the server: handler `labels=` filters are applied by Kopf
    # client-side, which would stream every Deployment and Service of the cluster to us.
    for group, version, plural in CHILD_RESOURCES.values():
        settings.watching.label_selectors[group, version, plural] = MANAGED_SELECTOR
    config = OperatorConfig.from_env()
    if config.watch_namespaces:
        # Scoped to namespaces: no cluster-wide watch of CRDs either (a namespaced install has
        # no cluster-scoped rights). Kopf scans the API once at start-up instead.
        settings.scanning.disabled = True
    _state["operator"] = await Operator.start(config)


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


def _child_handler(kind: str) -> Any:
    async def handler(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        _operator().child_event(kind, event.get("type"), _plain(body))

    handler.__name__ = handler.__qualname__ = f"_child_{kind.lower()}"
    return handler


for _kind, (_group, _version, _plural) in CHILD_RESOURCES.items():
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"child-{_kind.lower()}")(
        _child_handler(_kind))
