"""GET /metrics: the process's metric families in the Prometheus text exposition format.

The families are listed in `saga.service_layer.metrics`; the database gauges are read
at each scrape, in the thread pool since storage is blocking. With the database down the
scrape still answers 200: every counter, `saga_database_up 0`, and no database gauge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from saga.service_layer.metrics import Metrics, StoreGauges


class ProcessMetrics(Collector):
    """This process's families and the database gauges, as one collector."""

    def __init__(self, metrics: Metrics, store: StoreGauges) -> None:
        self._metrics = metrics
        self._store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.registry.collect()
        yield from self._store.collect()


def metrics_endpoint(collector: ProcessMetrics) -> Callable[[Request], Awaitable[Response]]:
    """GET /metrics over `collector`: the text exposition (version 0.0.4), also while the
    database is unavailable (`StoreGauges` leaves its gauges out then)."""

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, collector)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return metrics
