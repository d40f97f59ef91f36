"""The cart and its rules: one line per SKU, at most MAX_ITEMS lines of 1..MAX_QUANTITY
units, newest line first. Changes make a new list of items, stored whole."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import FailedPrecondition, NotFound

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


@dataclass
class Cart(Aggregate):
    """A member's cart in one merchant. Its items change whole, under the version read;
    version 0 is a cart not stored yet. A change raises FailedPrecondition (or NotFound
    for a SKU not in the cart) when it breaks a rule."""
    id: str
    merchant_id: str
    member_id: str
    items: tuple[CartItem, ...] = ()
    version: int = 0
    updated_ms: int = 0

    @classmethod
    def empty(cls, merchant_id: str, member_id: str) -> "Cart":
        return cls(id="", merchant_id=merchant_id, member_id=member_id)

    @property
    def selected(self) -> tuple[CartItem, ...]:
        return tuple(item for item in self.items if item.selected)

    def add(self, sku_id: str, quantity: int, now_ms: int) -> bool:
        return self._change(lambda items: add(items, sku_id, quantity, now_ms), now_ms)

    def update(self, sku_id: str, quantity: int, selected: bool, now_ms: int) -> bool:
        return self._change(lambda items: update(items, sku_id, quantity, selected), now_ms)

    def remove(self, sku_ids: Sequence[str], now_ms: int) -> bool:
        return self._change(lambda items: remove(items, sku_ids), now_ms)

    def _change(self, change: Callable[[tuple[CartItem, ...]], tuple[CartItem, ...]], now_ms: int) -> bool:
        """True when the items changed (and need saving)."""
        try:
            items = change(self.items)
        except CartRuleBroken as broken:
            error = NotFound if broken.reason == NOT_IN_CART else FailedPrecondition
            raise error(broken.message, reason=broken.reason) from broken
        if items == self.items:
            return False
        self.items, self.updated_ms = items, now_ms
        return True
