"""The container resolves every provider for each storage and the memory transport."""

from __future__ import annotations

from pathlib import Path

import pytest
from dependency_injector import providers

from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container
from saga.ports.messaging import CommandPublisher
from saga.ports.persistence import UnitOfWork


@pytest.mark.parametrize("database", ["memory", "sqlite"])
def test_every_provider_resolves(tmp_path: Path, database: str) -> None:
    url = "memory://" if database == "memory" else f"sqlite:///{tmp_path / 'saga.db'}"
    container = Container(settings=Settings(database_url=url))
    for name, provider in container.providers.items():
        if isinstance(provider, providers.Dependency) or (database == "memory" and name == "engine"):
            continue  # the engine is only built for a SQL database
        assert provider() is not None, name
    assert isinstance(container.unit_of_work(), UnitOfWork)
    assert isinstance(container.publisher(), CommandPublisher)
    assert container.unit_of_work() is not container.unit_of_work()  # a unit of work per use
    assert container.orchestrator() is container.orchestrator()
