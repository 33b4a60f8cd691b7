"""A commit whose answer never comes, through a real TCP proxy between `saga serve` and PostgreSQL.

The proxy forwards the COMMIT of a transaction that inserted a saga, waits for the
server's answer, drops it and closes the connection: the saga is committed and the
orchestrator only sees its connection break (docs/contract.md, "HTTP API").
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.servers import free_port, saga_process

from saga.adapters.sql.engine import database_url as sqlalchemy_url
from saga.torture.proxy import CommitCuttingProxy

pytestmark = pytest.mark.postgres

ORDER = {"customer_id": "cust_1", "order_details": {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}}


@dataclass
class System:
    base: str
    proxy: CommitCuttingProxy
    database_url: str


@pytest.fixture(scope="module")
def system(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One database, the proxy before it and `saga serve` behind it, for the module's tests."""
    url = make_url(postgres_url)
    socket_dir = url.query.get("host")
    if not isinstance(socket_dir, str):
        pytest.skip("the proxy stands before a Unix-socket server; SAGA_TEST_DATABASE_URL names another kind")
    name = f"saga_{uuid.uuid4().hex}"
    admin = create_engine(sqlalchemy_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = url.set(database=name).render_as_string(hide_password=False)
    migrated = subprocess.run(
        [sys.executable, "-m", "saga.entrypoints.cli", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    proxy = CommitCuttingProxy(free_port(), f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
    proxy.start()
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{proxy.listen_port}/{name}", "SAGA_TRANSPORT": "memory"}
    try:
        with saga_process(["serve", "--no-migrate"], env, tmp_path_factory.mktemp("cut") / "serve.log") as base:
            yield System(base, proxy, database_url)
    finally:
        proxy.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def sagas_of(database_url: str, customer_id: str) -> list[str]:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id FROM sagas WHERE customer_id = :c"), {"c": customer_id})
            return [row.id for row in rows]
    finally:
        engine.dispose()


def order(customer_id: str) -> dict[str, object]:
    return {**ORDER, "customer_id": customer_id}


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "idempotency-key"])
def test_a_saga_committed_without_an_answer_is_answered_202_not_503(system: System, with_key: bool) -> None:
    server, proxy, database_url = system.base, system.proxy, system.database_url
    cuts_before = proxy.saga_insert_cuts
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    headers = {"Idempotency-Key": f"key-{customer}"} if with_key else {}
    proxy.arm(saga_insert_only=True)

    response = requests.post(f"{server}/api/orders", json=order(customer), headers=headers, timeout=30)

    assert proxy.saga_insert_cuts == cuts_before + 1, "the proxy did not cut the saga's commit"
    assert response.status_code == 202, response.text
    assert sagas_of(database_url, customer) == [response.json()["saga_id"]]
    if with_key:  # the client repeats it anyway: the first answer, no second saga
        again = requests.post(f"{server}/api/orders", json=order(customer), headers=headers, timeout=30)
        assert again.json() == response.json()
        assert sagas_of(database_url, customer) == [response.json()["saga_id"]]


def test_when_the_outcome_cannot_be_learned_a_504_names_the_saga_and_the_key_finds_it(system: System) -> None:
    server, proxy, database_url = system.base, system.proxy, system.database_url
    cuts_before = proxy.saga_insert_cuts
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    headers = {"Idempotency-Key": f"key-{customer}"}
    assert requests.get(f"{server}/readyz", timeout=10).status_code == 200  # a pooled connection exists
    proxy.arm(saga_insert_only=True)
    proxy.refusing.set()  # after the cut, the database does not answer the orchestrator's reads

    response = requests.post(f"{server}/api/orders", json=order(customer), headers=headers, timeout=30)

    assert proxy.saga_insert_cuts == cuts_before + 1
    assert response.status_code == 504, response.text
    body = response.json()
    assert body["success"] is False and "Idempotency-Key" in body["error"]
    assert sagas_of(database_url, customer) == [body["saga_id"]]  # it was written
    proxy.refusing.clear()
    again = requests.post(f"{server}/api/orders", json=order(customer), headers=headers, timeout=30)
    assert again.status_code == 202
    assert again.json()["saga_id"] == body["saga_id"]
    assert sagas_of(database_url, customer) == [body["saga_id"]]
