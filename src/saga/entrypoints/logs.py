"""Logging for every `saga` command: one line per record, as readable text by default or as
one JSON object per line with SAGA_LOG_FORMAT=json (python-json-logger).

Text lines cannot be forged by text from outside: a client's `customer_id`, a participant's
error or a broker's message may hold line breaks and other control characters; written
raw, `"x\\nERROR forged"` would start a line of its own. Each record's line is escaped
(`\\n`, `\\r`, `\\x1b`, ...); a traceback that follows it keeps its lines. JSON lines
escape them by being JSON.

A JSON line has `time` (ISO 8601, UTC), `level`, `logger`, `message`, and, where the line
is about one, `saga_id`, `step`, `message_id` and `trace_id` (from
`saga.service_layer.log_context`); an exception adds `exc_info`. uvicorn's own lines go
through the same handler (the servers are started with `log_config=None`).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from saga.service_layer.log_context import ContextFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` on one line: each control character (C0, DEL, NEL, line and paragraph
    separators) written as its Python escape."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose record line (not its traceback) never spans more than one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


class SagaJsonFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, and the record's context fields."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn adds an ANSI-coloured copy of its messages; the plain one is enough.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["time"] = self.formatTime(record)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root logging to stderr at `level`, one line per record, in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(SagaJsonFormatter() if log_format == "json" else OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
