"""Refund rules: units and amounts a refund may take, the default share, the shipping
fee, and when members and staff may ask."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from services.order.domain.orders import OrderState as S
from services.order.domain.refunds import (LineBalance, LineRequest, RefundMove, RefundState, after, approve, may_refund,
                                           plan, reject, share, shipping_fee_refund)

NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)
A = LineBalance("oln_a", "sku_a", quantity=3, paid_amount=100)
B = LineBalance("oln_b", "sku_b", quantity=1, paid_amount=50)


def test_default_share_floors_until_the_last_units_take_what_is_left():
    assert share(A, 1) == 33
    assert share(A, 2) == 66
    assert share(A, 3) == 100
    taken = after([A], plan([A], [LineRequest("oln_a", 1)]).lines)[0]
    assert (taken.units_left, taken.amount_left) == (2, 67)
    assert share(taken, 2) == 67  # all remaining units: all remaining amount
    assert share(taken, 1) == 33


def test_share_never_exceeds_what_is_left_after_explicit_amounts():
    line = LineBalance("oln_a", "sku_a", quantity=3, paid_amount=100, refunded_quantity=1, refunded_amount=90)
    assert share(line, 1) == 10


def test_plan_takes_default_and_explicit_amounts():
    p = plan([A, B], [LineRequest("oln_a", 2), LineRequest("oln_b", 1, amount=20)])
    assert not p.problems
    assert [(l.line_id, l.sku_id, l.quantity, l.amount) for l in p.lines] == \
        [("oln_a", "sku_a", 2, 66), ("oln_b", "sku_b", 1, 20)]
    assert p.amount == 86


def test_plan_reports_every_line_that_does_not_fit_and_plans_nothing():
    done = LineBalance("oln_b", "sku_b", quantity=1, paid_amount=50, refunded_quantity=1, refunded_amount=50)
    p = plan([A, done], [LineRequest("oln_x", 1), LineRequest("oln_a", 4), LineRequest("oln_a", 1),
                         LineRequest("oln_b", 1)])
    assert p.lines == () and p.amount == 0
    assert dict(p.problems) == {"lines[0].line_id": "not a line of this order",
                                "lines[1].quantity": "1..3 (units not yet refunded)",
                                "lines[2].line_id": "the same line as lines[1]",
                                "lines[3].quantity": "1..0 (units not yet refunded)"}
    dup = plan([A], [LineRequest("oln_a", 1), LineRequest("oln_a", 1)])
    assert [f for f, _ in dup.problems] == ["lines[1].line_id"]
    assert [f for f, _ in plan([A], [LineRequest("oln_a", 1, amount=101)]).problems] == ["lines[0].amount"]
    assert [f for f, _ in plan([A], [LineRequest("oln_a", 1, amount=0)]).problems] == ["lines[0].amount"]
    assert [f for f, _ in plan([A], []).problems] == ["lines"]


def test_shipping_fee_goes_back_with_the_refund_that_leaves_nothing_to_ship():
    everything = after([A, B], plan([A, B], [LineRequest("oln_a", 3), LineRequest("oln_b", 1)]).lines)
    some = after([A, B], plan([A, B], [LineRequest("oln_a", 3)]).lines)
    assert shipping_fee_refund(True, everything, 800, 0) == 800
    assert shipping_fee_refund(True, some, 800, 0) == 0
    assert shipping_fee_refund(False, everything, 800, 0) == 0  # shipped: the fee was spent
    assert shipping_fee_refund(True, everything, 0, 0) == 0


def test_who_may_refund_when():
    for state in (S.PAID, S.SHIPPED, S.DELIVERED):
        assert may_refund(state, None, 7, NOW)
    for state in (S.PENDING_PAYMENT, S.CANCELLED):
        assert not may_refund(state, None, 7, NOW)
    assert may_refund(S.COMPLETED, NOW - timedelta(days=6, hours=23), 7, NOW)
    assert not may_refund(S.COMPLETED, NOW - timedelta(days=7), 7, NOW)
    assert not may_refund(S.COMPLETED, NOW, 0, NOW)


def test_refund_moves():
    assert approve(RefundState.REQUESTED) is RefundMove.APPLY
    assert approve(RefundState.APPROVED) is RefundMove.REPEAT
    assert approve(RefundState.REFUNDED) is RefundMove.REPEAT
    assert approve(RefundState.REJECTED) is RefundMove.REFUSE
    assert reject(RefundState.REQUESTED) is RefundMove.APPLY
    assert reject(RefundState.REJECTED) is RefundMove.REPEAT
    assert reject(RefundState.APPROVED) is RefundMove.REFUSE
    assert reject(RefundState.REFUNDED) is RefundMove.REFUSE


@given(quantity=st.integers(1, 50), paid=st.integers(0, 1_000_000), data=st.data())
def test_default_refunds_in_any_parts_return_exactly_what_was_paid(quantity, paid, data):
    line = LineBalance("oln_a", "sku_a", quantity=quantity, paid_amount=paid)
    while line.units_left:
        units = data.draw(st.integers(1, line.units_left))
        p = plan([line], [LineRequest("oln_a", units)])
        assert not p.problems and 0 <= p.amount <= line.amount_left
        (line,) = after([line], p.lines)
    assert (line.refunded_quantity, line.refunded_amount) == (quantity, paid)
