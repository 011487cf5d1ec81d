"""Registry credentials from labelled Secrets, kept fresh by a watch instead of a GET per poll.

Whoever may create a ModelDeployment chooses the URL credentials are sent to, so only a Secret
its owner labelled ``modeldeploy.io/registry-credentials: "true"`` is ever used. The operator
watches exactly those Secrets (a server-side label selector: no other Secret reaches its
memory) and asks the apiserver only about a Secret the watch does not hold, to tell "missing"
from "not labelled" in the condition message. A change to a watched Secret re-polls the
registry keys that use it at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from modeldeploy.adapters.kube import ApiError, Kube
from modeldeploy.adapters.registry import Credentials, ResolveKey

#: A Secret must carry this label (value "true") before its values are sent to a registry.
CREDENTIALS_LABEL = "modeldeploy.io/registry-credentials"
SELECTOR = f"{CREDENTIALS_LABEL}=true"

SecretKey = tuple[str, str]  # (namespace, name)


def _decoded(body: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace")
            for k, v in (body.get("data") or {}).items()}


class CredentialsCache:
    def __init__(self, kube: Kube, *, changed: Callable[[str, str], object],
                 namespaces: tuple[str, ...] | None = None) -> None:
        self._kube = kube
        self._changed = changed
        #: Where Secrets may be read (the operator's RBAC), None for every namespace.
        self.namespaces = namespaces
        self._secrets: dict[SecretKey, dict[str, str]] = {}

    def resync(self, namespace: str | None, listed: list[dict[str, Any]],
               _rv: int | None = None) -> None:
        """A fresh LIST of labelled Secrets (in ``namespace``, or all): forget the ones it no
        longer has (a deletion or unlabelling missed while the watch was down)."""
        present = {(str((b.get("metadata") or {}).get("namespace")),
                    str((b.get("metadata") or {}).get("name"))) for b in listed}
        for key in [k for k in self._secrets if namespace in (None, k[0])]:
            if key not in present:
                self.secret_event("DELETED", {"metadata": {"namespace": key[0],
                                                           "name": key[1]}})
        for body in listed:
            self.secret_event("ADDED", body)

    def secret_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event for a labelled Secret (or one that just lost its label)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        labelled = (meta.get("labels") or {}).get(CREDENTIALS_LABEL) == "true"
        data = _decoded(body) if labelled and event_type != "DELETED" else None
        if data is None:
            known = self._secrets.pop(key, None) is not None
        else:
            known = self._secrets.get(key) != data
            self._secrets[key] = data
        if known:
            self._changed(*key)

    def __len__(self) -> int:
        return len(self._secrets)

    async def __call__(self, rkey: ResolveKey) -> Credentials | None:
        """The credentials a registry key names; LookupError when they cannot (or may not)
        be used."""
        ref = rkey.credentials
        if ref is None:
            return None
        data = self._secrets.get((ref.namespace, ref.name))
        if data is None:
            # Not from the watch (yet): raises why, or caches it when it is labelled after all.
            await self._explain(ref.namespace, ref.name)
            data = self._secrets.get((ref.namespace, ref.name)) or {}
        return Credentials(token=data.get(ref.token_key), username=data.get(ref.username_key),
                           password=data.get(ref.password_key))

    async def _explain(self, namespace: str, name: str) -> None:
        """Why a Secret is not in the cache: missing, or not labelled (raises LookupError);
        returns when it is labelled after all and only the watch has not delivered it yet."""
        where = f"credentials Secret {namespace}/{name}"
        if self.namespaces is not None and namespace not in self.namespaces:
            allowed = ", ".join(self.namespaces) or "none"
            raise LookupError(f"{where}: the operator reads credentials Secrets only in "
                              f"namespaces: {allowed} (MODELDEPLOY_CREDENTIAL_NAMESPACES; "
                              "Helm value registryCredentials.namespaces)")
        try:
            found = await self._kube.get("Secret", namespace, name)
        except ApiError as exc:
            raise LookupError(f"{where}: {exc.message}") from exc
        except Exception as exc:  # network trouble reading it is the same answer
            raise LookupError(f"{where}: {exc}") from exc
        if found is None:
            raise LookupError(f'{where}: secrets "{name}" not found')
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(CREDENTIALS_LABEL) != "true":
            raise LookupError(f"{where} is not labelled {CREDENTIALS_LABEL}=true, "
                              "so the operator will not use it")
        self.secret_event("ADDED", found)
        if (namespace, name) not in self._secrets:
            raise LookupError(f"{where}: unreadable")
