"""Log and register a small pyfunc model, the way a data scientist would.

Runs with the MLflow *server's* virtualenv (full ``mlflow``), never the operator's: the
operator only depends on ``mlflow-skinny``. Standalone on purpose (no devstack imports), e.g.

    <cache>/venv/mlflow-X/bin/python devstack/mlflow_seed.py --tracking-uri URI \
        --name fraud-scorer --alias champion --metric rmse=0.31 --bias 1.0

Prints one JSON object: name, version, run_id, source, aliases.
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
        return [2.0 * float(row["x"]) + self.bias for _, row in model_input.iterrows()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias", action="append", default=[])
    parser.add_argument("--stage", default=None, help="legacy stage to transition to")
    parser.add_argument("--metric", action="append", default=[], help="name=value")
    parser.add_argument("--bias", type=float, default=0.0)
    args = parser.parse_args()

    import pandas as pd

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    mlflow.set_experiment(f"modeldeploy-{args.name}")
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with mlflow.start_run() as run:
        for item in args.metric:
            key, value = item.split("=", 1)
            mlflow.log_metric(key, float(value))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AffineModel(args.bias),
            input_example=example,
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
    }))


if __name__ == "__main__":
    main()
