"""Pricing a checkout, against in-memory ports."""
from __future__ import annotations

import pytest

from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from siyu_kit.ids import new_id

from services.order.application.ports import MemberPricing
from services.order.domain.settings import OrderSettings


async def test_quote_the_given_lines(world):
    a = world.sku(1000)
    with world.as_member():
        priced = await world.checkout.quote([(a, 3)])
    assert (priced.quote.total, priced.quote.payable, priced.currency) == (3000, 3000, "CNY")


async def test_quote_the_selected_cart_items_when_no_lines_are_given(world):
    a, b = world.sku(100), world.sku(200)
    with world.as_member():
        with pytest.raises(FailedPrecondition) as empty:
            await world.checkout.quote([])
        assert empty.value.reason == "CART_EMPTY"
        await world.cart_cases.add(a, 2)
        await world.cart_cases.add(b, 1)
        await world.cart_cases.update(b, 1, False, 0)
        priced = await world.checkout.quote([])
    assert [(l.sku_id, l.quantity) for l in priced.quote.lines] == [(a, 2)]


async def test_the_members_tier_and_the_merchants_settings_apply(world):
    a = world.sku(1000)
    world.members.tiers[world.member_id] = MemberPricing("GOLD", 9000)
    world.settings.by_merchant[world.merchant_id] = OrderSettings(shipping_fee=500, free_shipping_over=10_000,
                                                                  version=1)
    with world.as_member():
        priced = await world.checkout.quote([(a, 2)])
    assert priced.tier == "GOLD" and priced.quote.shipping_fee == 500
    assert priced.quote.payable == 1800 + 500 and priced.settings.version == 1


async def test_refusals(world):
    a = world.sku(1000)
    usd = world.sku(1000, currency="USD")
    with world.as_member():
        with pytest.raises(InvalidArgument):
            await world.checkout.quote([(a, 1000)])
        with pytest.raises(NotFound) as missing:
            await world.checkout.quote([(a, 1), (new_id("sku"), 1)])
        assert missing.value.reason == "SKU_NOT_FOUND" and missing.value.violations[0].field == "lines[1].sku_id"
        with pytest.raises(FailedPrecondition) as mixed:
            await world.checkout.quote([(a, 1), (usd, 1)])
        assert mixed.value.reason == "MIXED_CURRENCY"
        world.members.down = Unavailable("no tier", reason="MEMBER_UNAVAILABLE")
        with pytest.raises(Unavailable):
            await world.checkout.quote([(a, 1)])
