"""The operator pages at /ui/: a list of sagas and a timeline page per saga.

Server-rendered with Jinja2 through Starlette; one small script and one stylesheet are
served from /ui/static/ by the orchestrator itself (the pages work with no internet).
The pages show what the `GET /api/sagas` endpoints show; the cancel and retry buttons
call `POST /api/sagas/{id}/cancel` and `/retry`, sending the operator's bearer token
when the orchestrator asks for one (docs/contract.md, "HTTP API").
Dates are formatted by Babel, in UTC.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from saga.adapters.envelope import without_non_finite
from saga.domain.saga import STEPS, CreateOrderSaga, HistoryKind, SagaStatus
from saga.domain.steps import ACTIONS, STEPS as STEP_SPECS, UNDO
from saga.entrypoints.presenters import decode_cursor, encode_cursor, saga_json
from saga.service_layer.orchestrator import SagaOrchestrator

HERE = Path(__file__).parent
PAGE_SIZE = 25
LOCALE = "en"
STEP_OF_COMMAND = {spec.action.command: spec.step.value for spec in STEP_SPECS}
COMPENSATION_OF_COMMAND = {spec.action.command: spec.compensation.value for spec in UNDO.values()}


def when(moment: datetime | None) -> str:
    """A moment in UTC, to the millisecond, as Babel writes it: `Nov 30, 2026, 06:49:45.968`."""
    if moment is None:
        return ""
    return format_datetime(moment, "MMM d, yyyy, HH:mm:ss.SSS", tzinfo=UTC, locale=LOCALE)


def duration(seconds: float | None) -> str:
    """Seconds as `12.3 ms`, `4.56 s` or `3.2 min`."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{format_decimal(seconds * 1000, format='#,##0.0', locale=LOCALE)} ms"
    if seconds < 120:
        return f"{format_decimal(seconds, format='#,##0.00', locale=LOCALE)} s"
    return f"{format_decimal(seconds / 60, format='#,##0.0', locale=LOCALE)} min"


@dataclass
class Exchange:
    """One command of the saga (one message_id) and what came of it."""

    command: str
    kind: str
    """`step` or `compensation`."""
    name: str
    """The step or compensation it carries out, e.g. AUTHORIZE_PAYMENT, REVERT_PAYMENT."""
    message_id: str | None
    participant: str
    sent_at: datetime
    resends: list[datetime] = field(default_factory=list)
    deadlines: list[datetime] = field(default_factory=list)
    reply: str | None = None
    reply_at: datetime | None = None
    succeeded: bool | None = None
    error: str | None = None
    due_at: datetime | None = None
    """When the saga acts next without a reply, while this is the command it waits on."""
    payload: Any = None

    @property
    def seconds(self) -> float | None:
        """From the last send before the reply to the reply."""
        if self.reply_at is None:
            return None
        last = max([self.sent_at, *(at for at in self.resends if at <= self.reply_at)])
        return (self.reply_at - last).total_seconds()

    @property
    def outcome(self) -> str:
        if self.succeeded is None:
            return "waiting" if self.due_at is not None else "no reply"
        return "confirmed" if self.succeeded else "failed"


@dataclass
class Moment:
    """One line of the timeline: an exchange, a status change or an event that changed nothing."""

    at: datetime
    kind: str
    """`exchange`, `status` or `ignored`."""
    exchange: Exchange | None = None
    title: str = ""
    detail: str | None = None


def timeline(saga: CreateOrderSaga) -> tuple[list[Moment], list[Exchange]]:
    """The saga's history as exchanges (command, re-sends, deadlines, reply) among its status
    changes and ignored events, oldest first."""
    moments: list[Moment] = []
    exchanges: dict[str, Exchange] = {}
    current: Exchange | None = None
    for entry in saga.history:
        if entry.kind is HistoryKind.COMMAND:
            known = exchanges.get(entry.message_id or "")
            if known is not None and known.reply is None:
                known.resends.append(entry.at)
                current = known
                continue
            kind = "step" if entry.type in STEP_OF_COMMAND else "compensation"
            action = ACTIONS.get(entry.type)
            current = Exchange(
                command=entry.type,
                kind=kind,
                name=STEP_OF_COMMAND.get(entry.type) or COMPENSATION_OF_COMMAND.get(entry.type, entry.type),
                message_id=entry.message_id,
                participant=action.participant.value if action else "",
                sent_at=entry.at,
            )
            exchanges[entry.message_id or str(len(exchanges))] = current
            moments.append(Moment(entry.at, "exchange", current))
        elif entry.kind is HistoryKind.EVENT and current is not None and current.reply is None:
            current.reply, current.reply_at, current.error = entry.type, entry.at, entry.detail
            action = ACTIONS.get(current.command)
            current.succeeded = action is not None and entry.type == action.success
        elif entry.kind is HistoryKind.DEADLINE:
            target = exchanges.get(entry.message_id or "") or current
            if target is not None:
                target.deadlines.append(entry.at)
        elif entry.kind is HistoryKind.STATUS:
            moments.append(Moment(entry.at, "status", title=entry.type, detail=entry.detail))
        elif entry.kind in (HistoryKind.COMPENSATION, HistoryKind.OPERATOR):
            title = entry.type if entry.kind is HistoryKind.COMPENSATION else f"operator: {entry.type}"
            moments.append(Moment(entry.at, "note", title=title, detail=entry.detail))
        else:
            title = f"{entry.type} (changed nothing)"
            moments.append(Moment(entry.at, "ignored", title=title, detail=entry.detail))
    awaiting = saga.awaiting
    if awaiting is not None:
        waiting = exchanges.get(awaiting.message_id)
        if waiting is None and current is not None and current.command == awaiting.command_type:
            waiting = current  # a rejected compensation waits to be sent again as a new message
        if waiting is not None:
            waiting.due_at, waiting.payload = awaiting.due_at, awaiting.payload
    return moments, list(exchanges.values())


