"""The payment split: for any order, commissions, supplier links and refunds before and
after settlement, the split and its reversals balance to the fen against the payment
ledger, the merchant's net is never negative, and profit sharing stays within its maximum."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from services.order.domain import ledger
from services.order.domain.split import (COMMISSION, PLATFORM, SHARE_NONE, SHARE_PENDING, SUPPLIER, OwedCommission,
                                         SettledLine, SettledOrder, SplitRecord, SplitSettings, SupplyTerms, figures,
                                         max_share, split_lines)
from services.order.domain.tender import split_refund

AT = datetime(2026, 3, 1, 8, tzinfo=timezone.utc)


def voided(amount: int, refunded: int, paid: int, full: bool) -> int:
    """The contract's rule: all of it once the line is fully refunded, else in proportion."""
    if full:
        return amount
    return amount * refunded // paid if paid else 0


class World:
    """An order with lines, a tender, commissions and a payment ledger, refunded unit by unit."""

    def __init__(self, lines, balance_bp, rates):
        self.qty = {f"l{i}": q for i, (q, _) in enumerate(lines)}
        self.paid = {f"l{i}": p for i, (_, p) in enumerate(lines)}
        self.refunded_qty = {k: 0 for k in self.qty}
        self.refunded_amt = {k: 0 for k in self.qty}
        total = sum(self.paid.values())
        self.balance = total * balance_bp // 10_000
        self.provider = total - self.balance
        self.balance_refunded = self.provider_refunded = 0
        self.rates = rates  # [(line index, level, beneficiary, rate_bp)]
        self.entries = []
        if self.provider:
            self.entries.append(ledger.payment_applied("ord_x", "pay_x", self.provider))
        if self.balance:
            self.entries.append(ledger.balance_applied("ord_x", "pay_x", self.balance))
        self.refunds = 0

    def commissions(self):
        out = []
        for index, level, who, rate in self.rates:
            line = f"l{index % len(self.qty)}"
            amount = self.paid[line] * rate // 10_000
            full = self.refunded_qty[line] == self.qty[line]
            out.append(OwedCommission(line, level, who, amount,
                                      voided(amount, self.refunded_amt[line], self.paid[line], full)))
        return tuple(out)

    def snapshot(self) -> SettledOrder:
        return SettledOrder(order_id="ord_x", merchant_id="mch_x", payment_id="pay_x", balance_paid=self.balance,
                            provider_paid=self.provider, balance_refunded=self.balance_refunded,
                            provider_refunded=self.provider_refunded,
                            lines=tuple(SettledLine(k, f"sku_{k}", self.qty[k], self.refunded_qty[k])
                                        for k in self.qty),
                            commissions=self.commissions())

    def refund(self, line_pick: int, units: int) -> str | None:
        line = list(self.qty)[line_pick % len(self.qty)]
        left = self.qty[line] - self.refunded_qty[line]
        if left == 0:
            return None
        units = min(units, left)
        after = self.refunded_qty[line] + units
        amount_after = self.paid[line] if after == self.qty[line] else self.paid[line] * after // self.qty[line]
        amount = amount_after - self.refunded_amt[line]
        self.refunded_qty[line], self.refunded_amt[line] = after, amount_after
        self.refunds += 1
        refund_id = f"rfd_{self.refunds}"
        part = split_refund(self.balance, self.provider, self.balance_refunded + self.provider_refunded, amount)
        self.balance_refunded += part.balance
        self.provider_refunded += part.provider
        if part.balance:
            self.entries.append(ledger.balance_refunded("ord_x", refund_id, part.balance))
        if part.provider:
            self.entries.append(ledger.order_refunded("ord_x", "pay_x", refund_id, part.provider))
        return refund_id

    def ledger_gross(self) -> int:
        return -ledger.balances(self.entries).get(ledger.order_account("ord_x"), 0)


lines_st = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 50_000)), min_size=1, max_size=4)
rates_st = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["LEVEL_1", "LEVEL_2", "GUIDE"]),
                              st.sampled_from(["mem_a", "mem_b", "stf_g"]), st.integers(0, 3000)), max_size=5)
refunds_st = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), max_size=8)
settings_st = st.builds(SplitSettings, platform_fee_bp=st.integers(0, 3000), provider_fee_bp=st.integers(0, 1000),
                        max_share_bp=st.integers(0, 10_000),
                        platform_account=st.sampled_from(["", "1900000001"]))


def _sum_parts(f):
    return {(p.kind, p.party_id): p.amount for p in f.parts}


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, balance_bp=st.integers(0, 10_000), rates=rates_st, refunds=refunds_st,
       before=st.integers(0, 8), prices=st.lists(st.integers(0, 60_000), min_size=4, max_size=4),
       linked=st.lists(st.booleans(), min_size=4, max_size=4), s=settings_st,
       bank=st.booleans())
