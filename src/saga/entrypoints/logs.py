"""Log lines that text from outside cannot forge.

A client's `customer_id`, a participant's error or a broker's message may hold line
breaks and other control characters; written raw, `"x\\nERROR forged"` would start a
line of its own. Each record's line is escaped (`\\n`, `\\r`, `\\x1b`, ...); a traceback
that follows it keeps its lines.
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` on one line: each control character (C0, DEL, NEL, line and paragraph
    separators) written as its Python escape."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose record line (not its traceback) never spans more than one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def configure_logging(level: str) -> None:
    """Root logging to stderr at `level`, one line per record."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
