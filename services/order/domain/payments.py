"""Payments: states, what a provider's success means for the order, and the provider
interface every payment method implements."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Protocol

from services.order.domain.orders import OrderState


class PaymentState(str, Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    REFUNDED = "REFUNDED"


class PaymentMethod(str, Enum):
    SANDBOX = "SANDBOX"


RESULT_SUCCESS = "SUCCESS"
RESULT_FAIL = "FAIL"


@dataclass(frozen=True)
class Notification:
    """A provider's signed statement about one payment."""
    payment_id: str
    provider_txn_id: str
    amount: int
    currency: str
    result: str
    timestamp: int
    signature: str = ""


@dataclass(frozen=True)
class RefundReceipt:
    provider_refund_id: str
    amount: int


class PaymentProvider(Protocol):
    method: PaymentMethod

    def sign(self, notification: Notification) -> str: ...

    def verify(self, notification: Notification) -> bool: ...

    def refund(self, payment_id: str, provider_txn_id: str, amount: int, currency: str) -> RefundReceipt: ...


class Settlement(str, Enum):
    """What to do with a payment the provider says succeeded."""
    PAY_ORDER = "PAY_ORDER"  # the order takes the money
    DONE = "DONE"  # this payment already paid the order
    REFUND = "REFUND"  # the order cannot take it: send the money back


def settle(order_state: OrderState, order_expired: bool, order_payment_id: str, payment_id: str) -> Settlement:
    if order_state is OrderState.PENDING_PAYMENT and not order_expired:
        return Settlement.PAY_ORDER
    if order_state is not OrderState.PENDING_PAYMENT and order_state is not OrderState.CANCELLED \
            and order_payment_id == payment_id:
        return Settlement.DONE
    return Settlement.REFUND


REFUND_ORDER_CANCELLED = "ORDER_CANCELLED"
REFUND_ORDER_EXPIRED = "ORDER_EXPIRED"
REFUND_ALREADY_PAID = "ORDER_ALREADY_PAID"
# The order took the payment but its units were gone (see orders.CANCEL_STOCK_UNAVAILABLE).
REFUND_STOCK_UNAVAILABLE = "STOCK_UNAVAILABLE"
# Payments the order could not take: the money went through UNAPPLIED:<order> and back.
AUTO_REFUND_REASONS = frozenset({REFUND_ORDER_CANCELLED, REFUND_ORDER_EXPIRED, REFUND_ALREADY_PAID})
# A SUCCEEDED payment neither applied nor refunded this long after it succeeded lost the
# step that follows it (a crash, a dropped notification): the reconcile job finishes it.
RECONCILE_AFTER = timedelta(seconds=5)
# A job run that takes a payment has it alone this long; if it fails, another run retries.
RECONCILE_LEASE = timedelta(seconds=30)


def refund_reason(order_state: OrderState) -> str:
    if order_state is OrderState.CANCELLED:
        return REFUND_ORDER_CANCELLED
    if order_state is OrderState.PENDING_PAYMENT:
        return REFUND_ORDER_EXPIRED
    return REFUND_ALREADY_PAID

