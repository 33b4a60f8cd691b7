"""The orchestrator's HTTP API (Starlette): parse, call a use case, map errors to statuses.

Every client mistake is a JSON error with a 4xx status; the use cases run in the
thread pool because storage is blocking.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from saga.adapters.envelope import decode_json, encode_command, encode_json
from saga.domain.messages import JsonObject
from saga.domain.money import InvalidOrder
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, NotCancellable, NothingToRetry, SagaStatus
from saga.entrypoints.container import Container
from saga.entrypoints.exposition import ProcessMetrics, metrics_endpoint
from saga.entrypoints.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
    InvalidIdempotencyKey,
    parse_idempotency_key,
    request_digest,
)
from saga.entrypoints.openapi import openapi_document
from saga.entrypoints.presenters import decode_cursor, encode_cursor, saga_json
from saga.entrypoints.ui import ui_routes
from saga.ports.messaging import CommandPublisher
from saga.ports.persistence import CommitOutcomeUnknown, PersistenceError
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import EventOutcome, IdempotencyKeyReused, SagaOrchestrator
from saga.service_layer.receiver import GroupedReceiver

log = logging.getLogger(__name__)

DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
PROBE_SAGA_ID = "00000000-0000-0000-0000-000000000000"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    # The scheme name is case-insensitive (RFC 9110); the token itself is not.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def _saga_id(request: Request) -> str:
    try:
        return str(uuid.UUID(request.path_params["saga_id"]))
    except ValueError:
        raise ApiError(400, "saga_id must be a UUID") from None


async def read_body(request: Request, max_bytes: int, timeout: float = DEFAULT_BODY_TIMEOUT_SECONDS) -> bytes:
    """The request's JSON body, at most `max_bytes` (413), received within `timeout`
    seconds (408, and the connection closes: a slow sender holds no worker)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "Content-Type must be application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"body must be at most {max_bytes} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise ApiError(413, f"body must be at most {max_bytes} bytes")
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout:g} seconds") from None
    return bytes(body)


def order_request(body: JsonObject, max_command_bytes: int) -> tuple[str, JsonObject]:
    """The `POST /api/orders` body's typed fields. Raises ApiError: 400 naming the field, 413
    when the `create_order` envelope the order becomes would be larger than `max_command_bytes`
    (docs/contract.md, "Message envelope": one envelope is at most `SAGA_MAX_BODY_BYTES`)."""
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise ApiError(400, "customer_id must be a non-empty string")
    order_details = body.get("order_details")
    if not isinstance(order_details, dict):
        raise ApiError(400, "order_details must be a JSON object")
    size = create_order_bytes(customer_id, order_details)
    if size > max_command_bytes:
        raise ApiError(
            413,
            f"order too large: its create_order command would be {size} bytes, "
            f"and a command may be at most {max_command_bytes}",
        )
    return customer_id, order_details


def create_order_bytes(customer_id: str, order_details: JsonObject) -> int:
    """The size in bytes of the `create_order` envelope an order becomes: the order written
    as the orchestrator writes JSON (ASCII, so `é` takes 6 bytes), inside its envelope. The
    envelope around the two values (the saga's and message's ids, the timestamp) is the same
    length for every saga, so it is measured once."""
    return _create_order_frame_bytes() + len(encode_json(customer_id)) + len(encode_json(order_details))


@functools.cache
def _create_order_frame_bytes() -> int:
    """What a `create_order` envelope holds besides its `customer_id` and `order_details`, in bytes."""
    customer_id, order_details, policy = "c", {"x": 1}, SagaPolicy()
    _, commands = CreateOrderSaga.start(
        str(uuid.UUID(int=0)), customer_id, order_details, 0, policy.default_currency, datetime.now(UTC), policy
    )
    return len(encode_command(commands[0])) - len(encode_json(customer_id)) - len(encode_json(order_details))


