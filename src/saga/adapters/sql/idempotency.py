"""Idempotency keys of order requests in SQL (docs/contract.md, "HTTP API", `Idempotency-Key`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from saga.adapters.sql.errors import translated_errors
from saga.adapters.sql.schema import idempotency_keys
from saga.ports.persistence import ConcurrencyConflict, IdempotencyKeys, IdempotencyRecord, StorageUnavailable

SELECT_LIVE_KEY = select(idempotency_keys).where(
    idempotency_keys.c.key == bindparam("key"), idempotency_keys.c.created_at > bindparam("after")
)


# INSERT, or take over an expired record of the key; a live one is left alone (no row
# changes). On PostgreSQL a concurrent insert of the same key waits for the other
# transaction, so a request in flight learns the first one's outcome.
CLAIM_KEY = {
    name: dialect.insert(idempotency_keys).on_conflict_do_update(
        index_elements=["key"],
        set_={
            "request_digest": dialect.insert(idempotency_keys).excluded.request_digest,
            "saga_id": dialect.insert(idempotency_keys).excluded.saga_id,
            "created_at": dialect.insert(idempotency_keys).excluded.created_at,
        },
        where=idempotency_keys.c.created_at < bindparam("replacing_before"),
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# The same claim for several keys at once: one multi-row INSERT ("insertmanyvalues"),
# which names the keys it claimed.
CLAIM_KEYS = {name: statement.returning(idempotency_keys.c.key) for name, statement in CLAIM_KEY.items()}
SELECT_LIVE_KEYS = select(idempotency_keys).where(
    idempotency_keys.c.key.in_(bindparam("keys", expanding=True)), idempotency_keys.c.created_at > bindparam("after")
)
PURGE_KEYS = idempotency_keys.delete().where(
    idempotency_keys.c.key.in_(
        select(idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < bindparam("before"))
        .order_by(idempotency_keys.c.created_at)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)


class SqlAlchemyIdempotencyKeys(IdempotencyKeys):
    def __init__(self, connection: Callable[[], Connection]) -> None:
        self._connection = connection

    def get(self, key: str, created_after: datetime) -> IdempotencyRecord | None:
        with translated_errors():
            row = self._connection().execute(SELECT_LIVE_KEY, {"key": key, "after": created_after}).first()
        if row is None:
            return None
        return IdempotencyRecord(row.key, row.request_digest, row.saga_id, row.created_at)

    def add(self, record: IdempotencyRecord, replacing_before: datetime) -> None:
        connection = self._connection()
        statement = CLAIM_KEY.get(connection.dialect.name)
        if statement is None:
            raise StorageUnavailable(f"no idempotency key insert for the {connection.dialect.name} dialect")
        values = {
            "key": record.key,
            "request_digest": record.request_digest,
            "saga_id": record.saga_id,
            "created_at": record.created_at,
            "replacing_before": replacing_before,
        }
        with translated_errors():
            claimed = connection.execute(statement, values).rowcount == 1
        if not claimed:
            raise ConcurrencyConflict(f"idempotency key {record.key!r} is taken")

    def get_many(self, keys: Sequence[str], created_after: datetime) -> dict[str, IdempotencyRecord]:
        if not keys:
            return {}
        with translated_errors():
            rows = self._connection().execute(SELECT_LIVE_KEYS, {"keys": list(keys), "after": created_after}).all()
        return {row.key: IdempotencyRecord(row.key, row.request_digest, row.saga_id, row.created_at) for row in rows}

    def add_many(self, records: Sequence[IdempotencyRecord], replacing_before: datetime) -> None:
        if len(records) <= 1:
            for record in records:
                self.add(record, replacing_before)
            return
        connection = self._connection()
        statement = CLAIM_KEYS.get(connection.dialect.name)
        if statement is None:
            raise StorageUnavailable(f"no idempotency key insert for the {connection.dialect.name} dialect")
        values = [
            {
                "key": record.key,
                "request_digest": record.request_digest,
                "saga_id": record.saga_id,
                "created_at": record.created_at,
                "replacing_before": replacing_before,
            }
            # In key order: two transactions claiming the same keys wait for each other, never in a circle.
            for record in sorted(records, key=lambda record: record.key)
        ]
        with translated_errors():
            claimed = set(connection.execute(statement, values).scalars())
        if len(claimed) != len(records):
            raise ConcurrencyConflict(f"{len(records) - len(claimed)} of {len(records)} idempotency keys are taken")

    def purge(self, created_before: datetime, limit: int) -> int:
        with translated_errors():
            return int(self._connection().execute(PURGE_KEYS, {"before": created_before, "batch": limit}).rowcount)
