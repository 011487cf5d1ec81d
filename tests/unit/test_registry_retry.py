"""Which registry failures are retried at once: only a connection the server hung up on."""

from __future__ import annotations

from http.client import RemoteDisconnected

import pytest
import requests
from mlflow.exceptions import MlflowException
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from modeldeploy.adapters.registry import dropped_connection, permanent


def as_mlflow_raises_it(inner: BaseException) -> MlflowException:
    """requests wraps urllib3's error; MLflow wraps that, without ``from``, in an except."""
    try:
        try:
            raise requests.exceptions.ConnectionError(inner)
        except requests.exceptions.ConnectionError as exc:
            raise MlflowException(f"API request failed with exception {exc}")  # noqa: B904
    except MlflowException as wrapped:
        return wrapped


HUNG_UP = ProtocolError("Connection aborted.", RemoteDisconnected("closed without response"))


@pytest.mark.parametrize(("inner", "retried"), [
    (MaxRetryError(None, "/api", HUNG_UP), True),  # MLflow's zero retries: the stale keep-alive
    (HUNG_UP, True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (MaxRetryError(None, "/api", ReadTimeoutError(None, "/api", "read timed out")), False),
    (MaxRetryError(None, "/api", NewConnectionError(None, "Connection refused")), False),  # type: ignore[arg-type]
    (MaxRetryError(None, "/api", NameResolutionError("mlflow.invalid", None, OSError())), False),  # type: ignore[arg-type]
])
def test_only_a_hang_up_is_retried(inner: BaseException, retried: bool) -> None:
    assert dropped_connection(as_mlflow_raises_it(inner)) is retried


def test_registry_answers_are_never_retried() -> None:
    assert not dropped_connection(MlflowException("RESOURCE_DOES_NOT_EXIST: no such model"))


@pytest.mark.parametrize(("code", "for_good"), [
    ("PERMISSION_DENIED", True),           # a read-only token
    ("UNAUTHENTICATED", True),
    ("RESOURCE_DOES_NOT_EXIST", True),     # the version (or model) was deleted
    ("INVALID_PARAMETER_VALUE", True),
    ("TEMPORARILY_UNAVAILABLE", False),    # an outage: retried with backoff
    ("INTERNAL_ERROR", False),
])
def test_a_write_back_refusal_is_permanent_only_when_no_retry_can_change_it(
        code: str, for_good: bool) -> None:
    from mlflow.protos import databricks_pb2

    exc = MlflowException("refused", error_code=getattr(databricks_pb2, code))
    assert exc.error_code == code
    assert permanent(exc) is for_good


def test_an_unreachable_registry_or_a_timeout_is_never_permanent() -> None:
    assert not permanent(as_mlflow_raises_it(NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    assert not permanent(TimeoutError())
