# The operator image. Build with a Docker engine (not available on the project's CI machines):
#   docker build -t modeldeploy:dev .
# `make lint` runs hadolint on this file; tests/unit/test_dockerfile.py checks its shape.
# The wheels are built in the first stage; the final one has no compiler, no pip cache and
# runs as a numeric non-root user. mlflow-skinny comes from pyproject.toml (not full mlflow).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Non-root, read-only friendly: meets the Pod Security "restricted" profile.
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MLFLOW_DISABLE_TELEMETRY=true
# 8080 liveness (Kopf), 8081 metrics, 8090 MLflow webhook receiver.
EXPOSE 8080 8081 8090
ENTRYPOINT ["modeldeploy-operator", "--liveness=http://0.0.0.0:8080/healthz"]
