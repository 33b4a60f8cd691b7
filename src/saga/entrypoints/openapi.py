"""The OpenAPI 3.1 description served at /openapi.json."""

from __future__ import annotations

from typing import Any

from saga.domain.saga import SagaStatus, Step

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "bad input",
        401: "missing or wrong bearer token",
        404: "unknown saga",
        409: "saga cannot be cancelled",
        413: "body too large",
        415: "not JSON",
        422: "the Idempotency-Key came with another body",
        503: "nothing was written; try again",
        504: "the write's outcome is unknown; the body names the saga id",
    }
    return {
        str(code): {"description": meaning[code], "content": {"application/json": {"schema": _ERROR}}} for code in codes
    }


_SAGA_ID = {"name": "saga_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Create-order saga orchestrator", "version": "0.1.0"},
    "paths": {
        "/api/orders": {
            "post": {
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
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderRequest"}}},
                },
                "responses": {
                    "202": {
                        "description": "saga started",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Started"}}},
                    },
                    **_errors(400, 413, 415, 422, 503, 504),
                },
            }
        },
        "/api/sagas": {
            "get": {
                "summary": "List sagas, newest first; a Link rel=next header gives the next page",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in SagaStatus]}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "sagas",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Saga"}}
                            }
                        },
                    },
                    **_errors(400, 503),
                },
            }
        },
        "/api/sagas/{saga_id}": {
            "get": {
                "summary": "One saga with its history",
                "parameters": [_SAGA_ID],
                "responses": {
                    "200": {
                        "description": "the saga",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Saga"}}},
                    },
                    **_errors(400, 404, 503),
                },
            }
        },
        "/api/sagas/{saga_id}/cancel": {
            "post": {
                "summary": "Cancel a saga still moving forward; it undoes its steps and ends CANCELLED",
                "parameters": [_SAGA_ID],
                "responses": {
                    "202": {
                        "description": "compensation started",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Started"}}},
                    },
                    **_errors(400, 404, 409, 503),
                },
            }
        },
        "/api/events": {
            "post": {
                "summary": "Deliver one participant event envelope",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
                },
                "responses": {"202": {"description": "accepted"}, **_errors(400, 401, 404, 413, 415, 503)},
            }
        },
        "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {
            "get": {
                "summary": "Database and transport are reachable",
                "responses": {"200": {"description": "ready"}, "503": {"description": "a dependency is down"}},
            }
        },
        "/metrics": {"get": {"summary": "Counters of this process", "responses": {"200": {"description": "counters"}}}},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"success": {"const": False}, "error": {"type": "string"}},
                "required": ["success", "error"],
            },
            "OrderRequest": {
                "type": "object",
                "required": ["customer_id", "order_details"],
                "properties": {
                    "customer_id": {"type": "string", "minLength": 1, "maxLength": 200},
                    "order_details": {
                        "type": "object",
                        "required": ["foodItems"],
                        "properties": {
                            "foodItems": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["price", "quantity"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "price": {"type": "number", "minimum": 0, "maximum": 100000},
                                        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                                    },
                                },
                            },
                            "deliveryFee": {"type": "number", "minimum": 0, "maximum": 1000},
                            "deliveryLocation": {"type": "string"},
                            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
                        },
                    },
                },
            },
            "Started": {
                "type": "object",
                "properties": {
                    "success": {"const": True},
                    "saga_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string"},
                },
            },
            "Envelope": {
                "type": "object",
                "required": ["type", "correlation_id", "timestamp", "payload"],
                "properties": {
                    "type": {"type": "string"},
                    "correlation_id": {"type": "string", "format": "uuid"},
                    "timestamp": {"type": "string"},
                    "payload": {"type": "object"},
                    "message_id": {"type": "string"},
                },
            },
            "Saga": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "customer_id": {"type": "string"},
                    "status": {"enum": [s.value for s in SagaStatus]},
                    "current_step": {"enum": [s.value for s in Step]},
                    "error": {"type": ["string", "null"]},
                    "order_id": {"type": ["string", "null"]},
                    "payment_id": {"type": ["string", "null"]},
                    "amount_cents": {"type": "integer"},
                    "currency": {"type": "string"},
                    "order_details": {"type": "object"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "completed_at": {"type": ["string", "null"], "format": "date-time"},
                    "history": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}
