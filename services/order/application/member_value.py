"""An order's coupon and points, from placing to refunds.

Placing: before the member service is asked, a value hold intent is written; then the
coupon is locked and the points held, all or nothing with the stock (a failure releases
what was taken); once the order is written the intent goes. A process that dies in
between leaves the intent: the sweep (`ValueHolds.sweep`) releases the coupon and points
of an intent older than its grace whose order was never written.

Afterwards the order's own events drive the member side (`ValueLifecycle`, a durable
consumer): paid → coupon USED, points spent; cancelled or expired unpaid → both released;
a refund → spent points of the refunded units returned and earned points taken back in
proportion, the coupon restored after a full refund of an unshipped order. Every member
call is idempotent by order or refund id, so a replayed event changes nothing."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping

from siyu_kit import context, logging as slog
from siyu_kit.cancellation import shielded
from siyu_kit.errors import FailedPrecondition, Unavailable
from siyu_kit.ids import new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.checkout import PricedCheckout, PricedValue
from services.order.application.ports import MemberValue, OrderRepository, ValueHoldIntents
from services.order.domain.member_value import ValueHoldIntent, points_by_line, points_to_return
from services.order.domain.orders import Order
from services.order.domain.points_mall import points_shares

log = slog.get("siyu.order.value")

# How long an intent may wait for its order before the sweep releases what it names.
# Placing refuses to write an order later than half of it, so the sweep never releases
# the coupon of an order that is still being written.
DEFAULT_VALUE_HOLD_GRACE = timedelta(seconds=120)
# How long one sweeper holds an intent it is releasing before another may take it.
SWEEP_LEASE = timedelta(seconds=60)
SWEEP_BATCH = 50
# The discount the member service locked or held differs from the one the order was priced with.
VALUE_CHANGED = "MEMBER_VALUE_CHANGED"


def whole_order_refund_id(order_id: str) -> str:
    """The refund id under which a paid order cancelled for STOCK_UNAVAILABLE (its whole
    payment returned, no refund record) gives its points back: one per order."""
    return "rfd_" + order_id.removeprefix("ord_")


@dataclass
class ValueHolds:
    """Locking the coupon and holding the points of an order being placed."""
    member_value: MemberValue
    intents: ValueHoldIntents
    orders: OrderRepository
    clock: Callable[[], datetime] = utcnow
    grace: timedelta = DEFAULT_VALUE_HOLD_GRACE

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def hold(self, merchant_id: str, member_id: str, order_id: str, priced: PricedCheckout,
                   pay_by: datetime) -> datetime | None:
        """Locks the priced coupon until `pay_by` and holds the priced points for the
        order: both, or neither (a failure releases what was taken, then raises). Returns
        when the intent was written (the order must be written within half the grace),
        None when the order uses neither."""
        value = priced.value
        if value is None or value.used.is_empty:
            return None
        used = value.used
        now = self._now()
        await self.intents.add(ValueHoldIntent(order_id=order_id, merchant_id=merchant_id, member_id=member_id,
                                               coupon_id=used.coupon_id, points=used.points, created_at=now))
        try:
            # The lock and the hold are independent: both are asked at once, and whichever
            # fails, both are undone below.
            outcomes = await asyncio.gather(self._lock(member_id, order_id, value, pay_by),
                                            self._hold_points(member_id, order_id, value), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        except (Exception, asyncio.CancelledError):
            await shielded(self.undo(merchant_id, member_id, order_id, used.coupon_id, used.points))
            raise
        return now

    async def _lock(self, member_id: str, order_id: str, value: PricedValue, pay_by: datetime) -> None:
        if value.coupon is None:
            return
        locked = await self.member_value.lock_coupon(member_id, value.coupon.coupon_id, order_id,
                                                     value.coupon_lines, value.kind, pay_by)
        if locked.amount != value.coupon.amount or tuple(locked.shares) != tuple(value.coupon.shares):
            raise FailedPrecondition("the coupon's discount changed since the price was made; quote again",
                                     reason=VALUE_CHANGED)

    async def _hold_points(self, member_id: str, order_id: str, value: PricedValue) -> None:
        if not value.points:
            return
        off = await self.member_value.hold_points(member_id, order_id, value.points, value.payable_before_points,
                                                  as_price=value.as_price)
        if off != value.points_discount:
            raise FailedPrecondition("the points' value changed since the price was made; quote again",
                                     reason=VALUE_CHANGED)

    def check_in_time(self, held_at: datetime | None) -> None:
        """Refuses to write an order whose intent the sweep may soon take for a crash."""
        if held_at is not None and self._now() >= held_at + self.grace / 2:
            raise Unavailable("placing the order took too long; try again", reason="ORDER_EXPIRED_BEFORE_WRITTEN")

    async def written(self, merchant_id: str, order_id: str) -> None:
        """The order is written: its lifecycle owns the coupon and points now. A failure
        here is harmless: the sweep finds the order and drops the intent."""
        try:
            await self.intents.remove(merchant_id, order_id)
        except Exception:  # noqa: BLE001 - the sweep removes it
            log.warning("order.value_intent_remove_failed", order_id=order_id, exc_info=True)

    async def undo(self, merchant_id: str, member_id: str, order_id: str, coupon_id: str, points: int) -> None:
        """Releases the coupon and points of an order that will not be written, and its
        intent once both are released; else the sweep retries."""
        try:
            await self._release(member_id, order_id, coupon_id, points)
        except Exception:  # noqa: BLE001 - the intent stays: the sweep releases them
            log.warning("order.value_release_failed", order_id=order_id, exc_info=True)
            return
        await self.written(merchant_id, order_id)

    async def _release(self, member_id: str, order_id: str, coupon_id: str, points: int) -> None:
        if coupon_id:
            await self.member_value.release_coupon(coupon_id, order_id)
        if points:
            await self.member_value.release_points(member_id, order_id)

    async def sweep(self, limit: int = SWEEP_BATCH) -> int:
        """Releases the coupon and points of intents older than the grace whose order was
        never written; drops those whose order exists. Safe with many replicas: each
        intent is leased by one conditional update. Returns how many were released."""
        released = 0
        for _ in range(limit):
            now = self._now()
            intent = await self.intents.claim_due(now - self.grace, now + SWEEP_LEASE, now)
            if intent is None:
                break
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=intent.merchant_id))
            try:
                if await self.orders.get(intent.merchant_id, intent.order_id) is None:
                    await self._release(intent.member_id, intent.order_id, intent.coupon_id, intent.points)
                    released += 1
                    log.info("order.value_released", order_id=intent.order_id, coupon_id=intent.coupon_id,
                             points=intent.points)
                await self.intents.remove(intent.merchant_id, intent.order_id)
            except Exception:  # noqa: BLE001 - the lease runs out and a later sweep retries
                log.warning("order.value_sweep_failed", order_id=intent.order_id, exc_info=True)
            finally:
                context.reset(token)
        return released


@dataclass
class ValueLifecycle:
    """What an order's events do to its coupon and points (see the module's docstring).
    Each handler reads the order as it is now and makes the member side agree; a refusal
    of the member service is raised for the consumer to dead-letter."""
    orders: OrderRepository
    member_value: MemberValue

    async def _order(self, merchant_id: str, order_id: str) -> Order | None:
        return await self.orders.get(merchant_id, order_id)

    async def _paid(self, order: Order) -> None:
        value = order.value
        if value is None:
            return
        if value.coupon_id:
            await self.member_value.use_coupon(value.coupon_id, order.id, order.payable)
        if value.points:
            await self.member_value.spend_points(order.member_id, order.id)

    async def paid(self, merchant_id: str, order_id: str) -> None:
        order = await self._order(merchant_id, order_id)
        if order is not None:
            await self._paid(order)

    async def cancelled(self, merchant_id: str, order_id: str) -> None:
        """Unpaid: the coupon and points go back. Paid and cancelled for STOCK_UNAVAILABLE
        (the whole payment returned): as a full refund of an unshipped order."""
        order = await self._order(merchant_id, order_id)
        if order is None:
            return
        value = order.value
        if order.paid_at is None:
            if value is not None and value.coupon_id:
                await self.member_value.release_coupon(value.coupon_id, order.id)
            if value is not None and value.points:
                await self.member_value.release_points(order.member_id, order.id)
            return
        await self._paid(order)
        await self.member_value.reverse_points(order.member_id, order.id, whole_order_refund_id(order.id),
                                               value.points if value is not None else 0, order.payable,
                                               order.payable)
        if value is not None and value.coupon_id:
            await self.member_value.restore_coupon(value.coupon_id, order.id)

    async def refunded(self, merchant_id: str, order_id: str, refund_id: str,
                       refunded_after: Mapping[str, int]) -> None:
        """The refund `refund_id` was applied; `refunded_after` is each line's refunded
        units right after it (from the event), so the units it took are known whatever
        refunds came later."""
        order = await self._order(merchant_id, order_id)
        if order is None:
            return
        applied = order.applied_refund(refund_id)
        if applied is None:
            return
        await self._paid(order)
        value = order.value
        give_back = 0
        if value is not None and value.points:
            took: dict[str, int] = {}
            for units in applied.lines:
                took[units.line_id] = took.get(units.line_id, 0) + units.quantity
            after = {l.line_id: refunded_after.get(l.line_id, l.refunded_quantity) for l in order.lines}
            before = {line_id: max(after[line_id] - took.get(line_id, 0), 0) for line_id in after}
            lines = points_by_line(value.points, points_shares(order))
            give_back = points_to_return(lines, before, after)
        await self.member_value.reverse_points(order.member_id, order.id, refund_id, give_back,
                                               min(applied.amount, order.payable), order.payable)
        if value is not None and value.coupon_id and order.shipment is None and order.units_left == 0:
            await self.member_value.restore_coupon(value.coupon_id, order.id)
