"""The leader-election Lease in the apiserver (coordination.k8s.io/v1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modeldeploy.adapters.kube import ApiError, Kube


class LeaseConflictError(Exception):
    """The Lease changed (or was created) since we read it: someone else wrote first."""


@dataclass(frozen=True)
class KubeLeaseStore:
    kube: Kube
    namespace: str
    name: str

    async def get(self) -> dict[str, Any] | None:
        return await self.kube.get("Lease", self.namespace, self.name)

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        return await self._write("POST", self.kube.path("Lease", self.namespace), lease)

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion the caller read: 409 when the Lease changed since."""
        return await self._write(
            "PUT", self.kube.path("Lease", self.namespace, self.name), lease)

    async def _write(self, method: str, path: str, lease: dict[str, Any]) -> dict[str, Any]:
        try:
            written: dict[str, Any] = await self.kube.request(
                method, path, body=lease, retry_conflicts=False)
        except ApiError as exc:
            if exc.status == 409:  # AlreadyExists on create, Conflict on replace
                raise LeaseConflictError(exc.message) from exc
            raise
        return written
