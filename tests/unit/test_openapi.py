"""The OpenAPI document is built from the code's own models and limits."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import product

import pytest

from saga.domain.messages import EVENT_TYPES, REQUIRED_EVENT_FIELDS
from saga.domain.money import InvalidOrder, OrderLimits, order_total_cents
from saga.domain.saga import SagaStatus
from saga.entrypoints.openapi import openapi_document
from saga.entrypoints.presenters import saga_json

PLATFORM = OrderLimits(
    max_total=Decimal("999.99"),
    max_delivery_fee=Decimal("999.99"),
    max_customer_id_length=36,
    required_order_fields=("deliveryLocation",),
)


def money_pattern(document: dict[str, object], field: str) -> re.Pattern[str]:
    schemas = document["components"]["schemas"]  # type: ignore[index]
    details = schemas["OrderRequest"]["properties"]["order_details"]["properties"]
    schema = (
        details["deliveryFee"]["anyOf"][1] if field == "fee" else details["foodItems"]["items"]["properties"]["price"]
    )
    return re.compile(next(option["pattern"] for option in schema["oneOf"] if option["type"] == "string"))


TEXTS = [
    f"{zeros}{whole}{point}{fraction}"
    for zeros, whole, point, fraction in product(
        ["", "0", "00"],
        ["0", "7", "9", "10", "99", "100", "999", "1000", "99999", "100000", "100001", "123456"],
        ["", "."],
        ["", "0", "5", "00", "01", "99", "999"],
    )
    if (point == "") == (fraction == "")
]


@pytest.mark.parametrize(("limits", "field"), [(OrderLimits(), "price"), (OrderLimits(), "fee"), (PLATFORM, "fee")])
def test_a_price_string_matches_the_documented_pattern_exactly_when_the_service_takes_it(
    limits: OrderLimits, field: str
) -> None:
    pattern = money_pattern(openapi_document(limits=limits), field)
    for text in TEXTS:
        order = {"foodItems": [{"price": "0", "quantity": 1}], "deliveryFee": text}
        if field == "price":
            order = {"foodItems": [{"price": text, "quantity": 1}]}
        try:
            order_total_cents(order, OrderLimits(max_total=None, max_delivery_fee=limits.max_delivery_fee))
            taken = True
        except InvalidOrder:
            taken = False
        assert bool(pattern.match(text)) is taken, text


def test_the_documented_intake_limits_are_the_ones_the_app_runs_with() -> None:
    request = openapi_document(limits=PLATFORM)["components"]["schemas"]["OrderRequest"]

    assert request["properties"]["customer_id"]["maxLength"] == 36
    assert request["properties"]["order_details"]["required"] == ["foodItems", "deliveryLocation"]
    assert "at most 999.99" in request["properties"]["order_details"]["description"]


def test_event_types_and_their_required_fields_come_from_the_domain() -> None:
    variants = openapi_document()["components"]["schemas"]["Envelope"]["oneOf"]

    assert {variant["properties"]["type"]["const"] for variant in variants} == set(EVENT_TYPES)
    for variant in variants:
        event_type = variant["properties"]["type"]["const"]
        assert variant["properties"]["payload"]["required"] == list(REQUIRED_EVENT_FIELDS.get(event_type, ()))
        assert variant["properties"]["timestamp"]["format"] == "date-time"


def test_the_saga_schema_requires_every_field_the_presenter_writes() -> None:
    from tests.unit.domain_helpers import start

    saga, _ = start()
    schema = openapi_document()["components"]["schemas"]["Saga"]

    assert set(schema["required"]) == set(saga_json(saga)) == set(schema["properties"])
    assert schema["properties"]["status"]["enum"] == [status.value for status in SagaStatus]


def test_the_body_limit_is_documented() -> None:
    body = openapi_document(max_body_bytes=4096)["paths"]["/api/orders"]["post"]["requestBody"]

    assert "at most 4096 bytes" in body["description"]
