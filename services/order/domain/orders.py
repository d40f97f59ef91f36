"""The order state machine and the rules for cancelling and paying."""
from __future__ import annotations

from datetime import datetime
from enum import Enum


class OrderState(str, Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING_PAYMENT: frozenset({OrderState.PAID, OrderState.CANCELLED}),
    OrderState.PAID: frozenset({OrderState.SHIPPED}),
    OrderState.SHIPPED: frozenset({OrderState.DELIVERED}),
    OrderState.DELIVERED: frozenset({OrderState.COMPLETED}),
    OrderState.COMPLETED: frozenset(),
    OrderState.CANCELLED: frozenset(),
}

CANCEL_BY_MEMBER = "MEMBER"
CANCEL_BY_TIMEOUT = "TIMEOUT"
NOT_PAYABLE = "ORDER_NOT_PAYABLE"


def can_transition(source: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[source]


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return now >= expires_at


def is_payable(state: OrderState, expires_at: datetime, now: datetime) -> bool:
    return state is OrderState.PENDING_PAYMENT and not is_expired(expires_at, now)


class CancelDecision(str, Enum):
    CANCEL = "CANCEL"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"  # a repeat: nothing changes
    TOO_LATE = "TOO_LATE"  # paid or beyond


def member_cancel(state: OrderState) -> CancelDecision:
    if state is OrderState.CANCELLED:
        return CancelDecision.ALREADY_CANCELLED
    if can_transition(state, OrderState.CANCELLED):
        return CancelDecision.CANCEL
    return CancelDecision.TOO_LATE
