"""Order and payment state rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.order.domain.orders import (CancelDecision, OrderState, can_transition, is_payable, member_cancel)
from services.order.domain.payments import Settlement, refund_reason, settle

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
S = OrderState


@pytest.mark.parametrize("source,target,ok", [
    (S.PENDING_PAYMENT, S.PAID, True), (S.PENDING_PAYMENT, S.CANCELLED, True),
    (S.PAID, S.CANCELLED, False), (S.CANCELLED, S.PAID, False), (S.PAID, S.SHIPPED, True),
    (S.SHIPPED, S.DELIVERED, True), (S.DELIVERED, S.COMPLETED, True), (S.COMPLETED, S.CANCELLED, False),
    (S.PENDING_PAYMENT, S.SHIPPED, False),
])
def test_transitions(source, target, ok):
    assert can_transition(source, target) is ok


def test_member_cancel():
    assert member_cancel(S.PENDING_PAYMENT) is CancelDecision.CANCEL
    assert member_cancel(S.CANCELLED) is CancelDecision.ALREADY_CANCELLED
    for state in (S.PAID, S.SHIPPED, S.DELIVERED, S.COMPLETED):
        assert member_cancel(state) is CancelDecision.TOO_LATE


def test_payable_only_while_pending_and_not_expired():
    later = NOW + timedelta(minutes=1)
    assert is_payable(S.PENDING_PAYMENT, later, NOW)
    assert not is_payable(S.PENDING_PAYMENT, NOW, NOW)
    assert not is_payable(S.CANCELLED, later, NOW)
    assert not is_payable(S.PAID, later, NOW)


def test_settlement_of_a_successful_payment():
    assert settle(S.PENDING_PAYMENT, False, "", "pay_a") is Settlement.PAY_ORDER
    assert settle(S.PENDING_PAYMENT, True, "", "pay_a") is Settlement.REFUND
    assert settle(S.CANCELLED, False, "", "pay_a") is Settlement.REFUND
    assert settle(S.PAID, False, "pay_a", "pay_a") is Settlement.DONE
    assert settle(S.SHIPPED, False, "pay_a", "pay_a") is Settlement.DONE
    assert settle(S.PAID, False, "pay_b", "pay_a") is Settlement.REFUND


def test_refund_reasons():
    assert refund_reason(S.CANCELLED) == "ORDER_CANCELLED"
    assert refund_reason(S.PENDING_PAYMENT) == "ORDER_EXPIRED"
    assert refund_reason(S.PAID) == "ORDER_ALREADY_PAID"
