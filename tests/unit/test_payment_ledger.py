"""The payment ledger: deterministic entries, balances, and that any sequence of
charges and refunds keeps it balanced without refunding more than was charged."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from services.order.domain import ledger
from services.order.domain.refunds import LineBalance, LineRequest, after, plan, shipping_fee_refund

ORDER = "ord_01JTEST0000000000000000000"


def test_entries_have_ids_that_follow_from_their_cause():
    paid = ledger.payment_applied(ORDER, "pay_1", 500)
    assert paid == ledger.payment_applied(ORDER, "pay_1", 500)
    assert (paid.entry_id, paid.debit, paid.credit) == ("ORDER_PAYMENT:pay_1", "PROVIDER_CLEARING", f"ORDER:{ORDER}")
    refund = ledger.order_refunded(ORDER, "pay_1", "rfd_1", 200)
    assert (refund.entry_id, refund.debit, refund.credit) == ("REFUND:rfd_1", f"ORDER:{ORDER}", "PROVIDER_CLEARING")
    with pytest.raises(ValueError):
        ledger.payment_applied(ORDER, "pay_1", 0)


def test_an_unapplied_payment_nets_to_zero_once_sent_back():
    entries = [ledger.payment_applied(ORDER, "pay_1", 500), ledger.payment_unapplied(ORDER, "pay_2", 500)]
    assert ledger.balances(entries)[f"UNAPPLIED:{ORDER}"] == -500
    assert ledger.is_balanced(entries, ORDER, paid=500, refunded=0)
    entries.append(ledger.payment_auto_refunded(ORDER, "pay_2", 500))
    assert ledger.balances(entries) == {"PROVIDER_CLEARING": 500, f"ORDER:{ORDER}": -500, f"UNAPPLIED:{ORDER}": 0}
    assert ledger.is_balanced(entries, ORDER, paid=500, refunded=0)


def test_the_order_account_must_match_paid_minus_refunded():
    entries = [ledger.payment_applied(ORDER, "pay_1", 500), ledger.order_refunded(ORDER, "pay_1", "rfd_1", 200)]
    assert ledger.is_balanced(entries, ORDER, paid=500, refunded=200)
    assert not ledger.is_balanced(entries, ORDER, paid=500, refunded=0)  # a refund the ledger missed
    assert not ledger.is_balanced(entries[:1], ORDER, paid=500, refunded=200)
    assert not ledger.is_balanced([], ORDER, paid=500, refunded=0)
    assert not ledger.is_balanced(entries, ORDER, paid=100, refunded=200)


lines_strategy = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 50_000)), min_size=1, max_size=4)
attempt = st.tuples(st.integers(0, 3), st.integers(1, 6), st.one_of(st.none(), st.integers(1, 60_000)))


@given(lines=lines_strategy, shipping=st.integers(0, 2_000), never_shipped=st.booleans(),
       extra_payments=st.integers(0, 2), attempts=st.lists(attempt, max_size=12))
def test_any_charges_and_refunds_keep_the_ledger_balanced(lines, shipping, never_shipped, extra_payments, attempts):
    order = [LineBalance(f"oln_{i}", f"sku_{i}", quantity=q, paid_amount=p) for i, (q, p) in enumerate(lines)]
    paid = sum(p for _, p in lines) + shipping
    entries = [ledger.payment_applied(ORDER, "pay_0", paid)] if paid else []
    # Payments the order could not take are sent back in full.
    for n in range(1, extra_payments + 1):
        entries += [ledger.payment_unapplied(ORDER, f"pay_{n}", paid or 1),
                    ledger.payment_auto_refunded(ORDER, f"pay_{n}", paid or 1)]
    refunded = shipping_refunded = 0
    for n, (index, quantity, amount) in enumerate(attempts):
        line = order[index % len(order)]
        p = plan(order, [LineRequest(line.line_id, quantity, amount)])
        if p.problems:
            continue  # refused: nothing moves
        order = after(order, p.lines)
        fee = shipping_fee_refund(never_shipped, order, shipping, shipping_refunded)
        shipping_refunded += fee
        if p.amount + fee:
            entries.append(ledger.order_refunded(ORDER, "pay_0", f"rfd_{n}", p.amount + fee))
        refunded += p.amount + fee
        assert refunded <= paid
        assert ledger.is_balanced(entries, ORDER, paid, refunded)
    assert all(0 <= l.refunded_amount <= l.paid_amount and 0 <= l.refunded_quantity <= l.quantity for l in order)
    assert ledger.is_balanced(entries, ORDER, paid, refunded)
