"""What a log line is about (saga id, step, message id, trace id), carried by the code that runs a use case.

The use cases open a `log_context(saga_id=...)` around their work and `bind()` what they
learn inside it (the step once the saga is loaded); the logging setup of the entrypoints
copies the fields onto each record (`ContextFilter`), so a JSON log line carries them as
fields whatever its message says. Context variables follow threads and asyncio tasks:
what one request binds never shows on another's lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("saga_id", "step", "message_id", "trace_id")
_context: ContextVar[dict[str, str]] = ContextVar("saga_log_context", default={})  # noqa: B039 (never mutated)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Adds `fields` (names from FIELDS; None values are left out) to every line logged inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Adds `fields` to the enclosing `log_context` until it ends."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, str]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the current context onto each record as attributes (`record.saga_id`, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
