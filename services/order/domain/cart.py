"""The cart's rules: one line per SKU, at most MAX_ITEMS lines of 1..MAX_QUANTITY units,
newest line first. Changes return a new list of items; the caller stores it whole."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

MAX_ITEMS = 100
MAX_QUANTITY = 999

CART_FULL = "CART_FULL"
QUANTITY_LIMIT = "CART_QUANTITY_LIMIT"
NOT_IN_CART = "NOT_IN_CART"


class CartRuleBroken(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class CartItem:
    sku_id: str
    quantity: int
    selected: bool
    added_ms: int


def add(items: Sequence[CartItem], sku_id: str, quantity: int, now_ms: int) -> tuple[CartItem, ...]:
    """Adds units to the SKU's line, or a new selected line in front."""
    for i, item in enumerate(items):
        if item.sku_id == sku_id:
            total = item.quantity + quantity
            if total > MAX_QUANTITY:
                raise CartRuleBroken(QUANTITY_LIMIT, f"the cart holds {item.quantity} of {sku_id}; "
                                                     f"at most {MAX_QUANTITY} per line")
            return (*items[:i], replace(item, quantity=total), *items[i + 1:])
    if len(items) >= MAX_ITEMS:
        raise CartRuleBroken(CART_FULL, f"the cart holds at most {MAX_ITEMS} lines")
    return (CartItem(sku_id, quantity, True, now_ms), *items)


def update(items: Sequence[CartItem], sku_id: str, quantity: int, selected: bool) -> tuple[CartItem, ...]:
    for i, item in enumerate(items):
        if item.sku_id == sku_id:
            return (*items[:i], replace(item, quantity=quantity, selected=selected), *items[i + 1:])
    raise CartRuleBroken(NOT_IN_CART, f"{sku_id} is not in the cart")


def remove(items: Sequence[CartItem], sku_ids: Sequence[str]) -> tuple[CartItem, ...]:
    """Lines of SKUs not in the cart are simply not there: removing is idempotent."""
    gone = set(sku_ids)
    return tuple(item for item in items if item.sku_id not in gone)
