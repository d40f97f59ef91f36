"""Quotes and orders with a shipping address and the merchant's freight template, and
staff reading and replacing the template, against in-memory ports."""
from __future__ import annotations

import pytest

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.order.application.flash_orders import PlaceFlashSaleOrderInput
from services.order.application.ports import FlashReservation, MemberPricing
from services.order.application.staff_orders import OrderQuery, sees_full_phone
from services.order.domain.freight import Basis, FreightRule, FreightTemplate, mask_name
from services.order.domain.settings import OrderSettings
from tests.fakes.order import address

DEFAULT = FreightRule("default", first=1, first_fee=1000, additional=1, additional_fee=500)
GD = FreightRule("广东省", first=1, first_fee=800, additional=1, additional_fee=200, regions=("440000",))


def template(**kw) -> FreightTemplate:
    base = dict(merchant_id="", version=0, default_rule=DEFAULT, rules=(GD,), excluded_regions=("540000",))
    base.update(kw)
    return FreightTemplate(**base)


async def put(world, t: FreightTemplate | None = None, expected_version: int = 0, roles=("OPERATOR",)):
    with world.as_staff(*roles):
        return await world.freight_cases.put(t or template(), {}, expected_version)


async def test_without_template_or_address_the_flat_settings_apply_as_before(world):
    a = world.sku(1000)
    world.settings.by_merchant[world.merchant_id] = OrderSettings(shipping_fee=500, version=1)
    order = await world.place((a, 2))
    assert (order.shipping_fee, order.payable, order.shipping_address) == (500, 2500, None)
    assert order.shipping_rule == "flat ¥5"
    assert world.addresses.calls == 1  # the member's default was looked for


async def test_the_default_address_is_used_and_kept_on_the_order(world):
    a = world.sku(1000)
    home = world.addresses.add(world.member_id, address())
    await put(world)
    order = await world.place((a, 3))
    assert order.shipping_address == home
    assert (order.shipping_fee, order.payable) == (800 + 2 * 200, 3000 + 1200)
    assert order.shipping_rule.startswith("广东省: first 1 unit ¥8")
    # Editing the book later does not change the order.
    world.addresses.books[world.member_id] = []
    assert (await world.orders.get(world.merchant_id, order.id)).shipping_address == home


async def test_a_named_address_prices_by_its_region(world):
    a = world.sku(1000)
    world.addresses.add(world.member_id, address())
    beijing = world.addresses.add(world.member_id, address("110000", "110100", "110101", province_name="北京市"))
    await put(world)
    with world.as_member():
        priced = await world.checkout.quote([(a, 2)], beijing.address_id)
    assert priced.address == beijing
    assert (priced.quote.shipping_fee, priced.quote.shipping_rule) == (1500, DEFAULT.describe())


async def test_an_excluded_region_is_refused_with_nothing_reserved(world):
    a = world.sku(1000)
    tibet = world.addresses.add(world.member_id, address("540000", "540100", "540102"))
    await put(world)
    with pytest.raises(FailedPrecondition) as refused:
        await world.place((a, 1), address_id=tibet.address_id)
    assert refused.value.reason == "REGION_NOT_SHIPPED"
    assert world.catalog.reserved == {} and world.orders.orders == {}


async def test_a_flash_sale_to_an_excluded_region_is_refused_before_the_pool(world):
    a = world.sku(1000)
    world.addresses.add(world.member_id, address("540000", "540100", "540102"))
    world.catalog.flash_won = FlashReservation(a, 600)
    await put(world)
    with world.as_member(), pytest.raises(FailedPrecondition) as refused:
        await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="k"))
    assert refused.value.reason == "REGION_NOT_SHIPPED" and world.catalog.reserved == {}


async def test_a_flash_sale_order_keeps_its_address(world):
    a = world.sku(1000)
    home = world.addresses.add(world.member_id, address())
    world.catalog.flash_won = FlashReservation(a, 600)
    await put(world)
    with world.as_member():
        order = await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="k"))
    assert order.shipping_address == home and order.shipping_fee == 800


