"""After payment: staff ship and mark delivered, the member confirms receipt, and the
auto-confirm job confirms it for members who do not once the merchant's period ends.
Every move is one write conditional on the state and version the decision was made on."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from google.protobuf.message import Message
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit import context, logging as slog
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.events.outbox import make_event
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import is_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.adapters import messages
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import Orders, Settings
from services.order.domain.orders import (CONFIRMED_BY_AUTO, CONFIRMED_BY_MEMBER, Move, OrderState, auto_confirm_ms,
                                          decide, is_shippable)

log = slog.get("siyu.order.fulfilment")

MAX_CARRIER = 32
TRACKING_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
ATTEMPTS = 3

SHIPPED = subject_of("order", "order", "shipped")
DELIVERED = subject_of("order", "order", "delivered")
COMPLETED = subject_of("order", "order", "completed")


def require_order_id(order_id: str) -> None:
    v = Violations()
    v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
    v.raise_if_any()


@dataclass
class FulfilmentUseCases:
    orders: Orders
    refunds: Refunds
    settings: Settings
    committed: Callable[[], None]
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def ship(self, order_id: str, carrier: str, tracking_number: str) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(order_id, "ord"), "order_id", "must be an ord_ id")
        v.check(1 <= len(carrier) <= MAX_CARRIER and carrier.strip() == carrier, "carrier",
                f"required, 1..{MAX_CARRIER} characters without surrounding spaces")
        v.check(bool(TRACKING_NUMBER.match(tracking_number)), "tracking_number",
                "required, 1..64 of A-Z, a-z, 0-9 and -")
        v.raise_if_any()
        for _ in range(ATTEMPTS):
            doc = await self._staff_order(ctx.merchant_id, order_id)
            move = decide(OrderState(doc["state"]), OrderState.SHIPPED)
            if move is Move.REPEAT:
                return doc
            if move is Move.REFUSE:
                raise FailedPrecondition(f"a {doc['state']} order cannot be shipped", reason="ORDER_NOT_SHIPPABLE")
            units_left = sum(l["quantity"] - l.get("refunded_quantity", 0) for l in doc["lines"])
            open_refunds = await self.refunds.count_open(ctx.merchant_id, order_id)
            if not is_shippable(units_left, open_refunds):
                raise FailedPrecondition(
                    "a refund of this order is waiting or under way" if units_left else "every unit was refunded",
                    reason="REFUND_OPEN" if units_left else "NOTHING_TO_SHIP")
            settings = await run_sync(self.settings.of_merchant, ctx.merchant_id)
            now = self._now()
            shipped_ms = epoch_ms(now)
            after = await self._move(doc, OrderState.SHIPPED, SHIPPED, now, events_pb2.OrderShipped, {
                "shipment": {"carrier": carrier, "tracking_number": tracking_number, "shipped_ms": shipped_ms},
                "auto_confirm_ms": auto_confirm_ms(shipped_ms, settings.auto_confirm_days)})
            if after:
                return after
        raise Conflict("the order changed while shipping; try again")

    async def mark_delivered(self, order_id: str) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        require_order_id(order_id)
        for _ in range(ATTEMPTS):
            doc = await self._staff_order(ctx.merchant_id, order_id)
            move = decide(OrderState(doc["state"]), OrderState.DELIVERED)
            if move is Move.REPEAT:
                return doc
            if move is Move.REFUSE:
                raise FailedPrecondition(f"a {doc['state']} order cannot be marked delivered",
                                         reason="ORDER_NOT_SHIPPED")
            now = self._now()
            after = await self._move(doc, OrderState.DELIVERED, DELIVERED, now, events_pb2.OrderDelivered,
                                     {"delivered_at": now})
            if after:
                return after
        raise Conflict("the order changed while marking it delivered; try again")

    async def confirm_receipt(self, order_id: str) -> dict:
        ctx = context.current()
        member_id = ctx.require_member()
        require_order_id(order_id)
        for _ in range(ATTEMPTS):
            doc = await run_sync(self.orders.of_member, ctx.merchant_id, member_id, order_id)
            if doc is None:
                raise NotFound(f"order {order_id} not found")
            move = decide(OrderState(doc["state"]), OrderState.COMPLETED)
            if move is Move.REPEAT:
                return doc
            if move is Move.REFUSE:
                raise FailedPrecondition(f"a {doc['state']} order has no receipt to confirm",
                                         reason="ORDER_NOT_SHIPPED")
            after = await self._complete(doc, CONFIRMED_BY_MEMBER)
            if after:
                return after
        raise Conflict("the order changed while confirming receipt; try again")

    async def auto_confirm_due(self, limit: int = 100) -> int:
        """Confirms receipt of orders past their auto-confirm time. A scan of stored
        state, so a restart loses nothing; each confirmation is conditional on the state
        and version it read, so two runs never both fire."""
        now_ms = epoch_ms(self._now())
        due = await run_sync(self.orders.due_for_auto_confirm, now_ms, limit)
        confirmed = 0
        for doc in due:
            if doc["auto_confirm_ms"] <= now_ms and await self._complete(doc, CONFIRMED_BY_AUTO):
                confirmed += 1
        if confirmed:
            log.info("order.auto_confirmed", count=confirmed)
        return confirmed

    async def _complete(self, doc: dict, confirmed_by: str) -> dict | None:
        now = self._now()

        def payload(order: order_pb2.Order) -> Message:
            return events_pb2.OrderCompleted(order=order, confirmed_by=confirmed_by)

        return await self._move(doc, OrderState.COMPLETED, COMPLETED, now, payload,
                                {"completed_at": now, "confirmed_by": confirmed_by})

    async def _staff_order(self, merchant_id: str, order_id: str) -> dict:
        doc = await run_sync(self.orders.get, merchant_id, order_id)
        if doc is None:
            raise NotFound(f"order {order_id} not found")
        return doc

    async def _move(self, doc: dict, target: OrderState, subject: str, now: datetime,
                    payload: Callable[..., Message], fields: dict) -> dict | None:
        """The order as moved, or None when it changed since `doc` was read."""
        after = {**doc, **fields, "state": target.value, "version": doc["version"] + 1}
        event = make_event(subject, merchant_id=doc["merchant_id"], aggregate_id=doc["_id"],
                           aggregate_version=after["version"], occurred_at=now,
                           channel=(doc.get("attribution") or {}).get("channel", ""),
                           payload=payload(order=messages.order(after)))
        if not await run_sync(self.orders.transition, doc["merchant_id"], doc["_id"], from_state=doc["state"],
                              to_state=target.value, version=doc["version"], fields=fields, events=(event,)):
            return None
        self.committed()
        return after
