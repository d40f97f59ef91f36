"""Points mall products (积分兑换): a SKU offered for points, or points plus cash.

An item keeps its units in a catalog pool of kind POINTS_MALL (priced at the item's cash
price, so the pool's per-member limit and its race are the catalog's). An order of it is
priced at the cash price as an activity price, takes no coupon and no points discount,
and holds `points_price × quantity` points as its price: held at placement, spent at
payment, released on cancel or expiry and returned, unit by unit, on refund, through the
same order lifecycle as the points of any order (application/member_value.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING

from services.order.domain.price_sources import POINTS
from siyu_kit.errors import FailedPrecondition, Violations

if TYPE_CHECKING:
    from services.order.domain.orders import Order

KIND = "POINTS_MALL"
NOT_OPEN = "POINTS_MALL_NOT_OPEN"
MAX_POINTS = 10_000_000
MAX_UNITS = 100_000
MAX_LIMIT = 100
MAX_TITLE = 120


class ItemState(str, Enum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


@dataclass
class PointsMallItem:
    id: str
    merchant_id: str
    version: int
    pool_id: str
    sku_id: str
    product_id: str
    title: str
    points_price: int
    cash_price: int
    list_price: int
    total_units: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    state: ItemState
    created_at: datetime
    idempotency_key: str = ""

    def open_at(self, now: datetime) -> bool:
        return self.state is ItemState.ACTIVE and self.starts_at <= now < self.ends_at

    def require_open(self, now: datetime) -> None:
        if not self.open_at(now):
            raise FailedPrecondition("the item has ended or is not open now", reason=NOT_OPEN)

    def points_for(self, quantity: int) -> int:
        return self.points_price * quantity

    def change(self, title: str, points_price: int) -> None:
        if self.state is ItemState.ENDED:
            raise FailedPrecondition("an ended item cannot change", reason="STATUS_TRANSITION")
        if title:
            self.title = title
        if points_price:
            self.points_price = points_price

    def end(self) -> bool:
        """False when it had ended already (a repeat)."""
        if self.state is ItemState.ENDED:
            return False
        self.state = ItemState.ENDED
        return True


def check_item(v: Violations, title: str, points_price: int, cash_price: int, units: int, per_member_limit: int,
               starts_at: datetime | None, ends_at: datetime | None) -> None:
    """The item's own rules; the cash price below the list price is the catalog's."""
    v.check(len(title) <= MAX_TITLE, "title", f"at most {MAX_TITLE} characters")
    v.check(1 <= points_price <= MAX_POINTS, "points_price", f"1..{MAX_POINTS}")
    v.check(cash_price >= 0, "cash_price", "at least 0 (fen)")
    v.check(1 <= units <= MAX_UNITS, "units", f"1..{MAX_UNITS}")
    v.check(0 <= per_member_limit <= MAX_LIMIT, "per_member_limit", f"0..{MAX_LIMIT} (0: one)")
    v.check(starts_at is not None, "starts_at", "required")
    v.check(ends_at is not None, "ends_at", "required")
    if starts_at is not None and ends_at is not None:
        v.check(ends_at > starts_at, "ends_at", "after starts_at")


def check_change(v: Violations, title: str, points_price: int) -> None:
    v.check(len(title) <= MAX_TITLE, "title", f"at most {MAX_TITLE} characters")
    v.check(0 <= points_price <= MAX_POINTS, "points_price", f"0..{MAX_POINTS} (0: unchanged)")


def is_points_mall(order: "Order") -> bool:
    return order.activity is not None and order.activity.kind == KIND


def points_shares(order: "Order") -> list[tuple[str, int, int]]:
    """How an order's points spread over its lines when a refund gives them back: by the
    points discount each line took, or, for a points-mall order (whose points are its price,
    not a discount), by its units."""
    if is_points_mall(order):
        return [(l.line_id, l.quantity, l.quantity) for l in order.lines]
    return [(l.line_id, l.quantity, l.step_amount(POINTS)) for l in order.lines]
