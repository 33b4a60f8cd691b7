"""Numbers are finite everywhere (docs/contract.md, "Message envelope"): every reader refuses
NaN, Infinity and literals beyond the double range, and no writer can emit one."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from tests.unit.domain_helpers import SAGA_ID, start

import saga
from saga.adapters.envelope import decode_event, decode_json, encode_command, encode_json
from saga.adapters.kafka_consumer import InboundRecord
from saga.adapters.kafka_settings import KafkaSettings
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.domain.messages import BadMessage
from saga.entrypoints.kafka_events import KafkaEventSource
from saga.entrypoints.presenters import saga_json
from saga.service_layer.receiver import EventReceiver
from saga.testing import SagaHarness

NON_FINITE = ["1e309", "-1e309", "1E400", "NaN", "Infinity", "-Infinity", "1" + "0" * 309, "-" + "9" * 400]


@pytest.mark.parametrize("literal", NON_FINITE)
def test_reading_refuses_a_non_finite_number_anywhere(literal: str) -> None:
    with pytest.raises(ValueError):
        decode_json(f'{{"a": [{{"b": {literal}}}]}}')


@pytest.mark.parametrize("literal", ["1.7976931348623157e308", "-1.7976931348623157e308", "9" * 308, "5e-324", "0"])
def test_reading_takes_the_largest_and_smallest_finite_numbers(literal: str) -> None:
    value = decode_json(f"[{literal}]")[0]

    assert math.isfinite(value)


@pytest.mark.parametrize("literal", NON_FINITE)
def test_an_event_holding_a_non_finite_number_is_a_bad_message(literal: str) -> None:
    raw = (
        f'{{"type": "user.payment_info_retrieved", "correlation_id": "{SAGA_ID}", '
        f'"timestamp": "2026-11-28T12:00:00", "payload": {{"payment_info": {{"card": {literal}}}}}}}'
    )

    with pytest.raises(BadMessage, match=r"finite|not JSON"):
        decode_event(raw)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_writing_refuses_a_non_finite_number(value: float) -> None:
    with pytest.raises(ValueError):
        encode_json({"a": [value]})
    _, commands = start()
    with pytest.raises(ValueError):
        encode_command(replace(commands[0], payload={**commands[0].payload, "note": value}))


def _dumps_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("dumps", "dump")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "json"
    ]


def test_every_json_writer_in_the_code_refuses_non_finite_numbers() -> None:
    root = Path(saga.__file__).parent
    lenient = []
    for module in sorted(root.rglob("*.py")):
        for call in _dumps_calls(ast.parse(module.read_text())):
            strict = any(
                keyword.arg == "allow_nan" and isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                for keyword in call.keywords
            )
            if not strict:
                lenient.append(f"{module.relative_to(root)}:{call.lineno}")

    assert lenient == [], f"json.dumps without allow_nan=False: {lenient}"


def test_the_sql_json_columns_refuse_a_non_finite_number(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    engine = create_engine_from_url(url)
    saga_, _ = start()
    saga_.order_details = {**saga_.order_details, "note": math.inf}
    try:
        with pytest.raises(StatementError, match="not JSON compliant"), SqlAlchemyUnitOfWork(engine) as uow:
            uow.sagas.add(saga_)
            uow.commit()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sagas")).scalar() == 0
    finally:
        engine.dispose()


def test_a_saga_stored_with_a_non_finite_number_before_they_were_refused_still_reads() -> None:
    saga_, _ = start()
    saga_.order_details = {**saga_.order_details, "note": math.inf, "more": [math.nan, {"x": -math.inf}]}

    shown = json.loads(encode_json(saga_json(saga_)))

    assert shown["order_details"]["note"] is None
    assert shown["order_details"]["more"] == [None, {"x": None}]


class DeadLetters:
    def __init__(self) -> None:
        self.dead_lettered: list[tuple[InboundRecord, str]] = []

    def dead_letter(self, record: InboundRecord, topic: str, reason: str) -> None:
        self.dead_lettered.append((record, reason))


@pytest.mark.parametrize("literal", ["1e309", "NaN", "-Infinity"])
def test_kafka_dead_letters_an_event_holding_a_non_finite_number(literal: str) -> None:
    harness = SagaHarness()
    saga_id = harness.start_order("cust_1", {"foodItems": [{"price": 1, "quantity": 1}]}, run=False)
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    value = (
        f'{{"type": "order.created", "correlation_id": "{saga_id}", "timestamp": "2026-11-28T12:00:00", '
        f'"payload": {{"order_id": "o-1", "total": {literal}}}}}'
    ).encode()
    record = InboundRecord("order_events", 0, 3, None, value, (), 0)
    consumer: Any = DeadLetters()

    done, problem = source._process(consumer, [record])

    assert problem is None and done == [record]
    assert [(dead, "finite" in reason or "not JSON" in reason) for dead, reason in consumer.dead_lettered] == [
        (record, True)
    ]
    assert harness.saga(saga_id).order_id is None


def test_an_integer_of_thousands_of_digits_is_outside_the_finite_range_in_our_words() -> None:
    with pytest.raises(ValueError, match=r"^number 1{40} is outside the finite range$"):
        decode_json("1" * 5000)
