"""Placing, reading, cancelling and expiring orders."""
from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Awaitable, Callable, TypeVar

from siyu_kit import context, delays, faults, logging as slog, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.cancellation import require_time, shielded
from siyu_kit.errors import Conflict, NotFound, Unavailable, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.cart import CartUseCases
from services.order.application.checkout import (Attributed, Checkout, PricedCheckout, attributed,
                                                  check_address_id, check_attribution_ids, check_lines,
                                                  check_value_ask)
from services.order.application.member_value import ValueHolds
from services.order.application.ports import Attributions, Catalog, OrderRepository, Referrals, RefundRepository
from services.order.domain.commissions import Referral
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.member_value import ValueAsk
from services.order.domain.orders import (CANCEL_BY_MEMBER, CANCEL_BY_STAFF, DEFAULT_RESERVATION_GRACE, Order,
                                          OrderActivity, OrderLine, PriceStep,
                                          reservation_expiry)
from services.order.domain.tabs import COUNTED, OrderTab, page_of_ids, states_of

log = slog.get("siyu.order")
T = TypeVar("T")

MAX_KEY = 64
MAX_REMARK = 500
DEFAULT_PAGE = 20
MAX_PAGE = 100
# Placing is refused before anything is reserved when less than this is left of the
# caller's deadline: the reserve and the order write would not finish in time.
PLACE_MIN_TIME_S = 0.3



@dataclass(frozen=True)
class PlaceOrderInput:
    idempotency_key: str
    lines: list[tuple[str, int]]  # (sku_id, quantity)
    # channel name ("" when unset), persona_id, content_id, live_session_id, share_code
    attribution: dict = field(default_factory=dict)
    remark: str = ""
    # Take the ordered SKUs out of the member's cart once the order is placed.
    remove_from_cart: bool = False
    # One of the member's addresses; empty: their default, or none.
    address_id: str = ""
    # The coupon to use (a cpn_ id), or the member's best one; points to spend.
    coupon_id: str = ""
    best_coupon: bool = False
    points: int = 0

    @property
    def ask(self) -> ValueAsk:
        return ValueAsk(coupon_id=self.coupon_id, best_coupon=self.best_coupon, points=self.points)


def validate_place(cmd: PlaceOrderInput, ctx_channel: str) -> None:
    v = Violations()
    v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
    check_lines(v, cmd.lines)
    check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx_channel)
    check_address_id(v, cmd.address_id)
    check_value_ask(v, cmd.ask)
    v.raise_if_any()


# Left out of the fingerprint when unset, so orders placed before they existed replay alike.
VALUE_FIELDS = ("coupon_id", "best_coupon", "points")


def place_fingerprint(cmd) -> str:
    """The fingerprint of a placing request: every field of the command but its key."""
    return fingerprint({k: v for k, v in asdict(cmd).items()
                        if k != "idempotency_key" and not (k in VALUE_FIELDS and not v)})


def check_attribution_and_remark(v: Violations, attribution: dict, remark: str, ctx_channel: str) -> None:
    """What every way of placing an order checks of its attribution and remark."""
    channel = attribution.get("channel", "")
    v.check(not channel or channel == ctx_channel, "attribution.channel",
            "must be unset or the channel of the API key")
    check_attribution_ids(v, attribution)
    v.check(len(remark) <= MAX_REMARK, "remark", f"at most {MAX_REMARK} characters")


def attribution_of(given: dict, ctx_channel: str) -> dict:
    """What an order stores of its attribution: the given sources, and the channel of
    the API key (never the body's)."""
    attribution = {k: v for k, v in given.items() if v and k != "channel"}
    if ctx_channel:
        attribution["channel"] = ctx_channel
    return attribution


def _steps(steps) -> tuple[PriceStep, ...]:
    """The price steps as the order keeps them."""
    return tuple(PriceStep(s.step, s.amount, s.detail) for s in steps)


def _require_order_id(order_id: str) -> None:
    v = Violations()
    v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
    v.raise_if_any()


