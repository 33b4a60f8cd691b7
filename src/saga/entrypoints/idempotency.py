"""The `Idempotency-Key` of `POST /api/orders` (docs/contract.md, "HTTP API"): its syntax and the request's digest."""

from __future__ import annotations

import hashlib
import json

from saga.domain.messages import JsonObject

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


class InvalidIdempotencyKey(ValueError):
    """The header is not 1-200 visible ASCII characters (a 400)."""


def parse_idempotency_key(value: str | None) -> str | None:
    """The key as sent, or None without the header. Raises InvalidIdempotencyKey."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all("!" <= char <= "~" for char in value):
        raise InvalidIdempotencyKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters")
    return value


def request_digest(body: JsonObject) -> str:
    """SHA-256 (hex) of the body as a JSON value: key order and spacing do not matter, nor
    how a number is spelled (12.99 and 12.990 are one value)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