def test_split_and_reversals_balance_against_the_ledger(lines, balance_bp, rates, refunds, before, prices, linked,
                                                        s, bank):
    world = World(lines, balance_bp, rates)
    for pick, units in refunds[:before]:
        world.refund(pick, units)
    terms = {f"sku_l{i}": SupplyTerms("sup_a" if i % 2 else "sup_b", prices[i])
             for i in range(len(lines)) if linked[i]}
    accounts = {"sup_a": "1900000002"} if bank else {"sup_a": "1900000002", "sup_b": "1900000003"}
    order = world.snapshot()
    record = SplitRecord.write(order, terms, s, accounts, world.ledger_gross(), AT)

    f = record.initial
    assert f.balanced()
    assert f.merchant_net >= 0 and f.shortfall >= 0 and f.provider_fee >= 0
    assert all(p.amount > 0 for p in f.parts)
    assert record.ledger_matches and f.gross == world.ledger_gross()
    assert f.part(PLATFORM) == f.gross * s.platform_fee_bp // 10_000
    assert f.provider_fee == order.provider_net * s.provider_fee_bp // 10_000
    assert f.total(COMMISSION) == sum(c.amount - c.voided for c in order.commissions)
    # Profit sharing: only of the provider part, within the maximum share, never more than due.
    assert sum(x.amount for x in record.shares) <= max_share(f, s)
    for x in record.shares:
        assert x.amount <= f.part(x.kind, x.party_id)
    assert record.share_state == (SHARE_PENDING if order.provider_net > 0 else SHARE_NONE)
    if order.provider_net == 0:
        assert record.shares == ()

    for pick, units in refunds[before:]:
        refund_id = world.refund(pick, units)
        if refund_id is None:
            continue
        reversal = record.reverse(refund_id, world.snapshot(), AT)
        assert reversal is not None
        r = reversal.figures
        assert r.balanced()
        assert all(p.amount >= 0 for p in r.parts) and r.provider_fee >= 0 and r.gross >= 0
        # The same refund again changes nothing.
        assert record.reverse(refund_id, world.snapshot(), AT) is None
        assert record.current.balanced() and record.current.merchant_net >= 0
        assert record.current.gross == world.ledger_gross()
        held = {}
        for x in record.shares:
            held[(x.kind, x.party_id)] = x.amount - sum(
                y.amount for y in record.returns if (y.kind, y.party_id) == (x.kind, x.party_id))
        assert sum(held.values()) <= max(max_share(record.current, s), 0) or not record.shares
        assert all(v >= 0 for v in held.values())

    # The split minus its reversals is the split of the order as it stands now.
    now = figures(world.snapshot(), split_lines(order, terms), s)
    assert record.current == now
    parts = _sum_parts(record.initial)
    for rev in record.reversals:
        for key, amount in _sum_parts(rev.figures).items():
            parts[key] -= amount
    assert {k: v for k, v in parts.items() if v} == _sum_parts(now)
    assert record.initial.gross - sum(x.figures.gross for x in record.reversals) == now.gross


def test_costs_beyond_gross_are_the_merchants_shortfall_not_a_negative_net():
    order = SettledOrder("ord_x", "mch_x", "pay_x", balance_paid=0, provider_paid=1000,
                         lines=(SettledLine("l0", "sku_a", 2),),
                         commissions=(OwedCommission("l0", "LEVEL_1", "mem_a", 100),))
    f = figures(order, split_lines(order, {"sku_a": SupplyTerms("sup_a", 600)}), SplitSettings(platform_fee_bp=500))
    assert f.part(SUPPLIER, "sup_a") == 1200 and f.part(PLATFORM) == 50 and f.provider_fee == 6
    assert f.merchant_net == 0 and f.shortfall == 1200 + 100 + 50 + 6 - 1000
    assert f.balanced()


def test_a_worked_split():
    order = SettledOrder("ord_x", "mch_x", "pay_x", balance_paid=2000, provider_paid=8000,
                         provider_refunded=1000,
                         lines=(SettledLine("l0", "sku_a", 3, refunded_quantity=1), SettledLine("l1", "sku_b", 1)),
                         commissions=(OwedCommission("l0", "LEVEL_1", "mem_a", 900, voided=300),
                                      OwedCommission("l0", "LEVEL_2", "mem_b", 450, voided=150)))
    terms = {"sku_a": SupplyTerms("sup_a", 1500)}
    s = SplitSettings(platform_fee_bp=100, provider_fee_bp=60, max_share_bp=3000, platform_account="19000")
    record = SplitRecord.write(order, terms, s, {"sup_a": "19001"}, 9000, AT)
    f = record.initial
    assert (f.gross, f.part(SUPPLIER, "sup_a"), f.part(COMMISSION, "mem_a"), f.part(COMMISSION, "mem_b"),
            f.part(PLATFORM), f.provider_fee, f.merchant_net) == (9000, 3000, 600, 300, 90, 42, 4968)
    # At most 30% of the 7000 paid through the provider: 2100; the platform's 90 first.
    assert [(x.kind, x.amount) for x in record.shares] == [(PLATFORM, 90), (SUPPLIER, 2010)]
    assert record.supplier_figures("sup_a") == (3000, 2010)


def test_an_older_snapshot_or_a_refund_before_the_split_reverses_nothing():
    base = SettledOrder("ord_x", "mch_x", "pay_x", balance_paid=0, provider_paid=1000,
                        lines=(SettledLine("l0", "sku_a", 2, refunded_quantity=1),), provider_refunded=500)
    record = SplitRecord.write(base, {}, SplitSettings(), {}, 500, AT)
    assert record.reverse("rfd_before", base, AT) is None
    older = replace(base, provider_refunded=0, lines=(SettledLine("l0", "sku_a", 2),))
    assert record.reverse("rfd_old", older, AT) is None
    assert record.reversals == ()
