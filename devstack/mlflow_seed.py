"""Log and register a small pyfunc model, the way a data scientist would.

Runs with the MLflow *server's* virtualenv (full ``mlflow``), never the operator's: the
operator only depends on ``mlflow-skinny``. Standalone on purpose (no devstack imports), e.g.

    <cache>/venv/mlflow-X/bin/python devstack/mlflow_seed.py --tracking-uri URI \
        --name fraud-scorer --alias champion --metric rmse=0.31 --bias 1.0 [--kind slow --delay 1]

Every version is logged with an explicit signature (inferred from the input example and the
output of the *good* model, y = 2x + bias) and that input example, so smoke tests can send
the example and check the answer against the signature. ``--kind`` picks how it behaves when
served:

* ``good`` (default): y = 2x + bias, a list of floats, as the signature says;
* ``breaks-signature``: answers, but with a two-column frame (``y``, ``z``) where the
  signature says one unnamed double column;
* ``slow``: the good answer after sleeping ``--delay`` seconds per predict call;
* ``error``: raises on predict. It raises an MlflowException with INTERNAL_ERROR, which
  ``mlflow models serve`` answers with HTTP 500; an ordinary exception from predict would be
  answered with 400 (BAD_REQUEST) by MLflow 3.17's scoring server.

The model classes are defined in ``__main__``, so cloudpickle stores them by value: serving
them needs nothing but mlflow (``mlflow models serve --env-manager local``).

What ``log_model`` writes (MLflow 3.17), under the logged model's artifact root
(``mlflow-artifacts:/<experiment>/models/<model id>/artifacts``): ``MLmodel`` (its
``signature`` key: ``inputs``/``outputs`` as JSON strings; its ``saved_input_example_info``
names the two files below), ``input_example.json`` (pandas split orient),
``serving_input_example.json`` (the request body for ``/invocations``:
``{"dataframe_split": ...}``), ``python_model.pkl``, ``conda.yaml``, ``python_env.yaml``,
``requirements.txt``.

Prints one JSON object: name, version, run_id, source, aliases, model_uri, run, kind.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient


class AffineModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """y = 2x + bias: trivial, but a real pyfunc with a signature and an input example."""

    def __init__(self, bias: float) -> None:
        self.bias = bias

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        # The first column, whatever its name (--input-column logs another signature).
        return [2.0 * float(row.iloc[0]) + self.bias for _, row in model_input.iterrows()]


class BreaksSignatureModel(AffineModel):
    """Answers with two columns where the logged output signature has one."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd

        y = super().predict(context, model_input, params)  # type: ignore[no-untyped-call]
        return pd.DataFrame({"y": y, "z": [-v for v in y]})


class SlowModel(AffineModel):
    """The good answer, ``delay`` seconds late."""

    def __init__(self, bias: float, delay: float) -> None:
        super().__init__(bias)
        self.delay = delay

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import time

        time.sleep(self.delay)
        return super().predict(context, model_input, params)  # type: ignore[no-untyped-call]


class ErrorModel(AffineModel):
    """Fails every prediction, as a model with a bug would (HTTP 500 from the server)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

        raise MlflowException("ErrorModel: predict always fails (test model of kind 'error')",
                              error_code=INTERNAL_ERROR)


KINDS = ("good", "breaks-signature", "slow", "error")


def build_model(kind: str, *, bias: float, delay: float) -> AffineModel:
    if kind == "good":
        return AffineModel(bias)
    if kind == "breaks-signature":
        return BreaksSignatureModel(bias)
    if kind == "slow":
        return SlowModel(bias, delay)
    if kind == "error":
        return ErrorModel(bias)
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias", action="append", default=[])
    parser.add_argument("--stage", default=None, help="legacy stage to transition to")
    parser.add_argument("--metric", action="append", default=[], help="name=value")
    parser.add_argument("--bias", type=float, default=0.0)
    parser.add_argument("--kind", choices=KINDS, default="good",
                        help="how the served model behaves (see the module docstring)")
    parser.add_argument("--delay", type=float, default=1.0,
                        help="seconds per predict call for --kind slow")
    parser.add_argument("--input-column", default="x",
                        help="the input column's name (another name is a breaking change)")
    parser.add_argument("--no-example", action="store_true",
                        help="log no input example (the signature is still logged)")
    args = parser.parse_args()

    import pandas as pd
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    mlflow.set_experiment(f"modeldeploy-{args.name}")
    example = pd.DataFrame({args.input_column: [1.0, 2.0]})
    # The signature is what the good model answers, whatever this version's kind does.
    good = AffineModel(args.bias).predict(None, example)  # type: ignore[no-untyped-call]
    signature = infer_signature(example, good)
    with mlflow.start_run() as run:
        mlflow.set_tag("modeldeploy.test.kind", args.kind)
        for item in args.metric:
            key, value = item.split("=", 1)
            mlflow.log_metric(key, float(value))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=build_model(args.kind, bias=args.bias, delay=args.delay),
            signature=signature,
            input_example=None if args.no_example else example,
            registered_model_name=args.name,
        )
    version = info.registered_model_version
    for alias in args.alias:
        client.set_registered_model_alias(args.name, alias, str(version))
    if args.stage:
        client.transition_model_version_stage(args.name, str(version), args.stage)
    mv = client.get_model_version(args.name, str(version))
    print(json.dumps({
        "name": mv.name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "source": mv.source,
        "aliases": list(mv.aliases),
        "model_uri": info.model_uri,
        "run": run.info.run_id,
        "kind": args.kind,
    }))


if __name__ == "__main__":
    main()
