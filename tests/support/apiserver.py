"""The apiserver's own view: its /metrics (request counts by resource and verb), so tests
count writes the way the cluster saw them, not the way the operator says it made them."""

from __future__ import annotations

from kubernetes import client

from tests.support.scrape import Sample, parse, total

#: The verb label of requests that write an object: the apiserver counts the HTTP verb (a
#: create is POST, a replace PUT), except server-side apply, which is APPLY.
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE")


def metrics(api: client.ApiClient) -> dict[Sample, float]:
    resp = api.rest_client.pool_manager.request("GET", f"{api.configuration.host}/metrics")
    assert resp.status == 200, resp.status
    return parse(resp.data.decode())


def writes(samples: dict[Sample, float], *, resource: str, subresource: str = "",
           group: str = "") -> float:
    """Write requests the apiserver counted for ``resource`` (all namespaces, all clients)."""
    return sum(total(samples, "apiserver_request_total", resource=resource,
                     subresource=subresource, group=group, verb=verb, dry_run="")
               for verb in WRITE_VERBS)
