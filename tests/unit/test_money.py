"""order_total_cents: integer cents by decimal arithmetic, and every rejection with its message."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from saga.adapters.envelope import decode_json
from saga.domain.money import InvalidOrder, OrderLimits, check_order, order_total_cents


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


@pytest.mark.parametrize("price", [1.005, 2.675, 0.005, 0.0049, 0.333, 10.994, "0.005", "12.999"])
def test_a_price_with_more_than_two_decimal_places_is_refused_not_rounded(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must have at most two decimal places"


@pytest.mark.parametrize(
    "text",
    ["0.0049999999999999999", "99999.9999999999999", "0.005", "1.0000000000000000001", "1e-3"],
)
def test_numbers_are_read_from_their_json_text_never_through_a_binary_float(text: str) -> None:
    # As binary floats these are 0.005, 100000.0, 0.005 and 1.0: one cent, under the cap, a whole unit.
    order = decode_json(f'{{"foodItems": [{{"price": {text}, "quantity": 1}}]}}')

    assert rejected(order) in (
        "order_details.foodItems[0].price must have at most two decimal places",
        "order_details.foodItems[0].price must be at most 100000",
    )


@pytest.mark.parametrize(("text", "cents"), [("12.99", 1299), ("12.990", 1299), ("1e2", 10000), ("0.1", 10)])
def test_json_numbers_with_two_decimal_places_or_fewer(text: str, cents: int) -> None:
    assert order_total_cents(decode_json(f'{{"foodItems": [{{"price": {text}, "quantity": 1}}]}}')) == cents


@pytest.mark.parametrize(
    "price",
    [
        "_1_2.9_9_",
        "1_0_0_0_0_0",
        "١٢.٩٩",  # Arabic-Indic digits
        "１２",  # fullwidth digits
        " 12.99\n",
        "12.99\u00a0",
        "+5",
        "1e2",
        ".5",
        "5.",
        "0x10",
    ],
)
def test_a_price_string_is_plain_ascii_digits_and_one_point(price: str) -> None:
    assert rejected(items((price, 1))) == (
        'order_details.foodItems[0].price must be a number or a plain decimal string such as "12.99"'
    )


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


@pytest.mark.parametrize("price", [-0.01, -1])
def test_negative_price(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must not be negative"


@pytest.mark.parametrize("price", [None, [12.99], {"amount": 12.99}])
def test_non_numeric_price(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a number"


@pytest.mark.parametrize("price", ["abc", "", "12,99", "$12.99", "-5", "NaN", "Infinity", "1e400"])
def test_a_price_string_that_is_not_a_plain_decimal(price: str) -> None:
    assert "must be a number or a plain decimal string" in rejected(items((price, 1)))


@pytest.mark.parametrize("price", [True, False])
def test_boolean_price(price: bool) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a number"


@pytest.mark.parametrize("price", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_prices(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be a finite number"


@pytest.mark.parametrize("price", [100000.01, 100001, 1e300, "100000.01"])
def test_price_above_the_limit(price: Any) -> None:
    assert rejected(items((price, 1))) == "order_details.foodItems[0].price must be at most 100000"


def test_missing_quantity() -> None:
    order = {"foodItems": [{"price": 1, "quantity": 1}, {"name": "Fries", "price": 2}]}

    assert rejected(order) == "order_details.foodItems[1].quantity is required"


@pytest.mark.parametrize("quantity", [2.0, 2])
def test_a_quantity_is_a_number_whose_value_is_whole_as_json_schema_reads_integer(quantity: Any) -> None:
    assert order_total_cents(items(("1.25", quantity))) == 250
    assert order_total_cents(decode_json('{"foodItems": [{"price": 1, "quantity": 2E0}]}')) == 200


@pytest.mark.parametrize("quantity", [1.5, "2", True, False, None, [1]])
def test_non_integer_quantity(quantity: Any) -> None:
    assert rejected(items((1, quantity))) == "order_details.foodItems[0].quantity must be an integer"


def test_a_quantity_that_is_whole_only_as_a_binary_float_is_not_an_integer() -> None:
    order = decode_json('{"foodItems": [{"price": 1, "quantity": 1.0000000000000001}]}')

    assert rejected(order) == "order_details.foodItems[0].quantity must be an integer"


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
        ("abc", 'order_details.deliveryFee must be a number or a plain decimal string such as "12.99"'),
        (True, "order_details.deliveryFee must be a number"),
        ({"amount": 1}, "order_details.deliveryFee must be a number"),
        (float("nan"), "order_details.deliveryFee must be a finite number"),
        ("Infinity", 'order_details.deliveryFee must be a number or a plain decimal string such as "12.99"'),
        (1.005, "order_details.deliveryFee must have at most two decimal places"),
        (1000.01, "order_details.deliveryFee must be at most 1000"),
    ],
)
def test_bad_delivery_fee(fee: Any, message: str) -> None:
    assert rejected(items((1, 1)) | {"deliveryFee": fee}) == message


def test_the_first_bad_item_is_named() -> None:
    order = items((1, 1), (2, 1), (-3, 1), ("x", 1))

    assert rejected(order) == "order_details.foodItems[2].price must not be negative"


def test_price_is_checked_before_quantity() -> None:
    assert rejected({"foodItems": [{"price": None}]}) == "order_details.foodItems[0].price must be a number"


def test_invalid_order_is_a_value_error() -> None:
    assert issubclass(InvalidOrder, ValueError)


# ------------------------------------------------------------ intake limits

PLATFORM = OrderLimits(
    max_total=Decimal("999.99"),
    max_delivery_fee=Decimal("999.99"),
    max_customer_id_length=36,
    required_order_fields=("deliveryLocation",),
)
PLATFORM_ORDER = items(("12.99", 1)) | {"deliveryLocation": "North Campus"}


def refused(customer_id: str, order_details: Any, limits: OrderLimits) -> str:
    with pytest.raises(InvalidOrder) as caught:
        check_order(customer_id, order_details, limits)
    return str(caught.value)


def test_the_defaults_take_what_the_platform_would_drop() -> None:
    order = items(("999.99", 2)) | {"deliveryFee": 1000}

    assert check_order("c" * 200, order) == 299998


def test_the_platforms_limits_take_its_largest_order() -> None:
    order = items(("900", 1), ("0.99", 1)) | {"deliveryLocation": "North Campus", "deliveryFee": "99"}

    assert check_order("c" * 36, order, PLATFORM) == 99999


def test_the_platforms_largest_total() -> None:
    order = items(("999.99", 1)) | {"deliveryLocation": "x", "deliveryFee": "0.01"}

    assert refused("cust", order, PLATFORM) == "the order total must be at most 999.99"


def test_the_platforms_largest_fee() -> None:
    order = items(("1", 1)) | {"deliveryLocation": "x", "deliveryFee": "1000"}

    assert refused("cust", order, PLATFORM) == "order_details.deliveryFee must be at most 999.99"


def test_the_platforms_longest_customer_id() -> None:
    assert refused("c" * 37, PLATFORM_ORDER, PLATFORM) == "customer_id must be at most 36 characters"


@pytest.mark.parametrize("location", [None, "absent"])
def test_the_platforms_required_delivery_location(location: Any) -> None:
    order = items(("12.99", 1)) if location == "absent" else items(("12.99", 1)) | {"deliveryLocation": location}

    assert refused("cust", order, PLATFORM) == "order_details.deliveryLocation is required"


@pytest.mark.parametrize("customer_id", ["", "   "])
def test_a_blank_customer_id(customer_id: str) -> None:
    assert refused(customer_id, PLATFORM_ORDER, OrderLimits()) == "customer_id must be a non-empty string"
