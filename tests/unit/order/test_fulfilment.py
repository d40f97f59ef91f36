"""Shipping, delivery, receipt and auto-confirmation, against in-memory ports."""
from __future__ import annotations

import asyncio

import pytest

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.order.domain import orders as domain
from services.order.domain.orders import OrderState
from services.order.domain.settings import OrderSettings


async def paid(world, *lines):
    order = await world.place(*(lines or ((world.sku(), 2),)))
    stored = world.orders.orders[order.id]
    stored.state, stored.payment_id, stored.paid_at = OrderState.PAID, new_id("pay"), world.clock.now
    return stored


async def ship(world, order_id: str):
    with world.as_staff("OPERATOR"):
        return await world.fulfilment.ship(order_id, "SF", "SF123")


async def test_ship_deliver_confirm(world):
    world.settings.by_merchant[world.merchant_id] = OrderSettings(auto_confirm_days=3, version=1)
    order = await paid(world)
    shipped = await ship(world, order.id)
    assert shipped.state is OrderState.SHIPPED and shipped.shipment.carrier == "SF"
    assert shipped.auto_confirm_ms == world.clock.ms() + 3 * domain.DAY_MS
    assert (await ship(world, order.id)).version == shipped.version  # a repeat changes nothing
    with world.as_staff("OPERATOR"):
        delivered = await world.fulfilment.mark_delivered(order.id)
        assert (await world.fulfilment.mark_delivered(order.id)).version == delivered.version
    with world.as_member():
        done = await world.fulfilment.confirm_receipt(order.id)
        assert (await world.fulfilment.confirm_receipt(order.id)).version == done.version
    assert (done.state, done.confirmed_by) == (OrderState.COMPLETED, "MEMBER")
    assert world.orders.event_types(order.id) == ["OrderPlaced", "OrderShipped", "OrderDelivered",
                                                  "OrderCompleted"]


async def test_ship_refusals(world):
    unpaid = await world.place((world.sku(), 1))
    with pytest.raises(FailedPrecondition) as early:
        await ship(world, unpaid.id)
    assert early.value.reason == "ORDER_NOT_SHIPPABLE"
    order = await paid(world)
    world.open_refunds.open_by_order[order.id] = 1
    with pytest.raises(FailedPrecondition) as waiting:
        await ship(world, order.id)
    assert waiting.value.reason == "REFUND_OPEN"
    world.open_refunds.open_by_order[order.id] = 0
    order.lines = tuple(domain.replace(l, refunded_quantity=l.quantity, refunded_amount=l.paid_amount)
                        for l in order.lines)
    with pytest.raises(FailedPrecondition) as nothing:
        await ship(world, order.id)
    assert nothing.value.reason == "NOTHING_TO_SHIP"
    with world.as_staff("OPERATOR"):
        with pytest.raises(InvalidArgument):
            await world.fulfilment.ship(order.id, " SF", "no spaces allowed")
        with pytest.raises(NotFound):
            await world.fulfilment.ship(new_id("ord"), "SF", "SF1")
    with world.as_staff("FINANCE"):
        with pytest.raises(PermissionDenied):
            await world.fulfilment.ship(order.id, "SF", "SF1")


async def test_delivery_and_receipt_need_a_shipped_order(world):
    order = await paid(world)
    with world.as_staff("OPERATOR"):
        with pytest.raises(FailedPrecondition) as not_shipped:
            await world.fulfilment.mark_delivered(order.id)
    assert not_shipped.value.reason == "ORDER_NOT_SHIPPED"
    with world.as_member():
        with pytest.raises(FailedPrecondition) as no_receipt:
            await world.fulfilment.confirm_receipt(order.id)
        assert no_receipt.value.reason == "ORDER_NOT_SHIPPED"
    with world.as_member(new_id("mem")):
        with pytest.raises(NotFound):
            await world.fulfilment.confirm_receipt(order.id)


async def test_a_move_is_decided_again_after_losing_a_race_then_given_up(world):
    order = await paid(world)
    world.orders.stale_saves = 1
    assert (await ship(world, order.id)).state is OrderState.SHIPPED
    world.orders.stale_saves = 3
    with world.as_staff("OPERATOR"):
        with pytest.raises(Conflict) as gave_up:
            await world.fulfilment.mark_delivered(order.id)
    assert gave_up.value.reason == "CONCURRENT_UPDATE"
    assert gave_up.value.message == "the order changed while marking it delivered; try again"


async def test_auto_confirm_when_due_and_once(world):
    world.settings.by_merchant[world.merchant_id] = OrderSettings(auto_confirm_days=1, version=1)
    due, later = await paid(world), await paid(world)
    await ship(world, due.id)
    world.clock.advance(hours=1)
    await ship(world, later.id)
    world.clock.advance(hours=23, minutes=30)
    runs = await asyncio.gather(*(world.fulfilment.auto_confirm_due() for _ in range(3)))
    assert sum(runs) == 1
    assert world.orders.stored(due.id).confirmed_by == "AUTO"
    assert world.orders.stored(later.id).state is OrderState.SHIPPED
    world.clock.advance(hours=1)
    assert await world.fulfilment.auto_confirm_due() == 1
    assert await world.fulfilment.auto_confirm_due() == 0
    assert world.orders.event_types(due.id).count("OrderCompleted") == 1
