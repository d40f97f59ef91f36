"""Order events that feed the funnels. Each handler is idempotent by event id: the
bucket update that counts an event also records it, so a replay changes nothing."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2

from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import is_id

from services.content.application.funnels import FunnelUseCases, OrderFact
from services.content.domain import funnels


def _fact(envelope: common_pb2.EventEnvelope, order, change) -> OrderFact:
    if not is_id(envelope.event_id, "evt"):
        raise Poison(f"event id {envelope.event_id!r} is not an evt_ id")
    if not envelope.merchant_id:
        raise Poison("event without a merchant")
    if not envelope.HasField("occurred_at"):
        raise Poison("event without a time")
    a = order.attribution
    return OrderFact(event_id=envelope.event_id, merchant_id=envelope.merchant_id,
                     occurred_at=envelope.occurred_at.ToDatetime(tzinfo=timezone.utc),
                     persona_id=a.persona_id, content_id=a.content_id, live_session_id=a.live_session_id,
                     change=change, currency=order.payable.currency)


def subscriptions(use_cases: FunnelUseCases) -> list[Subscription]:
    async def on_placed(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPlaced) -> None:
        await use_cases.record(_fact(envelope, payload.order, funnels.order_placed()))

    async def on_paid(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPaid) -> None:
        try:
            change = funnels.order_paid(payload.order.payable.amount)
        except ValueError as error:
            raise Poison(str(error)) from error
        await use_cases.record(_fact(envelope, payload.order, change))

    return [
        Subscription.to("content-funnel-order-placed", events_pb2.OrderPlaced, on_placed),
        Subscription.to("content-funnel-order-paid", events_pb2.OrderPaid, on_paid),
    ]
