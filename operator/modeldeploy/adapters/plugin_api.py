"""What the kubectl plugin asks the apiserver, through the official client (synchronous: the
plugin is a short-lived command, not the operator's event loop). Every failure a user can
cause becomes a :class:`PluginError` with one clear line."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modeldeploy.api import GROUP, PLURAL, VERSION


class PluginError(Exception):
    """One line for the user; the command exits non-zero."""


class PluginApi:
    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except (ConfigException, OSError, TypeError) as exc:
            raise PluginError(f"no usable kubeconfig ({exc}); set KUBECONFIG or "
                              "--kubeconfig") from exc
        self.default_namespace = str(((active or {}).get("context") or {}).get(
            "namespace") or "default")
        self._custom = client.CustomObjectsApi(api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise PluginError(f"{what} not found") from exc
            if exc.status in (401, 403):
                reason = "unauthorized" if exc.status == 401 else "forbidden"
                raise PluginError(f"{reason}: cannot access {what}; check your RBAC "
                                  "(kubectl auth can-i)") from exc
            raise PluginError(f"{what}: the apiserver answered {exc.status} "
                              f"{exc.reason}") from exc
        except OSError as exc:  # connection refused, DNS, TLS
            raise PluginError(f"cannot reach the apiserver: {exc}") from exc

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._call(f"modeldeployment {namespace}/{name}",
                               self._custom.get_namespaced_custom_object,
                               GROUP, VERSION, namespace, PLURAL, name))

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            body = self._call("modeldeployments (all namespaces)",
                              self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            body = self._call(f"modeldeployments in {namespace}",
                              self._custom.list_namespaced_custom_object,
                              GROUP, VERSION, namespace, PLURAL)
        return [dict(item) for item in body.get("items") or []]

    def annotate(self, namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
        return dict(self._call(f"modeldeployment {namespace}/{name}",
                               self._custom.patch_namespaced_custom_object,
                               GROUP, VERSION, namespace, PLURAL, name,
                               {"metadata": {"annotations": {key: value}}}))
