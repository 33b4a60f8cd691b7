"""The audit's read on the SQL store: a saga's resources and undo without its history, rows of
the first schema included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from tests.unit.persistence_contract import make_saga

from saga.adapters.sql.engine import create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.adapters.sql.schema import sagas
from saga.adapters.sql.unit_of_work import SqlAlchemyUnitOfWork
from saga.domain.saga import SagaStatus
from saga.ports.persistence import SagaResources


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    engine = create_engine_from_url(url)
    yield engine
    engine.dispose()


def test_a_row_of_the_first_schema_reads_as_its_saga_does(engine: Engine) -> None:
    saga = make_saga(status=SagaStatus.COMPENSATING)
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()
    with engine.begin() as connection:  # the first schema kept the names of the compensations still to run
        connection.execute(sagas.update().where(sagas.c.id == saga.id).values(compensations=["CANCEL_ORDER"]))
        [stored] = connection.execute(select(sagas.c.compensations).where(sagas.c.id == saga.id)).scalars()
    assert stored == ["CANCEL_ORDER"]

    with SqlAlchemyUnitOfWork(engine, read_only=True) as uow:
        whole = uow.sagas.get(saga.id)
        [resources] = uow.sagas.resources_page(10, None).sagas
    assert whole is not None and whole.compensations
    assert resources == SagaResources.of(whole)
