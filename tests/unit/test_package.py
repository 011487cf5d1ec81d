"""The package layout keeps Python's stdlib `operator` importable."""

from __future__ import annotations

import operator
from pathlib import Path

import modeldeploy

REPO = Path(__file__).resolve().parents[2]


def test_stdlib_operator_is_not_shadowed() -> None:
    assert operator.itemgetter(1)([0, 1]) == 1
    assert operator.__file__ is not None
    assert not Path(operator.__file__).resolve().is_relative_to(REPO)
    assert Path(modeldeploy.__file__).resolve().parent == REPO / "operator" / "modeldeploy"


def test_package_has_a_version() -> None:
    assert modeldeploy.__version__
