"""Buying from a flash sale, against in-memory ports."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.order.application.flash_orders import PlaceFlashSaleOrderInput
from services.order.application.ports import FlashReservation
from services.order.domain.orders import OrderState


async def buy(world, flash_sale_id: str, key: str = "k", quantity: int = 0):
    with world.as_member():
        return await world.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=flash_sale_id, idempotency_key=key,
                                                                quantity=quantity))


async def test_a_winner_gets_an_order_at_the_flash_price(world):
    a = world.sku(1000)
    sale = new_id("fls")
    world.catalog.flash_won = FlashReservation(a, 600)
    order = await buy(world, sale, quantity=2)
    assert order.state is OrderState.PENDING_PAYMENT and order.flash_sale_id == sale
    assert (order.lines[0].quantity, order.payable) == (2, 1200)
    assert order.expires_at == world.clock.now + timedelta(minutes=10)
    assert world.catalog.reserved[order.reservation_id][1] == [(a, 2)]
    assert world.orders.event_types(order.id) == ["OrderPlaced"]


async def test_the_same_key_returns_the_first_order_without_asking_the_pool(world):
    world.catalog.flash_won = FlashReservation(world.sku(1000), 600)
    sale = new_id("fls")
    first = await buy(world, sale)
    again = await buy(world, sale)
    assert again.id == first.id and world.catalog.flash_calls == 1


async def test_sold_out_is_remembered_for_a_moment(world):
    world.catalog.refuse_flash = FailedPrecondition("sold out", reason="SOLD_OUT")
    sale = new_id("fls")
    for key in ("a", "b"):
        with pytest.raises(FailedPrecondition) as lost:
            await buy(world, sale, key=key)
        assert lost.value.reason == "SOLD_OUT"
    assert world.catalog.flash_calls == 1 and not world.orders.orders


async def test_other_refusals_are_not_remembered(world):
    world.catalog.refuse_flash = FailedPrecondition("not yet", reason="NOT_STARTED")
    sale = new_id("fls")
    for key in ("a", "b"):
        with pytest.raises(FailedPrecondition):
            await buy(world, sale, key=key)
    assert world.catalog.flash_calls == 2


async def test_units_go_back_when_pricing_fails(world):
    world.catalog.flash_won = FlashReservation(new_id("sku"), 600)  # the SKU is gone from the catalog
    with pytest.raises(NotFound):
        await buy(world, new_id("fls"))
    assert len(world.catalog.released) == 1 and not world.orders.orders


async def test_bad_input_reaches_nothing(world):
    with pytest.raises(InvalidArgument):
        await buy(world, "fls_bad")
    with pytest.raises(InvalidArgument):
        await buy(world, new_id("fls"), quantity=101)
    assert world.catalog.flash_calls == 0


async def test_the_same_key_for_another_quantity_is_refused_without_asking_the_pool(world):
    world.catalog.flash_won = FlashReservation(world.sku(1000), 600)
    sale = new_id("fls")
    await buy(world, sale)
    with pytest.raises(AlreadyExists) as reused:
        await buy(world, sale, quantity=2)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED" and world.catalog.flash_calls == 1
