"""Gates judged from what the registry knows: signatures (as MLflow writes them in MLmodel),
responses to the input example, run metrics, required tags and aliases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modeldeploy.api.spec import Direction
from modeldeploy.core.gates import (
    MetricVerdict,
    Signature,
    breaking_changes,
    compare_metric,
    example_rows,
    missing_marks,
    parse_schema,
    parse_signature,
    response_problems,
)

pytestmark = pytest.mark.unit


def cols(*specs: tuple[str | None, str] | tuple[str | None, str, bool]) -> str:
    out = []
    for spec in specs:
        name, kind, *rest = spec
        col: dict[str, Any] = {"type": kind, "required": rest[0] if rest else True}
        if name:
            col["name"] = name
        out.append(col)
    return json.dumps(out)


def tensor(dtype: str, shape: list[int]) -> str:
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}])


def sig(inputs: str | None, outputs: str | None) -> Signature:
    parsed = parse_signature({"inputs": inputs, "outputs": outputs, "params": None})
    assert parsed is not None
    return parsed


# The signature of the local stack's AffineModel, as MLflow 3 writes it in MLmodel.
AFFINE = sig(cols(("x", "double")), cols((None, "double")))


def test_mlmodel_signature_text_is_parsed() -> None:
    assert AFFINE.inputs is not None and AFFINE.inputs.columns is not None
    assert AFFINE.inputs.columns[0].name == "x" and AFFINE.inputs.columns[0].type == "double"
    t = parse_schema(tensor("float32", [-1, 28, 28]))
    assert t is not None and t.tensor is not None and t.tensor.shape == (-1, 28, 28)
    assert parse_signature(None) is None and parse_schema(None) is None
    with pytest.raises(ValueError, match="not a column spec"):
        parse_schema('[{"name": "x"}]')


@pytest.mark.parametrize(("candidate", "expected"), [
    (sig(cols(("x", "double")), cols((None, "double"))), []),
    (sig(cols(("x", "double"), ("y", "string", False)), cols((None, "double"))), []),
    (sig(cols(("z", "double")), cols((None, "double"))),
     ["input column 'x' removed", "input column 'z' added as required"]),
    (sig(cols(("x", "string")), cols((None, "double"))),
     ["input column 'x' retyped double → string"]),
    (sig(cols(("x", "double"), ("y", "long")), cols((None, "double"))),
     ["input column 'y' added as required"]),
    (sig(cols(("x", "double")), cols((None, "double"), (None, "double"))),
     ["outputs: 1 column(s) → 2"]),
    (sig(cols(("x", "double")), cols((None, "long"))), ["output column 0: double → long"]),
    (sig(cols(("x", "double")), tensor("float64", [-1, 2])),
     ["outputs changed from columns to a tensor"]),
    (None, ["the new version has no signature (the stable version has one)"]),
], ids=["same", "optional-input-added", "renamed", "retyped", "required-added",
        "output-shape", "output-type", "output-tensor", "no-signature"])
def test_breaking_changes_name_the_difference(candidate: Signature | None,
                                              expected: list[str]) -> None:
    assert breaking_changes(AFFINE, candidate) == expected


def test_tensor_shapes_compare_with_a_variable_batch() -> None:
    old = sig(tensor("float32", [-1, 4]), tensor("float32", [-1]))
    assert breaking_changes(old, sig(tensor("float32", [8, 4]), tensor("float32", [-1]))) == []
    assert breaking_changes(old, sig(tensor("float64", [-1, 5]), tensor("float32", [-1]))) == [
        "input tensor dtype float32 → float64", "input tensor shape [-1, 4] → [-1, 5]"]


def test_a_first_release_has_nothing_to_compare() -> None:
    assert breaking_changes(None, AFFINE) == []


def test_named_outputs_added_or_removed_break_callers() -> None:
    old = sig(cols(("x", "double")), cols(("score", "double"), ("label", "string")))
    new = sig(cols(("x", "double")), cols(("score", "double"), ("reason", "string")))
    assert breaking_changes(old, new) == ["output column 'label' removed",
                                          "output column 'reason' added"]


EXAMPLE = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


@pytest.mark.parametrize(("payload", "rows"), [
    (EXAMPLE, 2), ({"dataframe_records": [{"x": 1}]}, 1), ({"instances": [[1], [2], [3]]}, 3),
    ({"inputs": {"x": [1, 2]}}, 2), ({"inputs": [[1, 2]]}, 1), ({"other": 1}, None), ([], None),
])
def test_example_rows(payload: Any, rows: int | None) -> None:
    assert example_rows(payload) == rows


@pytest.mark.parametrize(("body", "problems"), [
    ({"predictions": [3.0, 5.0]}, []),
    ({"predictions": [3, 5]}, []),
    ({"predictions": [3.0]}, ["1 prediction(s) for 2 input row(s)"]),
    ({"predictions": [[3.0, 1.0], [5.0, 1.0]]}, ["expected one double per row, got [3.0, 1.0]"]),
    ({"predictions": ["a", "b"]}, ['expected one double per row, got "a"']),
    ({"predictions": [True, False]}, ["expected one double per row, got true"]),
    ({"result": [3.0, 5.0]}, ["the response has no 'predictions'"]),
    ({"predictions": 3.0}, ["'predictions' is a float, not a list"]),
], ids=["floats", "ints", "rows", "shape", "type", "bool", "no-predictions", "scalar"])
def test_a_response_is_judged_by_the_output_signature(body: Any, problems: list[str]) -> None:
    assert response_problems(AFFINE.outputs, body, 2) == problems


def test_named_output_columns_are_checked_by_name_and_type() -> None:
    outputs = parse_schema(cols(("score", "double"), ("label", "string")))
    good = {"predictions": [{"score": 0.1, "label": "ok"}, {"score": 0.9, "label": "fraud"}]}
    assert response_problems(outputs, good, 2) == []
    bad = {"predictions": [{"score": "high", "extra": 1}, {"score": 0.9, "label": "x"}]}
    assert response_problems(outputs, bad, 2) == [
        "row 0: missing output column(s) ['label']",
        "row 0: unexpected output column(s) ['extra']",
        'row 0: score="high" is not double']
    by_column = {"predictions": {"score": [0.1, 0.2], "label": ["a", 3]}}
    assert response_problems(outputs, by_column, 2) == ["row 1: label=3 is not string"]


def test_tensor_outputs_are_checked_by_shape_and_dtype() -> None:
    outputs = parse_schema(tensor("float32", [-1, 2]))
    assert response_problems(outputs, {"predictions": [[0.1, 0.9], [0.5, 0.5]]}, 2) == []
    assert response_problems(outputs, {"predictions": [[0.1, 0.9, 0.0], [1, 0, 0]]}, 2) == [
        "row 0: shape [3], expected [2] per row (tensor [-1, 2])"]
    assert response_problems(outputs, {"predictions": [["a", "b"]]}, 1) == [
        "row 0: values are not float32"]


def test_without_an_output_signature_only_rows_are_counted() -> None:
    assert response_problems(None, {"predictions": [[1, 2], "x"]}, 2) == []
    assert response_problems(None, {"predictions": [1]}, 2) == [
        "1 prediction(s) for 2 input row(s)"]


@pytest.mark.parametrize(("direction", "candidate", "stable", "limit", "relative", "verdict"), [
    (Direction.LOWER, 0.305, 0.30, 0.02, True, MetricVerdict.PASSED),
    (Direction.LOWER, 0.31, 0.30, 0.02, True, MetricVerdict.FAILED),
    (Direction.LOWER, 0.29, 0.30, None, True, MetricVerdict.PASSED),
    (Direction.HIGHER, 0.89, 0.91, 0.01, False, MetricVerdict.FAILED),
    (Direction.HIGHER, 0.905, 0.91, 0.01, False, MetricVerdict.PASSED),
    (Direction.HIGHER, 0.95, 0.91, None, True, MetricVerdict.PASSED),
])
def test_a_metric_may_regress_by_at_most_its_allowance(
    direction: Direction, candidate: float, stable: float, limit: float | None,
    relative: bool, verdict: MetricVerdict,
) -> None:
    got = compare_metric("m", direction, candidate, stable, max_regression=limit,
                         relative=relative)
    assert got.verdict is verdict, got
    assert f"m {candidate:g}" in got.message and f"stable {stable:g}" in got.limit


def test_a_regression_message_names_metric_values_and_limit() -> None:
    got = compare_metric("rmse", Direction.LOWER, 0.36, 0.30, max_regression=0.02)
    assert got.message == "rmse 0.36 regresses beyond rmse ≤ 0.306 (stable 0.3 + 2%)"


def test_missing_values_follow_the_policy() -> None:
    blocked = compare_metric("auc", Direction.HIGHER, None, 0.9)
    assert blocked.verdict is MetricVerdict.FAILED
    assert blocked.message == "the new version's run has no auc"
    allowed = compare_metric("auc", Direction.HIGHER, None, 0.9, missing_blocks=False)
    assert allowed.verdict is MetricVerdict.SKIPPED and "allowed by onMissing" in allowed.message
    first = compare_metric("auc", Direction.HIGHER, 0.9, None)
    assert first.verdict is MetricVerdict.SKIPPED and "no auc to compare" in first.message
    nan = compare_metric("auc", Direction.HIGHER, float("nan"), 0.9)
    assert nan.verdict is MetricVerdict.FAILED and "nan" in nan.message


def test_required_tags_and_aliases() -> None:
    tags = {"validation_status": "approved", "owner": "risk"}
    assert missing_marks({"validation_status": "approved", "owner": None}, ["staging"],
                         tags, ["staging", "champion"]) == []
    assert missing_marks({"validation_status": "approved", "fairness": None}, ["staging"],
                         {"validation_status": "pending"}, []) == [
        "tag validation_status is 'pending', not 'approved'",
        "tag fairness is missing", "alias staging is not on this version"]


def test_a_malformed_signature_has_no_output_schema_and_never_raises() -> None:
    from modeldeploy.core.gates import output_schema

    assert output_schema({"inputs": "[{", "outputs": "not json"}) is None
    assert output_schema(None) is None
