"""The price pipeline: member prices per line, order steps spread by largest remainder,
shipping, and the invariants that hold whatever the inputs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from services.order.domain.price_sources import FlatShipping, ThresholdReductions
from services.order.domain.pricing import (ACTIVITY_PRICE, DEFAULT_PIPELINE, LIMITED_TIME_PRICE, TIER_DISCOUNT,
                                           THRESHOLD_REDUCTION, LineInput, Offer, Pipeline, Place, Step, best_offer,
                                           limited_time_offer, tier_offer)
from services.order.domain.settings import OrderSettings, ThresholdReduction

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
LINE_STEPS = {ACTIVITY_PRICE, LIMITED_TIME_PRICE, TIER_DISCOUNT}


def line(i: int, price: int, qty: int, *offers: Offer) -> LineInput:
    return LineInput(sku_id=f"sku_{i}", product_id=f"prd_{i}", title=f"t{i}", quantity=qty, unit_price=price,
                     offers=offers)


@dataclass(frozen=True)
class FixedOff:
    """An order step wanting a fixed amount off (stands in for a coupon or points)."""
    name: str
    amount: int

    @property
    def place(self) -> Place:
        return Place[self.name]

    def discount(self, lines, goods_amount):
        return self.amount, f"{self.name} off"


def test_default_pipeline_charges_list_price_and_free_shipping():
    quote = DEFAULT_PIPELINE.price([line(1, 1999, 2), line(2, 500, 1)])
    assert quote.total == 4498
    assert quote.payable == 4498
    assert quote.shipping_fee == 0
    assert [l.paid_amount for l in quote.lines] == [3998, 500]
    assert quote.order_steps == () and all(l.steps == () for l in quote.lines)


def test_order_discount_is_spread_by_largest_remainder():
    quote = Pipeline(FixedOff("COUPON", 100)).price([line(1, 100, 1), line(2, 100, 1), line(3, 100, 1)])
    assert quote.payable == 200
    assert [l.paid_amount for l in quote.lines] == [66, 67, 67]
    assert [l.steps for l in quote.lines] == [(Step("COUPON", 34, "COUPON off"),), (Step("COUPON", 33, "COUPON off"),),
                                              (Step("COUPON", 33, "COUPON off"),)]


def test_discount_never_exceeds_goods():
    quote = Pipeline(FixedOff("COUPON", 10_000), FixedOff("POINTS", 50)).price([line(1, 300, 1)])
    assert quote.payable == 0
    assert quote.order_discount == 300
    assert [s.step for s in quote.order_steps] == ["COUPON"]


def test_empty_order_is_rejected():
    with pytest.raises(ValueError):
        DEFAULT_PIPELINE.price([])


# Member prices of a line

def test_tier_discount_rounds_the_unit_price_down_for_the_member():
    offer = tier_offer(1999, "SILVER", {}, 9_500)
    assert offer == Offer(TIER_DISCOUNT, 1899, "SILVER")  # 1899.05 → 1899
    quote = DEFAULT_PIPELINE.price([line(1, 1999, 3, offer)])
    (priced,) = quote.lines
    assert (priced.line_total, priced.line_amount, priced.paid_amount) == (5997, 5697, 5697)
    assert priced.steps == (Step(TIER_DISCOUNT, 300, "SILVER"),)
    assert quote.line_discount == 300


def test_the_skus_own_tier_price_wins_over_the_tier_rate():
    assert tier_offer(10_000, "GOLD", {"GOLD": 7_000, "SILVER": 9_900}, 9_000) == Offer(TIER_DISCOUNT, 7_000, "GOLD")
    # A tier price no lower than the list price is no discount at all.
    assert tier_offer(10_000, "GOLD", {"GOLD": 12_000}, 9_000) is None
    assert tier_offer(10_000, "REGULAR", {}, 10_000) is None
    assert tier_offer(10_000, "", {}, 9_000) is None


def test_limited_time_price_applies_only_inside_its_window():
    hour = timedelta(hours=1)
    assert limited_time_offer(800, NOW - hour, NOW + hour, NOW) == Offer(LIMITED_TIME_PRICE, 800)
    assert limited_time_offer(800, NOW, NOW + hour, NOW) is not None
    assert limited_time_offer(800, NOW - hour, NOW, NOW) is None
    assert limited_time_offer(800, NOW + hour, None, NOW) is None
    assert limited_time_offer(800, None, None, NOW) is not None


def test_the_better_of_activity_and_tier_price_applies_never_both():
    activity = Offer(ACTIVITY_PRICE, 900, "fls_1")
    tier = Offer(TIER_DISCOUNT, 850, "GOLD")
    quote = DEFAULT_PIPELINE.price([line(1, 1000, 2, activity, tier), line(2, 1000, 1, Offer(ACTIVITY_PRICE, 700, "fls_1"),
                                                                           tier)])
    assert quote.lines[0].steps == (Step(TIER_DISCOUNT, 300, "GOLD"),)
    assert quote.lines[1].steps == (Step(ACTIVITY_PRICE, 300, "fls_1"),)
    # On equal prices the activity is shown.
    assert best_offer(1000, [Offer(TIER_DISCOUNT, 900, "GOLD"), Offer(ACTIVITY_PRICE, 900, "a")]).step == ACTIVITY_PRICE


# Order steps and shipping

def test_the_highest_threshold_reached_applies_to_the_goods_after_member_prices():
    rules = (ThresholdReduction(10_000, 1_000), ThresholdReduction(20_000, 3_000), ThresholdReduction(50_000, 8_000))
    pipeline = Pipeline(ThresholdReductions(rules))
    # 2 × 12,000 at 90% is 21,600: the 20,000 rule, not the 24,000 list total's.
    quote = pipeline.price([line(1, 12_000, 2, Offer(TIER_DISCOUNT, 10_800, "GOLD")), line(2, 100, 1)])
    assert quote.order_steps == (Step(THRESHOLD_REDUCTION, 3_000, "threshold=20000,reduction=3000"),)
    assert quote.payable == 21_700 - 3_000
    shares = [sum(s.amount for s in l.steps if s.step == THRESHOLD_REDUCTION) for l in quote.lines]
    assert sum(shares) == 3_000 and shares == [2_986, 14]
    assert pipeline.price([line(1, 9_999, 1)]).order_steps == ()


def test_shipping_is_flat_until_the_goods_after_discounts_reach_the_free_threshold():
    pipeline = Pipeline.of(OrderSettings(threshold_reductions=(ThresholdReduction(10_000, 1_000),),
                                         shipping_fee=800, free_shipping_over=9_500))
    # 10,000 − 1,000 = 9,000 < 9,500: the fee applies though the list total is above it.
    quote = pipeline.price([line(1, 10_000, 1)])
    assert (quote.shipping_fee, quote.payable) == (800, 9_800)
    assert pipeline.price([line(1, 10_500, 1)]).shipping_fee == 0
    assert Pipeline(FlatShipping(800)).price([line(1, 10 ** 8, 1)]).shipping_fee == 800


# Invariants

offer_kinds = st.sampled_from(sorted(LINE_STEPS))
offers_st = st.lists(st.builds(Offer, offer_kinds, st.integers(0, 1_200_000), st.text(max_size=3)), max_size=3)
lines_st = st.lists(st.tuples(st.integers(0, 1_000_000), st.integers(1, 999), offers_st), min_size=1, max_size=30)
rules_st = st.lists(st.tuples(st.integers(1, 5_000_000), st.integers(1, 5_000_000)), max_size=10).map(
    lambda pairs: tuple(ThresholdReduction(t, r) for t, r in sorted({t: min(r, t - 1) for t, r in pairs
                                                                      if t > 1}.items())))


@given(lines=lines_st, rules=rules_st, coupon=st.integers(-500, 5_000_000), points=st.integers(-500, 5_000_000),
       shipping=st.integers(0, 2_000), free_over=st.integers(0, 3_000_000))
def test_totals_never_negative_and_every_part_adds_up(lines, rules, coupon, points, shipping, free_over):
    items = [line(i, p, q, *offers) for i, (p, q, offers) in enumerate(lines)]
    pipeline = Pipeline(ThresholdReductions(rules), FixedOff("COUPON", coupon), FixedOff("POINTS", points),
                        FlatShipping(shipping, free_over))
    quote = pipeline.price(items)
    assert quote.payable >= 0 and quote.order_discount >= 0 and quote.line_discount >= 0
    assert quote.total == sum(p * q for p, q, _ in lines)
    assert sum(l.paid_amount for l in quote.lines) + quote.shipping_fee == quote.payable
    assert quote.total - quote.line_discount - quote.order_discount + quote.shipping_fee == quote.payable
    assert quote.order_discount == sum(s.amount for s in quote.order_steps)
    for priced in quote.lines:
        assert 0 <= priced.paid_amount <= priced.line_amount <= priced.line_total
        assert all(s.amount > 0 for s in priced.steps)
        assert priced.line_total - sum(s.amount for s in priced.steps) == priced.paid_amount
        own = [s for s in priced.steps if s.step in LINE_STEPS]
        assert len(own) <= 1 and priced.line_total - sum(s.amount for s in own) == priced.line_amount
    for step in quote.order_steps:
        assert sum(s.amount for l in quote.lines for s in l.steps if s.step == step.step) == step.amount


@given(lines=lines_st)
def test_the_line_price_is_the_lowest_offer_below_the_list_price(lines):
    quote = DEFAULT_PIPELINE.price([line(i, p, q, *offers) for i, (p, q, offers) in enumerate(lines)])
    for (price, qty, offers), priced in zip(lines, quote.lines):
        best = min([o.unit_price for o in offers if o.unit_price < price], default=price)
        assert priced.line_amount == best * qty


@given(lines=st.lists(st.tuples(st.integers(0, 1_000_000), st.integers(1, 999)), min_size=1, max_size=50))
def test_without_discounts_each_line_pays_its_total(lines):
    quote = DEFAULT_PIPELINE.price([line(i, p, q) for i, (p, q) in enumerate(lines)])
    assert [l.paid_amount for l in quote.lines] == [p * q for p, q in lines]
    assert quote.payable == quote.total
