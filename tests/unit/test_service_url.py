"""The service URL template: the in-cluster DNS name by default, anything with the three
placeholders otherwise (the local stack's loopback gateway), refused at start-up if unusable."""

from __future__ import annotations

import pytest

from modeldeploy.adapters.scoring import service_url
from modeldeploy.config import OperatorConfig

pytestmark = pytest.mark.unit


def test_the_default_is_the_in_cluster_dns_name() -> None:
    template = OperatorConfig.from_env({}).service_url_template
    assert service_url(template, service="scorer-v2", namespace="ml",
                       port=8080) == "http://scorer-v2.ml.svc:8080"


def test_a_gateway_template_and_a_trailing_slash() -> None:
    assert service_url("http://127.0.0.1:9000/{namespace}/{service}/", service="s",
                       namespace="n", port=1) == "http://127.0.0.1:9000/n/s"


def test_an_unknown_placeholder_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder 'svc'; use \{service\}"):
        OperatorConfig.from_env({"MODELDEPLOY_SERVICE_URL_TEMPLATE": "http://{svc}:80"})
