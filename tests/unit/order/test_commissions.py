"""The commission rules of an order, without servers: who earns, what each eligible line owes
each level when the order is paid, and what refunds void (property-tested over any lines,
rates and sequence of partial refunds)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from services.order.domain.commissions import (Commission, CommissionLevel, Referral, after_refunds, all_voided,
                                               commission_amount, commissions_at_paid, voided_share)
from services.order.domain.orders import AppliedRefund, Order, OrderLine, OrderState, RefundedUnits
from services.order.domain.refunds import LineBalance
from services.order.domain.tender import KIND_RECHARGE, StoredValue

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DIST, UP, GUIDE = "mem_D", "mem_U", "stf_G"
TWO_LEVELS = Referral(distributor_id=DIST, distributor_rate_bp=1000, upline_distributor_id=UP, upline_rate_bp=500)


@dataclass(frozen=True)
class Line:
    line_id: str
    paid_amount: int
    refunded_amount: int = 0
    commission_eligible: bool = True


# ---- who earns ---------------------------------------------------------------------------

def test_only_levels_with_a_beneficiary_and_a_rate_earn():
    r = Referral(distributor_id=DIST, distributor_rate_bp=1000, upline_distributor_id=UP, upline_rate_bp=0,
                 guide_id=GUIDE, guide_rate_bp=200)
    assert r.beneficiaries() == ((CommissionLevel.LEVEL_1, DIST, 1000), (CommissionLevel.GUIDE, GUIDE, 200))
    assert Referral(distributor_rate_bp=1000, guide_rate_bp=300).beneficiaries() == ()
    assert Referral().is_empty and not Referral(guide_id=GUIDE).is_empty


def test_each_eligible_line_owes_each_level_the_floor_of_its_rate_of_the_paid_amount():
    lines = [Line("oln_a", 1999), Line("oln_b", 500, commission_eligible=False), Line("oln_c", 0)]
    got = commissions_at_paid(lines, TWO_LEVELS)
    assert got == (Commission("oln_a", CommissionLevel.LEVEL_1, DIST, 1000, 1999, 199),
                   Commission("oln_a", CommissionLevel.LEVEL_2, UP, 500, 1999, 99))


def test_no_referral_or_an_order_that_earns_nothing_owes_nothing():
    lines = [Line("oln_a", 1000)]
    assert commissions_at_paid(lines, None) == ()
    assert commissions_at_paid(lines, TWO_LEVELS, earns=False) == ()


# ---- refunds -----------------------------------------------------------------------------

def test_a_partial_refund_voids_its_share_rounded_down_and_a_full_one_voids_all():
    (c,) = commissions_at_paid([Line("oln_a", 1000)], Referral(distributor_id=DIST, distributor_rate_bp=1000))
    assert c.amount == 100
    (half,) = after_refunds((c,), [Line("oln_a", 1000, refunded_amount=333)])
    assert half.voided == 33
    (full,) = after_refunds((half,), [Line("oln_a", 1000, refunded_amount=1000)])
    assert full.voided == 100
    # A late, smaller figure never takes voided back.
    (still,) = after_refunds((full,), [Line("oln_a", 1000, refunded_amount=10)])
    assert still.voided == 100


def test_a_refund_of_another_line_leaves_the_commission_alone():
    (c,) = commissions_at_paid([Line("oln_a", 1000)], Referral(distributor_id=DIST, distributor_rate_bp=1000))
    assert after_refunds((c,), [Line("oln_b", 500, refunded_amount=500)]) == (c,)


def test_all_voided_voids_every_commission_in_full():
    cs = commissions_at_paid([Line("oln_a", 1000), Line("oln_b", 7)], TWO_LEVELS)
    assert all(c.voided == c.amount for c in all_voided(cs))


lines_st = st.lists(st.tuples(st.integers(0, 10_000_000), st.booleans()), min_size=1, max_size=6)
rates = st.integers(0, 10_000)
ids = st.sampled_from(["", "mem_X"])


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, r1=rates, r2=rates, rg=rates, d=ids, u=ids, g=ids,
       refunds=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000_000)), max_size=12))
def test_voided_stays_within_the_commission_grows_only_and_is_exact_at_full_refund(lines, r1, r2, rg, d, u, g,
                                                                                    refunds):
    referral = Referral(distributor_id=d, distributor_rate_bp=r1, upline_distributor_id=u, upline_rate_bp=r2,
                        guide_id=g, guide_rate_bp=rg)
    state = [Line(f"oln_{i}", paid, commission_eligible=eligible) for i, (paid, eligible) in enumerate(lines)]
    commissions = commissions_at_paid(state, referral)
    earning = len(referral.beneficiaries())
    assert len(commissions) == earning * sum(1 for l in state if l.commission_eligible and l.paid_amount > 0)
    for c in commissions:
        assert c.amount == commission_amount(c.base, c.rate_bp) == c.base * c.rate_bp // 10_000 and c.voided == 0
    for index, amount in refunds:
        i = index % len(state)
        line = state[i]
        state[i] = replace(line, refunded_amount=min(line.paid_amount, line.refunded_amount + amount))
        before = {(c.line_id, c.level): c.voided for c in commissions}
        commissions = after_refunds(commissions, state)
        by_line = {l.line_id: l for l in state}
        for c in commissions:
            assert before[(c.line_id, c.level)] <= c.voided <= c.amount <= c.base * c.rate_bp // 10_000
            assert c.voided == voided_share(c.amount, by_line[c.line_id])
    # Every line refunded in full: every commission is voided in full.
    state = [replace(l, refunded_amount=l.paid_amount) for l in state]
    assert all(c.voided == c.amount for c in after_refunds(commissions, state))


# ---- the order aggregate -----------------------------------------------------------------

def an_order(*, eligible=(True, True), referral=TWO_LEVELS, stored_value: StoredValue | None = None) -> Order:
    lines = [OrderLine(line_id=f"oln_{i}", sku_id=f"sku_{i}", product_id="prd_1", title="Tea", quantity=2,
                       unit_price=500, line_total=1000, line_amount=1000, paid_amount=1000, commission_eligible=e)
             for i, e in enumerate(eligible)]
    order = Order.place(order_id="ord_1", merchant_id="mch_1", member_id="mem_B", idempotency_key="k", lines=lines,
                        currency="CNY", total=2000, payable=2000, reservation_id="rsv_1", created_at=T0,
                        expires_at=T0 + timedelta(minutes=30), referral=referral)
    if stored_value is not None:
        order.stored_value = stored_value
    order.pull_events()
    return order


def test_paying_fills_the_commissions_and_refunds_void_them_in_the_same_change():
    order = an_order(eligible=(True, False))
    assert order.commissions == ()
    order.pay("pay_1", T0)
    assert [(c.line_id, c.level, c.amount) for c in order.commissions] == [
        ("oln_0", CommissionLevel.LEVEL_1, 100), ("oln_0", CommissionLevel.LEVEL_2, 50)]
    applied = AppliedRefund(amount=500, shipping_fee_refund=0, restock=False,
                            lines=(RefundedUnits("oln_0", "sku_0", 1, 500),))
    order.apply_refund("rfd_1", applied, [LineBalance("oln_0", "sku_0", 2, 1000, 1, 500)], T0)
    assert [c.voided for c in order.commissions] == [50, 25]


def test_an_empty_referral_is_kept_as_none_and_owes_nothing():
    order = an_order(referral=Referral())
    assert order.referral is None
    order.pay("pay_1", T0)
    assert order.commissions == ()


def test_a_recharge_order_owes_no_commission():
    order = an_order(stored_value=StoredValue(kind=KIND_RECHARGE))
    order.pay("pay_1", T0)
    assert order.state is OrderState.PAID and order.commissions == ()


def test_a_paid_order_cancelled_for_missing_stock_voids_every_commission():
    order = an_order()
    order.pay("pay_1", T0)
    order.cancel_unfulfillable(T0)
    assert order.commissions and all(c.voided == c.amount for c in order.commissions)