def parse_object(body: bytes) -> JsonObject:
    try:
        value = decode_json(body)
    except RecursionError:
        raise ApiError(400, "body is not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, f"body is not valid UTF-8 JSON: {error}") from None
    except ValueError as error:  # JSON, but holding what the orchestrator refuses to store
        raise ApiError(400, f"body is JSON the orchestrator does not take: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "body must be a JSON object")
    return value


class SagaApi:
    """The endpoints, bound to the services they call."""

    def __init__(
        self,
        orchestrator: SagaOrchestrator,
        intake: GroupedReceiver,
        publisher: CommandPublisher,
        metrics: Metrics,
        schema_problem: Callable[[], str | None],
        consumers_problem: Callable[[], str | None] | None,
        max_body_bytes: int,
        body_timeout_seconds: float,
        events_token: str | None,
        admin_token: str | None,
        openapi: dict[str, Any],
    ) -> None:
        """`schema_problem` says why the database is not ready yet at start (None once it is);
        `consumers_problem` why this process's event consumers are not (None: it has none);
        `openapi` is the document GET /openapi.json answers."""
        self._orchestrator = orchestrator
        self._intake = intake
        self._publisher = publisher
        self._metrics = metrics
        self._schema_problem = schema_problem
        self._consumers_problem = consumers_problem
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_seconds
        self._events_token = events_token
        self._admin_token = admin_token
        self._openapi = openapi

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self._max_body, self._body_timeout)

    async def create_order(self, request: Request) -> Response:
        try:
            key = parse_idempotency_key(request.headers.getlist(IDEMPOTENCY_HEADER))
        except InvalidIdempotencyKey as invalid:
            raise ApiError(400, str(invalid)) from None
        body = parse_object(await self._body(request))
        customer_id, order_details = order_request(body, self._max_body)
        try:
            if key is None:
                saga_id = (await run_in_threadpool(self._orchestrator.start, customer_id, order_details)).id
            else:
                digest = request_digest(body)
                saga_id = await run_in_threadpool(
                    self._orchestrator.start_once, customer_id, order_details, key, digest
                )
        except InvalidOrder as invalid:
            raise ApiError(400, str(invalid)) from None
        except IdempotencyKeyReused as reused:
            raise ApiError(422, str(reused)) from None
        # A repeated key answers the first request's body again, and that said STARTED.
        return JSONResponse(
            {"success": True, "saga_id": saga_id, "status": SagaStatus.STARTED.value},
            status_code=202,
            headers={"Location": f"/api/sagas/{saga_id}"},
        )

    async def get_saga(self, request: Request) -> Response:
        saga_id = _saga_id(request)
        saga = await run_in_threadpool(self._orchestrator.get, saga_id)
        if saga is None:
            raise ApiError(404, f"no saga {saga_id}")
        return JSONResponse(saga_json(saga))

    async def list_sagas(self, request: Request) -> Response:
        params = request.query_params
        status = None
        if params.get("status"):
            # ASCII case only: Unicode case folding would read "ſtarted" as STARTED.
            wanted = params["status"]
            try:
                status = SagaStatus(wanted.upper() if wanted.isascii() else wanted)
            except ValueError:
                allowed = "|".join(s.value for s in SagaStatus)
                raise ApiError(400, f"status must be one of {allowed}") from None
        raw_limit = params.get("limit", str(DEFAULT_PAGE_SIZE))
        # isdigit() alone admits "²" and digit strings too long for int().
        if (
            not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4)
            or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE
        ):
            raise ApiError(400, f"limit must be an integer between 1 and {MAX_PAGE_SIZE}")
        limit = int(raw_limit)
        after = None
        if params.get("cursor"):
            try:
                after = decode_cursor(params["cursor"])
            except ValueError as bad:
                raise ApiError(400, str(bad)) from None
        cleanup = params.get("cleanup")
        if cleanup is not None and cleanup != "unconfirmed":
            raise ApiError(400, "cleanup must be unconfirmed")
        page = await run_in_threadpool(self._orchestrator.page, status, limit, after, cleanup == "unconfirmed")
        headers = {}
        if page.next_cursor is not None:
            # Relative: the Host header is the client's to choose, never to be echoed back.
            next_url = request.url.include_query_params(cursor=encode_cursor(page.next_cursor), limit=limit)
            headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
        return JSONResponse([saga_json(saga) for saga in page.sagas], headers=headers)

    def _require_admin(self, request: Request) -> None:
        """Cancel and retry need the SAGA_ADMIN_TOKEN bearer token when one is set (docs/contract.md, "HTTP API")."""
        if self._admin_token is not None and not _bearer_matches(request, self._admin_token):
            raise ApiError(401, "a valid bearer token is required")

    async def retry_saga(self, request: Request) -> Response:
        self._require_admin(request)
        saga_id = _saga_id(request)
        operators = request.headers.getlist("x-operator")
        operator = operators[0].strip() if operators else ""
        if len(operators) > 1 or len(operator) > 200 or not operator.isprintable():
            raise ApiError(400, "X-Operator must be one header of at most 200 printable characters")
        operator = operator or "operator"
        try:
            saga = await run_in_threadpool(self._orchestrator.retry, saga_id, operator)
        except NothingToRetry as nothing:
            raise ApiError(409, str(nothing)) from None
        if saga is None:
            raise ApiError(404, f"no saga {saga_id}")
        return JSONResponse({"success": True, "saga_id": saga.id, "status": saga.status.value}, status_code=202)

    async def cancel_saga(self, request: Request) -> Response:
        self._require_admin(request)
        saga_id = _saga_id(request)
        reason = "requested by client"
        if request.headers.get("content-length", "0") not in ("", "0"):
            body = parse_object(await self._body(request))
            if body.get("reason") is not None:
                if not isinstance(body["reason"], str) or len(body["reason"]) > 500:
                    raise ApiError(400, "reason must be a string of at most 500 characters")
                reason = body["reason"]
        try:
            saga = await run_in_threadpool(self._orchestrator.cancel, saga_id, reason)
        except NotCancellable as late:
            raise ApiError(409, str(late)) from None
        if saga is None:
            raise ApiError(404, f"no saga {saga_id}")
        return JSONResponse({"success": True, "saga_id": saga.id, "status": saga.status.value}, status_code=202)

    async def receive_event(self, request: Request) -> Response:
        if self._events_token is not None and not _bearer_matches(request, self._events_token):
            raise ApiError(401, "a valid bearer token is required")
        raw = await self._body(request)
        # Requests that arrive together are applied as one batch, in one transaction.
        traceparent = request.headers.get("traceparent")
        result = await run_in_threadpool(self._intake.receive, raw, "POST /api/events", traceparent)
        if result.outcome is EventOutcome.UNKNOWN_SAGA:
            raise ApiError(404, result.problem or "unknown saga")
        if result.problem is not None or result.outcome is None:
            raise ApiError(400, result.problem or "bad event")
        return JSONResponse({"success": True, "outcome": result.outcome.value}, status_code=202)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        problems = await run_in_threadpool(self._readiness_problems)
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    def _readiness_problems(self) -> dict[str, str]:
        problems = {}
        schema_problem = self._schema_problem()
        try:
            # A read through the port proves the database answers, whatever the adapter.
            if schema_problem is None:
                self._orchestrator.get(PROBE_SAGA_ID)
        except PersistenceError as error:
            # The driver's text names hosts and ports: for the log, not for anyone who asks.
            log.warning("readiness: database unavailable: %s: %s", type(error).__name__, error)
            schema_problem = "database unavailable"
        if schema_problem is not None:
            problems["database"] = schema_problem
        transport_problem = self._publisher.healthy()
        if transport_problem is not None:
            problems["transport"] = transport_problem
        # Ready only once this process's consumers can read events: until then a saga
        # would wait for its replies, and its deadlines would not count.
        consumers_problem = self._consumers_problem() if self._consumers_problem is not None else None
        if consumers_problem is not None:
            problems["consumers"] = consumers_problem
        return problems

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # Starlette routes only this class here
        raise exc
    response = error_response(exc.status, exc.message)
    if exc.status == 408:
        # The rest of the body may still be on its way: end the connection rather than read it.
        response.headers["Connection"] = "close"
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # Starlette routes only this class here
        raise exc
    response = error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # a 405's Allow, say
    return response


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    # Unreachable storage, or a saga that kept changing under concurrent updates: both pass.
    log.warning("storage could not do the work: %s: %s", type(exc).__name__, exc)
    response = error_response(503, "storage is unavailable or busy; try again later")
    response.headers["Retry-After"] = "1"
    return response


