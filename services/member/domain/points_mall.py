"""Points mall coupons (积分兑换): a coupon template offered for points, with its own stock
and per-member limit, and the redemptions that buy one.

A redemption is three writes to three places (the item's stock and the member's counter,
the points account, the member's coupons) with no transaction, so it is a document whose
state moves by compare-and-set, and each step is applied once by the redemption id:

    TAKEN ──points spent──▶ POINTS_SPENT ──coupon issued──▶ ISSUED
      │                          │
      └─not enough points─▶ UNDONE   └─template refused─▶ RETURNED (points given back)

UNDONE and RETURNED give the unit and the member's place back. A process that dies
between two steps leaves the redemption where it was; the finishing job takes it from
there (every step is idempotent, so two replicas finishing the same one agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from services.member.domain.points_account import REVERSE, SPEND, Cause, Movement, PointsBook, Refused
from siyu_kit.aggregate import StateMachine
from siyu_kit.errors import Violations

SOURCE = "POINTS_MALL"
SOLD_OUT = "POINTS_MALL_SOLD_OUT"
LIMIT_REACHED = "POINTS_MALL_LIMIT_REACHED"
NOT_OPEN = "POINTS_MALL_NOT_OPEN"
COUPON_UNAVAILABLE = "POINTS_MALL_COUPON_UNAVAILABLE"
POINTS_INSUFFICIENT = "POINTS_INSUFFICIENT"
MAX_POINTS = 10_000_000
MAX_UNITS = 1_000_000
MAX_LIMIT = 100


class ItemState(str, Enum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


@dataclass
class CouponItem:
    """A coupon template for points. `left` is a counter raced by every redeemer: it
    changes only by one conditional $inc in the store, never through this object."""
    id: str
    merchant_id: str
    version: int
    template_id: str
    name: str
    points_price: int
    total_units: int
    left: int
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
            raise Refused(NOT_OPEN, "the item is not open for redemption now")

    def change(self, points_price: int, add_units: int) -> None:
        if self.state is ItemState.ENDED:
            raise Refused("STATUS_TRANSITION", "an ended item cannot change")
        if points_price:
            self.points_price = points_price
        self.total_units += add_units

    def end(self) -> bool:
        """False when it had ended already (a repeat)."""
        if self.state is ItemState.ENDED:
            return False
        self.state = ItemState.ENDED
        return True


def check_item(v: Violations, points_price: int, units: int, per_member_limit: int, starts_at: datetime | None,
               ends_at: datetime | None) -> None:
    v.check(1 <= points_price <= MAX_POINTS, "points_price", f"1..{MAX_POINTS}")
    v.check(1 <= units <= MAX_UNITS, "units", f"1..{MAX_UNITS}")
    v.check(0 <= per_member_limit <= MAX_LIMIT, "per_member_limit", f"0..{MAX_LIMIT} (0: one)")
    v.check(starts_at is not None, "starts_at", "required")
    v.check(ends_at is not None, "ends_at", "required")
    if starts_at is not None and ends_at is not None:
        v.check(ends_at > starts_at, "ends_at", "after starts_at")


def check_change(v: Violations, points_price: int, add_units: int) -> None:
    v.check(0 <= points_price <= MAX_POINTS, "points_price", f"0..{MAX_POINTS} (0: unchanged)")
    v.check(0 <= add_units <= MAX_UNITS, "add_units", f"0..{MAX_UNITS}")


class RedemptionState(str, Enum):
    TAKEN = "TAKEN"
    POINTS_SPENT = "POINTS_SPENT"
    ISSUED = "ISSUED"
    UNDONE = "UNDONE"
    RETURNED = "RETURNED"


MACHINE: StateMachine[RedemptionState] = StateMachine("redemption", {
    RedemptionState.TAKEN: {RedemptionState.POINTS_SPENT, RedemptionState.UNDONE},
    RedemptionState.POINTS_SPENT: {RedemptionState.ISSUED, RedemptionState.RETURNED},
    RedemptionState.ISSUED: set(),
    RedemptionState.UNDONE: set(),
    RedemptionState.RETURNED: set(),
}, refused_reason="STATUS_TRANSITION")

FINISHED = (RedemptionState.ISSUED, RedemptionState.UNDONE, RedemptionState.RETURNED)


@dataclass
class Redemption:
    id: str
    merchant_id: str
    member_id: str
    item_id: str
    template_id: str
    points: int
    state: RedemptionState
    created_at: datetime
    idempotency_key: str
    version: int = 1
    coupon_id: str = ""
    failure_reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def gives_back(self) -> bool:
        """Whether its unit and the member's place went (or go) back."""
        return self.state in (RedemptionState.UNDONE, RedemptionState.RETURNED)

    def points_spent(self) -> None:
        MACHINE.require(self.state, RedemptionState.POINTS_SPENT)
        self.state = RedemptionState.POINTS_SPENT

    def undone(self, reason: str) -> None:
        MACHINE.require(self.state, RedemptionState.UNDONE)
        self.state = RedemptionState.UNDONE
        self.failure_reason = reason

    def issued(self, coupon_id: str) -> None:
        MACHINE.require(self.state, RedemptionState.ISSUED)
        self.state = RedemptionState.ISSUED
        self.coupon_id = coupon_id

    def returned(self, reason: str) -> None:
        MACHINE.require(self.state, RedemptionState.RETURNED)
        self.state = RedemptionState.RETURNED
        self.failure_reason = reason


# ---- the points movements a redemption owes ---------------------------------------------

def spend_cause(redemption_id: str) -> Cause:
    return Cause(SOURCE, redemption_id, SPEND)


def return_cause(redemption_id: str) -> Cause:
    return Cause(SOURCE, redemption_id, REVERSE)


def spend_movement(book: PointsBook, redemption_id: str, points: int, time_zone: str, now: datetime) -> Movement:
    """The redemption's points out of the available points, expiring first; never more
    than are available (POINTS_INSUFFICIENT)."""
    takes = book._take(points, time_zone, now)
    if not takes:
        raise Refused(POINTS_INSUFFICIENT, f"{points} points asked, {book.spendable(time_zone, now)} available")
    return Movement(spend_cause(redemption_id), book.member_id, points=-points, available=-points,
                    lots={k: -n for k, n in takes.items()})


def return_movement(book: PointsBook, redemption_id: str, points: int, key_now: str) -> Movement:
    """The spent points back (paying off what the member owes first), once, and only
    after they were spent."""
    if not book.applied(spend_cause(redemption_id)):
        raise Refused("POINTS_NOT_HELD", f"redemption {redemption_id} spent no points")
    pay = min(points, book.owed)
    rest = points - pay
    return Movement(return_cause(redemption_id), book.member_id, points=rest, available=rest, owed=-pay,
                    lots={key_now: rest} if rest else {}, returned=points)
