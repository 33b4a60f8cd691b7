"""order_total_cents: integer cents by decimal arithmetic, and every rejection with its message."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from saga.domain.money import InvalidOrder, OrderLimits, order_total_cents


def items(*pairs: tuple[Any, Any]) -> dict[str, Any]:
    return {"foodItems": [{"name": f"item {i}", "price": p, "quantity": q} for i, (p, q) in enumerate(pairs)]}


def rejected(order_details: Any, limits: OrderLimits = OrderLimits()) -> str:
    with pytest.raises(InvalidOrder) as caught:
        order_total_cents(order_details, limits)
    return str(caught.value)


# ------------------------------------------------------------------ totals


def test_the_seed_example_costs_1299_cents() -> None:
    seed = {
        "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}],
        "deliveryLocation": "North Campus",
    }

    total = order_total_cents(seed)

    assert total == 1299
    assert type(total) is int


def test_many_items_are_summed() -> None:
    assert order_total_cents(items((12.99, 1), (4.5, 2), (0.99, 10), (100, 3))) == 1299 + 900 + 990 + 30000


def test_delivery_fee_is_added() -> None:
    order = items((12.99, 1)) | {"deliveryFee": 2.5}

    assert order_total_cents(order) == 1549


@pytest.mark.parametrize("fee", [None, 0, 0.0])
def test_no_or_null_or_zero_delivery_fee_adds_nothing(fee: Any) -> None:
    order = items((12.99, 2)) if fee is None else items((12.99, 2)) | {"deliveryFee": fee}

    assert order_total_cents(order) == 2598


def test_delivery_fee_as_a_float_pitfall() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in binary floats.
    assert order_total_cents(items((0.1, 1)) | {"deliveryFee": 0.2}) == 30


def test_point_one_times_three_is_exactly_thirty_cents() -> None:
    assert 0.1 * 3 != 0.3  # the pitfall this guards against
    assert order_total_cents(items((0.1, 3))) == 30


def test_nineteen_ninety_nine_times_three() -> None:
    assert int(19.99 * 100) * 3 == 5994  # truncating a binary float loses a cent per item
    assert order_total_cents(items((19.99, 3))) == 5997


@pytest.mark.parametrize(
    ("price", "cents"),
    [
        (1.005, 101),  # 1.00499999999999989... as a binary float
        (2.675, 268),  # 2.67499999999999982... as a binary float
        (0.005, 1),
        (0.0049, 0),
        (0.025, 3),  # half-up, not half-even (which gives 2)
        (0.015, 2),
        (10.994, 1099),
        (10.995, 1100),
    ],
)
def test_sub_cent_prices_round_half_up(price: float, cents: int) -> None:
    assert order_total_cents(items((price, 1))) == cents


def test_rounding_applies_to_the_total() -> None:
    # 3 x 0.333 = 0.999 -> 99.9 cents -> 100; rounding each item first would give 99.
    assert order_total_cents(items((0.333, 3))) == 100


def test_integer_and_string_prices() -> None:
    assert order_total_cents(items((5, 2))) == 1000
    assert order_total_cents(items(("12.99", 1))) == 1299


def test_zero_price_is_allowed() -> None:
    assert order_total_cents(items((0, 1), (1.25, 1))) == 125


def test_the_limits_themselves_are_allowed() -> None:
    order = items((100000, 1000)) | {"deliveryFee": 1000}

    assert order_total_cents(order) == 100000 * 1000 * 100 + 100000


def test_max_items_exactly_is_allowed() -> None:
    assert order_total_cents(items(*[(1, 1)] * 100)) == 10000


def test_other_fields_of_the_order_are_ignored() -> None:
    order = items((1, 1)) | {"deliveryLocation": "North Campus", "notes": None, "extra": {"x": [1]}}

    assert order_total_cents(order) == 100


def test_custom_limits() -> None:
    limits = OrderLimits(max_items=2, max_quantity=5, max_price=Decimal("10"), max_delivery_fee=Decimal("1"))

    assert order_total_cents(items((10, 5), (10, 5)) | {"deliveryFee": 1}, limits) == 10100
    assert rejected(items((1, 1), (1, 1), (1, 1)), limits) == "order_details.foodItems may hold at most 2 items"
    assert rejected(items((1, 6)), limits) == "order_details.foodItems[0].quantity must be between 1 and 5"
    assert rejected(items((10.01, 1)), limits) == "order_details.foodItems[0].price must be at most 10"
    assert rejected(items((1, 1)) | {"deliveryFee": 1.5}, limits) == "order_details.deliveryFee must be at most 1"


# --------------------------------------------------------------- rejections

FOOD_ITEMS = "order_details.foodItems must be a non-empty array"


@pytest.mark.parametrize(
    "order",
    [
        {},
        {"foodItems": None},
        {"foodItems": []},
        {"foodItems": {"name": "Burger", "price": 1, "quantity": 1}},
        {"foodItems": "Burger"},
        {"foodItems": 3},
        {"fooditems": [{"price": 1, "quantity": 1}]},
    ],
    ids=["missing", "null", "empty", "object", "string", "number", "wrong-case"],
)
def test_food_items_must_be_a_non_empty_list(order: dict[str, Any]) -> None:
    assert rejected(order) == FOOD_ITEMS


@pytest.mark.parametrize("item", [None, "Burger", 12.99, ["Burger", 12.99, 1], True])
def test_item_must_be_an_object(item: Any) -> None:
    order = {"foodItems": [{"price": 1, "quantity": 1}, item]}

    assert rejected(order) == "order_details.foodItems[1] must be an object"


def test_missing_price() -> None:
    assert (
        rejected({"foodItems": [{"name": "Burger", "quantity": 1}]}) == "order_details.foodItems[0].price is required"
    )


@pytest.mark.parametrize("price", [-0.01, -1, "-5"])
def test_negative_price(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must not be negative"


@pytest.mark.parametrize("price", ["abc", "", "12,99", "$12.99", None, [12.99], {"amount": 12.99}])
def test_non_numeric_price(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a number"


@pytest.mark.parametrize("price", [True, False])
def test_boolean_price(price: bool) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a number"


@pytest.mark.parametrize("price", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-Infinity", "sNaN"])
def test_nan_and_infinity_prices(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a finite number"


@pytest.mark.parametrize("price", [100000.01, 100001, 1e300, "1e400"])
def test_price_above_the_limit(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be at most 100000"


def test_missing_quantity() -> None:
    order = {"foodItems": [{"price": 1, "quantity": 1}, {"name": "Fries", "price": 2}]}

    assert rejected(order) == "order_details.foodItems[1].quantity is required"


@pytest.mark.parametrize("quantity", [1.5, 2.0, "2", True, False, None, [1]])
def test_non_integer_quantity(quantity: Any) -> None:
    assert rejected(items((1, quantity))) == "order_details.foodItems[0].quantity must be an integer"


@pytest.mark.parametrize("quantity", [0, -1, -1000])
def test_zero_or_negative_quantity(quantity: int) -> None:
    assert rejected(items((1, quantity))) == "order_details.foodItems[0].quantity must be between 1 and 1000"


def test_quantity_above_the_limit() -> None:
    assert rejected(items((1, 1001))) == "order_details.foodItems[0].quantity must be between 1 and 1000"


def test_too_many_items() -> None:
    assert rejected(items(*[(1, 1)] * 101)) == "order_details.foodItems may hold at most 100 items"


@pytest.mark.parametrize(
    ("fee", "message"),
    [
        (-1, "order_details.deliveryFee must not be negative"),
        ("abc", "order_details.deliveryFee must be a number"),
        (True, "order_details.deliveryFee must be a number"),
        ({"amount": 1}, "order_details.deliveryFee must be a number"),
        (float("nan"), "order_details.deliveryFee must be a finite number"),
        ("Infinity", "order_details.deliveryFee must be a finite number"),
        (1000.01, "order_details.deliveryFee must be at most 1000"),
    ],
)
def test_bad_delivery_fee(fee: Any, message: str) -> None:
    assert rejected(items((1, 1)) | {"deliveryFee": fee}) == message


def test_the_first_bad_item_is_named() -> None:
    order = items((1, 1), (2, 1), (-3, 1), ("x", 1))

    assert rejected(order) == "order_details.foodItems[2].price must not be negative"


def test_price_is_checked_before_quantity() -> None:
    assert rejected({"foodItems": [{"price": "x"}]}) == "order_details.foodItems[0].price must be a number"


def test_invalid_order_is_a_value_error() -> None:
    assert issubclass(InvalidOrder, ValueError)
