"""The order total, in integer cents, computed with exact decimal arithmetic, and the
intake limits an order must keep (docs/contract.md, "The saga": order total).

A price or fee is a JSON number or a plain ASCII decimal string (`"12.99"`: digits, at
most one point; no sign, spaces, underscores or other digits), with at most two
decimal places. A number is read from its text (`str()`): the JSON decoder at the edge
keeps each number's text as its `str()`, so `0.0049999999999999999` is that decimal,
never the binary float nearest to it. Anything else is an InvalidOrder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation

CENT = Decimal("0.01")
PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_WIDE = Context(prec=100)
"""Wide enough to quantize any amount below the ceilings exactly."""


class InvalidOrder(ValueError):
    """The order cannot be taken; the message says what is wrong."""


@dataclass(frozen=True)
class OrderLimits:
    """Bounds that keep a hostile order from costing more than it is worth to read, and the
    intake limits a deployment sets (the platform's: total and fee at most 999.99,
    `customer_id` at most 36 characters, `deliveryLocation` required)."""

    max_items: int = 100
    max_quantity: int = 1000
    max_price: Decimal = Decimal("100000")
    max_delivery_fee: Decimal = Decimal("1000")
    max_total: Decimal | None = None
    """The largest order total (fee included) in currency units; None: no bound beyond the others."""
    max_customer_id_length: int = 200
    required_order_fields: tuple[str, ...] = ()
    """Fields of `order_details` that must be present and not null, besides `foodItems`."""


def _amount(value: object, what: str, ceiling: Decimal) -> Decimal:
    # bool is an int in Python; a price of `true` is a client bug, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidOrder(f"{what} must be a number")
    if isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value):
        raise InvalidOrder(f'{what} must be a number or a plain decimal string such as "12.99"')
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: an int too long to print
        raise InvalidOrder(f"{what} must be a number") from None
    if not amount.is_finite():
        raise InvalidOrder(f"{what} must be a finite number")
    if amount < 0:
        raise InvalidOrder(f"{what} must not be negative")
    if amount > ceiling:
        raise InvalidOrder(f"{what} must be at most {ceiling}")
    if amount != amount.quantize(CENT, context=_WIDE):
        raise InvalidOrder(f"{what} must have at most two decimal places")
    return amount


def _whole(value: object) -> int | None:
    """An integer, or a number whose value is one (`2.0`, `1e2`: JSON Schema's integer)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        exact = Decimal(str(value))
        return int(exact) if exact == exact.to_integral_value() else None
    return None


def order_total_cents(order_details: Mapping[str, object], limits: OrderLimits = OrderLimits()) -> int:
    """Sum of price x quantity over `foodItems`, plus an optional `deliveryFee`, in cents.

    Raises InvalidOrder when an item or the fee is missing, malformed or out of bounds,
    or the total exceeds `limits.max_total`.
    """
    items = order_details.get("foodItems")
    if not isinstance(items, list) or not items:
        raise InvalidOrder("order_details.foodItems must be a non-empty array")
    if len(items) > limits.max_items:
        raise InvalidOrder(f"order_details.foodItems may hold at most {limits.max_items} items")
    total = Decimal(0)
    for index, item in enumerate(items):
        where = f"order_details.foodItems[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidOrder(f"{where} must be an object")
        if "price" not in item:
            raise InvalidOrder(f"{where}.price is required")
        price = _amount(item["price"], f"{where}.price", limits.max_price)
        if "quantity" not in item:
            raise InvalidOrder(f"{where}.quantity is required")
        quantity = _whole(item["quantity"])
        if quantity is None:
            raise InvalidOrder(f"{where}.quantity must be an integer")
        if not 1 <= quantity <= limits.max_quantity:
            raise InvalidOrder(f"{where}.quantity must be between 1 and {limits.max_quantity}")
        total += price * quantity
    if order_details.get("deliveryFee") is not None:
        total += _amount(order_details["deliveryFee"], "order_details.deliveryFee", limits.max_delivery_fee)
    if limits.max_total is not None and total > limits.max_total:
        raise InvalidOrder(f"the order total must be at most {limits.max_total}")
    return int(total / CENT)


def check_order(customer_id: str, order_details: Mapping[str, object], limits: OrderLimits = OrderLimits()) -> int:
    """Checks an order against the intake limits; returns its total in cents.

    Raises InvalidOrder naming the first field that breaks a limit.
    """
    if not customer_id.strip():
        raise InvalidOrder("customer_id must be a non-empty string")
    if len(customer_id) > limits.max_customer_id_length:
        raise InvalidOrder(f"customer_id must be at most {limits.max_customer_id_length} characters")
    for name in limits.required_order_fields:
        if order_details.get(name) is None:
            raise InvalidOrder(f"order_details.{name} is required")
    return order_total_cents(order_details, limits)
