"""Retention against a real SQLite file: sent outbox entries and old message ids go, the rest stays."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import func, select

from saga.adapters.clock import ManualClock
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.adapters.sql.schema import idempotency_keys, inbox, outbox
from saga.domain.messages import Command, new_message_id
from saga.ports.persistence import IdempotencyRecord
from saga.service_layer.metrics import Metrics
from saga.service_layer.retention import Retention


def test_prune_deletes_in_batches_what_is_past_retention(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    engine = create_engine_from_url(url)
    clock = ManualClock()
    start = clock.now()
    commands = [Command("create_order", new_message_id(), {}, new_message_id(), start) for _ in range(25)]
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.outbox.add(commands)
        for command in commands:
            uow.inbox.record(command.message_id, command.saga_id, start)
        uow.commit()
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert len(uow.outbox.claim_due(start, 20)) == 20
        uow.commit()

    retention = Retention(
        partial(SqlAlchemyUnitOfWork, engine), clock, Metrics(), timedelta(hours=1), timedelta(hours=2), batch_size=7
    )
    assert retention.prune() == (0, 0)
    clock.advance(timedelta(hours=1, seconds=1))
    assert retention.prune() == (20, 0)
    clock.advance(timedelta(hours=1))
    assert retention.prune() == (0, 25)

    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(outbox)).scalar_one() == 5  # unsent stay
        assert connection.execute(select(func.count()).select_from(inbox)).scalar_one() == 0
    engine.dispose()


def test_prune_deletes_idempotency_keys_after_24_hours(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    engine = create_engine_from_url(url)
    clock = ManualClock()
    with SqlAlchemyUnitOfWork(engine) as uow:
        for index in range(5):
            record = IdempotencyRecord(f"key-{index}", "d" * 64, new_message_id(), clock.now())
            uow.idempotency_keys.add(record, clock.now())
        uow.commit()
    retention = Retention(partial(SqlAlchemyUnitOfWork, engine), clock, Metrics(), batch_size=2)

    clock.advance(timedelta(hours=23))
    retention.prune()
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.idempotency_keys.get("key-0", clock.now() - timedelta(days=2)) is not None
    clock.advance(timedelta(hours=1, seconds=1))
    retention.prune()

    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 0
    engine.dispose()
