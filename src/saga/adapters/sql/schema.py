"""The tables, as the adapter reads and writes them; the Alembic migrations beside this
module create them, and a test checks that both agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that is stored in UTC and always read back aware, in UTC.

    SQLite has no time zones: the value is stored as UTC text of fixed width, so text
    comparison is time comparison. A naive datetime is read as UTC, as the contract does.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> JSON:
    # SQL NULL, not the JSON text 'null', for an absent value.
    return JSON(none_as_null=True)


# SQLite assigns ids only to an INTEGER PRIMARY KEY, so BIGINT becomes INTEGER there (64-bit anyway).
OUTBOX_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

sagas = Table(
    "sagas",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("current_step", String(32), nullable=False),
    Column("error", Text, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("payment_id", Text, nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("order_details", _json(), nullable=False),
    Column("payment_info", _json(), nullable=True),
    Column("awaiting", _json(), nullable=True),
    Column("compensations", _json(), nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("ignored_events", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
    # Copied from the saga's awaited reply (NULL when nothing is awaited), so the sweep reads an index only.
    Column("due_at", UtcDateTime(), nullable=True),
    # A terminal saga left a clean-up unconfirmed: `GET /api/sagas?cleanup=unconfirmed` lists it.
    Column("cleanup_unconfirmed", Boolean, nullable=False, server_default=false()),
    Index("ix_sagas_status_created_at_id", "status", "created_at", "id"),
    Index("ix_sagas_created_at_id", "created_at", "id"),
    Index(
        "ix_sagas_due_at",
        "due_at",
        postgresql_where=text("due_at IS NOT NULL"),
        sqlite_where=text("due_at IS NOT NULL"),
    ),
    Index(
        "ix_sagas_cleanup_unconfirmed_created_at_id",
        "created_at",
        "id",
        postgresql_where=text("cleanup_unconfirmed"),
        sqlite_where=text("cleanup_unconfirmed"),
    ),
    # Which saga holds a resource an event names (docs/contract.md, "No orphan resources").
    # A participant's id has no length bound, and a PostgreSQL B-tree refuses entries past
    # about 2.7 kB: there a hash index, which stores a hash of any length and answers `=`.
    Index("ix_sagas_order_id", "order_id", postgresql_using="hash"),
    Index("ix_sagas_payment_id", "payment_id", postgresql_using="hash"),
)

# The resources a saga holds other than its own order and payment: those that only its
# compensations and clean-ups name (a late reply's, a second reply's). With the `order_id`
# and `payment_id` columns, they tell which saga holds a resource. Rows are added, never
# changed: a saga never lets go of a resource it holds.
saga_resources = Table(
    "saga_resources",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("saga_id", String(64), nullable=False),
    Index("ix_saga_resources_resource_id", "resource_id", postgresql_using="hash"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", OUTBOX_ID, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("saga_id", String(64), nullable=False),
    Column("command_type", String(64), nullable=False),
    Column("payload", _json(), nullable=False),
    # The command's own timestamp, as its envelope carries it.
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", UtcDateTime(), nullable=False),
    # No longer written: a claim holds its rows by their locks until it commits them sent.
    Column("leased_until", UtcDateTime(), nullable=True),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # Only unsent entries are indexed: a relay's claim reads this small index in order.
    Index(
        "ix_outbox_unsent_available_at_id",
        "available_at",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index(
        "ix_outbox_unsent_message_id",
        "message_id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index(
        "ix_outbox_unsent_saga_id",
        "saga_id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)

saga_history = Table(
    "saga_history",
    metadata,
    # Appended to, never rewritten: a step writes its new entries, not the saga's whole past.
    Column("saga_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("type", Text, nullable=False),
    Column("message_id", Text, nullable=True),
    Column("detail", Text, nullable=True),
)

# A message id is the participant's: two sagas' events may carry the same one, so the
# inbox remembers (saga, message id) pairs (docs/contract.md, "Message envelope").
inbox = Table(
    "inbox",
    metadata,
    Column("saga_id", String(64), primary_key=True),
    Column("message_id", String(200), primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
    Index("ix_inbox_processed_at", "processed_at"),
)

# A client's Idempotency-Key of POST /api/orders and the saga its first request made,
# written in the saga's transaction (docs/contract.md, "HTTP API").
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("request_digest", String(64), nullable=False),
    Column("saga_id", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)
