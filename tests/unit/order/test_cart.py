"""The member's cart, against in-memory ports."""
from __future__ import annotations

import random

import pytest

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.order.domain import cart as rules
from services.order.domain.cart import Cart, CartItem


async def test_add_update_remove(world):
    a, b = world.sku(100), world.sku(200)
    with world.as_member():
        view = await world.cart_cases.add(a, 1)
        assert (view.cart.version, [i.sku_id for i in view.cart.items]) == (1, [a])
        assert view.skus[a].unit_price == 100
        view = await world.cart_cases.add(b, 2)
        view = await world.cart_cases.add(a, 2)
        assert [(i.sku_id, i.quantity) for i in view.cart.items] == [(b, 2), (a, 3)] and view.cart.version == 3
        view = await world.cart_cases.update(a, 5, False, expected_version=3)
        assert [(i.quantity, i.selected) for i in view.cart.items] == [(2, True), (5, False)]
        view = await world.cart_cases.remove([b], expected_version=0)
        assert [i.sku_id for i in view.cart.items] == [a] and view.cart.version == 5
        again = await world.cart_cases.remove([b], expected_version=0)
    assert again.cart.version == 5 and world.carts.saves == 5  # removing what is gone stores nothing


async def test_get_an_empty_cart(world):
    with world.as_member():
        view = await world.cart_cases.get()
    assert view.cart.items == () and view.cart.version == 0 and view.skus == {}


async def test_add_refuses_what_is_not_on_sale(world):
    off = world.sku(on_shelf=False)
    with world.as_member():
        for sku_id in (off, new_id("sku")):
            with pytest.raises(NotFound) as missing:
                await world.cart_cases.add(sku_id, 1)
            assert missing.value.reason == "SKU_NOT_FOUND"
        with pytest.raises(InvalidArgument):
            await world.cart_cases.add("bad", 1)
    assert not world.carts.carts


async def test_rules_of_the_cart(world):
    a = world.sku()
    with world.as_member():
        await world.cart_cases.add(a, rules.MAX_QUANTITY)
        with pytest.raises(FailedPrecondition) as limit:
            await world.cart_cases.add(a, 1)
        assert limit.value.reason == "CART_QUANTITY_LIMIT"
        with pytest.raises(NotFound) as absent:
            await world.cart_cases.update(world.sku(), 1, True, 0)
        assert absent.value.reason == "NOT_IN_CART"


async def test_a_full_cart_takes_no_new_line(world):
    items = tuple(CartItem(new_id("sku"), 1, True, 0) for _ in range(rules.MAX_ITEMS))
    world.carts.carts[(world.merchant_id, world.member_id)] = Cart(
        id="crt_1", merchant_id=world.merchant_id, member_id=world.member_id, items=items, version=9)
    with world.as_member():
        with pytest.raises(FailedPrecondition) as full:
            await world.cart_cases.add(world.sku(), 1)
    assert full.value.reason == "CART_FULL"


async def test_an_expected_version_that_is_not_current_is_refused(world):
    a = world.sku()
    with world.as_member():
        await world.cart_cases.add(a, 1)
        with pytest.raises(Conflict) as stale:
            await world.cart_cases.update(a, 2, True, expected_version=7)
        assert stale.value.reason == "VERSION_CONFLICT"
        world.carts.stale_saves = 1
        with pytest.raises(Conflict) as lost:
            await world.cart_cases.update(a, 2, True, expected_version=1)
        assert lost.value.reason == "VERSION_CONFLICT"


async def test_without_an_expected_version_a_lost_race_is_made_again(world, monkeypatch):
    monkeypatch.setattr(random, "uniform", lambda low, high: 0.0)  # no spreading out in a test
    a = world.sku()
    with world.as_member():
        world.carts.stale_saves = 3
        view = await world.cart_cases.add(a, 1)
        assert view.cart.version == 1 and world.carts.saves == 1
        world.carts.stale_saves = 50
        with pytest.raises(Conflict) as gave_up:
            await world.cart_cases.add(a, 1)
    assert gave_up.value.reason == "CONCURRENT_UPDATE"
    assert gave_up.value.message == "the cart is changing too fast; try again"


async def test_remove_ordered_takes_out_only_the_ordered_skus(world):
    a, b = world.sku(), world.sku()
    with world.as_member():
        await world.cart_cases.add(a, 1)
        await world.cart_cases.add(b, 1)
    await world.cart_cases.remove_ordered(world.merchant_id, world.member_id, [a])
    cart = await world.carts.get(world.merchant_id, world.member_id)
    assert [i.sku_id for i in cart.items] == [b]
