"""Buying from a flash sale (秒杀): the catalog's pool decides who gets units, then the
order is priced and written like any other, expiring sooner.

Thousands of members press "buy" in the same second and most of them lose. A loser costs
the idempotency lookup, the merchant's settings and one ReserveFlashSale call, and gets
FAILED_PRECONDITION with reason SOLD_OUT, LIMIT_REACHED, NOT_STARTED or ENDED. Once the
catalog has said SOLD_OUT, this process answers the same for a moment without asking it:
the pool refills only when an unpaid order expires, and a loser then costs one lookup. Only a
winner is priced; if anything fails after the units were taken, or the buyer gives up before
the order is written, they are released at once (or, if the catalog cannot be reached, when
the reservation expires).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, delays, logging as slog
from siyu_kit.cancellation import require_time
from siyu_kit.errors import FailedPrecondition, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.checkout import ActivityPrice, Checkout, check_address_id, check_value_ask
from services.order.application.orders import (MAX_KEY, PLACE_MIN_TIME_S, OrderUseCases, attribution_of,
                                                check_attribution_and_remark, place_fingerprint)
from services.order.application.ports import FlashCatalog, OrderRepository, SettingsRepository
from services.order.domain.idempotency import require_same_request
from services.order.domain.member_value import OrderKind, ValueAsk
from services.order.domain.orders import Order

log = slog.get("siyu.order.flash")

# The catalog caps a flash sale's per-member limit at 100, so no member can buy more.
MAX_QUANTITY = 100
SOLD_OUT = "SOLD_OUT"
# How long a SOLD_OUT answer is repeated without asking the catalog: short next to an
# order's expiry, so units that come back are on sale again within a second.
SOLD_OUT_MEMORY_S = 1.0


@dataclass(frozen=True)
class PlaceFlashSaleOrderInput:
    flash_sale_id: str
    idempotency_key: str
    quantity: int = 0  # 0: one unit
    # channel name ("" when unset), persona_id, content_id, live_session_id, share_code
    attribution: dict = field(default_factory=dict)
    remark: str = ""
    # One of the member's addresses; empty: their default, or none.
    address_id: str = ""
    # A coupon (or the member's best) and points, as for any order; a coupon template
    # that refuses flash sales refuses the order.
    coupon_id: str = ""
    best_coupon: bool = False
    points: int = 0

    @property
    def ask(self) -> ValueAsk:
        return ValueAsk(coupon_id=self.coupon_id, best_coupon=self.best_coupon, points=self.points)


def validate(cmd: PlaceFlashSaleOrderInput, ctx_channel: str) -> int:
    """The quantity to buy, or INVALID_ARGUMENT with every violation."""
    v = Violations()
    v.check(is_id(cmd.flash_sale_id, "fls"), "flash_sale_id", "must be a fls_ id")
    v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
    v.check(0 <= cmd.quantity <= MAX_QUANTITY, "quantity", f"1..{MAX_QUANTITY}, or 0 for one")
    check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx_channel)
    check_address_id(v, cmd.address_id)
    check_value_ask(v, cmd.ask)
    v.raise_if_any()
    return cmd.quantity or 1


@dataclass
class FlashOrderUseCases:
    orders: OrderRepository
    settings: SettingsRepository
    catalog: FlashCatalog
    checkout: Checkout
    # Writes the order (and releases the units if that fails).
    order_cases: OrderUseCases
    clock: Callable[[], datetime] = utcnow
    # (merchant, flash sale) → monotonic time until which "sold out" is answered here.
    _sold_out_until: dict[tuple[str, str], float] = field(default_factory=dict)

    async def place(self, cmd: PlaceFlashSaleOrderInput) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        quantity = validate(cmd, ctx.channel)
        request_hash = place_fingerprint(cmd)
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        checked = await self.order_cases.attributed(cmd.attribution)
        attribution = checked.attribution
        sold_out_key = (merchant_id, cmd.flash_sale_id)
        if self._sold_out_until.get(sold_out_key, 0.0) > time.monotonic():
            raise FailedPrecondition("the flash sale is sold out", reason=SOLD_OUT)
        # Where it ships is settled, and an excluded region refused, before the pool is touched.
        address = await self.checkout.shipping_to(merchant_id, member_id, cmd.address_id)
        settings = await self.settings.of_merchant(merchant_id)
        now = to_storage_precision(self.clock())
        expires_at = now + timedelta(seconds=settings.flash_sale_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        # Nothing is taken from the pool by a buyer who would give up before the order exists.
        require_time(PLACE_MIN_TIME_S, "buy from the flash sale")
        try:
            won = await self.order_cases.reserved(reservation_id, self.catalog.reserve_flash_sale(
                reservation_id, order_id, cmd.flash_sale_id, member_id, quantity,
                self.order_cases.reservation_expiry(expires_at)))
        except FailedPrecondition as error:
            if error.reason == SOLD_OUT:
                self._sold_out_until[sold_out_key] = time.monotonic() + SOLD_OUT_MEMORY_S
            raise
        try:
            await delays.pause("order.flash.after_reserve")
            # The flash price is the line's activity price; a better tier price still wins.
            priced = await self.checkout.price(
                merchant_id, member_id, [(won.sku_id, quantity)],
                activity_prices={won.sku_id: ActivityPrice(won.unit_price, cmd.flash_sale_id)}, address=address,
                ask=cmd.ask, kind=OrderKind.FLASH_SALE)
            # Winners only: the many who lose the pool never cost the member service a call.
            referral = await self.order_cases.referral(member_id, checked.sharer_id)
        except (Exception, asyncio.CancelledError):
            # Also when the buyer gave up: the units go back to the pool at once.
            await self.order_cases.release_at_once(reservation_id)
            raise
        held_at = await self.order_cases.hold_value(merchant_id, member_id, order_id, reservation_id, priced,
                                                    expires_at)
        return await self.order_cases.create_order(
            merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
            order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
            attribution=attribution_of(attribution, ctx.channel), remark=cmd.remark,
            flash_sale_id=cmd.flash_sale_id, request_hash=request_hash, value_held_at=held_at, referral=referral)
