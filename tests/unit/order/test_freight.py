"""Freight templates: the rule a destination takes, what a rule charges, the waivers, the
refusal of an excluded region, and the template's bounds."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import FailedPrecondition

from services.order.domain.freight import (
    NOWHERE, Basis, Destination, FreightRule, FreightTemplate, violations, yuan)
from services.order.domain.price_sources import FlatShipping, FreightShipping, LineInput
from services.order.domain.pricing import Pipeline
from services.order.domain.settings import OrderSettings

GUANGDONG, SHENZHEN, GUANGZHOU = "440000", "440300", "440100"
XINJIANG, TIBET = "650000", "540000"

DEFAULT = FreightRule("default", first=1, first_fee=1000, additional=1, additional_fee=500)
GD = FreightRule("广东省", first=1, first_fee=800, additional=1, additional_fee=200, regions=(GUANGDONG,))
SZ = FreightRule("深圳市", first=2, first_fee=600, additional=2, additional_fee=100, regions=(SHENZHEN,))
XJ = FreightRule("新疆", first=1, first_fee=3000, additional=1, additional_fee=1500, regions=(XINJIANG,))


def template(**kw) -> FreightTemplate:
    base = dict(merchant_id="mch_1", version=1, default_rule=DEFAULT, rules=(GD, SZ, XJ),
                excluded_regions=(TIBET,))
    base.update(kw)
    return FreightTemplate(**base)


def to(province: str, city: str = "", district: str = "") -> Destination:
    return Destination(province, city, district)


def test_the_city_rule_wins_over_the_province_rule_and_others_take_the_default():
    t = template()
    assert t.rule_for(to(GUANGDONG, SHENZHEN)) is SZ
    assert t.rule_for(to(GUANGDONG, GUANGZHOU)) is GD
    assert t.rule_for(to("110000", "110100")) is DEFAULT
    assert t.rule_for(NOWHERE) is DEFAULT


def test_an_excluded_region_is_refused_with_its_reason():
    with pytest.raises(FailedPrecondition) as refused:
        template().rule_for(to(TIBET, "540100"))
    assert refused.value.reason == "REGION_NOT_SHIPPED"


@pytest.mark.parametrize("units,fee", [(0, 0), (1, 800), (2, 1000), (5, 1600)])
def test_first_unit_and_each_more(units, fee):
    assert GD.fee(units) == fee


@pytest.mark.parametrize("count,fee", [(2, 600), (3, 700), (4, 700), (5, 800)])
def test_a_started_step_is_a_whole_step(count, fee):
    assert SZ.fee(count) == fee


def test_weight_rules_count_grams():
    by_weight = FreightRule("by weight", first=1000, first_fee=1200, additional=500, additional_fee=300,
                            basis=Basis.WEIGHT)
    t = template(default_rule=by_weight, rules=())
    assert t.charge(NOWHERE, units=9, grams=1000, goods_amount=1, tier="").fee == 1200
    assert t.charge(NOWHERE, units=1, grams=1600, goods_amount=1, tier="").fee == 1800
    assert "first 1000g" in t.charge(NOWHERE, units=1, grams=1600, goods_amount=1, tier="").rule


def test_the_rule_that_applied_is_named():
    charge = template().charge(to(GUANGDONG, GUANGZHOU), units=1, grams=0, goods_amount=100, tier="")
    assert charge.fee == 800
    assert charge.rule == "广东省: first 1 unit ¥8 + ¥2 per 1 unit more"


def test_free_over_an_amount_and_free_for_a_tier():
    t = template(free_over=9900, free_shipping_tiers=("GOLD",))
    assert t.charge(to(GUANGDONG), 3, 0, 9899, "SILVER").fee == 1200
    free = t.charge(to(GUANGDONG), 3, 0, 9900, "SILVER")
    assert (free.fee, free.rule) == (0, "free over ¥99")
    tier = t.charge(to(GUANGDONG), 3, 0, 100, "GOLD")
    assert (tier.fee, tier.rule) == (0, "tier benefit: free shipping for GOLD")


def test_an_excluded_region_is_refused_even_when_shipping_would_be_free():
    t = template(free_over=1, free_shipping_tiers=("GOLD",))
    with pytest.raises(FailedPrecondition):
        t.charge(to(TIBET), 1, 0, 10_000, "GOLD")


@given(units=st.integers(1, 5000), first=st.integers(1, 50), additional=st.integers(1, 50),
       first_fee=st.integers(0, 10_000), additional_fee=st.integers(0, 10_000))
def test_a_rule_never_charges_less_for_more(units, first, additional, first_fee, additional_fee):
    rule = FreightRule("r", first=first, first_fee=first_fee, additional=additional, additional_fee=additional_fee)
    assert first_fee <= rule.fee(units) <= rule.fee(units + 1)
    assert rule.fee(units) - first_fee <= (max(units - first, 0) // additional + 1) * additional_fee


@given(goods=st.integers(0, 100_000), free_over=st.integers(0, 100_000))
def test_reaching_free_over_is_free_and_below_it_is_the_rule(goods, free_over):
    t = template(free_over=free_over)
    charge = t.charge(to(GUANGDONG), 2, 0, goods, "")
    assert charge.fee == (0 if free_over and goods >= free_over else GD.fee(2))


def test_the_freight_source_replaces_the_flat_fee_and_names_its_rule():
    line = LineInput(sku_id="sku_1", product_id="prd_1", title="tee", quantity=3, unit_price=2000)
    settings = OrderSettings(shipping_fee=500, free_shipping_over=100_000)
    flat = Pipeline.of(settings).price([line])
    assert (flat.shipping_fee, flat.shipping_rule) == (500, "flat ¥5")
    freight = Pipeline.of(settings, FreightShipping(template(), to(GUANGDONG), units=3)).price([line])
    assert (freight.shipping_fee, freight.payable) == (1200, 6000 + 1200)
    assert freight.shipping_rule.startswith("广东省")
    assert not any(isinstance(s, FlatShipping) for s in Pipeline.of(
        settings, FreightShipping(template(), NOWHERE, units=1)).sources)
    free = Pipeline.of(OrderSettings(shipping_fee=500, free_shipping_over=5000)).price([line])
    assert (free.shipping_fee, free.shipping_rule) == (0, "free over ¥50")


def test_a_template_out_of_bounds_names_every_field():
    bad = template(default_rule=FreightRule("d", first=0, first_fee=-1, regions=(GUANGDONG,)),
                   rules=(FreightRule("x", first=1, first_fee=1, regions=("44",)),
                          FreightRule("y", first=1, first_fee=1, regions=(XINJIANG, XINJIANG))),
                   excluded_regions=("abc",), free_over=-5, free_shipping_tiers=("PLATINUM",))
    fields = {f for f, _ in violations(bad)}
    assert fields >= {"template.default_rule.first", "template.default_rule.first_fee",
                      "template.default_rule.regions", "template.rules[0].regions[0]",
                      "template.excluded_regions[0]", "template.free_over", "template.free_shipping_tiers[0]"}
    assert violations(template()) == []


def test_yuan():
    assert (yuan(800), yuan(850), yuan(5), yuan(0)) == ("¥8", "¥8.50", "¥0.05", "¥0")
