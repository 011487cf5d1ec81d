"""The MLflow Model Registry, through mlflow-skinny, with explicit endpoints and credentials.

Why the REST stores and not ``MlflowClient``: ``MlflowClient(tracking_uri, registry_uri)``
reads credentials from process-wide environment variables (``MLFLOW_TRACKING_TOKEN`` ...), so
two ModelDeployments with different credential Secrets could not be served safely from one
process. The stores ``MlflowClient`` itself uses take a host-credentials callable; we give
each registry its own, built from its Secret. Nothing here touches MLflow's global tracking URI.

Every call is blocking; :class:`Registry` runs them in a thread with a timeout, so the event
loop never waits on the network. Errors become data (:class:`Resolution` with an outcome),
never exceptions, because "the model is gone" and "the registry is down" are states the
operator reports, not reasons to crash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
import yaml

from modeldeploy.core.world import (
    RegistryOutcome,
    Resolution,
    ResolvedVersion,
    SecretRef,
    VersionDetails,
)

# mlflow's HTTP layer retries 7 times with exponential backoff by default (minutes of
# blocking on an outage); the operator has its own retry loop, so one quick try is right.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities.model_registry import ModelVersionTag as _Tag
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.rest_store import RestStore as RegistryStore
from mlflow.store.tracking.rest_store import RestStore as TrackingStore
from mlflow.utils.rest_utils import MlflowHostCreds, http_request

T = TypeVar("T")
#: What a registry call may raise besides a timeout: MLflow's refusals, connection errors
#: (requests' are OSErrors), and artifacts that do not parse.
REGISTRY_ERRORS = (MlflowException, OSError, ValueError, yaml.YAMLError)


@dataclass(frozen=True)
class Credentials:
    """Values read from a credentials Secret (never logged, never in status)."""

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ResolveKey:
    """Everything that determines one registry answer; equal keys share one resolution."""

    tracking_uri: str
    registry_uri: str
    model: str
    kind: str  # alias | stage | version | latest
    value: str
    credentials: SecretRef | None = None

    def describe(self) -> str:
        what = {"alias": f"alias {self.value!r}", "stage": f"stage {self.value!r}",
                "version": f"version {self.value}", "latest": "the latest version"}[self.kind]
        return f"{what} of registered model {self.model!r} at {self.registry_uri}"


def model_uri(model: str, version: str) -> str:
    """The URI a model server loads: resolved against MLFLOW_REGISTRY_URI in the pod."""
    return f"models:/{model}/{version}"


class _Client:
    """Blocking calls against one registry with one set of credentials."""

    def __init__(self, tracking_uri: str, registry_uri: str, creds: Credentials | None) -> None:
        def host(uri: str) -> MlflowHostCreds:
            c = creds or Credentials()
            return MlflowHostCreds(host=uri, token=c.token, username=c.username,
                                   password=c.password)

        self._tracking_creds = host(tracking_uri)
        self.registry = RegistryStore(lambda: host(registry_uri))
        self.tracking = TrackingStore(lambda: self._tracking_creds)

    def resolve(self, key: ResolveKey) -> Resolution:
        now = dt.datetime.now(dt.UTC)
        try:
            mv = _once_more_if_dropped(lambda: self._find(key))
        except _NotFoundError as missing:
            return Resolution(outcome=RegistryOutcome.NOT_FOUND, reason=missing.reason,
                              message=str(missing), at=now)
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                # The registry answered: what the spec names is not valid there (e.g. a model
                # name MLflow refuses). A spec problem, not an outage.
                return Resolution(outcome=RegistryOutcome.NOT_FOUND, reason="InvalidSpec",
                                  message=stable_text(f"the registry refuses spec.model "
                                                      f"({key.describe()}): {exc.message}"),
                                  at=now)
            return _unreachable(exc, key, now)
        except OSError as exc:  # requests' connection errors are OSErrors
            return Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable",
                              message=stable_text(f"{key.registry_uri}: {exc}"), at=now)
        version = str(mv.version)
        return Resolution(
            outcome=RegistryOutcome.OK, reason="Resolved", at=now,
            message=f"{key.describe()} is version {version}",
            # A version registered without a run reads run_id "" from MLflow: no run is None.
            version=ResolvedVersion(version=version, run_id=mv.run_id or None,
                                    source=mv.source or None,
                                    model_uri=model_uri(key.model, version)))

    def _find(self, key: ResolveKey) -> Any:
        if key.kind == "alias":
            try:
                return self.registry.get_model_version_by_alias(key.model, key.value)
            except MlflowException as exc:
                if _is_missing_model(exc):
                    raise _NotFoundError("ModelNotFound", _no_model(key)) from exc
                if "alias" in str(exc) and "not found" in str(exc):
                    raise _NotFoundError("AliasNotFound",
                                    f"registered model {key.model!r} has no alias "
                                    f"{key.value!r}") from exc
                raise
        if key.kind == "version":
            try:
                return self.registry.get_model_version(key.model, key.value)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                self._require_model(key)
                raise _NotFoundError("VersionNotFound",
                                f"registered model {key.model!r} has no version "
                                f"{key.value}") from exc
        if key.kind == "stage":
            try:
                found = self.registry.get_latest_versions(key.model, [key.value])
            except MlflowException as exc:
                if _is_missing_model(exc):
                    raise _NotFoundError("ModelNotFound", _no_model(key)) from exc
                raise
            if not found:
                raise _NotFoundError("StageEmpty", f"registered model {key.model!r} has no "
                                              f"version in stage {key.value!r}")
            return max(found, key=lambda mv: int(mv.version))
        escaped = key.model.replace("'", "\\'")
        found = list(self.registry.search_model_versions(
            f"name='{escaped}'", max_results=1, order_by=["version_number DESC"]))
        if not found:
            self._require_model(key)
            raise _NotFoundError("NoVersions", f"registered model {key.model!r} has no versions")
        return found[0]

    def _require_model(self, key: ResolveKey) -> None:
        try:
            self.registry.get_registered_model(key.model)
        except MlflowException as exc:
            if _is_missing_model(exc):
                raise _NotFoundError("ModelNotFound", _no_model(key)) from exc
            raise

    def details(self, model: str, version: ResolvedVersion) -> VersionDetails:
        return _once_more_if_dropped(lambda: self._details(model, version))

    def _details(self, model: str, version: ResolvedVersion) -> VersionDetails:
        try:
            mv = self.registry.get_model_version(model, version.version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return VersionDetails(metrics={}, signature=None, input_example=None,
                                      exists=False, run_found=False)
            raise
        marks: dict[str, Any] = {
            "tags": dict(mv.tags or {}), "aliases": tuple(mv.aliases or ()),
            "stage": mv.current_stage or None, "status": str(mv.status or "") or None}
        run_id, source = version.run_id, version.source
        metrics: dict[str, float] = {}
        run_found = bool(run_id)
        if run_id:
            try:
                metrics = dict(self.tracking.get_run(run_id).data.metrics)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                run_found = False
        signature, example, serving = None, None, None
        artifacts: bool | None = None
        model_id = source.removeprefix("models:/") if source and \
            source.startswith("models:/m-") else None
        if model_id:
            try:
                location = self.tracking.get_logged_model(model_id).artifact_location
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                location = "mlflow-artifacts:/"  # the logged model is gone: so are its files
            mlmodel = self._artifact(location, "MLmodel") if location != "mlflow-artifacts:/" \
                else None
            artifacts = None if not location.startswith("mlflow-artifacts:") else \
                mlmodel is not None
            if mlmodel is not None:
                meta = yaml.safe_load(mlmodel) or {}
                signature = meta.get("signature")
                info = meta.get("saved_input_example_info") or {}
                if info.get("artifact_path"):
                    raw = self._artifact(location, info["artifact_path"])
                    example = json.loads(raw) if raw else None
                if info.get("serving_input_path"):
                    raw = self._artifact(location, info["serving_input_path"])
                    serving = json.loads(raw) if raw else None
        if serving is None and isinstance(example, dict) and "columns" in example:
            serving = {"dataframe_split": example}
        return VersionDetails(metrics=metrics, signature=signature, input_example=example,
                              serving_example=serving, run_found=run_found,
                              artifacts_found=artifacts, **marks)

    def write_back(self, model: str, version: str, tags: dict[str, str],
                   aliases: tuple[str, ...]) -> None:
        """Tag ``version`` and point ``aliases`` at it (idempotent: the same write twice
        changes nothing)."""
        def write() -> None:
            for k, v in tags.items():
                self.registry.set_model_version_tag(model, version, _Tag(k, v))
            for alias in aliases:
                self.registry.set_registered_model_alias(model, alias, version)

        _once_more_if_dropped(write)

    def _artifact(self, location: str, name: str) -> str | None:
        """Read an artifact through the tracking server's artifact proxy, if it serves it."""
        if not location.startswith("mlflow-artifacts:"):
            return None
        path = location.removeprefix("mlflow-artifacts:").lstrip("/")
        resp = http_request(self._tracking_creds,
                            f"/api/2.0/mlflow-artifacts/artifacts/{path}/{name}", "GET")
        return resp.text if resp.status_code == 200 else None


