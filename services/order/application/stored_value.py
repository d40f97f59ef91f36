"""Stored value in the order service: placing recharge orders, and the member calls an
order's balance hold is owed once the order is paid or cancelled.

Paying with balance itself is part of paying (application.payments): the balance first,
the rest through the provider. Refunds split between balance and provider in
application.refunds. Here is what follows from the order's own state changes: a PAID
order whose hold is HELD has its balance spent; a cancelled order, or one paid without
the hold it asked for, has it given back. order.paid and order.cancelled drive it
(entrypoint.stored_value_events), and the member service makes each call idempotent by
the order, so a redelivered event changes nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, logging as slog
from siyu_kit.errors import NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.ports import Balances, OrderRepository, RechargePackages, SettingsRepository
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.orders import Order, OrderLine, OrderState
from services.order.domain.tender import RechargeTerms, StoredValue

log = slog.get("siyu.order.stored_value")

MAX_KEY = 64
CURRENCY = "CNY"


def _key_ok(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY and key.isascii() and all(c.isalnum() or c in "_-" for c in key)


@dataclass
class StoredValueUseCases:
    orders: OrderRepository
    packages: RechargePackages
    balances: Balances
    settings: SettingsRepository
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def place_recharge(self, idempotency_key: str, package_id: str) -> Order:
        """A RECHARGE order for the package as it is offered now: one virtual line (no SKU,
        no stock), payable its price, expiring like any unpaid order. A repeat of the key
        answers the first order."""
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(_key_ok(idempotency_key), "idempotency_key", "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
        v.check(is_id(package_id, "rcp"), "package_id", "a rcp_ id")
        v.raise_if_any()
        request_hash = fingerprint({"recharge_package_id": package_id})
        existing = await self.orders.by_key(merchant_id, member_id, idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        package = await self.packages.active(package_id)
        settings = await self.settings.of_merchant(merchant_id)
        now = self._now()
        price = package.price
        line = OrderLine(line_id=new_id("oln"), sku_id="", product_id="", title=package.name, quantity=1,
                         unit_price=price, line_total=price, line_amount=price, paid_amount=price)
        order = Order.place(order_id=new_id("ord"), merchant_id=merchant_id, member_id=member_id,
                            idempotency_key=idempotency_key, lines=[line], currency=CURRENCY, total=price,
                            payable=price, reservation_id="", created_at=now,
                            expires_at=now + timedelta(seconds=settings.unpaid_expiry_s),
                            attribution={"channel": ctx.channel} if ctx.channel else {},
                            request_hash=request_hash)
        order.stored_value = StoredValue.recharge_of(RechargeTerms(package.package_id, price, package.bonus))
        if await self.orders.add(order):
            log.info("order.recharge_placed", order_id=order.id, package_id=package_id)
            return order
        winner = await self.orders.by_key(merchant_id, member_id, idempotency_key)
        if winner is None:
            raise NotFound("the order placed with this key is gone")
        require_same_request(winner.request_hash, request_hash, "order")
        return winner

    async def settle_hold(self, merchant_id: str, order_id: str) -> str:
        """What the order's hold is owed now that it was paid or cancelled: "CAPTURE",
        "RELEASE" or "" (nothing). Raises when the member service could not be reached, so
        the event is delivered again."""
        order = await self.orders.get(merchant_id, order_id)
        if order is None:
            return ""
        sv = order.stored_value
        paid = order.payment_id != "" and order.state is not OrderState.PENDING_PAYMENT
        cancelled = order.state is OrderState.CANCELLED and not order.payment_id
        if sv.owes_capture(paid):
            await self.balances.capture(order.member_id, order.id)
            return "CAPTURE"
        if sv.owes_release(paid, cancelled):
            await self.balances.release(order.member_id, order.id)
            return "RELEASE"
        return ""
