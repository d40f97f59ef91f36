"""Order events that move stock: paid → commit the reservation (or hold a released one
again), cancelled → release it."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit.errors import FailedPrecondition, NotFound
from siyu_kit.events.consumer import Poison, Subscription

from services.catalog.application.stock import StockUseCases
from services.catalog.domain import stock as rules


def subscriptions(stock: StockUseCases) -> list[Subscription]:
    async def paid(envelope: common_pb2.EventEnvelope, payload: order_events.OrderPaid) -> None:
        rid = payload.order.reservation_id
        if payload.order.kind == order_pb2.ORDER_KIND_RECHARGE:
            return  # a recharge package holds no stock
        if not rid:
            raise Poison("the paid order has no reservation")
        # A released reservation is held again, or reported unfulfillable for the order
        # service to refund. NotFound propagates: retried, then dead-lettered.
        await stock.on_paid(envelope.merchant_id, rid, envelope.event_id)

    async def cancelled(envelope: common_pb2.EventEnvelope, payload: order_events.OrderCancelled) -> None:
        rid = payload.order.reservation_id
        if not rid:
            return  # an order cancelled before it reserved anything
        try:
            await stock.on_order(envelope.merchant_id, rid, rules.RELEASED, envelope.event_id)
        except NotFound:
            return  # never reserved: nothing to give back
        except FailedPrecondition as error:
            if error.reason == "RESERVATION_COMMITTED":
                raise Poison(f"reservation {rid} is committed; a cancelled order cannot release it") from error
            raise

    return [
        Subscription.to("catalog-order-paid", order_events.OrderPaid, paid),
        Subscription.to("catalog-order-cancelled", order_events.OrderCancelled, cancelled),
    ]
