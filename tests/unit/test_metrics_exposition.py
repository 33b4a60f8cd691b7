"""GET /metrics's families as `generate_latest` writes them (docs/operations.md, "Metrics"):
the counters this process keeps never depend on the database; the gauges read from it are
left out while it cannot be read, and `saga_database_up` says which."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.entrypoints.exposition import ProcessMetrics
from saga.ports.persistence import StorageUnavailable, UnitOfWork
from saga.service_layer.metrics import Metrics, StoreGauges

DATABASE_GAUGES = {"saga_sagas", "saga_outbox_pending_commands", "saga_outbox_oldest_pending_age_seconds"}


def exposed(metrics: Metrics, uow_factory: Callable[..., UnitOfWork]) -> dict[str, list[float]]:
    text = generate_latest(ProcessMetrics(metrics, StoreGauges(uow_factory, ManualClock()))).decode()
    return {family.name: [sample.value for sample in family.samples] for family in text_string_to_metric_families(text)}


def database_down(read_only: bool = False) -> UnitOfWork:
    raise StorageUnavailable("connection refused")


def test_with_the_database_down_every_counter_is_exported_and_its_gauges_are_left_out() -> None:
    metrics = Metrics()
    metrics.count("events_retried", 3)

    families = exposed(metrics, database_down)

    assert families["saga_events_retried"] == [3.0]
    assert families["saga_database_up"] == [0.0]
    assert not DATABASE_GAUGES & set(families)
    assert {"saga_events_dead_lettered", "saga_sagas_started", "saga_event_consumers"} <= set(families)


def test_with_the_database_up_its_gauges_are_read() -> None:
    store = InMemoryStore()

    families = exposed(Metrics(), lambda read_only=False: InMemoryUnitOfWork(store, read_only))

    assert families["saga_database_up"] == [1.0]
    assert set(families) >= DATABASE_GAUGES and families["saga_outbox_pending_commands"] == [0.0]


def test_an_unexpected_error_reading_the_gauges_is_not_hidden() -> None:
    def broken(read_only: bool = False) -> UnitOfWork:
        raise RuntimeError("a bug, not an outage")

    with pytest.raises(RuntimeError):
        exposed(Metrics(), broken)
