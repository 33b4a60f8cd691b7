"""A saga's history as rows of its own table, appended to, instead of a JSON column rewritten per step.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
"""Sagas moved per round trip, so a large table never sits in memory at once."""


def _history_table() -> sa.Table:
    return sa.Table(
        "saga_history",
        sa.MetaData(),
        sa.Column("saga_id", sa.String(64)),
        sa.Column("seq", sa.Integer()),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("kind", sa.String(16)),
        sa.Column("type", sa.Text()),
        sa.Column("message_id", sa.Text()),
        sa.Column("detail", sa.Text()),
    )


def _stored_moment(text: str, dialect: str) -> datetime:
    # As the adapter stores moments: UTC, and without an offset on SQLite.
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(tzinfo=None) if dialect == "sqlite" else moment


def _json_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def _batches(connection: sa.Connection, query: sa.Select[Any]) -> Iterator[Sequence[sa.Row[Any]]]:
    last = ""
    while rows := connection.execute(query.where(sa.column("id") > last).order_by(sa.column("id")).limit(BATCH)).all():
        yield rows
        last = rows[-1].id


def upgrade() -> None:
    op.create_table(
        "saga_history",
        sa.Column("saga_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    connection = op.get_bind()
    dialect = connection.dialect.name
    history = _history_table()
    query: sa.Select[Any] = sa.select(sa.column("id"), sa.column("history")).select_from(sa.table("sagas"))  # type: ignore[assignment]
    for rows in _batches(connection, query):
        entries = [
            {
                "saga_id": row.id,
                "seq": seq,
                "at": _stored_moment(entry["at"], dialect),
                "kind": entry["kind"],
                "type": entry["type"],
                "message_id": entry.get("message_id"),
                "detail": entry.get("detail"),
            }
            for row in rows
            for seq, entry in enumerate(_json_list(row.history))
        ]
        if entries:
            connection.execute(history.insert(), entries)
    with op.batch_alter_table("sagas") as sagas:
        sagas.drop_column("history")


def downgrade() -> None:
    with op.batch_alter_table("sagas") as sagas:
        sagas.add_column(sa.Column("history", sa.JSON(none_as_null=True), nullable=False, server_default="[]"))
    connection = op.get_bind()
    history = _history_table()
    sagas_table = sa.table("sagas", sa.column("id"), sa.column("history", sa.JSON()))
    for rows in _batches(connection, sa.select(sa.column("id")).select_from(sa.table("sagas"))):
        for row in rows:
            entries = connection.execute(
                sa.select(history).where(history.c.saga_id == row.id).order_by(history.c.seq)
            ).all()
            stored = [
                {
                    "at": (
                        entry.at.replace(tzinfo=UTC) if entry.at.tzinfo is None else entry.at.astimezone(UTC)
                    ).isoformat(timespec="microseconds"),
                    "kind": entry.kind,
                    "type": entry.type,
                    "message_id": entry.message_id,
                    "detail": entry.detail,
                }
                for entry in entries
            ]
            connection.execute(sagas_table.update().where(sagas_table.c.id == row.id).values(history=stored))
    op.drop_table("saga_history")
