"""Order events counted for guides and stores (guide performance). Each count applies once
per order and event kind (placed, paid) or per refund id, whatever the event id of a
re-sent event, so a replay changes nothing."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import is_id

from services.content.application.guide_performance import GuidePerformanceUseCases, OrderSeen
from services.content.domain import funnels
from services.content.entrypoint.events import paid_change, refunded_change
from services.content.domain import guide_performance as rules


def _seen(envelope: common_pb2.EventEnvelope, order, cause: str, at_field: str, change) -> OrderSeen:
    if not envelope.merchant_id:
        raise Poison("event without a merchant")
    if not is_id(order.order_id, "ord"):
        raise Poison(f"order id {order.order_id!r} is not an ord_ id")
    if not funnels.valid_cause(cause):
        raise Poison(f"{cause!r} cannot name a count")
    # The day a count lands on comes from the order, so every delivery picks the same one.
    source = getattr(order, at_field) if order.HasField(at_field) else envelope.occurred_at
    a, r = order.attribution, order.referral
    return OrderSeen(merchant_id=envelope.merchant_id, order_id=order.order_id, cause=cause,
                     occurred_at=source.ToDatetime(tzinfo=timezone.utc), change=change,
                     currency=order.payable.currency, persona_id=a.persona_id, content_id=a.content_id,
                     live_session_id=a.live_session_id, share_code=a.share_code, referral_guide=r.guide_id,
                     store=r.guide_store)


def subscriptions(guides: GuidePerformanceUseCases) -> list[Subscription]:
    async def on_placed(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPlaced) -> None:
        order = payload.order
        if order.kind != order_pb2.ORDER_KIND_RECHARGE:  # a recharge is no sale
            await guides.record_order(_seen(envelope, order, rules.order_cause(rules.PLACED, order.order_id),
                                            "created_at", funnels.order_placed()))

    async def on_paid(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPaid) -> None:
        order = payload.order
        change = paid_change(order)
        if change is None:
            return
        await guides.record_order(_seen(envelope, order, rules.order_cause(rules.PAID, order.order_id), "paid_at",
                                        change))

    async def on_refunded(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderRefunded) -> None:
        order, refund = payload.order, payload.refund
        change = refunded_change(order, refund)
        if change is None:
            return
        # A refund counts on the day of the sale it takes back, as in every funnel.
        await guides.record_order(_seen(envelope, order, refund.refund_id, "paid_at", change))

    return [
        Subscription.to("content-guide-order-placed", events_pb2.OrderPlaced, on_placed),
        Subscription.to("content-guide-order-paid", events_pb2.OrderPaid, on_paid),
        Subscription.to("content-guide-order-refunded", events_pb2.OrderRefunded, on_refunded),
    ]
