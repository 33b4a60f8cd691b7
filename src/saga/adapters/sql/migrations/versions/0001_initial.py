"""Sagas, their outbox and the inbox of consumed message ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _moment() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sagas",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_step", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("payment_id", sa.Text(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("order_details", _json(), nullable=False),
        sa.Column("payment_info", _json(), nullable=True),
        sa.Column("awaiting", _json(), nullable=True),
        sa.Column("compensations", _json(), nullable=False),
        sa.Column("history", _json(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("ignored_events", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("updated_at", _moment(), nullable=False),
        sa.Column("completed_at", _moment(), nullable=True),
        sa.Column("due_at", _moment(), nullable=True),
    )
    # Newest-first listings, keyset-paged on (created_at, id), with and without a status.
    op.create_index("ix_sagas_status_created_at_id", "sagas", ["status", "created_at", "id"])
    op.create_index("ix_sagas_created_at_id", "sagas", ["created_at", "id"])
    # The deadline sweep; finished sagas have no deadline and stay out of the index.
    op.create_index(
        "ix_sagas_due_at",
        "sagas",
        ["due_at"],
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    )

    op.create_table(
        "outbox",
        # SQLite assigns ids only to an INTEGER PRIMARY KEY.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("command_type", sa.String(64), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", _moment(), nullable=False),
        sa.Column("leased_until", _moment(), nullable=True),
        sa.Column("sent_at", _moment(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    # A relay claims unsent entries that are due, oldest first: only unsent ones are indexed.
    op.create_index(
        "ix_outbox_unsent_available_at_id",
        "outbox",
        ["available_at", "id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    # Is a saga's command still waiting to be handed over, and which of its commands are?
    for name, column in (("ix_outbox_unsent_message_id", "message_id"), ("ix_outbox_unsent_saga_id", "saga_id")):
        op.create_index(
            name,
            "outbox",
            [column],
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        )

    op.create_table(
        "inbox",
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("processed_at", _moment(), nullable=False),
    )
    # Retention forgets the oldest message ids first.
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unsent_saga_id", table_name="outbox")
    op.drop_index("ix_outbox_unsent_message_id", table_name="outbox")
    op.drop_index("ix_outbox_unsent_available_at_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_sagas_due_at", table_name="sagas")
    op.drop_index("ix_sagas_created_at_id", table_name="sagas")
    op.drop_index("ix_sagas_status_created_at_id", table_name="sagas")
    op.drop_table("sagas")
