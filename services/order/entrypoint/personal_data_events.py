"""member.erased: the member's unpaid orders are cancelled, their orders' personal data
removed, then the erasure is acknowledged to the member service (siyu_kit/erasure.py)."""
from __future__ import annotations

from siyu_kit import erasure
from siyu_kit.events.consumer import Subscription

from services.order.application.personal_data import OrderErasure


def subscriptions(order_erasure: OrderErasure) -> list[Subscription]:
    return [erasure.subscription("order-member-erased", order_erasure.on_member_erased)]
