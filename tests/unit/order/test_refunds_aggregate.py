"""The Refund aggregate: REQUESTED → APPROVED → REFUNDED or REJECTED, repeats, refusals,
and what the order takes for it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.aggregate import Move
from siyu_kit.errors import FailedPrecondition

from services.order.domain import refunds as rules
from services.order.domain.orders import RefundedUnits
from services.order.domain.refunds import (BY_MEMBER, BY_STAFF, MACHINE, PROVIDER_CALL_LEASE_MS, LineBalance,
                                           LineRequest, Refund, RefundState)

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
A = LineBalance("oln_a", "sku_a", quantity=3, paid_amount=100)
B = LineBalance("oln_b", "sku_b", quantity=1, paid_amount=50)


def opened(by: str = BY_MEMBER, *requests: LineRequest) -> Refund:
    requests = requests or (LineRequest("oln_a", 1), LineRequest("oln_b", 1, 20))
    planned = rules.plan([A, B], requests)
    return Refund.open("rfd_1", merchant_id="mch_1", order_id="ord_1", member_id="mem_1", requested_by=by,
                       idempotency_key="k", planned=planned,
                       explicit=frozenset(r.line_id for r in requests if r.amount is not None), currency="CNY",
                       reason="broken", now=NOW)


def test_the_state_machine():
    assert MACHINE.decide(RefundState.REQUESTED, RefundState.APPROVED) is Move.APPLY
    assert MACHINE.decide(RefundState.APPROVED, RefundState.REFUNDED) is Move.APPLY
    assert MACHINE.decide(RefundState.REJECTED, RefundState.APPROVED) is Move.REFUSE
    assert MACHINE.is_final(RefundState.REFUNDED) and MACHINE.is_final(RefundState.REJECTED)


def test_a_member_request_waits_and_a_staff_refund_is_approved_at_once():
    asked = opened()
    assert (asked.state, asked.approved_ms, asked.amount, asked.version) == (RefundState.REQUESTED, None, 53, 1)
    assert [(l.line_id, l.amount, l.explicit) for l in asked.lines] == [("oln_a", 33, False), ("oln_b", 20, True)]
    assert asked.requests() == [LineRequest("oln_a", 1, None), LineRequest("oln_b", 1, 20)]
    staff = opened(BY_STAFF)
    assert (staff.state, staff.approved_ms) == (RefundState.APPROVED, NOW_MS)


def test_approve_applies_then_repeats_and_refuses_a_rejected_refund():
    refund = opened()
    assert refund.approve(NOW) is Move.APPLY and refund.state is RefundState.APPROVED
    assert refund.approved_ms == NOW_MS
    assert refund.approve(NOW) is Move.REPEAT
    rejected = opened()
    rejected.reject("no")
    with pytest.raises(FailedPrecondition) as refused:
        rejected.approve(NOW)
    assert refused.value.reason == "REFUND_NOT_APPROVABLE"


def test_reject_applies_then_repeats_and_refuses_once_approved():
    refund = opened()
    assert refund.reject("used") is Move.APPLY and (refund.state, refund.note) == (RefundState.REJECTED, "used")
    assert refund.reject("again") is Move.REPEAT and refund.note == "used"
    approved = opened(BY_STAFF)
    with pytest.raises(FailedPrecondition) as refused:
        approved.reject("no")
    assert refused.value.reason == "REFUND_NOT_REJECTABLE"


def test_finishing_shows_what_the_order_took():
    refund = opened(BY_STAFF)
    applied, problems = rules.take([A, B], refund.requests(), never_shipped=True, shipping_fee=10,
                                   shipping_fee_refunded=0)
    assert problems == () and applied.restock
    refund.finish(applied, "rf_1", NOW)
    assert (refund.state, refund.refunded_at, refund.provider_refund_id) == (RefundState.REFUNDED, NOW, "rf_1")
    assert refund.amount == applied.amount == 53 and refund.shipping_fee_refund == 0
    assert all(l.restocked for l in refund.lines) and refund.lines[1].explicit
    with pytest.raises(FailedPrecondition):
        refund.finish(applied, "rf_2", NOW)


def test_the_order_takes_what_is_left_and_the_fee_with_the_last_units():
    applied, _ = rules.take([A, B], [LineRequest("oln_a", 3), LineRequest("oln_b", 1)], never_shipped=True,
                            shipping_fee=10, shipping_fee_refunded=0)
    assert (applied.amount, applied.shipping_fee_refund) == (160, 10)
    assert applied.lines == (RefundedUnits("oln_a", "sku_a", 3, 100), RefundedUnits("oln_b", "sku_b", 1, 50))
    shipped, _ = rules.take([A, B], [LineRequest("oln_a", 3), LineRequest("oln_b", 1)], never_shipped=False,
                            shipping_fee=10, shipping_fee_refunded=0)
    assert (shipped.amount, shipped.restock) == (150, False)


def test_an_approved_refund_outrun_by_another_is_rejected():
    refund = opened(BY_STAFF)
    gone = [rules.after([A, B], [rules.RefundedLine("oln_a", "sku_a", 3, 100)])[0], B]
    applied, problems = rules.take(gone, refund.requests(), never_shipped=True, shipping_fee=0,
                                   shipping_fee_refunded=0)
    assert applied is None and problems == (("lines[0].quantity", "1..0 (units not yet refunded)"),)
    refund.no_longer_fits()
    assert refund.state is RefundState.REJECTED and refund.note == rules.NO_LONGER_FITS
    error = rules.no_longer_fits(problems)
    assert error.reason == "REFUND_EXCEEDS_REMAINING" and error.violations[0].field == "lines[0].quantity"


def test_only_an_approved_refund_is_taken_for_the_provider_and_the_take_lasts_its_lease():
    asked = opened()
    with pytest.raises(FailedPrecondition):
        asked.call_provider(NOW)
    staff_refund = opened(BY_STAFF)
    assert not staff_refund.provider_call_fresh(NOW)
    staff_refund.call_provider(NOW)
    assert staff_refund.changed == {"provider_call_ms"}
    lease = timedelta(milliseconds=PROVIDER_CALL_LEASE_MS)
    assert staff_refund.provider_call_fresh(NOW + lease - timedelta(milliseconds=1))
    assert not staff_refund.provider_call_fresh(NOW + lease)
