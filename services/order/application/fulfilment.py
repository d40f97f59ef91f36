"""After payment: staff ship and mark delivered, the member confirms receipt, and the
auto-confirm job confirms it for members who do not once the merchant's period ends.
Every move is one write conditional on the version the decision was made on."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from siyu_kit import context, logging as slog, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import NotFound, Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.ports import OpenRefunds, OrderRepository, SettingsRepository
from services.order.domain.orders import CONFIRMED_BY_AUTO, CONFIRMED_BY_MEMBER, Move, Order

log = slog.get("siyu.order.fulfilment")

MAX_CARRIER = 32
TRACKING_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def require_order_id(order_id: str) -> None:
    v = Violations()
    v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
    v.raise_if_any()


@dataclass
class FulfilmentUseCases:
    orders: OrderRepository
    refunds: OpenRefunds
    settings: SettingsRepository
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def ship(self, order_id: str, carrier: str, tracking_number: str) -> Order:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.check(1 <= len(carrier) <= MAX_CARRIER and carrier.strip() == carrier, "carrier",
                f"required, 1..{MAX_CARRIER} characters without surrounding spaces")
        v.check(bool(TRACKING_NUMBER.match(tracking_number)), "tracking_number",
                "required, 1..64 of A-Z, a-z, 0-9 and -")
        v.raise_if_any()

        async def attempt() -> Order:
            order = await self._staff_order(ctx.merchant_id, order_id)
            if order.shipping() is Move.REPEAT:
                return order
            open_refunds = await self.refunds.count_open(ctx.merchant_id, order_id)
            settings = await self.settings.of_merchant(ctx.merchant_id)
            if order.ship(carrier, tracking_number, epoch_ms(self._now()), auto_confirm_days=settings.auto_confirm_days,
                          open_refunds=open_refunds):
                await self.orders.save(order)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while shipping; try again")

    async def mark_delivered(self, order_id: str) -> Order:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        require_order_id(order_id)

        async def attempt() -> Order:
            order = await self._staff_order(ctx.merchant_id, order_id)
            if order.deliver(self._now()):
                await self.orders.save(order)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while marking it delivered; try again")

    async def confirm_receipt(self, order_id: str) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        require_order_id(order_id)

        async def attempt() -> Order:
            order = await self.orders.of_member(ctx.merchant_id, member_id, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found")
            if order.complete(self._now(), CONFIRMED_BY_MEMBER):
                await self.orders.save(order)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while confirming receipt; try again")

    async def auto_confirm_due(self, limit: int = 100) -> int:
        """Confirms receipt of orders past their auto-confirm time. A scan of stored
        state, so a restart loses nothing; each confirmation is conditional on the
        version it read, so two runs never both fire."""
        now = self._now()
        now_ms = epoch_ms(now)
        confirmed = 0
        for order in await self.orders.due_for_auto_confirm(now_ms, limit):
            if not order.is_due_for_auto_confirm(now_ms) or not order.complete(now, CONFIRMED_BY_AUTO):
                continue
            try:
                await self.orders.save(order)
            except StaleVersion:
                continue  # confirmed (or changed) meanwhile
            confirmed += 1
        if confirmed:
            log.info("order.auto_confirmed", count=confirmed)
        return confirmed

    async def _staff_order(self, merchant_id: str, order_id: str) -> Order:
        order = await self.orders.get(merchant_id, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order
