"""Order and payment state rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.order.domain.orders import (CancelDecision, Move, OrderState, auto_confirm_ms, can_transition, decide,
                                          is_payable, is_shippable, member_cancel)
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


def test_fulfilment_transitions():
    assert can_transition(S.SHIPPED, S.COMPLETED) and can_transition(S.DELIVERED, S.COMPLETED)
    assert not can_transition(S.PAID, S.COMPLETED) and not can_transition(S.PAID, S.DELIVERED)
    assert not can_transition(S.COMPLETED, S.DELIVERED)


@pytest.mark.parametrize("state,target,move", [
    (S.PAID, S.SHIPPED, Move.APPLY), (S.SHIPPED, S.SHIPPED, Move.REPEAT), (S.DELIVERED, S.SHIPPED, Move.REFUSE),
    (S.PENDING_PAYMENT, S.SHIPPED, Move.REFUSE), (S.SHIPPED, S.DELIVERED, Move.APPLY),
    (S.DELIVERED, S.DELIVERED, Move.REPEAT), (S.PAID, S.DELIVERED, Move.REFUSE),
    (S.SHIPPED, S.COMPLETED, Move.APPLY), (S.DELIVERED, S.COMPLETED, Move.APPLY),
    (S.COMPLETED, S.COMPLETED, Move.REPEAT), (S.PAID, S.COMPLETED, Move.REFUSE), (S.CANCELLED, S.COMPLETED, Move.REFUSE),
])
def test_decide(state, target, move):
    assert decide(state, target) is move


def test_auto_confirm_time_is_the_merchant_days_after_shipping():
    shipped_ms = 1_767_225_600_000  # 2026-01-01T00:00Z
    assert auto_confirm_ms(shipped_ms, 10) == shipped_ms + 10 * 86_400_000
    assert auto_confirm_ms(shipped_ms, 1) - shipped_ms == 86_400_000


def test_shippable_only_with_units_left_and_no_open_refund():
    assert is_shippable(3, 0)
    assert not is_shippable(0, 0)
    assert not is_shippable(3, 1)
