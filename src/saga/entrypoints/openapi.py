"""The OpenAPI 3.1 description served at /openapi.json, built from the code's own models
and limits (docs/contract.md, "HTTP API").

Enums come from the domain (statuses, steps, compensations, event types and the fields
each event needs), limits from the settings the app runs with (body size, intake
limits, page size), so the document cannot drift from what the handlers accept. A test
runs schemathesis against a live app with every check.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from saga.domain.messages import EVENT_TYPES, REQUIRED_EVENT_FIELDS
from saga.domain.money import OrderLimits
from saga.domain.saga import HistoryKind, SagaStatus, UndoStatus
from saga.domain.steps import Compensation, Resource, Step

JsonSchema = dict[str, Any]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_REASON_CHARS = 500
MAX_MESSAGE_ID_CHARS = 200
EVENT_OUTCOMES = ("applied", "ignored", "duplicate")
"""What `POST /api/events` reports in its 202 (an unknown saga is a 404)."""

_ERROR_MEANINGS = {
    400: "bad input: the message says what is wrong",
    401: "missing or wrong bearer token",
    404: "no such saga (or route)",
    405: "method not allowed; `Allow` lists the methods",
    408: "the body did not arrive in time; the connection is closed",
    409: "the saga is past the point where this applies",
    413: "body larger than the limit (for an order: or the create_order command it becomes)",
    415: "Content-Type is not JSON",
    422: "the Idempotency-Key came with another body",
    503: "storage unavailable or busy; nothing was written; try again",
    504: "the write's outcome is unknown; the body names the saga id",
}

_NO_NUL = "^[^\\u0000]*$"
"""Text that can be stored: a NUL character cannot (PostgreSQL refuses it)."""


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: JsonSchema) -> JsonSchema:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in codes:
        response: JsonSchema = {"description": _ERROR_MEANINGS[code], "content": _json(_ref("Error"))}
        if code == 405:
            response["headers"] = {"Allow": {"schema": {"type": "string"}, "required": True}}
        if code == 503:
            response["headers"] = {"Retry-After": _RETRY_AFTER}
        responses[str(code)] = response
    return responses


_RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_SAGA_ID = {"name": "saga_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_TIME = {"type": "string", "format": "date-time"}
_ID = {"type": ["string", "null"]}


def _digits_below(bound: int) -> list[str]:
    """Regular expressions for the decimal texts of 0 to `bound - 1` (leading zeros aside)."""
    text = str(bound)
    shorter = [f"[0-9]{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    same_length = []
    for position, digit in enumerate(text):
        lowest = 1 if position == 0 and len(text) > 1 else 0
        if int(digit) > lowest:
            rest = len(text) - position - 1
            same_length.append(f"{text[:position]}[{lowest}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return shorter + same_length


def _decimal_at_most(ceiling: Decimal) -> str:
    """A regular expression for plain decimal texts (at most two places) of 0 to `ceiling`."""
    whole = int(ceiling)
    cents = f"{int((ceiling - whole) * 100):02d}"
    fractions = [f"{cents[0]}", f"{cents[0]}[0-{cents[1]}]"] if cents[0] == "0" else [f"[0-{cents[0]}]"]
    if cents[0] != "0":
        fractions += [f"[0-{int(cents[0]) - 1}][0-9]", f"{cents[0]}[0-{cents[1]}]"]
    point = "\\."
    at = f"{whole}({point}({'|'.join(fractions)}))?"
    below = [f"({'|'.join(_digits_below(whole))})({point}[0-9]{{1,2}})?"] if whole else []
    return "^0*(" + "|".join([*below, at]) + ")$"


def _money(ceiling: Decimal) -> JsonSchema:
    """A price or fee: a number or a plain decimal string, at most two decimal places."""
    return {
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": float(ceiling), "multipleOf": 0.01},
            {"type": "string", "pattern": _decimal_at_most(ceiling)},
        ],
        "description": f'a number or a plain decimal string ("12.99"), 0 to {ceiling}, at most two decimal places',
    }


def _json_value() -> JsonSchema:
    """Any JSON value that can be stored: finite numbers, no NUL in text or names."""
    return {
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "number"},
            {"type": "string", "pattern": _NO_NUL},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {
                "type": "object",
                "propertyNames": {"pattern": _NO_NUL},
                "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
            },
        ]
    }


def _order_request(limits: OrderLimits) -> JsonSchema:
    item = {
        "type": "object",
        "required": ["price", "quantity"],
        "propertyNames": {"pattern": _NO_NUL},
        "properties": {
            "name": {"description": "kept as received"},
            "price": _money(limits.max_price),
            "quantity": {"type": "integer", "minimum": 1, "maximum": limits.max_quantity},
        },
        "additionalProperties": _ref("JsonValue"),
    }
    details: JsonSchema = {
        "type": "object",
        "required": ["foodItems", *limits.required_order_fields],
        "propertyNames": {"pattern": _NO_NUL},
        "properties": {
            "foodItems": {"type": "array", "minItems": 1, "maxItems": limits.max_items, "items": item},
            "deliveryFee": {"anyOf": [{"type": "null"}, _money(limits.max_delivery_fee)]},
            "deliveryLocation": {"description": "kept as received"},
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
            **{name: {"not": {"type": "null"}} for name in limits.required_order_fields},
        },
        "additionalProperties": _ref("JsonValue"),
        "description": "kept as received; the total (sum of price x quantity, plus deliveryFee) is computed in cents"
        + (f" and is at most {limits.max_total}" if limits.max_total is not None else ""),
    }
    return {
        "type": "object",
        "required": ["customer_id", "order_details"],
        "propertyNames": {"pattern": _NO_NUL},
        "properties": {
            "customer_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": limits.max_customer_id_length,
                "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
            },
            "order_details": details,
        },
        "additionalProperties": _ref("JsonValue"),
    }


def _envelope() -> JsonSchema:
    """One schema per event type: its `type`, and the payload fields it needs."""
    variants = []
    for event_type in sorted(EVENT_TYPES):
        required = list(REQUIRED_EVENT_FIELDS.get(event_type, ()))
        payload: JsonSchema = {
            "type": "object",
            "required": required,
            "propertyNames": {"pattern": _NO_NUL},
            "properties": {
                "order_id": {"anyOf": [{"type": "string", "minLength": 1, "pattern": _NO_NUL}, {"type": "integer"}]},
                "payment_id": {"anyOf": [{"type": "string", "minLength": 1, "pattern": _NO_NUL}, {"type": "integer"}]},
                "payment_info": {
                    "type": "object",
                    "propertyNames": {"pattern": _NO_NUL},
                    "additionalProperties": _ref("JsonValue"),
                },
            },
            "additionalProperties": _ref("JsonValue"),
        }
        if event_type != "user.payment_info_retrieved":
            payload["properties"].pop("payment_info")
        variants.append(
            {
                "type": "object",
                "required": ["type", "correlation_id", "timestamp", "payload"],
                "properties": {
                    "type": {"const": event_type},
                    "correlation_id": {"type": "string", "format": "uuid"},
                    "timestamp": {
                        "type": "string",
                        "format": "date-time",
                        "description": "ISO 8601; without a UTC offset it is read as UTC",
                    },
                    "payload": payload,
                    "message_id": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_ID_CHARS},
                },
                "propertyNames": {"pattern": _NO_NUL},
                "additionalProperties": _ref("JsonValue"),
            }
        )
    return {"oneOf": variants, "description": 'a participant\'s event (docs/contract.md, "Message envelope")'}


def _saga() -> JsonSchema:
    undo = {
        "type": "object",
        "required": ["kind", "command", "id", "status", "detail"],
        "properties": {
            "kind": {"enum": [resource.value for resource in Resource]},
            "command": {"type": "string"},
            "id": _ID,
            "status": {"enum": [status.value for status in UndoStatus if status is not UndoStatus.RUNNING]},
            "detail": {"type": ["string", "null"]},
        },
    }
    history_entry = {
        "type": "object",
        "required": ["at", "kind", "type", "message_id", "detail"],
        "properties": {
            "at": _TIME,
            "kind": {"enum": [kind.value for kind in HistoryKind]},
            "type": {"type": "string"},
            "message_id": {"type": ["string", "null"]},
            "detail": {"type": ["string", "null"]},
        },
    }
    properties: JsonSchema = {
        "id": {"type": "string", "format": "uuid"},
        "customer_id": {"type": "string"},
        "status": {"enum": [status.value for status in SagaStatus]},
        "current_step": {"enum": [step.value for step in Step]},
        "error": {"type": ["string", "null"]},
        "order_id": _ID,
        "payment_id": _ID,
        "amount_cents": {"type": "integer", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "order_details": {"type": "object"},
        "created_at": _TIME,
        "updated_at": _TIME,
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "awaiting": {
            "description": "the command whose reply the saga waits for; null when it waits for none",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["command", "attempts", "due_at"],
                    "properties": {
                        "command": {"type": "string"},
                        "attempts": {"type": "integer", "minimum": 0},
                        "due_at": _TIME,
                    },
                },
            ],
        },
        "pending_compensations": {
            "type": "array",
            "items": {"enum": [compensation.value for compensation in Compensation]},
        },
        "compensations": {"type": "array", "items": undo},
        "cleanups": {"type": "array", "items": undo},
        "ignored_events": {"type": "integer", "minimum": 0},
        "version": {"type": "integer", "minimum": 0},
        "history": {"type": "array", "items": history_entry},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _body(schema: JsonSchema, max_body_bytes: int, required: bool = True) -> JsonSchema:
    return {
        "required": required,
        "description": f"JSON, at most {max_body_bytes} bytes",
        "content": _json(schema),
    }


def openapi_document(max_body_bytes: int = 64 * 1024, limits: OrderLimits = OrderLimits()) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an app that takes bodies of at most `max_body_bytes`
    and orders within `limits`."""
    admin: list[JsonSchema] = [{}, {"adminToken": []}]
    saga_links = {
        "GetSaga": {"operationId": "getSaga", "parameters": {"saga_id": "$response.body#/saga_id"}},
        "CancelSaga": {"operationId": "cancelSaga", "parameters": {"saga_id": "$response.body#/saga_id"}},
        "RetrySaga": {"operationId": "retrySaga", "parameters": {"saga_id": "$response.body#/saga_id"}},
    }
    accepted = {
        "description": "accepted",
        "content": _json(_ref("Accepted")),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Create-order saga orchestrator",
            "version": "0.1.0",
            "description": "docs/contract.md is the contract; errors are {success: false, error}.",
        },
        "paths": {
            "/api/orders": {
                "post": {
                    "operationId": "startOrder",
                    "summary": "Start a create-order saga",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "description": "1-200 visible ASCII characters, kept 24 hours: the same key and body "
                            "answer the first 202 again; another body is a 422",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
                        }
                    ],
                    "requestBody": _body(_ref("OrderRequest"), max_body_bytes),
                    "responses": {
                        "202": {
                            "description": "saga started",
                            "headers": {
                                "Location": {
                                    "description": "the saga's URL",
                                    "required": True,
                                    "schema": {"type": "string", "pattern": "^/api/sagas/[0-9a-f-]{36}$"},
                                }
                            },
                            "content": _json(_ref("Started")),
                            "links": saga_links,
                        },
                        **_errors(400, 408, 413, 415, 422, 503),
                        "504": {
                            "description": _ERROR_MEANINGS[504],
                            "content": _json(
                                {
                                    "type": "object",
                                    "required": ["success", "saga_id", "error"],
                                    "properties": {
                                        "success": {"const": False},
                                        "saga_id": {"type": "string", "format": "uuid"},
                                        "error": {"type": "string"},
                                    },
                                }
                            ),
                        },
                    },
                }
            },
            "/api/sagas": {
                "get": {
                    "operationId": "listSagas",
                    "summary": "List sagas, newest first; a Link rel=next header gives the next page",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"enum": [s.value for s in SagaStatus]}},
                        {
                            "name": "cleanup",
                            "in": "query",
                            "description": "only sagas that ended with a clean-up left unconfirmed",
                            "schema": {"enum": ["unconfirmed"]},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PAGE_SIZE,
                                "default": DEFAULT_PAGE_SIZE,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "opaque: the value a previous page's Link header gave; any other is a 400",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "sagas",
                            "headers": {
                                "Link": {
                                    "description": 'relative URL of the next page: `</api/sagas?...>; rel="next"`',
                                    "schema": {"type": "string", "pattern": '^</api/sagas\\?[^>]*>; rel="next"$'},
                                }
                            },
                            "content": _json({"type": "array", "items": _ref("Saga")}),
                        },
                        **_errors(400, 503),
                    },
                }
            },
            "/api/sagas/{saga_id}": {
                "get": {
                    "operationId": "getSaga",
                    "summary": "One saga with its history",
                    "parameters": [_SAGA_ID],
                    "responses": {
                        "200": {"description": "the saga", "content": _json(_ref("Saga"))},
                        **_errors(400, 404, 503),
                    },
                }
            },
            "/api/sagas/{saga_id}/cancel": {
                "post": {
                    "operationId": "cancelSaga",
                    "summary": "Cancel a saga still moving forward; it undoes its steps and ends CANCELLED",
                    "parameters": [_SAGA_ID],
                    "security": admin,
                    "requestBody": _body(_ref("CancelRequest"), max_body_bytes, required=False),
                    "responses": {
                        "202": {"description": "compensation started", "content": _json(_ref("Started"))},
                        **_errors(400, 401, 404, 408, 409, 413, 415, 503),
                    },
                }
            },
            "/api/sagas/{saga_id}/retry": {
                "post": {
                    "operationId": "retrySaga",
                    "summary": "Run a saga's unconfirmed compensations or clean-ups again",
                    "parameters": [
                        _SAGA_ID,
                        {
                            "name": "X-Operator",
                            "in": "header",
                            "description": "who asks, recorded in the history (default `operator`)",
                            "schema": {"type": "string", "maxLength": 200, "pattern": "^[ -~]*$"},
                        },
                    ],
                    "security": admin,
                    "responses": {
                        "202": {"description": "compensations started again", "content": _json(_ref("Started"))},
                        **_errors(400, 401, 404, 409, 503),
                    },
                }
            },
            "/api/events": {
                "post": {
                    "operationId": "receiveEvent",
                    "summary": "Deliver one participant event envelope",
                    "security": [{}, {"eventsToken": []}],
                    "requestBody": _body(_ref("Envelope"), max_body_bytes),
                    "responses": {"202": accepted, **_errors(400, 401, 404, 408, 413, 415, 503)},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {
                        "200": {
                            "description": "alive",
                            "content": _json({"type": "object", "properties": {"status": {"const": "ok"}}}),
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database, transport and event consumers are reachable",
                    "responses": {
                        "200": {
                            "description": "ready",
                            "content": _json({"type": "object", "properties": {"status": {"const": "ready"}}}),
                        },
                        "503": {
                            "description": "a dependency is down; `problems` says which",
                            "content": _json(
                                {
                                    "type": "object",
                                    "required": ["status", "problems"],
                                    "properties": {
                                        "status": {"const": "unavailable"},
                                        "problems": {"type": "object", "additionalProperties": {"type": "string"}},
                                    },
                                }
                            ),
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this process",
                    "responses": {
                        "200": {
                            "description": "the Prometheus text exposition format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "SAGA_ADMIN_TOKEN, when set, for cancel and retry",
                },
                "eventsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "SAGA_EVENTS_TOKEN, when set, for POST /api/events",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"success": {"const": False}, "error": {"type": "string"}},
                    "required": ["success", "error"],
                },
                "JsonValue": _json_value(),
                "OrderRequest": _order_request(limits),
                "CancelRequest": {
                    "type": "object",
                    "properties": {
                        "reason": {"type": ["string", "null"], "maxLength": MAX_REASON_CHARS, "pattern": _NO_NUL}
                    },
                    "propertyNames": {"pattern": _NO_NUL},
                    "additionalProperties": _ref("JsonValue"),
                },
                "Started": {
                    "type": "object",
                    "required": ["success", "saga_id", "status"],
                    "properties": {
                        "success": {"const": True},
                        "saga_id": {"type": "string", "format": "uuid"},
                        "status": {"enum": [s.value for s in SagaStatus]},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["success", "outcome"],
                    "properties": {"success": {"const": True}, "outcome": {"enum": list(EVENT_OUTCOMES)}},
                },
                "Envelope": _envelope(),
                "Saga": _saga(),
            },
        },
    }


OPENAPI = openapi_document()
"""The document with the default limits."""
