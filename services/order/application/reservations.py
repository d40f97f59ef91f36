"""What the catalog may do with an order's expired reservation: the order service is the
only one that knows whether the order was paid, so it is the one that decides."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import context
from siyu_kit.ids import is_id

from services.order.application.ports import OrderRepository
from services.order.domain.orders import OrderState, ReservationVerdict, reservation_verdict


@dataclass
class ReservationUseCases:
    orders: OrderRepository

    async def resolve(self, order_id: str, reservation_id: str) -> tuple[ReservationVerdict, OrderState | None]:
        """The verdict, and the order's state (None when no such order was written)."""
        merchant_id = context.current().require_merchant()
        # A reservation may name any order id; one that is not an order's id has no order.
        order = await self.orders.get(merchant_id, order_id) if is_id(order_id, "ord") else None
        if order is None:
            return reservation_verdict(None, False), None
        return order.reservation_verdict(reservation_id), order.state
