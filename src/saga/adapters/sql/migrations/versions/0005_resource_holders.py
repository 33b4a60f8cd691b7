"""Which saga holds a resource: indexes on the sagas' order and payment ids, and the
resources only a saga's compensations name as rows of their own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
"""Sagas read per round trip, so a large table never sits in memory at once."""

UNDOES = {"CANCEL_ORDER": "order", "REVERT_PAYMENT": "payment"}
"""The resource kind each compensation undoes, as the saga declared them at this revision."""


def _resources_table() -> sa.Table:
    return sa.Table(
        "saga_resources",
        sa.MetaData(),
        sa.Column("kind", sa.String(16)),
        sa.Column("resource_id", sa.Text()),
        sa.Column("saga_id", sa.String(64)),
    )


def _json_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def _batches(connection: sa.Connection, query: sa.Select[Any]) -> Iterator[Sequence[sa.Row[Any]]]:
    last = ""
    while rows := connection.execute(query.where(sa.column("id") > last).order_by(sa.column("id")).limit(BATCH)).all():
        yield rows
        last = rows[-1].id


def _beside_columns(row: sa.Row[Any]) -> set[tuple[str, str]]:
    """(kind, id) of each resource the saga's compensations name other than its own order and payment."""
    own = {"order": row.order_id, "payment": row.payment_id}
    found: set[tuple[str, str]] = set()
    for undo in _json_list(row.compensations):
        # The first schema kept compensation names only: they name no resource of their own.
        if isinstance(undo, dict) and undo.get("resource_id") is not None and undo.get("compensation") in UNDOES:
            kind, resource_id = UNDOES[undo["compensation"]], str(undo["resource_id"])
            if resource_id != own[kind]:
                found.add((kind, resource_id))
    return found


def upgrade() -> None:
    # A participant's id has no length bound and a PostgreSQL B-tree refuses long entries: hash there.
    op.create_index("ix_sagas_order_id", "sagas", ["order_id"], postgresql_using="hash")
    op.create_index("ix_sagas_payment_id", "sagas", ["payment_id"], postgresql_using="hash")
    op.create_table(
        "saga_resources",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("saga_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_saga_resources_resource_id", "saga_resources", ["resource_id"], postgresql_using="hash")
    connection = op.get_bind()
    resources = _resources_table()
    query: sa.Select[Any] = sa.select(  # type: ignore[assignment]
        sa.column("id"), sa.column("order_id"), sa.column("payment_id"), sa.column("compensations")
    ).select_from(sa.table("sagas"))
    for rows in _batches(connection, query):
        held = [
            {"kind": kind, "resource_id": resource_id, "saga_id": row.id}
            for row in rows
            for kind, resource_id in sorted(_beside_columns(row))
        ]
        if held:
            connection.execute(resources.insert(), held)


def downgrade() -> None:
    op.drop_index("ix_saga_resources_resource_id", table_name="saga_resources")
    op.drop_table("saga_resources")
    op.drop_index("ix_sagas_payment_id", table_name="sagas")
    op.drop_index("ix_sagas_order_id", table_name="sagas")
