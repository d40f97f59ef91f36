"""The order's own events that settle its balance hold: order.paid spends it, order.cancelled
(and a payment made without the hold the order asked for) gives it back. The order's
state says what is owed; the member service's calls are idempotent by order id, so a
redelivered or replayed event changes nothing."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit.events.consumer import Subscription

from services.order.application.stored_value import StoredValueUseCases


def subscriptions(stored_value: StoredValueUseCases) -> list[Subscription]:
    async def paid(envelope: common_pb2.EventEnvelope, payload: order_events.OrderPaid) -> None:
        await stored_value.settle_hold(envelope.merchant_id, payload.order.order_id)

    async def cancelled(envelope: common_pb2.EventEnvelope, payload: order_events.OrderCancelled) -> None:
        await stored_value.settle_hold(envelope.merchant_id, payload.order.order_id)

    return [Subscription.to("order-balance-paid", order_events.OrderPaid, paid),
            Subscription.to("order-balance-cancelled", order_events.OrderCancelled, cancelled)]