@dataclass
class OrderUseCases:
    orders: OrderRepository
    catalog: Catalog
    clock: Callable[[], datetime] = utcnow
    # Placing orders needs these; reading, cancelling and expiring them do not.
    checkout: Checkout | None = None
    carts: CartUseCases | None = None
    reservation_grace: timedelta = DEFAULT_RESERVATION_GRACE
    # Checks that an attribution's persona and content are the merchant's; None: not checked.
    attributions: Attributions | None = None
    # Which of a member's orders have refunds (the 售后 tab); None: that tab is empty.
    refunds: RefundRepository | None = None
    # Locks coupons and holds points for orders being placed; None: orders use neither.
    value_holds: ValueHolds | None = None
    # Who an order's sale is credited to (member ResolveReferral); None: nobody.
    referrals: Referrals | None = None

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def place(self, cmd: PlaceOrderInput) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        validate_place(cmd, ctx.channel)
        require_time(PLACE_MIN_TIME_S, "place the order")
        request_hash = place_fingerprint(cmd)
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        checked = await self.attributed(cmd.attribution)
        attribution = checked.attribution
        # Before anything is held: an order that cannot learn its referral is not placed.
        referral = await self.referral(member_id, checked.sharer_id)
        address = await self._checkout().shipping_to(merchant_id, member_id, cmd.address_id)
        priced = await self._checkout().price(merchant_id, member_id, cmd.lines, address=address, ask=cmd.ask,
                                              live_prices=checked.live_prices)

        now = self._now()
        expires_at = now + timedelta(seconds=priced.settings.unpaid_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        require_time(PLACE_MIN_TIME_S, "place the order")
        # All lines or none; if this process dies before the insert below, the catalog's
        # sweeper frees the stock once the reservation expires.
        await self.reserved(reservation_id, self.catalog.reserve(
            reservation_id, order_id, list(cmd.lines), self.reservation_expiry(expires_at)))
        faults.point("order.place.after_reserve")
        try:
            await delays.pause("order.place.after_reserve")
        except asyncio.CancelledError:
            await self.release_at_once(reservation_id)
            raise
        held_at = await self.hold_value(merchant_id, member_id, order_id, reservation_id, priced, expires_at)
        order = await self.create_order(
            merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
            order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
            attribution=attribution_of(attribution, ctx.channel), remark=cmd.remark, request_hash=request_hash,
            value_held_at=held_at, referral=referral)
        if cmd.remove_from_cart and order.id == order_id:
            await self._remove_from_cart(merchant_id, member_id, [s for s, _ in cmd.lines])
        return order

    async def attributed(self, attribution: dict) -> Attributed:
        return await attributed(self.attributions, attribution, context.current().caller_id)

    async def referral(self, member_id: str, sharer_id: str) -> Referral | None:
        """Who the order's sale is credited to, fixed now (the binding on the order counts,
        never a later one); None: nobody, or no referral service wired."""
        if self.referrals is None:
            return None
        return await self.referrals.resolve(member_id, sharer_id)

    async def hold_value(self, merchant_id: str, member_id: str, order_id: str, reservation_id: str,
                         priced: PricedCheckout, expires_at: datetime) -> datetime | None:
        """Locks the order's coupon until it expires and holds its points, after its stock
        was reserved: when that fails the stock is released at once too. When the intent
        was written (None: the order uses neither)."""
        if self.value_holds is None or priced.value is None or priced.value.used.is_empty:
            return None
        try:
            held_at = await self.value_holds.hold(merchant_id, member_id, order_id, priced, expires_at)
        except (Exception, asyncio.CancelledError):
            await self.release_at_once(reservation_id)
            raise
        # Tests stop the process here: the coupon and points are held, no order is written.
        faults.point("order.place.after_value_hold")
        return held_at

    def reservation_expiry(self, order_expires_at: datetime) -> datetime:
        return reservation_expiry(order_expires_at, self.reservation_grace)

    async def reserved(self, reservation_id: str, reserving: Awaitable[T]) -> T:
        """Awaits the catalog's reserve. When the caller gives up meanwhile, or the answer
        is lost (UNAVAILABLE: the catalog may have reserved), the reservation is released
        at once instead of holding the units until it expires."""
        try:
            return await reserving
        except (asyncio.CancelledError, Unavailable):
            await self.release_at_once(reservation_id)
            raise

    async def release_at_once(self, reservation_id: str) -> None:
        """Releases a reservation no order will use, even when the caller has given up."""
        await shielded(self._release_quietly(reservation_id))

    async def create_order(self, *, merchant_id: str, member_id: str, idempotency_key: str,
                           priced: PricedCheckout, order_id: str, reservation_id: str, created_at: datetime,
                           expires_at: datetime, attribution: dict, remark: str,
                           flash_sale_id: str = "", request_hash: str = "",
                           value_held_at: datetime | None = None, referral: Referral | None = None,
                           activity: OrderActivity | None = None) -> Order:
        """Writes a PENDING_PAYMENT order for stock already reserved under `reservation_id`,
        with its order.placed event in the same write. Returns the stored order; when an
        order with the same idempotency key won a race, releases this reservation and
        returns that order. Releases the reservation when the write fails, and instead of
        writing an order that is already past its expiry (its stock may be gone).

        Once the write is sent it runs to its end even if the caller gives up: the order
        then exists, and a replay with the same idempotency key returns it. The coupon and
        points held for it (`value_held_at`: when) are released whenever no order of
        this id is written."""
        used = priced.value.used if priced.value is not None else None
        held = value_held_at is not None and self.value_holds is not None and used is not None
        try:
            if self._now() >= expires_at:
                raise Unavailable("placing the order took longer than its payment window; try again",
                                  reason="ORDER_EXPIRED_BEFORE_WRITTEN")
            if held:
                self.value_holds.check_in_time(value_held_at)
        except Unavailable:
            await self.release_at_once(reservation_id)
            if held:
                await self._undo_value(merchant_id, member_id, order_id, used)
            raise
        quote = priced.quote
        order = Order.place(
            order_id=order_id, merchant_id=merchant_id, member_id=member_id, idempotency_key=idempotency_key,
            lines=[OrderLine(line_id=new_id("oln"), sku_id=l.sku_id, product_id=l.product_id, title=l.title,
                             quantity=l.quantity, unit_price=l.unit_price, line_total=l.line_total,
                             line_amount=l.line_amount, paid_amount=l.paid_amount, steps=_steps(l.steps),
                             commission_eligible=l.sku_id not in priced.commission_excluded)
                   for l in quote.lines],
            currency=priced.currency, total=quote.total, payable=quote.payable, order_steps=_steps(quote.order_steps),
            shipping_fee=quote.shipping_fee, tier=priced.tier, attribution=attribution, remark=remark,
            reservation_id=reservation_id, created_at=created_at, expires_at=expires_at, flash_sale_id=flash_sale_id,
            request_hash=request_hash, shipping_address=priced.address, shipping_rule=quote.shipping_rule,
            value=used, referral=referral, activity=activity)
        try:
            inserted = await shielded(self._insert_or_release(order, reservation_id))
        except (Exception, asyncio.CancelledError):
            if held:
                await self._undo_value(merchant_id, member_id, order_id, used)
            raise
        if held:
            if inserted:
                await self.value_holds.written(merchant_id, order_id)
            else:
                await self._undo_value(merchant_id, member_id, order_id, used)
        if inserted:
            return order
        winner = await self.orders.by_key(merchant_id, member_id, idempotency_key)
        if winner is None:
            raise Conflict("the order was placed concurrently; try again")
        require_same_request(winner.request_hash, request_hash, "order")
        return winner

    async def _undo_value(self, merchant_id: str, member_id: str, order_id: str, used) -> None:
        await shielded(self.value_holds.undo(merchant_id, member_id, order_id, used.coupon_id, used.points))

    async def _insert_or_release(self, order: Order, reservation_id: str) -> bool:
        """Writes the order; False when an order with its idempotency key won a race. The
        reservation is released unless this order holds it."""
        # Tests hold the write here, already shielded, to give up on the call meanwhile.
        await delays.pause("order.place.writing")
        try:
            inserted = await self.orders.add(order)
        except Exception:
            await self._release_quietly(reservation_id)
            raise
        if not inserted:
            # Lost a race with the same idempotency key: the winner's order stands.
            await self._release_quietly(reservation_id)
        return inserted

    def _checkout(self) -> Checkout:
        if self.checkout is None:
            raise RuntimeError("these use cases were built without checkout")
        return self.checkout

    async def _remove_from_cart(self, merchant_id: str, member_id: str, sku_ids: list[str]) -> None:
        """The order stands whatever happens here: a failure is logged, not raised."""
        try:
            await self.carts.remove_ordered(merchant_id, member_id, sku_ids)
        except Exception:  # noqa: BLE001 - the member can still remove the items themselves
            log.warning("order.cart_cleanup_failed", member_id=member_id, exc_info=True)

    async def _release_quietly(self, reservation_id: str) -> None:
        try:
            await self.catalog.release(reservation_id)
        except Exception:  # noqa: BLE001 - the catalog's sweeper frees it at expiry
            log.warning("order.release_failed", reservation_id=reservation_id, exc_info=True)

    async def get(self, order_id: str) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        _require_order_id(order_id)
        order = await self.orders.of_member(ctx.merchant_id, member_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order

    async def list_mine(self, page_size: int, page_token: str, tab: str = "") -> tuple[list[Order], str]:
        """The member's orders, newest first: all of them, or one tab (domain.tabs)."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(0 <= page_size <= MAX_PAGE, "page_size", f"1..{MAX_PAGE}")
        v.check(not page_token or is_id(page_token, "ord"), "page_token", "not a token from this list")
        v.check(not tab or tab in OrderTab.__members__, "tab", "not an order tab")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE
        which = OrderTab(tab or OrderTab.ALL.value)
        if which is OrderTab.REFUNDS:
            ids = page_of_ids(await self._refunded_order_ids(ctx.merchant_id, member_id), page_token, size + 1)
            found = {o.id: o for o in await self.orders.of_member_among(ctx.merchant_id, member_id, ids)}
            orders = [found[i] for i in ids if i in found]
        elif which is OrderTab.ALL:
            orders = await self.orders.page_of_member(ctx.merchant_id, member_id, page_token, size + 1)
        else:
            orders = await self.orders.page_of_member_in_states(ctx.merchant_id, member_id, states_of(which),
                                                                page_token, size + 1)
        more = len(orders) > size
        orders = orders[:size]
        return orders, (orders[-1].id if more else "")

    async def count_mine(self) -> dict[OrderTab, int]:
        """How many of the member's orders each tab lists: one count query per tab of
        states, and one read of the member's refunds."""
        ctx = context.current()
        member_id = ctx.require_member()
        counts = {tab: await self.orders.count_of_member_in_states(ctx.merchant_id, member_id, states_of(tab))
                  for tab in COUNTED if tab is not OrderTab.REFUNDS}
        counts[OrderTab.REFUNDS] = len(await self._refunded_order_ids(ctx.merchant_id, member_id))
        return counts

    async def _refunded_order_ids(self, merchant_id: str, member_id: str) -> set[str]:
        if self.refunds is None:
            return set()
        return await self.refunds.order_ids_of_member(merchant_id, member_id)

    async def cancel(self, order_id: str) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        _require_order_id(order_id)

        async def attempt() -> Order:
            order = await self.orders.of_member(ctx.merchant_id, member_id, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found")
            if order.cancel(self._now(), CANCEL_BY_MEMBER):
                await self.orders.save(order)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while cancelling; try again")

    async def cancel_as_staff(self, order_id: str) -> Order:
        """Staff cancel an unpaid order (cancel_reason STAFF); its stock goes back as when
        the member cancels. A paid order is refunded instead, never cancelled here."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        _require_order_id(order_id)

        async def attempt() -> Order:
            order = await self.orders.get(ctx.merchant_id, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found")
            if order.cancel(self._now(), CANCEL_BY_STAFF):
                await self.orders.save(order)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while cancelling; try again")

    async def expire_due(self, limit: int = 100) -> int:
        """Cancel unpaid orders past their expiry. A payment racing this ends in exactly
        one of PAID or CANCELLED: both are conditional on the version read."""
        now = self._now()
        cancelled = 0
        for order in await self.orders.expired(now, limit):
            if not order.expire(now):
                continue
            try:
                await self.orders.save(order)
            except StaleVersion:
                continue  # paid or cancelled meanwhile
            cancelled += 1
        if cancelled:
            log.info("order.expired", count=cancelled)
        return cancelled