def dropped_connection(exc: BaseException) -> bool:
    """True when the server hung up on a request without answering, e.g. it closed an idle
    keep-alive connection just as it was reused (uvicorn does so after 5 s, load balancers
    after their idle timeout).

    MLflow wraps the requests error in an ``MlflowException`` without ``from``, so it is found
    as the exception's context. requests reports every urllib3 failure as a ConnectionError
    (with MLflow's zero retries even read timeouts arrive as ``MaxRetryError``), so the urllib3
    reason decides: only a protocol error (connection aborted or reset, broken pipe) is a
    drop. Timeouts, refused connections and DNS failures are not: repeating them would only
    double the wait for the same answer."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        err = pending.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, urllib3.exceptions.ProtocolError | ConnectionResetError
                      | BrokenPipeError):
            return True
        if isinstance(err, urllib3.exceptions.MaxRetryError):
            pending.append(err.reason)
        elif isinstance(err, requests.exceptions.ConnectionError | MlflowException):
            pending.extend(a for a in err.args if isinstance(a, BaseException))
            pending += [err.__cause__, err.__context__]
    return False


def _once_more_if_dropped(call: Callable[[], T]) -> T:
    """Run ``call``; if the connection dropped, run it once more at once (on a new
    connection: the pool discards the broken one). Every call here is a read, so repeating it
    is safe. A registry that is really down fails the second try as fast as the first."""
    try:
        return call()
    except (MlflowException, OSError) as exc:
        if not dropped_connection(exc):
            raise
        return call()


#: MLflow's answers that no retry changes: the credentials may not write, the model or
#: version is gone, or the registry refuses the value.
PERMANENT_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_DOES_NOT_EXIST",
                             "INVALID_PARAMETER_VALUE"})


def permanent(exc: BaseException) -> bool:
    """Whether a failed registry call failed for good (as opposed to an outage or a timeout)."""
    return isinstance(exc, MlflowException) and exc.error_code in PERMANENT_CODES


class _NotFoundError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _is_missing_model(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" and "Registered Model" in str(exc)


def _no_model(key: ResolveKey) -> str:
    return f"no registered model {key.model!r} at {key.registry_uri}"


_ADDRESS = re.compile(r" (object )?at 0x[0-9a-fA-F]+")


def stable_text(text: str) -> str:
    """Error text without per-process object addresses (urllib3 puts them in connection
    errors): the same failure must read the same, or every poll would rewrite the status."""
    return _ADDRESS.sub("", text)


def _unreachable(exc: MlflowException, key: ResolveKey, now: dt.datetime) -> Resolution:
    code = exc.error_code
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnauthorized",
                          message=f"{key.registry_uri} refused the credentials ({code})", at=now)
    text = str(exc)
    if "failed with exception" in text:  # connection refused, DNS, timeouts
        text = text.split("failed with exception", 1)[1].strip()[:300]
    return Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable",
                      message=stable_text(f"{key.registry_uri}: {text}"), at=now)


def registry_host(uri: str) -> str:
    """What calls are bounded per: the registry's scheme://host:port."""
    split = urlsplit(uri)
    return f"{split.scheme}://{split.netloc}".lower()


