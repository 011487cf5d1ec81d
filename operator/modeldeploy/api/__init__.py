"""The ModelDeployment API: its names here, the schema in :mod:`.spec` and :mod:`.status`."""

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"

#: serving.image for runtime mlflow when neither the spec nor MODELDEPLOY_MLFLOW_IMAGE names one.
DEFAULT_MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"
