"""The saga as the database stores it: every saga <-> row mapping is here, and only here.

A saga field is stored in the `sagas` column of the same name, except its history,
which is rows of `saga_history` (one per entry, in order), appended to and never
rewritten. Plain values go as they are (an enum as its value); structured ones (the
awaited command, the compensations) go into JSON columns, built from the domain's
dataclass fields and read back by their declared types. The stored shape is the
adapter's own: the API and the wire have theirs, and changing one never changes
another. A new saga field needs only its column (and a migration); a new field of a
nested record needs nothing, and rows written before it existed read back with the
field's default.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, func, literal_column, select, type_coerce
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Row

from saga.adapters.sql.schema import saga_history, sagas
from saga.domain.saga import CreateOrderSaga, HistoryEntry, SagaStatus, Undo, UndoStatus
from saga.domain.steps import STEPS, UNDO, UNDO_BY_COMPENSATION, Compensation, ResourceRef
from saga.ports.persistence import SagaResources

WRITTEN_ONCE = frozenset({"id", "customer_id", "order_details", "amount_cents", "currency", "created_at"})
"""What an order is never changes after it starts: a save writes only the saga's progress."""
DERIVED_COLUMNS = frozenset({"due_at", "cleanup_unconfirmed"})
"""Columns kept for queries, written from the saga but not read back into it."""
HISTORY = "history"
"""The saga field kept as rows of `saga_history`."""

_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(CreateOrderSaga)
_COLUMN_FIELDS = tuple(name for name in _FIELD_TYPES if name != HISTORY)
_JSON_COLUMNS = frozenset(column.name for column in sagas.columns if isinstance(column.type, JSON))
_ENTRY_FIELDS = tuple(field.name for field in dataclasses.fields(HistoryEntry))

_unmapped = set(_COLUMN_FIELDS) ^ ({column.name for column in sagas.columns} - DERIVED_COLUMNS)
_unmapped |= set(_ENTRY_FIELDS) ^ ({column.name for column in saga_history.columns} - {"saga_id", "seq"})
if _unmapped:
    raise RuntimeError(f"saga fields and the columns of `sagas` and `saga_history` differ: {sorted(_unmapped)}")


def saga_row(saga: CreateOrderSaga) -> dict[str, Any]:
    """Every column of the saga's row (its history excepted)."""
    row = {name: _stored(name, getattr(saga, name)) for name in _COLUMN_FIELDS}
    row["due_at"] = saga.due_at  # a terminal saga still has one while a clean-up runs
    row["cleanup_unconfirmed"] = saga.has_unconfirmed_cleanup
    return row


def history_rows(saga_id: str, entries: Sequence[HistoryEntry], first_seq: int) -> list[dict[str, Any]]:
    """Rows of `saga_history` for `entries`, numbered from `first_seq`."""
    return [
        {"saga_id": saga_id, "seq": seq, **{name: _plain(getattr(entry, name)) for name in _ENTRY_FIELDS}}
        for seq, entry in enumerate(entries, start=first_seq)
    ]


def saga_select(dialect: str) -> Select[Any]:
    """The `sagas` columns and, as `history`, the saga's entries in order as one JSON array:
    a saga reads back in one statement."""
    pairs: list[ColumnElement[Any]] = []
    for name in _ENTRY_FIELDS:
        pairs += [literal_column(f"'{name}'"), saga_history.c[name]]
    mine = saga_history.c.saga_id == sagas.c.id
    if dialect == "postgresql":
        entries = func.json_agg(aggregate_order_by(func.json_build_object(*pairs), saga_history.c.seq))
        history = select(func.coalesce(entries, literal_column("'[]'::json"))).where(mine).scalar_subquery()
    else:
        # SQLite keeps a FROM subquery's ORDER BY for the aggregate over it.
        ordered = (
            select(func.json_object(*pairs).label("entry")).where(mine).order_by(saga_history.c.seq).correlate(sagas)
        ).subquery()
        history = select(func.json_group_array(func.json(ordered.c.entry))).scalar_subquery()
    return select(sagas, type_coerce(history, JSON).label(HISTORY))


HISTORY_LENGTH = "history_length"


def saga_select_without_history() -> Select[Any]:
    """The `sagas` columns and, as `history_length`, how many history entries the saga has
    stored: what applying an event reads (the history is written to, not read)."""
    stored = select(func.count()).where(saga_history.c.saga_id == sagas.c.id).scalar_subquery()
    return select(sagas, stored.label(HISTORY_LENGTH))


PROGRESS_COLUMNS = tuple(
    column.name for column in sagas.columns if column.name not in WRITTEN_ONCE and column.name != "version"
)
"""The columns a save may write: everything but what the order was, and the version."""


def progress_row(saga: CreateOrderSaga) -> dict[str, Any]:
    """The saga's values of PROGRESS_COLUMNS."""
    row = saga_row(saga)
    return {name: row[name] for name in PROGRESS_COLUMNS}


def resources_beside_columns(values: Mapping[str, Any]) -> set[ResourceRef]:
    """The resources a saga's row holds other than its `order_id` and `payment_id`: those
    only its compensations and clean-ups name, as rows of `saga_resources` keep them.
    `values` holds at least the row's `order_id`, `payment_id` and `compensations`."""
    found: set[ResourceRef] = set()
    for undo in values["compensations"] or ():
        if not isinstance(undo, dict) or undo.get("resource_id") is None:
            continue  # the first schema named compensations only, never a resource of their own
        resource = UNDO_BY_COMPENSATION[Compensation(undo["compensation"])].undoes
        resource_id = str(undo["resource_id"])
        if resource_id != values[resource.id_field]:
            found.add(ResourceRef(resource, resource_id))
    return found


