"""What the registry knows about a version, judged before it gets any traffic (pure code).

* **Signatures**: MLflow stores a model's signature in its MLmodel file as JSON text per side,
  either column specs (``[{"name": "x", "type": "double", "required": true}, ...]``) or a
  tensor spec (``[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]``).
  :func:`breaking_changes` lists what would break a caller of the stable version.
* **Responses**: :func:`response_problems` checks what a scoring server answered to the input
  example (``{"predictions": ...}``) against the output signature: row count, types, names.
* **Run metrics**: :func:`compare_metric` compares a candidate run's metric with the stable
  run's, by direction and an absolute or relative limit, and says what a missing value means.
* **Required marks**: :func:`missing_marks` lists required tags and aliases a version lacks.

Every function returns human-readable findings that name the column, metric, tag or value, so a
status message can say exactly why a version was stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: MLflow column types and the JSON values a scoring server answers for them.
_NUMBER_TYPES = {"double", "float"}
_INTEGER_TYPES = {"integer", "long"}
_TEXT_TYPES = {"string", "binary", "datetime"}


@dataclass(frozen=True)
class Column:
    name: str | None
    type: str
    required: bool = True

    def describe(self) -> str:
        return f"column {self.name!r}" if self.name else "the unnamed column"


@dataclass(frozen=True)
class Tensor:
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Schema:
    """One side of a signature: columns, or a tensor (exactly one is set)."""

    columns: tuple[Column, ...] | None = None
    tensor: Tensor | None = None


@dataclass(frozen=True)
class Signature:
    inputs: Schema | None
    outputs: Schema | None


def parse_schema(raw: str | Sequence[Mapping[str, Any]] | None) -> Schema | None:
    """One side of an MLmodel signature (its JSON text, or already parsed); None when absent.
    ValueError for what is neither column nor tensor specs."""
    if raw is None or raw == "":
        return None
    specs = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"not a list of column or tensor specs: {raw!r}")
    if all(isinstance(s, Mapping) and s.get("type") == "tensor" for s in specs):
        if len(specs) != 1:
            # Named tensors (several inputs): compared by name like columns of their dtype.
            return Schema(columns=tuple(
                Column(s.get("name"), _tensor_type(s), True) for s in specs))
        spec = specs[0].get("tensor-spec") or {}
        return Schema(tensor=Tensor(dtype=str(spec.get("dtype")),
                                    shape=tuple(int(d) for d in spec.get("shape") or ())))
    columns = []
    for s in specs:
        if not isinstance(s, Mapping) or "type" not in s:
            raise ValueError(f"not a column spec: {s!r}")
        columns.append(Column(name=s.get("name"), type=_column_type(s),
                              required=bool(s.get("required", True))))
    return Schema(columns=tuple(columns))


def _column_type(spec: Mapping[str, Any]) -> str:
    kind = str(spec["type"])
    if kind == "array":
        return f"array<{_column_type(spec.get('items') or {'type': '?'})}>"
    return kind


def _tensor_type(spec: Mapping[str, Any]) -> str:
    t = spec.get("tensor-spec") or {}
    return f"tensor<{t.get('dtype')}{list(t.get('shape') or [])}>"


def parse_signature(mlmodel_signature: Mapping[str, Any] | None) -> Signature | None:
    """The ``signature`` block of an MLmodel file; None when the model has none."""
    if not mlmodel_signature:
        return None
    return Signature(inputs=parse_schema(mlmodel_signature.get("inputs")),
                     outputs=parse_schema(mlmodel_signature.get("outputs")))


def output_schema(mlmodel_signature: Mapping[str, Any] | None) -> Schema | None:
    """The output side of a signature, None when there is none or it cannot be read (a
    malformed MLmodel must not stop a reconcile: the answer is then checked for rows only)."""
    try:
        signature = parse_signature(mlmodel_signature)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return signature.outputs if signature is not None else None


# --- signature gate -----------------------------------------------------------------------


def breaking_changes(stable: Signature | None, candidate: Signature | None) -> list[str]:
    """What in ``candidate``'s signature breaks a caller of ``stable``: a removed or retyped
    input, a new required input, any change of the outputs. Added optional inputs are not
    breaking. Nothing to compare (the stable version has no signature) is no finding."""
    if stable is None:
        return []
    if candidate is None:
        return ["the new version has no signature (the stable version has one)"]
    return (_schema_changes("input", stable.inputs, candidate.inputs, inputs=True)
            + _schema_changes("output", stable.outputs, candidate.outputs, inputs=False))


def _schema_changes(side: str, old: Schema | None, new: Schema | None, *,
                    inputs: bool) -> list[str]:
    if old is None:
        return []
    if new is None:
        return [f"{side}s: the new version's signature has none"]
    if (old.tensor is None) != (new.tensor is None):
        was, now = ("a tensor", "columns") if old.tensor else ("columns", "a tensor")
        return [f"{side}s changed from {was} to {now}"]
    if old.tensor is not None and new.tensor is not None:
        return _tensor_changes(side, old.tensor, new.tensor)
    return _column_changes(side, old.columns or (), new.columns or (), inputs=inputs)


def _tensor_changes(side: str, old: Tensor, new: Tensor) -> list[str]:
    out = []
    if old.dtype != new.dtype:
        out.append(f"{side} tensor dtype {old.dtype} → {new.dtype}")
    if not _same_shape(old.shape, new.shape):
        out.append(f"{side} tensor shape {list(old.shape)} → {list(new.shape)}")
    return out


def _same_shape(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """-1 is a variable dimension (the batch): it matches anything."""
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _column_changes(side: str, old: Sequence[Column], new: Sequence[Column], *,
                    inputs: bool) -> list[str]:
    named = all(c.name for c in old) and all(c.name for c in new)
    if not named:  # positional columns: compare by position
        if len(old) != len(new):
            return [f"{side}s: {len(old)} column(s) → {len(new)}"]
        return [f"{side} column {i}: {a.type} → {b.type}"
                for i, (a, b) in enumerate(zip(old, new, strict=True)) if a.type != b.type]
    out = []
    new_by_name = {c.name: c for c in new}
    old_names = {c.name for c in old}
    for col in old:
        now = new_by_name.get(col.name)
        if now is None:
            out.append(f"{side} {col.describe()} removed")
        elif now.type != col.type:
            out.append(f"{side} {col.describe()} retyped {col.type} → {now.type}")
        elif inputs and now.required and not col.required:
            out.append(f"input {col.describe()} is now required")
    for col in new:
        if col.name in old_names:
            continue
        if not inputs:
            out.append(f"output {col.describe()} added")
        elif col.required:
            out.append(f"input {col.describe()} added as required")
    return out


# --- smoke test -------------------------------------------------------------------------------


def example_rows(payload: Any) -> int | None:
    """How many rows an /invocations payload holds (dataframe_split, dataframe_records,
    instances, inputs), None when it cannot tell."""
    if not isinstance(payload, Mapping):
        return None
    if isinstance(payload.get("dataframe_split"), Mapping):
        data = payload["dataframe_split"].get("data")
        return len(data) if isinstance(data, list) else None
    for key in ("dataframe_records", "instances"):
        if isinstance(payload.get(key), list):
            return len(payload[key])
    inputs = payload.get("inputs")
    if isinstance(inputs, list):
        return len(inputs)
    if isinstance(inputs, Mapping) and inputs:
        first = next(iter(inputs.values()))
        return len(first) if isinstance(first, list) else None
    return None


def response_problems(outputs: Schema | None, body: Any, rows: int | None) -> list[str]:
    """What is wrong with a scoring server's answer to the input example, judged by the
    output signature: no ``predictions``, a row count other than the example's, values of
    the wrong type, missing or unexpected columns. Without an output signature only the
    row count is checked."""
    if not isinstance(body, Mapping) or "predictions" not in body:
        return ["the response has no 'predictions'"]
    predictions = body["predictions"]
    if isinstance(predictions, Mapping):  # column-oriented: {"a": [...], "b": [...]}
        return _by_columns(outputs, predictions, rows)
    if not isinstance(predictions, list):
        return [f"'predictions' is a {type(predictions).__name__}, not a list"]
    problems = []
    if rows is not None and len(predictions) != rows:
        problems.append(f"{len(predictions)} prediction(s) for {rows} input row(s)")
    if outputs is None:
        return problems
    if outputs.tensor is not None:
        return problems + _tensor_values(outputs.tensor, predictions)
    return problems + _row_values(outputs.columns or (), predictions)


def _by_columns(outputs: Schema | None, predictions: Mapping[str, Any],
                rows: int | None) -> list[str]:
    problems = []
    for name, values in predictions.items():
        if not isinstance(values, list):
            problems.append(f"output column {name!r} is not a list")
        elif rows is not None and len(values) != rows:
            problems.append(f"output column {name!r}: {len(values)} value(s) for {rows} "
                            "input row(s)")
    if outputs is not None and outputs.columns is not None:
        records = [dict(zip(predictions, vals, strict=False))
                   for vals in zip(*[v for v in predictions.values() if isinstance(v, list)],
                                   strict=False)]
        problems += _row_values(outputs.columns, records)
    return problems


def _row_values(columns: Sequence[Column], predictions: list[Any]) -> list[str]:
    if len(columns) == 1 and not columns[0].name:
        col = columns[0]
        bad = [v for v in predictions if not _fits(col.type, v)]
        if bad:
            return [f"expected one {col.type} per row, got {_show(bad[0])}"]
        return []
    names = [c.name for c in columns]
    problems: list[str] = []
    for i, row in enumerate(predictions):
        if not isinstance(row, Mapping):
            if len(columns) == 1 and _fits(columns[0].type, row):
                continue  # one named column answered as bare values
            problems.append(f"row {i}: expected columns {names}, got {_show(row)}")
            break
        missing = [c.name for c in columns if c.required and c.name not in row]
        extra = [k for k in row if k not in names]
        wrong = [f"{c.name}={_show(row[c.name])} is not {c.type}" for c in columns
                 if c.name in row and not _fits(c.type, row[c.name])]
        if missing:
            problems.append(f"row {i}: missing output column(s) {missing}")
        if extra:
            problems.append(f"row {i}: unexpected output column(s) {extra}")
        problems += [f"row {i}: {w}" for w in wrong]
        if problems:
            break
    return problems


def _tensor_values(tensor: Tensor, predictions: list[Any]) -> list[str]:
    want = tensor.shape[1:] if tensor.shape else ()
    for i, row in enumerate(predictions):
        got = _shape(row)
        if got is None or not _same_shape(want, got):
            return [f"row {i}: shape {list(got) if got is not None else '?'}, expected "
                    f"{list(want)} per row (tensor {list(tensor.shape)})"]
        if not all(_fits(_tensor_kind(tensor.dtype), v) for v in _flat(row)):
            return [f"row {i}: values are not {tensor.dtype}"]
    return []


def _shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return ()
    inner = {_shape(v) for v in value}
    if len(inner) > 1:
        return None
    rest = inner.pop() if inner else ()
    return None if rest is None else (len(value), *rest)


def _flat(value: Any) -> Iterable[Any]:
    if isinstance(value, list):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def _tensor_kind(dtype: str) -> str:
    if dtype.startswith(("float", "double")):
        return "double"
    if dtype.startswith(("int", "uint")):
        return "long"
    if dtype == "bool":
        return "boolean"
    return "string"


def _fits(kind: str, value: Any) -> bool:
    if kind in _NUMBER_TYPES:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in _INTEGER_TYPES:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _TEXT_TYPES:
        return isinstance(value, str)
    if kind.startswith("array<"):
        return isinstance(value, list) and all(_fits(kind[6:-1], v) for v in value)
    return True  # object, map, any: not checked further


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# --- registry metric gate ---------------------------------------------------------------------


class MetricVerdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    #: A value is missing and the policy lets it through.
    SKIPPED = "Skipped"


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    verdict: MetricVerdict
    candidate: float | None
    stable: float | None
    #: The limit the candidate was held to, e.g. "rmse ≤ 0.306 (stable 0.3 + 2%)".
    limit: str
    message: str


def compare_metric(metric: str, direction: str, candidate: float | None,
                   stable: float | None, *, max_regression: float | None = None,
                   relative: bool = True, missing_blocks: bool = True) -> MetricComparison:
    """The candidate run's ``metric`` against the stable run's (``direction``: "lower" or
    "higher" is better, as spec.rollout.gates.registryMetrics[].direction): worse by at most
    ``max_regression`` (a fraction of the stable value when ``relative``, else absolute).
    A missing value (no run, or the run did not log it) fails when ``missing_blocks``; a
    missing stable value (a first release) is never a regression."""
    allowance = max_regression or 0.0

    def verdict(v: MetricVerdict, limit: str, message: str) -> MetricComparison:
        return MetricComparison(metric, v, candidate, stable, limit, message)

    if candidate is None or not math.isfinite(candidate):
        what = f"the new version's run has no {metric}" if candidate is None else \
            f"the new version's {metric} is {candidate}"
        return verdict(MetricVerdict.FAILED if missing_blocks else MetricVerdict.SKIPPED,
                       "", what + ("" if missing_blocks else " (allowed by onMissing)"))
    if stable is None or not math.isfinite(stable):
        return verdict(MetricVerdict.SKIPPED, "",
                       f"{metric} {candidate:g}: the stable version has no {metric} to "
                       "compare with")
    step = abs(stable) * allowance if relative else allowance
    shown = f"{allowance * 100:g}%" if relative else f"{allowance:g}"
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be lower or higher, not {direction!r}")
    if direction == "lower":
        bound, worse = stable + step, candidate > stable + step
        limit = f"{metric} ≤ {bound:.6g} (stable {stable:g} + {shown})"
    else:
        bound, worse = stable - step, candidate < stable - step
        limit = f"{metric} ≥ {bound:.6g} (stable {stable:g} - {shown})"
    if worse:
        return verdict(MetricVerdict.FAILED, limit,
                       f"{metric} {candidate:g} regresses beyond {limit}")
    return verdict(MetricVerdict.PASSED, limit, f"{metric} {candidate:g} within {limit}")


# --- required tags and aliases ------------------------------------------------------------------


def missing_marks(required_tags: Mapping[str, str | None], required_aliases: Iterable[str],
                  tags: Mapping[str, str], aliases: Iterable[str]) -> list[str]:
    """Required tags (a value, or None for "any value") and aliases the version lacks."""
    have_aliases = set(aliases)
    out = []
    for key, want in required_tags.items():
        got = tags.get(key)
        if got is None:
            out.append(f"tag {key}" + (f"={want}" if want is not None else "") + " is missing")
        elif want is not None and got != want:
            out.append(f"tag {key} is {got!r}, not {want!r}")
    out += [f"alias {a} is not on this version" for a in required_aliases
            if a not in have_aliases]
    return out
