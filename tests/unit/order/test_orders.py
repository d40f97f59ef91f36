"""Placing, reading, cancelling and expiring orders, against in-memory ports."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import (AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated,
                             Unavailable)
from siyu_kit.ids import new_id

from services.order.application.orders import PlaceOrderInput
from services.order.domain import orders as domain
from services.order.domain.orders import OrderState


async def test_place_reserves_prices_and_records_placed(world):
    a, b = world.sku(1000), world.sku(250)
    world.attributions.shares["s1"] = {}
    order = await world.place((a, 2), (b, 1), attribution={"channel": "H5", "share_code": "s1"}, remark="ring")
    assert order.state is OrderState.PENDING_PAYMENT and order.version == 1
    assert [(l.sku_id, l.quantity, l.paid_amount) for l in order.lines] == [(a, 2, 2000), (b, 1, 250)]
    assert (order.total, order.payable, order.currency, order.tier) == (2250, 2250, "CNY", "REGULAR")
    assert order.attribution == {"channel": "H5", "share_code": "s1"} and order.remark == "ring"
    assert order.expires_at == world.clock.now + timedelta(minutes=30)
    order_id, lines, hold_until = world.catalog.reserved[order.reservation_id]
    assert order_id == order.id and lines == [(a, 2), (b, 1)]
    assert hold_until == order.expires_at + domain.DEFAULT_RESERVATION_GRACE
    assert world.orders.event_types(order.id) == ["OrderPlaced"]
    assert world.orders.stored(order.id) == order


async def test_place_again_with_the_key_returns_the_first_order(world):
    a = world.sku()
    first = await world.place((a, 1), key="k1")
    again = await world.place((a, 1), key="k1")
    assert again.id == first.id and again.lines[0].quantity == 1
    assert len(world.catalog.reserved) == 1 and len(world.orders.events) == 1


async def test_place_refuses_bad_input_before_anything_is_held(world):
    a = world.sku()
    with pytest.raises(InvalidArgument):
        await world.place((a, 0), key="k")
    with pytest.raises(InvalidArgument):
        await world.place((a, 1), (a, 2), key="k")
    with pytest.raises(InvalidArgument):
        await world.place((a, 1), key="k", attribution={"channel": "LIVE"})
    assert not world.catalog.reserved and not world.orders.orders


async def test_place_needs_a_member(world):
    with world.as_staff():
        with pytest.raises(Unauthenticated):
            await world.order_cases.place(PlaceOrderInput("k", [(world.sku(), 1)]))


async def test_place_unknown_sku_or_persona_holds_nothing(world):
    with pytest.raises(NotFound) as missing:
        await world.place((new_id("sku"), 1))
    assert missing.value.reason == "SKU_NOT_FOUND"
    with pytest.raises(NotFound) as unknown:
        await world.place((world.sku(), 1), attribution={"persona_id": new_id("per")})
    assert unknown.value.reason == "ATTRIBUTION_NOT_FOUND"
    assert not world.catalog.reserved and not world.orders.orders


async def test_out_of_stock_writes_no_order(world):
    world.catalog.refuse_reserve = FailedPrecondition("not enough stock", reason="OUT_OF_STOCK")
    with pytest.raises(FailedPrecondition) as refused:
        await world.place((world.sku(), 1))
    assert refused.value.reason == "OUT_OF_STOCK" and not world.orders.orders


async def test_an_unanswered_reserve_is_released_at_once(world):
    world.catalog.refuse_reserve = Unavailable("the catalog could not reserve the stock")
    with pytest.raises(Unavailable):
        await world.place((world.sku(), 1))
    assert len(world.catalog.released) == 1 and not world.orders.orders


async def test_losing_the_race_for_a_key_releases_this_reservation(world):
    a = world.sku()
    winner = await world.place((a, 1), key="k")
    original = world.orders.by_key
    calls = 0

    async def late_by_key(*args):  # the first lookup does not see the winner yet
        nonlocal calls
        calls += 1
        return None if calls == 1 else await original(*args)
    world.orders.by_key = late_by_key
    again = await world.place((a, 1), key="k")
    assert again.id == winner.id
    [released] = world.catalog.released
    assert released != winner.reservation_id and world.orders.event_types() == ["OrderPlaced"]


async def test_an_order_past_its_window_before_written_is_not_written(world):
    a = world.sku()

    async def slow_reserve(*args):
        world.clock.advance(minutes=31)
    world.catalog.reserve = slow_reserve
    with pytest.raises(Unavailable) as late:
        await world.place((a, 1))
    assert late.value.reason == "ORDER_EXPIRED_BEFORE_WRITTEN"
    assert len(world.catalog.released) == 1 and not world.orders.orders


async def test_place_can_empty_the_ordered_items_from_the_cart(world):
    a, b = world.sku(), world.sku()
    with world.as_member():
        await world.cart_cases.add(a, 1)
        await world.cart_cases.add(b, 1)
    await world.place((a, 1), remove_from_cart=True)
    with world.as_member():
        view = await world.cart_cases.get()
    assert [i.sku_id for i in view.cart.items] == [b]


async def test_get_and_list_only_the_members_own(world):
    a = world.sku()
    placed = [await world.place((a, 1)) for _ in range(3)]
    with world.as_member():
        assert (await world.order_cases.get(placed[0].id)).id == placed[0].id
        page, token = await world.order_cases.list_mine(2, "")
        assert [o.id for o in page] == [placed[2].id, placed[1].id] and token == placed[1].id
        rest, token = await world.order_cases.list_mine(2, token)
        assert [o.id for o in rest] == [placed[0].id] and token == ""
        with pytest.raises(InvalidArgument):
            await world.order_cases.get("nope")
    with world.as_member(new_id("mem")):
        with pytest.raises(NotFound):
            await world.order_cases.get(placed[0].id)
        assert (await world.order_cases.list_mine(0, ""))[0] == []


async def test_cancel_then_cancel_again(world):
    order = await world.place((world.sku(), 1))
    world.clock.advance(minutes=1)
    with world.as_member():
        cancelled = await world.order_cases.cancel(order.id)
        assert (cancelled.state, cancelled.cancel_reason, cancelled.version) == (OrderState.CANCELLED, "MEMBER", 2)
        assert cancelled.cancelled_at == world.clock.now
        again = await world.order_cases.cancel(order.id)
    assert again.version == 2
    assert world.orders.event_types(order.id) == ["OrderPlaced", "OrderCancelled"]
    assert world.orders.events_of(order.id)[1].reason == "MEMBER"


async def test_cancel_refused_once_paid_or_for_another_member(world):
    order = await world.place((world.sku(), 1))
    world.orders.orders[order.id].state = OrderState.PAID
    with world.as_member():
        with pytest.raises(FailedPrecondition) as refused:
            await world.order_cases.cancel(order.id)
    assert refused.value.reason == "ORDER_NOT_CANCELLABLE"
    with world.as_member(new_id("mem")):
        with pytest.raises(NotFound):
            await world.order_cases.cancel(order.id)


async def test_cancel_decides_again_after_losing_a_race(world):
    order = await world.place((world.sku(), 1))
    world.orders.stale_saves = 1
    with world.as_member():
        cancelled = await world.order_cases.cancel(order.id)
    assert cancelled.state is OrderState.CANCELLED
    assert world.orders.event_types(order.id) == ["OrderPlaced", "OrderCancelled"]


async def test_cancel_gives_up_when_the_order_keeps_changing(world):
    order = await world.place((world.sku(), 1))
    world.orders.stale_saves = 3
    with world.as_member():
        with pytest.raises(Conflict) as gave_up:
            await world.order_cases.cancel(order.id)
    assert gave_up.value.reason == "CONCURRENT_UPDATE"
    assert gave_up.value.message == "the order changed while cancelling; try again"
    assert world.orders.stored(order.id).state is OrderState.PENDING_PAYMENT


async def test_expire_due_cancels_unpaid_orders_past_their_expiry(world):
    a = world.sku()
    due = await world.place((a, 1))
    paid = await world.place((a, 1))
    world.orders.orders[paid.id].state = OrderState.PAID
    world.clock.advance(minutes=10)
    fresh = await world.place((a, 1))
    world.clock.advance(minutes=21)
    assert await world.order_cases.expire_due() == 1
    assert world.orders.stored(due.id).cancel_reason == "TIMEOUT"
    assert world.orders.stored(fresh.id).state is OrderState.PENDING_PAYMENT
    assert world.orders.stored(paid.id).state is OrderState.PAID
    assert await world.order_cases.expire_due() == 0


async def test_expire_due_skips_an_order_that_changed_meanwhile(world):
    await world.place((world.sku(), 1))
    world.clock.advance(minutes=31)
    world.orders.stale_saves = 1
    assert await world.order_cases.expire_due() == 0
    assert await world.order_cases.expire_due() == 1


# ---- an idempotency key with another request ---------------------------------------


async def test_the_same_key_with_another_request_is_refused_and_holds_nothing(world):
    a, b = world.sku(), world.sku()
    first = await world.place((a, 1), key="k1")
    for lines, more in ((((a, 3),), {}), (((b, 1),), {}), (((a, 1),), {"remark": "ring"})):
        with pytest.raises(AlreadyExists) as reused:
            await world.place(*lines, key="k1", **more)
        assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.catalog.reserved) == 1 and list(world.orders.orders) == [first.id]
    assert world.orders.stored(first.id).request_hash == first.request_hash != ""


async def test_an_order_stored_without_a_fingerprint_is_replayed_as_before(world):
    a = world.sku()
    first = await world.place((a, 1), key="k1")
    world.orders.orders[first.id].request_hash = ""
    assert (await world.place((a, 2), key="k1")).id == first.id