def saga_from_row(row: Row[Any]) -> CreateOrderSaga:
    """The saga of a `saga_select` row; of a `saga_select_without_history` row, with an empty history."""
    values = dict(row._mapping)
    values.setdefault(HISTORY, [])
    first_schema = _written_by_first_schema(values)
    if first_schema:
        values["compensations"] = [{"compensation": name, "resource_id": None} for name in values["compensations"]]
    saga = CreateOrderSaga(**{name: read(values[name]) for name, read in _FIELD_READERS})
    if first_schema:
        _read_first_schema_compensations(saga)
    return saga


RESOURCE_COLUMNS = ("id", "status", "order_id", "payment_id", "compensations", "awaiting", "created_at")
"""What `resources_from_row` reads: no history, no order details."""


def resources_from_row(row: Row[Any]) -> SagaResources:
    """A saga's resources and their undo from the RESOURCE_COLUMNS of its row."""
    values = dict(row._mapping)
    if _written_by_first_schema(values):  # rare, and then read whole
        saga = saga_from_row_parts(values)
        return SagaResources.of(saga)
    return SagaResources(
        values["id"],
        SagaStatus(values["status"]),
        values["order_id"],
        values["payment_id"],
        tuple(_read(list[Undo], values["compensations"])),
        _utc(values["created_at"]),
    )


def saga_from_row_parts(values: dict[str, Any]) -> CreateOrderSaga:
    """A saga from the RESOURCE_COLUMNS only, the rest left empty: enough to read its compensations."""
    partial = {
        "customer_id": "",
        "order_details": {},
        "amount_cents": 0,
        "currency": "",
        "current_step": STEPS[0].step.value,
        "updated_at": values["created_at"],
        "history": [],
        "cancel_requested": False,
        "ignored_events": 0,
        "version": 0,
    }
    first = [{"compensation": name, "resource_id": None} for name in values["compensations"]]
    values = {**partial, **values, "compensations": first}
    saga = CreateOrderSaga(**{name: _read(hint, values.get(name)) for name, hint in _FIELD_TYPES.items()})
    _read_first_schema_compensations(saga)
    return saga


def _written_by_first_schema(values: dict[str, Any]) -> bool:
    compensations = values["compensations"]
    if compensations:
        return all(isinstance(value, str) for value in compensations)
    return bool(values["status"] == SagaStatus.COMPENSATING.value)


def _read_first_schema_compensations(saga: CreateOrderSaga) -> None:
    """The first schema kept only the compensations still to run, by name, and the running
    one in `awaiting`: name their resources and mark the running one."""
    saga.compensations = [
        replace(undo, resource_id=getattr(saga, undo.spec.undoes.id_field)) for undo in saga.compensations
    ]
    awaiting = saga.awaiting
    for undo_spec in UNDO.values():
        if awaiting is not None and awaiting.command_type == undo_spec.action.command:
            resource_id = awaiting.payload.get(undo_spec.undoes.id_field)
            saga.compensations.insert(0, Undo(undo_spec.compensation, resource_id, UndoStatus.RUNNING))


def _stored(name: str, value: object) -> object:
    return to_json(value) if name in _JSON_COLUMNS else _plain(value)


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def to_json(value: object) -> object:
    """A JSON value for a domain value: dataclasses by their fields, enums by value,
    datetimes as ISO 8601 text in UTC with microseconds."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="microseconds")
    names = _field_names(type(value))
    if names is not None:
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value  # str, int, float, bool, None and JSON objects, which are stored as they are


def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names, in order; None for any other type."""
    if kind not in _FIELD_NAMES:
        is_record = dataclasses.is_dataclass(kind)
        _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(kind)) if is_record else None
    return _FIELD_NAMES[kind]


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _read(hint: Any, value: Any) -> Any:
    """The domain value of type `hint` for a stored value (a column's or a JSON one)."""
    return _reader(hint)(value)


Reader = Callable[[Any], Any]


@functools.cache
def _reader(hint: Any) -> Reader:
    """A function reading stored values of type `hint`, worked out once per type: the
    declared types are walked when a type is first read, not for every row."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        [kind] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _or_none(_reader(kind))
    if origin is list:
        [item] = typing.get_args(hint)
        read_item = _reader(item)
        return _or_none(lambda value: [read_item(element) for element in value])
    if hint is datetime:
        return _or_none(lambda value: _utc(value if isinstance(value, datetime) else datetime.fromisoformat(value)))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _or_none(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        kind = hint
        field_types = typing.get_type_hints(kind)
        fields = [(field.name, _reader(field_types[field.name])) for field in dataclasses.fields(kind)]

        def read_record(value: Any) -> Any:
            return kind(**{name: read(value[name]) for name, read in fields if name in value})

        return _or_none(read_record)
    return _as_is  # str, int, bool, and JSON objects


def _or_none(read: Reader) -> Reader:
    return lambda value: None if value is None else read(value)


def _as_is(value: Any) -> Any:
    return value


def _utc(moment: datetime) -> datetime:
    # A naive moment is UTC, as the contract reads timestamps without an offset.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_FIELD_READERS = [(name, _reader(hint)) for name, hint in _FIELD_TYPES.items()]
