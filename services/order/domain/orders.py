"""The order state machine: cancelling and paying, fulfilment, and when receipt is
confirmed automatically."""
from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

DAY_MS = 24 * 3600 * 1000


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
    # Receipt may be confirmed before the carrier reports delivery.
    OrderState.SHIPPED: frozenset({OrderState.DELIVERED, OrderState.COMPLETED}),
    OrderState.DELIVERED: frozenset({OrderState.COMPLETED}),
    OrderState.COMPLETED: frozenset(),
    OrderState.CANCELLED: frozenset(),
}

CANCEL_BY_MEMBER = "MEMBER"
CANCEL_BY_TIMEOUT = "TIMEOUT"
# A paid order whose units were gone when its payment reached the catalog: the system
# cancels it and refunds the payment. Never a member's choice.
CANCEL_STOCK_UNAVAILABLE = "STOCK_UNAVAILABLE"
NOT_PAYABLE = "ORDER_NOT_PAYABLE"
CONFIRMED_BY_MEMBER = "MEMBER"
CONFIRMED_BY_AUTO = "AUTO"


def can_transition(source: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[source]


# The catalog holds an order's stock a little longer than the order waits for payment: a
# payment accepted just before the order expires must still find its stock when order.paid
# reaches the catalog. An order that expires releases its stock at once (order.cancelled);
# at the reservation's own expiry the catalog asks the order service what to do
# (`reservation_verdict`), so it never releases the stock of a paid order.
DEFAULT_RESERVATION_GRACE = timedelta(seconds=60)


def reservation_expiry(order_expires_at: datetime, grace: timedelta = DEFAULT_RESERVATION_GRACE) -> datetime:
    return order_expires_at + grace


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


class Move(str, Enum):
    """What a request to move an order to a state means in the state it is in."""
    APPLY = "APPLY"
    REPEAT = "REPEAT"  # already there: nothing changes
    REFUSE = "REFUSE"  # not reachable from here


def decide(state: OrderState, target: OrderState) -> Move:
    if state is target:
        return Move.REPEAT
    return Move.APPLY if can_transition(state, target) else Move.REFUSE


def auto_confirm_ms(shipped_ms: int, auto_confirm_days: int) -> int:
    return shipped_ms + auto_confirm_days * DAY_MS


def is_shippable(units_left: int, open_refunds: int) -> bool:
    """Something is left to ship, and no refund is waiting or under way (its units
    would otherwise leave the warehouse while they are being refunded)."""
    return units_left > 0 and open_refunds == 0


class ReservationVerdict(str, Enum):
    """What the catalog may do with an expired reservation made for an order."""
    COMMIT = "COMMIT"  # the order is paid or beyond: the units are sold
    RELEASE = "RELEASE"  # cancelled, or never written: the units go back
    KEEP = "KEEP"  # still waiting for payment: the order's own expiry releases them


def reservation_verdict(state: OrderState | None, owns_reservation: bool) -> ReservationVerdict:
    """Only the order decides. An order that was never written (None), or that was written
    with another reservation, does not hold this one; a payment that still comes for it
    is re-held or refunded by the catalog and the order service."""
    if state is None or not owns_reservation or state is OrderState.CANCELLED:
        return ReservationVerdict.RELEASE
    if state is OrderState.PENDING_PAYMENT:
        return ReservationVerdict.KEEP
    return ReservationVerdict.COMMIT


def stock_unavailable_cancel(state: OrderState) -> Move:
    """The system-only PAID → CANCELLED move of a paid order whose units were gone. A
    shipped order is refused: its units left the warehouse, so a person must look."""
    if state is OrderState.CANCELLED:
        return Move.REPEAT
    return Move.APPLY if state is OrderState.PAID else Move.REFUSE
