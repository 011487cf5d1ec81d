"""Read a Prometheus exposition (the operator's /metrics) into {(name, labels): value}."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Sample, float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> dict[Sample, float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return parse(resp.read().decode())


def total(samples: dict[Sample, float], metric: str, /, **labels: str) -> float:
    """Sum of the samples of ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= ls)
