"""The inbox remembers (saga, message id) pairs; sagas that left a clean-up unconfirmed are indexed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _inbox(name: str, *key: str) -> None:
    op.create_table(
        name,
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    )


def _replace_inbox(*key: str) -> None:
    # A primary key cannot be changed in place on SQLite: copy into a new table.
    _inbox("inbox_next", *key)
    op.execute(
        "INSERT INTO inbox_next (saga_id, message_id, processed_at) SELECT saga_id, message_id, processed_at FROM inbox"
    )
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
    op.drop_table("inbox")
    op.rename_table("inbox_next", "inbox")
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])


def upgrade() -> None:
    with op.batch_alter_table("sagas") as batch:
        batch.add_column(sa.Column("cleanup_unconfirmed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        "ix_sagas_cleanup_unconfirmed_created_at_id",
        "sagas",
        ["created_at", "id"],
        postgresql_where=sa.text("cleanup_unconfirmed"),
        sqlite_where=sa.text("cleanup_unconfirmed"),
    )
    _replace_inbox("saga_id", "message_id")


def downgrade() -> None:
    # Two sagas' records of one message id become one.
    op.execute(
        "DELETE FROM inbox WHERE EXISTS (SELECT 1 FROM inbox AS other WHERE other.message_id = inbox.message_id "
        "AND other.saga_id < inbox.saga_id)"
    )
    _replace_inbox("message_id")
    op.drop_index("ix_sagas_cleanup_unconfirmed_created_at_id", table_name="sagas")
    with op.batch_alter_table("sagas") as batch:
        batch.drop_column("cleanup_unconfirmed")
