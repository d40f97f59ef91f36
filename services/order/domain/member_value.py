"""Member value at checkout: the coupon and the points an order uses, as the order
service sees them. The member service owns coupons and points; these are the values the
quote, the order and its lifecycle exchange with it, the two price sources (places
COUPON and POINTS of the pipeline live in price_sources.py) and the arithmetic of giving
spent points back line by line when an order is refunded."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Mapping, Sequence

from siyu_kit.money import split_largest_remainder

# The most points one order may name (the member service's bound on a hold).
MAX_POINTS = 10_000_000
YUAN = 100  # fen


class OrderKind(str, Enum):
    """Which kind of order asks for a coupon: templates may refuse some kinds."""
    NORMAL = "NORMAL"
    FLASH_SALE = "FLASH_SALE"
    GROUP_BUY = "GROUP_BUY"


@dataclass(frozen=True)
class ValueAsk:
    """What the member asks to use: a chosen coupon, or their best one, and points."""
    coupon_id: str = ""
    best_coupon: bool = False
    points: int = 0

    @property
    def wants_coupon(self) -> bool:
        return bool(self.coupon_id) or self.best_coupon

    @property
    def is_empty(self) -> bool:
        return not self.wants_coupon and not self.points


NO_ASK = ValueAsk()


@dataclass(frozen=True)
class CouponLine:
    """An order line as a coupon sees it: its SKU, product and category path, the unit
    price after the activity or tier price, and what is left of it after the threshold
    reduction."""
    sku_id: str
    product_id: str
    category_path: tuple[str, ...]
    unit_price: int
    quantity: int
    amount: int


@dataclass(frozen=True)
class CouponQuote:
    """What a coupon takes off an order: its amount and each line's share (lines out of
    its scope get 0), as the member service computed them."""
    coupon_id: str
    name: str
    amount: int
    shares: tuple[int, ...]


@dataclass(frozen=True)
class PointsTerms:
    """The merchant's points terms for this member and order: what they have, the most
    this order may use and what that takes off, and the rules a number of points obeys."""
    available: int
    max_usable: int
    max_discount: int
    points_per_yuan: int = 100
    min_points: int = 100
    step: int = 100


@dataclass(frozen=True)
class UsedValue:
    """The coupon and points an order was priced with and holds: the coupon's id, name
    and amount, the points and what they took off. Empty parts are "" and 0."""
    coupon_id: str = ""
    coupon_name: str = ""
    coupon_discount: int = 0
    points: int = 0
    points_discount: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.coupon_id and not self.points


def points_discount(points: int, points_per_yuan: int) -> int:
    """What `points` take off in fen (100 points = ¥1 by default), rounded down."""
    return points * YUAN // max(points_per_yuan, 1)


def points_problem(points: int, terms: PointsTerms) -> tuple[str, str] | None:
    """Why the member cannot use `points` on this order: (reason, message), or None.
    A number the terms never allow (below the floor, not a whole step) is the caller's
    mistake; more than they have or than the cap allows is the order's state."""
    if points < terms.min_points:
        return "POINTS_STEP", f"at least {terms.min_points} points"
    if points % max(terms.step, 1):
        return "POINTS_STEP", f"in steps of {terms.step} points"
    if points > terms.available:
        return "POINTS_INSUFFICIENT", f"{terms.available} points available"
    if points > terms.max_usable:
        return "POINTS_OVER_LIMIT", f"at most {terms.max_usable} points on this order"
    return None


# ---- refunds: giving spent points back ------------------------------------------------

@dataclass(frozen=True)
class LinePoints:
    """The points a line was paid with, and its units."""
    line_id: str
    quantity: int
    points: int


def points_by_line(points: int, points_shares: Sequence[tuple[str, int, int]]) -> list[LinePoints]:
    """The order's points spread over its lines in proportion to each line's points
    discount in fen: (line id, quantity, points share in fen) → LinePoints."""
    if not points_shares:
        return []
    parts = split_largest_remainder(points, [max(share, 0) for _, _, share in points_shares]) \
        if any(share > 0 for _, _, share in points_shares) else [0] * len(points_shares)
    return [LinePoints(line_id, quantity, part) for (line_id, quantity, _), part in zip(points_shares, parts)]


def points_to_return(lines: Sequence[LinePoints], before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Spent points a refund gives back: per line, the points of the units it refunded,
    counted over the units refunded so far (before → after this refund) and rounded down,
    so refunding every unit, in any order and any number of refunds, gives back exactly
    what the line was paid with."""
    total = 0
    for line in lines:
        if line.quantity <= 0 or line.points <= 0:
            continue
        b = min(max(before.get(line.line_id, 0), 0), line.quantity)
        a = min(max(after.get(line.line_id, b), b), line.quantity)
        total += line.points * a // line.quantity - line.points * b // line.quantity
    return total


@dataclass(frozen=True)
class ValueHoldIntent:
    """Written before the member service is asked to lock a coupon or hold points for an
    order that is not written yet; removed once the order is. An intent that outlives
    its grace without an order is a crash in between: the sweep releases what it names."""
    order_id: str
    merchant_id: str
    member_id: str
    coupon_id: str
    points: int
    created_at: datetime
