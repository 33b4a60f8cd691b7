"""Reads an orchestrator's /metrics with prometheus_client's own parser."""

from __future__ import annotations

import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from saga.service_layer.metrics import flat_counters


def scrape(base: str) -> dict[str, Metric]:
    """The metric families at `base`/metrics by name (counters without their `_total`)."""
    response = requests.get(f"{base}/metrics", timeout=5)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def counters(base: str) -> dict[str, int]:
    """The counters at `base`/metrics under flat names: `commands_sent`, `events_applied`, ..."""
    return flat_counters(scrape(base).values())


def value(family: Metric, sample_name: str, **labels: str) -> float:
    """The value of one sample of `family` (0 when absent): its name and exactly these labels."""
    return next((s.value for s in family.samples if s.name == sample_name and s.labels == labels), 0.0)
