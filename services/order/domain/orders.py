"""The order state machine and the rules for cancelling and paying."""
from __future__ import annotations

from datetime import datetime
from enum import Enum

from siyu_kit.errors import FailedPrecondition


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


def require_payable(state: OrderState, expires_at: datetime, now: datetime) -> None:
    if not is_payable(state, expires_at, now):
        why = "has expired" if state is OrderState.PENDING_PAYMENT else f"is {state.value}"
        raise FailedPrecondition(f"the order {why} and cannot be paid", reason=NOT_PAYABLE)


def member_cancel_needed(state: OrderState) -> bool:
    """True when a member's cancel must change the order; False when it is already
    cancelled (a repeat); raises when the order is past payment."""
    if state is OrderState.CANCELLED:
        return False
    if not can_transition(state, OrderState.CANCELLED):
        raise FailedPrecondition(f"a {state.value} order cannot be cancelled", reason="ORDER_NOT_CANCELLABLE")
    return True
