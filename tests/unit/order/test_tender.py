"""The tender of an order paid partly with balance, and how refunds split it: property
tests over any tender and any sequence of refunds."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import FailedPrecondition

from services.order.domain.tender import Hold, RechargeTerms, StoredValue, Tender, split_refund

MAX = 10_000_000_000


@st.composite
def tender_and_refunds(draw):
    """A tender and refunds that together return at most what was paid (often all of it)."""
    balance = draw(st.integers(0, MAX))
    provider = draw(st.integers(0, MAX - balance))
    paid = balance + provider
    amounts, left = [], paid
    for _ in range(draw(st.integers(0, 8))):
        if left == 0:
            break
        amount = draw(st.integers(1, left))
        amounts.append(amount)
        left -= amount
    if left and draw(st.booleans()):
        amounts.append(left)  # refund what is left
    return Tender(balance=balance, provider=provider), amounts


@given(tender_and_refunds())
def test_refund_parts_are_never_negative_add_up_and_never_exceed_the_tender(case):
    tender, amounts = case
    for amount in amounts:
        before = tender
        tender, split = tender.refund(amount)
        assert split.balance >= 0 and split.provider >= 0
        assert split.balance + split.provider == amount
        assert tender.balance_refunded == before.balance_refunded + split.balance
        assert tender.balance_refunded <= tender.balance and tender.provider_refunded <= tender.provider


@given(tender_and_refunds())
def test_refunding_everything_returns_each_part_exactly(case):
    tender, amounts = case
    for amount in amounts:
        tender, _ = tender.refund(amount)
    if sum(amounts) == tender.paid:
        assert tender.balance_refunded == tender.balance and tender.provider_refunded == tender.provider


@given(tender_and_refunds())
def test_each_refunds_balance_part_follows_the_cumulative_share(case):
    """Cumulative largest-remainder: after any refunds the balance has had back exactly
    floor(refunded × balance / paid), so no rounding error accumulates."""
    tender, amounts = case
    for amount in amounts:
        tender, _ = tender.refund(amount)
        if tender.paid:
            assert tender.balance_refunded == tender.refunded * tender.balance // tender.paid


def test_a_refund_beyond_what_was_paid_is_refused():
    with pytest.raises(ValueError):
        split_refund(balance=300, provider=700, refunded_before=900, amount=101)


def test_an_order_paid_wholly_with_balance_refunds_only_to_the_balance():
    tender, split = Tender(balance=1000, provider=0).refund(333)
    assert (split.balance, split.provider) == (333, 0)


def test_an_order_paid_without_balance_refunds_only_through_the_provider_and_stores_nothing():
    sv, split = StoredValue().refund("rfd_1", 400, payable=1000)
    assert (split.balance, split.provider) == (0, 400) and sv.is_default


def test_a_refund_split_twice_answers_the_first_split():
    sv, first = StoredValue().held(300, 1000).refund("rfd_1", 500, payable=1000)
    again, second = sv.refund("rfd_1", 500, payable=1000)
    assert again is sv and second == first == first.__class__(balance=150, provider=350)


# ---- the hold as the order knows it ---------------------------------------------------


def test_a_recharge_order_is_never_paid_with_balance():
    sv = StoredValue.recharge_of(RechargeTerms("rcp_1", 10000, 2000))
    with pytest.raises(FailedPrecondition) as refused:
        sv.asking()
    assert refused.value.reason == "RECHARGE_NOT_PAYABLE_WITH_BALANCE"


def test_paying_without_balance_gives_the_hold_back_and_a_later_hold_is_refused():
    sv = StoredValue().asking().held(300, 1000).without_balance(1000)
    assert sv.hold is Hold.RELEASING and sv.balance == 0 and sv.tender == Tender(0, 1000)
    with pytest.raises(FailedPrecondition) as refused:
        sv.asking()
    assert refused.value.reason == "BALANCE_HOLD_GIVEN_BACK"


def test_what_the_member_service_is_owed():
    held = StoredValue().asking().held(300, 1000)
    assert held.owes_capture(paid=True) and not held.owes_capture(paid=False)
    assert held.owes_release(paid=False, cancelled=True) and not held.owes_release(paid=True, cancelled=False)
    asked = StoredValue().asking()
    assert asked.owes_release(paid=False, cancelled=True) and asked.owes_release(paid=True, cancelled=False)
    assert not StoredValue().owes_release(paid=True, cancelled=True)


def test_a_payment_fits_the_order_only_beside_the_balance_it_was_started_with():
    held = StoredValue().asking().held(300, 1000)
    assert held.fits(300) and not held.fits(0)
    assert StoredValue().fits(0) and not held.without_balance(1000).fits(300)