async def test_an_address_not_the_members_is_not_found_and_a_bad_id_is_a_violation(world):
    a = world.sku(1000)
    with pytest.raises(NotFound) as missing:
        await world.place((a, 1), address_id=new_id("adr"))
    assert missing.value.reason == "ADDRESS_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        await world.place((a, 1), address_id="nope")
    assert [v.field for v in bad.value.violations] == ["address_id"]
    assert world.catalog.reserved == {}


async def test_free_over_an_amount_and_for_a_tier(world):
    a = world.sku(5000)
    world.addresses.add(world.member_id, address())
    await put(world, template(free_over=9900, free_shipping_tiers=("GOLD",)))
    with world.as_member():
        below = await world.checkout.quote([(a, 1)])
        over = await world.checkout.quote([(a, 2)])
    assert below.quote.shipping_fee == 800
    assert (over.quote.shipping_fee, over.quote.shipping_rule) == (0, "free over ¥99")
    world.members.tiers[world.member_id] = MemberPricing("GOLD", 10_000)
    with world.as_member():
        gold = await world.checkout.quote([(a, 1)])
    assert (gold.quote.shipping_fee, gold.quote.shipping_rule) == (0, "tier benefit: free shipping for GOLD")


async def test_staff_put_and_get_the_template_with_version_checks(world):
    with world.as_staff("OPERATOR"):
        assert await world.freight_cases.get() is None
    saved = await put(world)
    assert (saved.merchant_id, saved.version) == (world.merchant_id, 1)
    again = await put(world, template(free_over=100), expected_version=1)
    assert again.version == 2 and again.free_over == 100
    with pytest.raises(Conflict) as stale:
        await put(world, template(), expected_version=1)
    assert stale.value.reason == "VERSION_CONFLICT"
    world.freight.stale_saves = 1  # another writer wins once: made again on what won
    assert (await put(world, template(free_over=5))).version == 3
    with world.as_staff("OPERATOR"):
        assert (await world.freight_cases.get()).free_over == 5


async def test_only_operators_and_owners_change_it_and_bad_input_writes_nothing(world):
    for roles in (("GUIDE",), ("FINANCE",)):
        with pytest.raises(PermissionDenied):
            await put(world, roles=roles)
    with pytest.raises(InvalidArgument) as bad:
        await put(world, template(excluded_regions=("44",), free_shipping_tiers=("VIP",)))
    assert {v.field for v in bad.value.violations} == {"template.excluded_regions[0]",
                                                       "template.free_shipping_tiers[0]"}
    with world.as_staff("OPERATOR"), pytest.raises(InvalidArgument) as currency:
        await world.freight_cases.put(template(), {"template.free_over": "USD"}, 0)
    assert [v.field for v in currency.value.violations] == ["template.free_over"]
    assert world.freight.by_merchant == {}


def test_only_those_who_ship_see_the_full_phone():
    assert sees_full_phone(("OWNER",)) and sees_full_phone(("OPERATOR", "GUIDE"))
    assert not sees_full_phone(("GUIDE",)) and not sees_full_phone(("FINANCE",)) and not sees_full_phone(())


@pytest.mark.parametrize("roles, recipient, detail", [
    (("OWNER",), "张三", "科技园 1 号"),
    (("OPERATOR",), "张三", "科技园 1 号"),
    (("FINANCE",), "张三", "科技园 1 号"),
    (("GUIDE", "FINANCE"), "张三", "科技园 1 号"),  # the widest role decides
    (("GUIDE",), "张*", ""),
])
async def test_every_staff_role_reads_orders_and_a_guide_sees_the_address_masked(world, roles, recipient, detail):
    a = world.sku(1000)
    home = world.addresses.add(world.member_id, address())
    order = await world.place((a, 1))
    with world.as_staff(*roles):
        [found], _ = await world.staff.search(OrderQuery())
        seen, _, _ = await world.staff.get(order.id)
    for o in (found, seen):
        shown = o.shipping_address
        assert (shown.recipient, shown.detail, shown.phone_masked) == (recipient, detail, "138****8000")
        assert (shown.province_name, shown.city_name, shown.district_name) == ("广东省", "深圳市", "南山区")
        assert (shown.phone_sealed == home.phone_sealed) == (detail != "")  # a guide's copy cannot be opened
    # The stored order is untouched.
    assert world.orders.orders[order.id].shipping_address == home


