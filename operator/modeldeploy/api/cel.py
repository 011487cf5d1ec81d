"""CEL validation rules attached to spec classes, emitted as ``x-kubernetes-validations``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=type[BaseModel])

#: Key under which the rules travel in a class's ``model_config["json_schema_extra"]``.
KEY = "x-kubernetes-validations"


@dataclass(frozen=True)
class Rule:
    """One CEL rule; ``field_path`` (relative, e.g. ``.image``) names the field in the error."""

    rule: str
    message: str
    field_path: str | None = None

    def as_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
            out["reason"] = "FieldValueInvalid"
        return out


def rules(*cel: Rule) -> Callable[[M], M]:
    """Class decorator: attach CEL rules to a pydantic model's JSON schema."""

    def attach(cls: M) -> M:
        extra = dict(cls.model_config.get("json_schema_extra") or {})  # type: ignore[arg-type]
        extra[KEY] = [r.as_schema() for r in cel]
        cls.model_config = {**cls.model_config, "json_schema_extra": extra}
        cls.model_rebuild(force=True)
        return cls

    return attach
