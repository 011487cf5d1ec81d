# modeldeploy — the two commands that matter are `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every transitive package pinned (make constraints re-resolves them): a new machine installs
# what CI last passed with, not whatever PyPI has that day.
CONSTRAINTS := constraints/dev.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | sha1sum | cut -c1-12)
# pytest exits 5 when it collected nothing: that must fail loudly, never pass as green.
PYTEST = $(PY) -m pytest
# Integration test workers, each with its own local stack (make test WORKERS=1: one stack).
WORKERS ?= 2

.PHONY: help venv deps lint unit integration test demo cluster-up cluster-down cluster-status bench clean crd run kind-e2e fresh-machine constraints

help:
	@echo "make demo          local stack up, and how to reach it"
	@echo "make test          install everything, lint, unit tests, integration tests on the real stack"
	@echo "make cluster-up    start the local stack (apiserver+etcd+kwok, MLflow, Prometheus, traffic)"
	@echo "make cluster-down  stop what cluster-up started"
	@echo "make bench         benchmarks: stack start, alias-move latency, 1000 objects, canary rollback and steps"
	@echo "make crd           regenerate crds/modeldeployment.yaml (and the chart's copy) from the API models"
	@echo "make run           run the operator against the local stack (foreground)"
	@echo "make kind-e2e      kind cluster + image + chart + tests/e2e (needs Docker and kind; not run here)"
	@echo "make fresh-machine rehearse CI on a new machine: fresh clone, empty caches, Debian packages removed"

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

# Build/fetch the stack's binaries into the cache outside the clone (skips what is cached).
deps: venv
	$(PY) -m devstack build

lint: venv
	$(PY) -m ruff check operator devstack tests bench
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile

unit: venv
	$(PYTEST) -m unit tests/unit || { rc=$$?; [ $$rc -eq 5 ] && echo "FAIL: no unit tests collected" >&2; exit $$rc; }

integration: deps
	$(PYTEST) -m integration -n $(WORKERS) --dist loadfile tests/integration || { rc=$$?; [ $$rc -eq 5 ] && echo "FAIL: no integration tests collected" >&2; exit $$rc; }

test: lint unit integration

cluster-up: deps
	$(PY) -m devstack up

cluster-down: venv
	$(PY) -m devstack down

cluster-status: venv
	$(PY) -m devstack status

demo: cluster-up
	@$(PY) -m devstack.demo

bench: deps
	$(PY) bench/stack_start.py
	$(PY) bench/alias_latency.py
	$(PY) bench/scale.py --count 1000
	$(PY) bench/canary.py --runs 10

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Re-resolve both virtualenvs from PyPI (today's releases of every unpinned dependency) into
# constraints/: after changing a pin in pyproject.toml or versions.MLFLOW_SERVER; commit both.
constraints:
	$(PYTHON) -m devstack.constraints

crd: venv
	$(PY) -m modeldeploy.api.crd > crds/modeldeployment.yaml
	cp crds/modeldeployment.yaml charts/modeldeploy-operator/crds/modeldeployment.yaml
	$(PY) -m modeldeploy.api.docs > docs/spec.md

# The operator in the foreground against the local stack (make cluster-up first): the CRD
# installed first, and every server it opens (webhook receiver, /metrics, liveness) on loopback.
run: venv
	$(PY) -m devstack crd
	source $${MODELDEPLOY_STATE:-$$HOME/.cache/modeldeploy/run}/stack.env && \
	  MODELDEPLOY_DEFAULT_TRACKING_URI=$$MLFLOW_TRACKING_URI \
	  MODELDEPLOY_WEBHOOK_HOST=127.0.0.1 MODELDEPLOY_METRICS_HOST=127.0.0.1 \
	  $(VENV)/bin/modeldeploy-operator --liveness=http://127.0.0.1:8080/healthz

# CI on a new machine, rehearsed on this one (.ci/fresh-machine says what it empties and removes):
# a fresh clone of HEAD, then exactly `bash .ci/run`, timed. Removes Debian's prometheus and
# redis-server first (FRESH_MACHINE_ARGS=--keep-debian to leave them).
fresh-machine:
	bash .ci/fresh-machine $(FRESH_MACHINE_ARGS)

# For machines with Docker and kind (users' CI: .github/workflows/kind-e2e.yaml); the project's
# own machines have neither, so this target is not run here and not claimed as passing.
KIND_CLUSTER ?= modeldeploy-e2e
HELM_BIN ?= helm
kind-e2e: venv
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	docker build -t modeldeploy-operator:e2e .
	kind load docker-image modeldeploy-operator:e2e --name $(KIND_CLUSTER)
	$(HELM_BIN) upgrade --install modeldeploy-operator charts/modeldeploy-operator \
	  --namespace modeldeploy-system --create-namespace \
	  --set image.repository=modeldeploy-operator --set image.tag=e2e \
	  --set image.pullPolicy=Never --wait --timeout 180s
	$(PYTEST) -m e2e tests/e2e || { rc=$$?; [ $$rc -eq 5 ] && echo "FAIL: no e2e tests collected" >&2; exit $$rc; }
