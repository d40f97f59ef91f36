"""Who may release an order's reservation, the system-only cancel of a paid order whose
units were gone, and a ledger that stays unbalanced while captured money is unaccounted."""
from __future__ import annotations

import pytest

from services.catalog.domain import stock
from services.order.domain import ledger
from services.order.domain.orders import (Move, OrderState, ReservationVerdict, member_cancel,
                                          reservation_verdict, stock_unavailable_cancel, CancelDecision)

ORDER = "ord_01JTEST0000000000000000000"


@pytest.mark.parametrize("state, verdict", [
    (OrderState.PENDING_PAYMENT, ReservationVerdict.KEEP),
    (OrderState.PAID, ReservationVerdict.COMMIT),
    (OrderState.SHIPPED, ReservationVerdict.COMMIT),
    (OrderState.DELIVERED, ReservationVerdict.COMMIT),
    (OrderState.COMPLETED, ReservationVerdict.COMMIT),
    (OrderState.CANCELLED, ReservationVerdict.RELEASE),
])
def test_only_the_order_decides_what_becomes_of_its_reservation(state, verdict):
    assert reservation_verdict(state, owns_reservation=True) is verdict


def test_a_reservation_without_its_order_is_released():
    assert reservation_verdict(None, owns_reservation=False) is ReservationVerdict.RELEASE
    # An order written with another reservation does not hold this one, even when paid.
    assert reservation_verdict(OrderState.PAID, owns_reservation=False) is ReservationVerdict.RELEASE


def test_only_a_paid_order_is_cancelled_for_missing_stock_and_a_member_never_can():
    assert stock_unavailable_cancel(OrderState.PAID) is Move.APPLY
    assert stock_unavailable_cancel(OrderState.CANCELLED) is Move.REPEAT
    for state in (OrderState.PENDING_PAYMENT, OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED):
        assert stock_unavailable_cancel(state) is Move.REFUSE
    assert member_cancel(OrderState.PAID) is CancelDecision.TOO_LATE


def test_a_late_hold_has_its_own_key_that_leads_back_to_the_reservation():
    key = stock.late_hold_key("rsv_01JABC")
    assert key != "rsv_01JABC"
    assert stock.reservation_of_hold(key) == "rsv_01JABC"
    assert stock.reservation_of_hold("rsv_01JABC") == "rsv_01JABC"
    # Its movements are distinct from the first hold's, so both stay in the stock ledger.
    assert stock.movement_id(stock.RESERVE, "sku_1", key) != stock.movement_id(stock.RESERVE, "sku_1", "rsv_01JABC")


def test_a_paid_order_refunded_for_missing_stock_balances_to_the_fen():
    entries = [ledger.payment_applied(ORDER, "pay_1", 500), ledger.payment_returned(ORDER, "pay_1", 500)]
    assert ledger.payment_returned(ORDER, "pay_1", 500).entry_id == "STOCK_REFUND:pay_1"
    assert ledger.balances(entries) == {"PROVIDER_CLEARING": 0, f"ORDER:{ORDER}": 0}
    assert ledger.is_balanced(entries, ORDER, paid=500, refunded=500, captured=["pay_1"])
    assert not ledger.is_balanced(entries[:1], ORDER, paid=500, refunded=500, captured=["pay_1"])


def test_a_captured_payment_with_no_entry_leaves_the_ledger_unbalanced():
    # The order expired and was cancelled, while a payment succeeded and was never applied.
    assert ledger.is_balanced([], ORDER, paid=0, refunded=0)
    assert not ledger.is_balanced([], ORDER, paid=0, refunded=0, captured=["pay_1"])
    sent_back = [ledger.payment_unapplied(ORDER, "pay_1", 500), ledger.payment_auto_refunded(ORDER, "pay_1", 500)]
    assert ledger.is_balanced(sent_back, ORDER, paid=0, refunded=0, captured=["pay_1"])
    applied = [ledger.payment_applied(ORDER, "pay_1", 500)]
    assert ledger.is_balanced(applied, ORDER, paid=500, refunded=0, captured=["pay_1"])
    assert not ledger.is_balanced(applied, ORDER, paid=500, refunded=0, captured=["pay_1", "pay_2"])
