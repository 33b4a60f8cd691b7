"""The `Idempotency-Key` of `POST /api/orders` (docs/contract.md, "HTTP API"): its syntax and the request's digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from saga.domain.messages import JsonObject

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


class InvalidIdempotencyKey(ValueError):
    """The header is not 1-200 visible ASCII characters, or is given more than once (a 400)."""


def parse_idempotency_key(values: Sequence[str]) -> str | None:
    """The key as sent, from every `Idempotency-Key` header of the request; None without one.
    Raises InvalidIdempotencyKey, also for two headers: which one the client meant is unknown."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidIdempotencyKey(f"{HEADER} must be given once, not {len(values)} times")
    value = values[0]
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all("!" <= char <= "~" for char in value):
        raise InvalidIdempotencyKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters")
    return value


def request_digest(body: JsonObject) -> str:
    """SHA-256 (hex) of the body as a JSON value: key order and spacing do not matter, nor
    how a number is spelled (12.99 and 12.990 are one value)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
