"""Events the order service acts on: a paid order whose units were gone is refunded and
cancelled (catalog); the order's own paid, cancelled and refunded events settle its
coupon and points with the member service (application/member_value.py)."""
from __future__ import annotations

from siyu.catalog.v1 import events_pb2 as catalog_events
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.events.consumer import Poison, Subscription

from services.order.application.member_value import ValueLifecycle
from services.order.application.payments import PaymentUseCases


def subscriptions(payments: PaymentUseCases, value: ValueLifecycle | None = None) -> list[Subscription]:
    async def unfulfillable(envelope: common_pb2.EventEnvelope, payload: catalog_events.ReservationChanged) -> None:
        reservation = payload.reservation
        try:
            await payments.refund_unfulfillable(envelope.merchant_id, reservation.order_id,
                                                reservation.reservation_id)
        except (NotFound, FailedPrecondition) as error:
            # No such paid order, or it shipped meanwhile: a person has to look (dead letters).
            raise Poison(f"order {reservation.order_id}: {error}") from error

    subs = [Subscription.to("order-reservation-unfulfillable", catalog_events.ReservationChanged, unfulfillable,
                            verb="unfulfillable")]
    return subs + (value_subscriptions(value) if value is not None else [])


async def _settled(order_id: str, work) -> None:
    """A refusal of the member service can never succeed on retry: a person looks (dead
    letters). Anything else (UNAVAILABLE) is retried with backoff."""
    if not order_id:
        raise Poison("an order event without an order id")
    try:
        await work
    except (NotFound, FailedPrecondition, InvalidArgument) as error:
        raise Poison(f"order {order_id}: {error.reason or ''} {error}") from error


def value_subscriptions(value: ValueLifecycle) -> list[Subscription]:
    async def paid(envelope: common_pb2.EventEnvelope, payload: order_events.OrderPaid) -> None:
        await _settled(payload.order.order_id, value.paid(envelope.merchant_id, payload.order.order_id))

    async def cancelled(envelope: common_pb2.EventEnvelope, payload: order_events.OrderCancelled) -> None:
        await _settled(payload.order.order_id, value.cancelled(envelope.merchant_id, payload.order.order_id))

    async def refunded(envelope: common_pb2.EventEnvelope, payload: order_events.OrderRefunded) -> None:
        # Each line's refunded units right after this refund, as the event carries them.
        after = {line.line_id: line.refunded_quantity for line in payload.order.lines}
        await _settled(payload.order.order_id, value.refunded(envelope.merchant_id, payload.order.order_id,
                                                              payload.refund.refund_id, after))

    return [Subscription.to("order-value-paid", order_events.OrderPaid, paid),
            Subscription.to("order-value-cancelled", order_events.OrderCancelled, cancelled),
            Subscription.to("order-value-refunded", order_events.OrderRefunded, refunded)]
