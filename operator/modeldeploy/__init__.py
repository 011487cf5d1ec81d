"""modeldeploy: release MLflow registry models to Kubernetes, safely and automatically.

The operator resolves a ``ModelDeployment``'s model (alias, legacy stage or version) in the
MLflow Model Registry, rolls out serving Deployments, shifts canary traffic step by step while
analysing metrics, and rolls back on its own when the numbers are bad.
"""

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
