"""How a saga looks in JSON, and the opaque cursor of a listing page."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import cast

from saga.adapters.envelope import decode_json, encode_json, format_timestamp, without_non_finite
from saga.domain.messages import JsonObject
from saga.domain.saga import CreateOrderSaga, HistoryEntry, Undo, UndoStatus
from saga.ports.persistence import PageCursor


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def saga_json(saga: CreateOrderSaga) -> JsonObject:
    awaiting = saga.awaiting
    return {
        "id": saga.id,
        "customer_id": saga.customer_id,
        "status": saga.status.value,
        "current_step": saga.current_step.value,
        "error": saga.error,
        "order_id": saga.order_id,
        "payment_id": saga.payment_id,
        "amount_cents": saga.amount_cents,
        "currency": saga.currency,
        "order_details": without_non_finite(saga.order_details),
        "created_at": _time(saga.created_at),
        "updated_at": _time(saga.updated_at),
        "completed_at": _time(saga.completed_at),
        "awaiting": None
        if awaiting is None
        else {"command": awaiting.command_type, "attempts": awaiting.attempts, "due_at": _time(awaiting.due_at)},
        "pending_compensations": [undo.compensation.value for undo in saga.pending_compensations],
        "compensations": [_undo_json(undo) for undo in saga.compensations if not undo.cleanup],
        "cleanups": [_undo_json(undo) for undo in saga.cleanups],
        "ignored_events": saga.ignored_events,
        "version": saga.version,
        "history": [_history_json(entry) for entry in saga.history],
    }


def _history_json(entry: HistoryEntry) -> JsonObject:
    """One history entry as the API shows it (its own shape, whatever the storage's is)."""
    return {
        "at": _time(entry.at),
        "kind": entry.kind.value,
        "type": entry.type,
        "message_id": entry.message_id,
        "detail": entry.detail,
    }


def _undo_json(undo: Undo) -> JsonObject:
    """One compensation or clean-up: `kind` is the resource (`order`, `payment`), `status` one of
    pending, confirmed, unconfirmed and, for a resource whose id was never reported, unknown."""
    status = UndoStatus.PENDING if undo.status is UndoStatus.RUNNING else undo.status
    return {
        "kind": undo.spec.undoes.value,
        "command": undo.command_type,
        "id": undo.resource_id,
        "status": status.value,
        "detail": undo.outcome,
    }


def encode_cursor(cursor: PageCursor) -> str:
    raw = encode_json([format_timestamp(cursor.created_at), cursor.saga_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> PageCursor:
    """Raises ValueError for a cursor this service did not issue."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created_at, saga_id = cast(list[str], decode_json(raw))  # shape checked by what follows
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return PageCursor(moment.astimezone(UTC), str(uuid.UUID(saga_id)))
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        raise ValueError("cursor is not one this service issued") from None
