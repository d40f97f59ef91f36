"""Events the member service consumes."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from services.member.application.points import CompletedOrder, OrderPoints, PaidOrder, UnknownMember
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.protos import CHANNEL_NAME


def paid_order(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> PaidOrder:
    order = paid.order
    if not (envelope.merchant_id and order.order_id and order.member_id) or order.payable.amount < 0:
        raise Poison("an OrderPaid needs merchant, order, member and a payable amount ≥ 0")
    paid_at = (order.paid_at if order.HasField("paid_at") else envelope.occurred_at).ToDatetime(tzinfo=timezone.utc)
    return PaidOrder(event_id=envelope.event_id, merchant_id=envelope.merchant_id, order_id=order.order_id,
                     member_id=order.member_id, payable=order.payable.amount, paid_at=paid_at,
                     channel=CHANNEL_NAME.get(envelope.channel, ""))


def subscriptions(order_points: OrderPoints) -> list[Subscription]:
    async def on_order_paid(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> None:
        # ---- stored value: a recharge order earns no points (it is credited to the balance) ----
        if paid.HasField("recharge"):
            return
        try:
            await order_points.on_order_paid(paid_order(envelope, paid))
        except UnknownMember as error:
            raise Poison(str(error)) from error

    # ---- points: an order's after-sales window starts at completion ----
    async def on_order_completed(envelope: common_pb2.EventEnvelope,
                                 completed: order_events.OrderCompleted) -> None:
        # NotEarnedYet (the payment's points not written yet) is retried with backoff.
        await order_points.on_order_completed(completed_order(envelope, completed))

    return [Subscription.to("member-order-paid", order_events.OrderPaid, on_order_paid),
            Subscription.to("member-order-completed", order_events.OrderCompleted, on_order_completed)]


def completed_order(envelope: common_pb2.EventEnvelope, completed: order_events.OrderCompleted) -> CompletedOrder:
    order = completed.order
    if not (envelope.merchant_id and order.order_id and order.member_id):
        raise Poison("an OrderCompleted needs merchant, order and member")
    at = (order.completed_at if order.HasField("completed_at") else envelope.occurred_at)
    return CompletedOrder(merchant_id=envelope.merchant_id, order_id=order.order_id, member_id=order.member_id,
                          completed_at=at.ToDatetime(tzinfo=timezone.utc))