class Registry:
    """Async face of the registry: each call in a worker thread, bounded by ``timeout``.

    A call that outlives its timeout keeps its thread until MLflow's own HTTP timeout frees
    it. So that a registry that hangs cannot take every thread (and stall every other
    registry's polls), each registry host gets at most ``per_host`` threads at a time, and a
    slot is given back only when its thread is really done, not when the caller gave up.
    """

    def __init__(self, *, timeout: float = 15.0, threads: int = 32, per_host: int = 2) -> None:
        self.timeout = timeout
        self.per_host = per_host
        # Its own threads: a registry call that outlives its timeout keeps a thread busy, and
        # that must never hold up Kubernetes writes (the kube adapter has its own pool).
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="registry")
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def _run(self, host: str, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        slot = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))

        async def call() -> T:
            await slot.acquire()
            fut = loop.run_in_executor(self._pool, fn, *args)
            fut.add_done_callback(lambda _: slot.release())
            return await asyncio.shield(fut)

        return await asyncio.wait_for(call(), self.timeout)

    async def resolve(self, key: ResolveKey, creds: Credentials | None) -> Resolution:
        client = _Client(key.tracking_uri, key.registry_uri, creds)
        try:
            return await self._run(registry_host(key.registry_uri), client.resolve, key)
        except TimeoutError:
            return Resolution(outcome=RegistryOutcome.UNREACHABLE, reason="RegistryUnreachable",
                              message=f"{key.registry_uri}: no answer within {self.timeout:.0f}s",
                              at=dt.datetime.now(dt.UTC))

    async def details(self, key: ResolveKey, creds: Credentials | None,
                      version: ResolvedVersion) -> VersionDetails:
        client = _Client(key.tracking_uri, key.registry_uri, creds)
        return await self._run(registry_host(key.tracking_uri), client.details,
                               key.model, version)

    async def write_back(self, key: ResolveKey, creds: Credentials | None, version: str, *,
                         tags: dict[str, str], aliases: tuple[str, ...] = ()) -> None:
        """Record an outcome on ``version`` in the registry; raises what the registry said
        (the caller retries and reports: a failed write never changes a traffic decision)."""
        client = _Client(key.tracking_uri, key.registry_uri, creds)
        await self._run(registry_host(key.registry_uri), client.write_back, key.model,
                        version, tags, aliases)