def test_masked_names():
    assert (mask_name("张三"), mask_name("欧阳娜娜"), mask_name("A"), mask_name("")) == ("张*", "欧*", "A*", "")


# ---- freight by weight: each unit weighs what the catalog says

KG_RULE = FreightRule("by weight", first=1000, first_fee=1200, additional=1000, additional_fee=500,
                      basis=Basis.WEIGHT)
REMOTE = FreightRule("新疆", first=1000, first_fee=3000, additional=1000, additional_fee=2000, basis=Basis.WEIGHT,
                     regions=("650000",))


def by_weight(**kw) -> FreightTemplate:
    return template(default_rule=KG_RULE, rules=(REMOTE,), **kw)


@pytest.mark.parametrize("grams, quantity, fee", [
    (0, 3, 0),                      # no weight given: a weight rule charges nothing
    (400, 1, 1200),                 # under the first kilogram
    (500, 2, 1200),                 # exactly the first kilogram
    (501, 2, 1200 + 500),           # 2 g over: a started kilogram is a kilogram
    (1000, 2, 1200 + 500),          # 2 kg
    (700, 3, 1200 + 2 * 500),       # 2.1 kg: first + 2 started kilograms
])
async def test_a_weight_rule_charges_first_and_additional_kilograms_from_the_catalog_weight(world, grams, quantity,
                                                                                            fee):
    a = world.sku(1000, weight_g=grams)
    world.addresses.add(world.member_id, address("110000", "110100", "110101"))
    await put(world, by_weight())
    with world.as_member():
        priced = await world.checkout.quote([(a, quantity)])
    assert priced.quote.shipping_fee == fee
    assert priced.quote.shipping_rule == KG_RULE.describe()


async def test_the_weight_of_every_line_counts(world):
    light, heavy = world.sku(1000, weight_g=300), world.sku(1000, weight_g=1200)
    world.addresses.add(world.member_id, address("110000", "110100", "110101"))
    await put(world, by_weight())
    order = await world.place((light, 2), (heavy, 1))  # 1.8 kg
    assert (order.shipping_fee, order.payable) == (1200 + 500, 3000 + 1700)


async def test_a_remote_region_is_priced_by_its_own_weight_rule_or_excluded(world):
    a = world.sku(1000, weight_g=1500)
    urumqi = world.addresses.add(world.member_id, address("650000", "650100", "650102", province_name="新疆"))
    tibet = world.addresses.add(world.member_id, address("540000", "540100", "540102"))
    await put(world, by_weight())
    with world.as_member():
        priced = await world.checkout.quote([(a, 1)], urumqi.address_id)
    assert (priced.quote.shipping_fee, priced.quote.shipping_rule) == (3000 + 2000, REMOTE.describe())
    with pytest.raises(FailedPrecondition) as refused:
        await world.place((a, 1), address_id=tibet.address_id)
    assert refused.value.reason == "REGION_NOT_SHIPPED" and world.catalog.reserved == {}


async def test_free_over_an_amount_waives_a_weight_rule(world):
    a = world.sku(5000, weight_g=3000)
    world.addresses.add(world.member_id, address("650000", "650100", "650102"))
    await put(world, by_weight(free_over=9900))
    with world.as_member():
        below = await world.checkout.quote([(a, 1)])
        over = await world.checkout.quote([(a, 2)])
    assert below.quote.shipping_fee == 3000 + 2 * 2000
    assert (over.quote.shipping_fee, over.quote.shipping_rule) == (0, "free over ¥99")
