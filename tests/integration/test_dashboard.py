"""The Grafana dashboard's every query, run against the real Prometheus scraping a real
operator: no query may fail, every metric it names must be one the operator exposes, and the
panels about what always exists must show data."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client

from devstack.operator_process import OperatorProcess
from devstack.stack import StackInfo
from tests.integration.conftest import Kubectl
from tests.integration.test_modeldeployment import deploy_stable
from tests.support.wait import eventually

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "modeldeploy-operator.json"
#: What Grafana substitutes before a query reaches Prometheus.
GRAFANA = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
           "$namespace": ".*", "$name": ".*"}
#: Panels whose series exist whenever an operator runs one object.
ALWAYS = {"ModelDeployments by phase", "Leader", "Reconciles by result"}


def _grafana(expr: str) -> str:
    for var, value in GRAFANA.items():
        expr = expr.replace(var, value)
    return expr


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as exc:  # Prometheus answers 400 with its reason
        return dict(json.load(exc))


def _query(prometheus: str, expr: str) -> dict[str, Any]:
    return _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def _metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\bmodeldeploy_[a-z_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_dashboard_query_runs_on_the_real_prometheus(
    stack: StackInfo, operator: OperatorProcess, kubectl: Kubectl,
    custom: client.CustomObjectsApi, namespace: str,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    deploy_stable(stack, kubectl, custom, namespace)
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as resp:
        exposition = resp.read().decode()
    exposed = set(re.findall(r"^# TYPE (modeldeploy_[a-z_]+) ", exposition, re.M))
    prometheus = stack.prometheus_url
    # The object is in Prometheus: the operator has been scraped since it was Stable.
    eventually(lambda: _query(prometheus, 'modeldeploy_model_deployment_info{namespace="'
                              + namespace + '"}')["data"]["result"],
               timeout=30, what="the operator's series in Prometheus")

    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    assert len(targets) >= 13
    for title, expr in targets:
        answer = _query(prometheus, _grafana(expr))
        assert answer["status"] == "success", (title, expr, answer.get("error"))
        unknown = _metrics(expr) - exposed
        assert not unknown, f"{title}: the operator exposes no {unknown}"
        if title in ALWAYS:  # a rate needs two scrapes of a new series: allow a few
            eventually(lambda e=expr: _query(prometheus, _grafana(e))["data"]["result"],
                       timeout=30, what=f"{title}: data for {expr}")

    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition")
        if variable["type"] != "query" or not query:
            continue
        label, match = re.fullmatch(r"label_values\((.+), (\w+)\)", query).group(2, 1)  # type: ignore[union-attr]
        values = _get(f"{prometheus}/api/v1/label/{label}/values?"
                      + urllib.parse.urlencode({"match[]": _grafana(match)}))
        assert values["status"] == "success", (query, values)
        if label == "namespace":
            assert namespace in values["data"], values