def step_states(saga: CreateOrderSaga, exchanges: list[Exchange]) -> list[dict[str, str]]:
    """The five steps, each `done`, `failed`, `waiting`, `no reply` or `not reached`."""
    states = []
    for step in STEPS:
        tries = [e for e in exchanges if e.kind == "step" and e.name == step.value]
        state = "not reached" if not tries else tries[-1].outcome
        if state == "confirmed":
            state = "done"
        states.append({"step": step.value, "state": state})
    return states


def pretty_json(value: Any) -> str:
    return json.dumps(
        without_non_finite(value), indent=2, ensure_ascii=False, sort_keys=True, default=str, allow_nan=False
    )


def create_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(when=when, duration=duration, pretty_json=pretty_json)
    return templates


class OperatorPages:
    """The /ui/ endpoints, bound to the orchestrator they read through."""

    def __init__(self, orchestrator: SagaOrchestrator) -> None:
        self._orchestrator = orchestrator
        self._templates = create_templates()

    async def sagas(self, request: Request) -> Response:
        params = request.query_params
        status_text = params.get("status", "").upper()
        status = SagaStatus(status_text) if status_text in SagaStatus.__members__ else None
        term = params.get("q", "").strip()[:200]
        problem = None
        next_cursor = None
        if term:
            found = await run_in_threadpool(self._orchestrator.search, term, PAGE_SIZE)
            sagas = [saga for saga in found if status is None or saga.status is status]
        else:
            after = None
            if params.get("cursor"):
                try:
                    after = decode_cursor(params["cursor"])
                except ValueError as bad:
                    problem = str(bad)
            page = await run_in_threadpool(self._orchestrator.page, status, PAGE_SIZE, after)
            sagas = page.sagas
            if page.next_cursor is not None:
                next_cursor = encode_cursor(page.next_cursor)
        return self._templates.TemplateResponse(
            request,
            "ui/sagas.html",
            {
                "sagas": sagas,
                "statuses": [s.value for s in SagaStatus],
                "status": status.value if status else "",
                "term": term,
                "next_cursor": next_cursor,
                "paged": bool(params.get("cursor")),
                "problem": problem,
            },
            status_code=400 if problem else 200,
        )

    async def saga(self, request: Request) -> Response:
        return await self._saga(request, "ui/saga.html")

    async def saga_live(self, request: Request) -> Response:
        """The changing part of a saga's page, fetched by the page's script while the saga runs."""
        return await self._saga(request, "ui/_saga_live.html")

    async def _saga(self, request: Request, template: str) -> Response:
        try:
            saga_id = str(uuid.UUID(request.path_params["saga_id"]))
        except ValueError:
            return self._templates.TemplateResponse(
                request, "ui/missing.html", {"problem": "A saga id is a UUID."}, status_code=400
            )
        saga = await run_in_threadpool(self._orchestrator.get, saga_id)
        if saga is None:
            return self._templates.TemplateResponse(
                request, "ui/missing.html", {"problem": f"There is no saga {saga_id}."}, status_code=404
            )
        moments, exchanges = timeline(saga)
        context = {
            "saga": saga,
            "moments": moments,
            "exchanges": exchanges,
            "steps": step_states(saga, exchanges),
            "compensations": [e for e in exchanges if e.kind == "compensation"],
            "final": saga.status.is_final,
            "saga_json": saga_json(saga),
        }
        return self._templates.TemplateResponse(request, template, context)


def ui_routes(orchestrator: SagaOrchestrator) -> list[BaseRoute]:
    """The routes to mount at /ui."""
    pages = OperatorPages(orchestrator)
    return [
        Route("/", pages.sagas, methods=["GET"], name="ui_sagas"),
        Route("/sagas/{saga_id}", pages.saga, methods=["GET"], name="ui_saga"),
        Route("/sagas/{saga_id}/live", pages.saga_live, methods=["GET"], name="ui_saga_live"),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="ui_static"),
    ]
