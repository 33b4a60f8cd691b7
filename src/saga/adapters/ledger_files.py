"""Reading a ledger of the participants' records: CSV or JSON Lines, from a file or a URL.

CSV has the header `saga_id,kind,id,status,order_id` (other columns are ignored);
JSON Lines has one object per line with the same keys. A URL (`http://...`, such as
the simulator's `/ledger`) is read as it streams in. Rows are yielded one at a time,
so a ledger of any size is never held whole.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import requests

from saga.ports.ledger import LEDGER_FIELDS, BadLedgerRow, LedgerRow

FORMATS = ("csv", "jsonl")


class LedgerUnreadable(ValueError):
    """The ledger cannot be read at all, or one of its rows is bad; the message says where."""


def ledger_format(source: str, given: str | None = None) -> str:
    """The format named, else the one the file name says (`.csv`; anything else is JSON Lines)."""
    if given is not None:
        if given not in FORMATS:
            raise LedgerUnreadable(f"ledger format must be one of {', '.join(FORMATS)}, got {given!r}")
        return given
    return "csv" if source.split("?")[0].lower().endswith(".csv") else "jsonl"


def read_ledger(source: str, format: str | None = None, timeout: float = 30.0) -> Iterator[LedgerRow]:
    """Rows of the ledger at `source` (a path or an http(s) URL). Raises LedgerUnreadable."""
    kind = ledger_format(source, format)
    if source.startswith(("http://", "https://")):
        yield from _read_url(source, kind, timeout)
        return
    try:
        with Path(source).open(encoding="utf-8", newline="") as lines:
            yield from _rows(lines, kind, source)
    except OSError as error:
        raise LedgerUnreadable(f"cannot read {source}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise LedgerUnreadable(f"{source} is not UTF-8 text") from None


def _read_url(url: str, kind: str, timeout: float) -> Iterator[LedgerRow]:
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise LedgerUnreadable(f"{url} answered {response.status_code}")
            response.encoding = "utf-8"
            lines = (line + "\n" for line in response.iter_lines(decode_unicode=True))
            yield from _rows(lines, kind, url)
    except requests.RequestException as error:
        raise LedgerUnreadable(f"cannot read {url}: {type(error).__name__}") from None


def _rows(lines: Iterator[str] | io.TextIOBase | io.TextIOWrapper, kind: str, source: str) -> Iterator[LedgerRow]:
    if kind == "csv":
        reader = csv.DictReader(lines)
        missing = [name for name in LEDGER_FIELDS if name not in (reader.fieldnames or ())]
        if missing:
            raise LedgerUnreadable(f"{source}: the CSV header must name {','.join(LEDGER_FIELDS)}; missing {missing}")
        for number, record in enumerate(reader, start=2):
            yield _parsed(dict(record), source, number)
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise LedgerUnreadable(f"{source} line {number}: not a JSON object") from None
        if not isinstance(data, dict):
            raise LedgerUnreadable(f"{source} line {number}: not a JSON object")
        yield _parsed(data, source, number)


def _parsed(data: dict[str, object], source: str, number: int) -> LedgerRow:
    try:
        return LedgerRow.parse(data)
    except BadLedgerRow as bad:
        raise LedgerUnreadable(f"{source} line {number}: {bad}") from None
