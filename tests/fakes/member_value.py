"""The member service's coupons and points (the order service's MemberValue port) and the
value hold intents, in memory, with the member service's rules as its RPC comments state
them: one lock per coupon, holds out of available points only, every change idempotent by
order or refund id. `fail` makes the next call of a method raise."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from siyu_kit.errors import FailedPrecondition, NotFound
from siyu_kit.money import split_largest_remainder

from services.order.domain.member_value import CouponLine, CouponQuote, OrderKind, PointsTerms, ValueHoldIntent

AVAILABLE, LOCKED, USED = "AVAILABLE", "LOCKED", "USED"


@dataclass
class FakeCoupon:
    coupon_id: str
    member_id: str
    name: str = "满100减10"
    threshold: int = 10000
    amount_off: int = 1000
    # Products in scope; empty: all.
    products: frozenset[str] = frozenset()
    flash_sale_ok: bool = False
    state: str = AVAILABLE
    order_id: str = ""


@dataclass
class FakeMemberValue:
    coupons: dict[str, FakeCoupon] = field(default_factory=dict)
    # member id → available points
    available: dict[str, int] = field(default_factory=dict)
    # order id → (member id, points held); spent and released orders
    held: dict[str, tuple[str, int]] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    # refund id → (order id, spent points returned, refunded amount, paid amount)
    reversals: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)
    restored: set[str] = field(default_factory=set)
    points_per_yuan: int = 100
    min_points: int = 100
    step: int = 100
    max_share_bp: int = 5000
    calls: list[str] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        error = self.fail.pop(name, None)
        if error is not None:
            raise error

    def give(self, coupon: FakeCoupon) -> str:
        self.coupons[coupon.coupon_id] = coupon
        return coupon.coupon_id

    def _discount(self, coupon: FakeCoupon, lines: Sequence[CouponLine], kind: OrderKind) -> CouponQuote:
        if kind is OrderKind.FLASH_SALE and not coupon.flash_sale_ok:
            raise FailedPrecondition("not on flash sales", reason="COUPON_WRONG_ORDER_KIND")
        weights = [l.amount if not coupon.products or l.product_id in coupon.products else 0 for l in lines]
        eligible = sum(weights)
        if not eligible:
            raise FailedPrecondition("out of scope", reason="COUPON_OUT_OF_SCOPE")
        if eligible < coupon.threshold:
            raise FailedPrecondition("below threshold", reason="COUPON_BELOW_THRESHOLD")
        amount = min(coupon.amount_off, eligible)
        return CouponQuote(coupon.coupon_id, coupon.name, amount, tuple(split_largest_remainder(amount, weights)))

    def _mine(self, member_id: str, coupon_id: str) -> FakeCoupon:
        coupon = self.coupons.get(coupon_id)
        if coupon is None or coupon.member_id != member_id:
            raise NotFound(f"coupon {coupon_id} not found", reason="COUPON_NOT_FOUND")
        return coupon

    async def quote_coupon(self, member_id: str, coupon_id: str, lines: Sequence[CouponLine],
                           kind: OrderKind) -> CouponQuote | None:
        self._call("quote_coupon")
        if coupon_id:
            coupon = self._mine(member_id, coupon_id)
            if coupon.state != AVAILABLE:
                raise FailedPrecondition("not available", reason="COUPON_NOT_AVAILABLE")
            return self._discount(coupon, lines, kind)
        best = None
        for coupon in self.coupons.values():
            if coupon.member_id != member_id or coupon.state != AVAILABLE:
                continue
            try:
                quote = self._discount(coupon, lines, kind)
            except FailedPrecondition:
                continue
            if best is None or quote.amount > best.amount:
                best = quote
        return best

    def _max_usable(self, member_id: str, payable: int) -> int:
        cap_fen = payable * self.max_share_bp // 10000
        cap = cap_fen * self.points_per_yuan // 100
        usable = min(self.available.get(member_id, 0), cap)
        usable -= usable % self.step
        return usable if usable >= self.min_points else 0

    async def points_terms(self, member_id: str, payable: int) -> PointsTerms:
        self._call("points_terms")
        usable = self._max_usable(member_id, payable)
        return PointsTerms(available=self.available.get(member_id, 0), max_usable=usable,
                           max_discount=usable * 100 // self.points_per_yuan, points_per_yuan=self.points_per_yuan,
                           min_points=self.min_points, step=self.step)

    async def lock_coupon(self, member_id: str, coupon_id: str, order_id: str, lines: Sequence[CouponLine],
                          kind: OrderKind, pay_by: datetime) -> CouponQuote:
        self._call("lock_coupon")
        coupon = self._mine(member_id, coupon_id)
        if coupon.state == LOCKED and coupon.order_id == order_id:
            return self._discount(coupon, lines, kind)
        if coupon.state != AVAILABLE:
            raise FailedPrecondition("held by another order", reason="COUPON_IN_USE")
        quote = self._discount(coupon, lines, kind)
        coupon.state, coupon.order_id = LOCKED, order_id
        return quote

    async def hold_points(self, member_id: str, order_id: str, points: int, payable: int,
                          as_price: bool = False) -> int:
        self._call("hold_points")
        value = 0 if as_price else points * 100 // self.points_per_yuan
        if order_id in self.held:
            return 0 if as_price else self.held[order_id][1] * 100 // self.points_per_yuan
        if order_id in self.released or order_id in self.spent:
            raise FailedPrecondition("ended", reason="POINTS_HOLD_ENDED")
        if points > self.available.get(member_id, 0):
            raise FailedPrecondition("not enough", reason="POINTS_INSUFFICIENT")
        if not as_price and points > self._max_usable(member_id, payable):
            raise FailedPrecondition("over the cap", reason="POINTS_OVER_LIMIT")
        self.available[member_id] -= points
        self.held[order_id] = (member_id, points)
        return value

    async def use_coupon(self, coupon_id: str, order_id: str, order_amount: int = 0) -> None:
        self._call("use_coupon")
        coupon = self.coupons[coupon_id]
        if coupon.order_id == order_id and coupon.state in (LOCKED, USED):
            coupon.state = USED
            return
        raise FailedPrecondition("not locked by the order", reason="COUPON_NOT_AVAILABLE")

    async def release_coupon(self, coupon_id: str, order_id: str) -> None:
        self._call("release_coupon")
        coupon = self.coupons[coupon_id]
        if coupon.order_id == order_id and coupon.state == LOCKED:
            coupon.state, coupon.order_id = AVAILABLE, ""

    async def restore_coupon(self, coupon_id: str, order_id: str) -> None:
        self._call("restore_coupon")
        coupon = self.coupons[coupon_id]
        if coupon.order_id == order_id and coupon.state == USED:
            coupon.state, coupon.order_id = AVAILABLE, ""
            self.restored.add(order_id)

    async def spend_points(self, member_id: str, order_id: str) -> None:
        self._call("spend_points")
        if order_id in self.spent:
            return
        if order_id not in self.held:
            raise FailedPrecondition("none held", reason="POINTS_NOT_HELD")
        self.spent[order_id] = self.held.pop(order_id)[1]

    async def release_points(self, member_id: str, order_id: str) -> None:
        self._call("release_points")
        if order_id in self.spent:
            raise FailedPrecondition("spent", reason="POINTS_SPENT")
        if order_id in self.held:
            member, points = self.held.pop(order_id)
            self.available[member] += points
        self.released.add(order_id)

    async def reverse_points(self, member_id: str, order_id: str, refund_id: str, spent_to_return: int,
                             refunded_amount: int, paid_amount: int) -> None:
        self._call("reverse_points")
        if refund_id in self.reversals:
            return
        returned = sum(r[1] for r in self.reversals.values() if r[0] == order_id)
        if returned + spent_to_return > self.spent.get(order_id, 0):
            raise FailedPrecondition("too large", reason="POINTS_REVERSAL_TOO_LARGE")
        self.reversals[refund_id] = (order_id, spent_to_return, refunded_amount, paid_amount)
        self.available[member_id] = self.available.get(member_id, 0) + spent_to_return

    def returned(self, order_id: str) -> int:
        return sum(r[1] for r in self.reversals.values() if r[0] == order_id)

    def points_held(self, member_id: str) -> int:
        return sum(p for m, p in self.held.values() if m == member_id)


@dataclass
class FakeValueHoldIntents:
    """ValueHoldIntents in memory; a claim leases like the conditional update does."""
    intents: dict[str, ValueHoldIntent] = field(default_factory=dict)
    leases: dict[str, datetime] = field(default_factory=dict)
    fail_add: Exception | None = None

    async def add(self, intent: ValueHoldIntent) -> None:
        if self.fail_add is not None:
            raise self.fail_add
        self.intents.setdefault(intent.order_id, intent)

    async def remove(self, merchant_id: str, order_id: str) -> None:
        intent = self.intents.get(order_id)
        if intent is not None and intent.merchant_id == merchant_id:
            del self.intents[order_id]
            self.leases.pop(order_id, None)

    async def claim_due(self, created_before: datetime, lease_until: datetime,
                        now: datetime) -> ValueHoldIntent | None:
        for order_id, intent in self.intents.items():
            leased = self.leases.get(order_id)
            if intent.created_at < created_before and (leased is None or leased < now):
                self.leases[order_id] = lease_until
                return intent
        return None
