"""The order service's part of members' personal-information rights: a member's orders,
payments and refunds for their data export (PIPL Art. 45), and what erasing a member
(PIPL Art. 47) changes here."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Protocol

from services.order.domain.orders import CANCEL_BY_MEMBER, Order, OrderState
from siyu_kit import context, retry
from siyu_kit.ids import new_id

# The parts, in the order the document lists them.
PARTS = ("orders", "payments", "refunds")


class MemberRecords(Protocol):
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        """The member's records of one part (a name of PARTS), oldest first, as plain JSON
        values: no sealed values, no outbox."""


class OrderDataExport:
    def __init__(self, records: MemberRecords):
        self.records = records

    async def export(self, member_id: str) -> dict[str, list[dict]]:
        merchant_id = context.current().require_merchant()
        return {part: await self.records.of_member(merchant_id, member_id, part) for part in PARTS}


# ---- erasure (PIPL Art. 47) -----------------------------------------------------------------


class MemberOrders(Protocol):
    async def unpaid_order_ids(self, merchant_id: str, member_id: str) -> list[str]:
        """The member's orders still waiting for payment."""

    async def anonymise(self, merchant_id: str, member_id: str) -> int:
        """Removes the personal data the member's orders keep (the address snapshot's
        recipient, phone and street detail; the buyer's remark) and deletes their cart;
        the orders, payments and refunds themselves stay, under the member id. How many
        orders changed (a repeat changes none)."""


class Orders(Protocol):
    async def of_member(self, merchant_id: str, member_id: str, order_id: str) -> Order | None: ...

    async def save(self, order: Order) -> None: ...


class ErasureAcknowledger(Protocol):
    async def acknowledge(self, member_id: str, service: str) -> None:
        """Tells the member service this service erased the member (AcknowledgeErasure)."""


class OrderErasure:
    """The order service's part of a member's erasure, on member.erased: unpaid orders are
    cancelled first (their stock, coupon and points go back by the usual cancellation
    events), then the orders' personal data is removed; paid orders, payments and refunds
    are kept for the legal period under the member id. Idempotent: a replay cancels and
    changes nothing more and acknowledges again."""

    def __init__(self, orders: Orders, records: MemberOrders, acknowledger: ErasureAcknowledger,
                 clock: Callable[[], datetime]):
        self.orders = orders
        self.records = records
        self.acknowledger = acknowledger
        self.clock = clock

    async def on_member_erased(self, merchant_id: str, member_id: str) -> None:
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
        try:
            for order_id in await self.records.unpaid_order_ids(merchant_id, member_id):
                await self._cancel(merchant_id, member_id, order_id)
            await self.records.anonymise(merchant_id, member_id)
            await self.acknowledger.acknowledge(member_id, "order")
        finally:
            context.reset(token)

    async def _cancel(self, merchant_id: str, member_id: str, order_id: str) -> None:
        async def attempt() -> None:
            order = await self.orders.of_member(merchant_id, member_id, order_id)
            if order is None or order.state is not OrderState.PENDING_PAYMENT:
                return  # paid or cancelled meanwhile: kept as it is
            if order.cancel(self.clock(), CANCEL_BY_MEMBER):
                await self.orders.save(order)

        await retry.on_conflict(attempt, gave_up="the order changed while cancelling it for an erasure")