async def _outcome_unknown(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, CommitOutcomeUnknown):  # Starlette routes only this class here
        raise exc
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "success": False,
            "saga_id": exc.saga_id,
            "error": "the database stopped answering after the write was sent; the saga may exist: "
            "GET it, or repeat the request with the same Idempotency-Key",
        },
        status_code=504,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


class EdgeHeaders:
    """Headers every response carries, and links that never echo the client's Host.

    Responses hold customer data: `Cache-Control: no-store` and `X-Content-Type-Options:
    nosniff`. A redirect's `Location` (Starlette's trailing-slash redirect builds it from
    the Host header) becomes relative to this server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
                if "location" in headers:
                    location = URL(headers["location"])
                    if location.netloc:
                        headers["Location"] = location.path + (f"?{location.query}" if location.query else "")
            await send(message)

        await self._app(scope, receive, send_with_headers)


def create_app(container: Container, operations_only: bool = False) -> Starlette:
    """The ASGI app over the container's services. The container's resources (the
    background loops among them) are started and stopped by whoever runs the app, with
    `saga.entrypoints.container.running`. With `operations_only` it answers only
    /healthz, /readyz and /metrics (`saga worker --port`)."""
    settings = container.settings()
    consumes_events = not container.relay_only()
    api = SagaApi(
        orchestrator=container.orchestrator(),
        intake=GroupedReceiver(container.intake()),
        publisher=container.publisher(),
        metrics=container.metrics(),
        schema_problem=container.schema().problem,
        consumers_problem=container.worker().readiness if consumes_events else None,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_read_timeout_seconds,
        events_token=settings.http.events_token,
        admin_token=settings.http.admin_token,
        openapi=openapi_document(settings.max_body_bytes, settings.limits),
    )

    operations: list[BaseRoute] = [
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route(
            "/metrics", metrics_endpoint(ProcessMetrics(container.metrics(), container.store_gauges())), methods=["GET"]
        ),
    ]
    business: list[BaseRoute] = [
        Route("/api/orders", api.create_order, methods=["POST"]),
        Route("/api/sagas", api.list_sagas, methods=["GET"]),
        Route("/api/sagas/{saga_id}", api.get_saga, methods=["GET"]),
        Route("/api/sagas/{saga_id}/cancel", api.cancel_saga, methods=["POST"]),
        Route("/api/sagas/{saga_id}/retry", api.retry_saga, methods=["POST"]),
        Route("/api/events", api.receive_event, methods=["POST"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Mount("/ui", routes=ui_routes(container.orchestrator())),
    ]
    # A worker's port answers the operations routes only: orders go to `saga serve`.
    routes = operations if operations_only else business + operations
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        CommitOutcomeUnknown: _outcome_unknown,
        PersistenceError: _storage_unavailable,
        Exception: _unexpected,
    }
    return Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(EdgeHeaders)])
