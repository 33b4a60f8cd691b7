"""The order total, in integer cents, computed with decimal arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


class InvalidOrder(ValueError):
    """The order details cannot be priced; the message says what is wrong."""


@dataclass(frozen=True)
class OrderLimits:
    """Bounds that keep a hostile order from costing more than it is worth to read."""

    max_items: int = 100
    max_quantity: int = 1000
    max_price: Decimal = Decimal("100000")
    max_delivery_fee: Decimal = Decimal("1000")


def _amount(value: object, what: str, ceiling: Decimal) -> Decimal:
    # bool is an int in Python; a price of `true` is a client bug, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidOrder(f"{what} must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidOrder(f"{what} must be a number") from None
    if not amount.is_finite():
        raise InvalidOrder(f"{what} must be a finite number")
    if amount < 0:
        raise InvalidOrder(f"{what} must not be negative")
    if amount > ceiling:
        raise InvalidOrder(f"{what} must be at most {ceiling}")
    return amount


def order_total_cents(order_details: Mapping[str, object], limits: OrderLimits = OrderLimits()) -> int:
    """Sum of price x quantity over `foodItems`, plus an optional `deliveryFee`, in cents.

    Raises InvalidOrder when an item or the fee is missing, malformed or out of bounds.
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
        quantity = item["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise InvalidOrder(f"{where}.quantity must be an integer")
        if not 1 <= quantity <= limits.max_quantity:
            raise InvalidOrder(f"{where}.quantity must be between 1 and {limits.max_quantity}")
        total += price * quantity
    if order_details.get("deliveryFee") is not None:
        total += _amount(order_details["deliveryFee"], "order_details.deliveryFee", limits.max_delivery_fee)
    return int((total / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
