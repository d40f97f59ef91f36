"""Events the member service consumes."""
from __future__ import annotations

from siyu.order.v1 import events_pb2 as order_events

from services.member.application.points import OrderPoints
from siyu_kit.events.consumer import Subscription
from siyu_kit.events.streams import subject_of


def subscriptions(order_points: OrderPoints) -> list[Subscription]:
    return [Subscription(durable="member-order-paid", subject=subject_of("order", "order", "paid"),
                         payload_type=order_events.OrderPaid, handler=order_points.on_order_paid)]
