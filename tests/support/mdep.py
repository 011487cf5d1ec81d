"""Helpers for tests that drive ModelDeployments on the real stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client

from modeldeploy.api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from tests.support.wait import eventually


def manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": API_VERSION, "kind": KIND,
                       "metadata": {"name": name}, "spec": spec})


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(custom, namespace, name).get("status") or {})


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


def wait_status(custom: client.CustomObjectsApi, namespace: str, name: str,
                check: Callable[[dict[str, Any]], bool], *, timeout: float = 60,
                what: str = "status") -> dict[str, Any]:
    return eventually(lambda: (st := status(custom, namespace, name)) and check(st) and st,
                      timeout=timeout, interval=0.1, what=what)


def stable_version(st: dict[str, Any]) -> str | None:
    return (st.get("stable") or {}).get("version")


def serving(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda st: st.get("phase") == "Stable" and stable_version(st) == version


def events(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=ModelDeployment,involvedObject.name={name}"
    ).items
    return [(e.type, e.reason, e.message) for e in
            sorted(items, key=lambda e: e.event_time or e.metadata.creation_timestamp)]


def wait_reasons(core: client.CoreV1Api, namespace: str, name: str,
                 check: Callable[[list[str]], bool], *, timeout: float = 20,
                 what: str = "events") -> list[str]:
    """The event reasons on an object, once ``check`` holds for them. The operator posts events
    after the status they describe is stored, so a test that saw the status must wait for them."""
    def seen() -> list[list[str]]:
        reasons = [r for _, r, _ in events(core, namespace, name)]
        assert check(reasons), reasons
        return [reasons]
    return eventually(seen, timeout=timeout, interval=0.2, what=f"{name}: {what}")[0]
