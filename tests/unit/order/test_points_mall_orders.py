"""Points mall products against in-memory ports: the item's rules, ordering (the pool's
units, the cash price, the points held as a price with no discount and no coupon), a
refusal that holds nothing and takes no units, and the order's lifecycle spending,
releasing and returning exactly the points price."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.order.application.points_mall import ItemDraft, PlacePointsMallOrderInput, PointsMallUseCases
from services.order.application.ports import ActivityPool, FlashReservation
from services.order.domain import points_mall as rules
from services.order.domain.points_mall import ItemState, PointsMallItem, points_shares
from siyu_kit.errors import (FailedPrecondition, FieldViolation, InvalidArgument, NotFound, PermissionDenied,
                             Violations)
from siyu_kit.ids import new_id
from services.order.application.member_value import ValueHolds, ValueLifecycle
from tests.fakes.member_value import FakeMemberValue, FakeValueHoldIntents
from tests.unit.order.conftest import World
from tests.unit.order.test_member_value import Value, paid, refund


@pytest.fixture
def v(world: World) -> Value:
    """A member with 1,000 points, the order service's value holds and lifecycle over fakes."""
    members, intents = FakeMemberValue(), FakeValueHoldIntents()
    members.available[world.member_id] = 1000
    holds = ValueHolds(member_value=members, intents=intents, orders=world.orders, clock=world.clock)
    world.checkout.member_value = members
    world.order_cases.value_holds = holds
    return Value(world, members, intents, holds, ValueLifecycle(orders=world.orders, member_value=members))


class FakeItems:
    def __init__(self):
        self.items: dict[str, PointsMallItem] = {}

    async def add(self, item):
        for stored in self.items.values():
            if stored.idempotency_key == item.idempotency_key:
                return stored
        self.items[item.id] = item
        return item

    async def get(self, merchant_id, item_id):
        item = self.items.get(item_id)
        return item if item and item.merchant_id == merchant_id else None

    async def save(self, item):
        item.version += 1

    async def page(self, merchant_id, after, limit, open_at):
        return [i for i in self.items.values() if i.merchant_id == merchant_id
                and (open_at is None or i.open_at(open_at))][:limit]


class FakePools:
    def __init__(self, sku: str):
        self.sku, self.created = sku, {}

    async def create_pool(self, key, kind, sku_id, price, units, limit, starts_at, ends_at, title=""):
        assert kind == "POINTS_MALL"
        self.created.setdefault(key, ActivityPool(new_id("fls"), kind, "prd_1", sku_id, title, price, 9999, units,
                                                  units, 0, 0, limit))
        return self.created[key]

    async def pool(self, pool_id):
        return next((p for p in self.created.values() if p.pool_id == pool_id), None)


def mall(v: Value, sku: str) -> PointsMallUseCases:
    w = v.world
    return PointsMallUseCases(items=FakeItems(), pools=FakePools(sku), catalog=w.catalog, orders=w.orders,
                              settings=w.settings, checkout=w.checkout, order_cases=w.order_cases, clock=w.clock)


async def an_item(v: Value, m: PointsMallUseCases, sku: str, points: int = 300, cash: int = 1000):
    w = v.world
    with w.as_staff("OPERATOR"):
        view = await m.create(ItemDraft(sku, "", points, cash, 5, 2, w.clock.now - timedelta(minutes=1),
                                        w.clock.now + timedelta(hours=1)), "key")
    w.catalog.flash_won = FlashReservation(sku, cash)
    return view.item


async def order(v: Value, m: PointsMallUseCases, item_id: str, quantity: int = 1):
    with v.world.as_member():
        return await m.place(PlacePointsMallOrderInput(item_id=item_id, idempotency_key=new_id("k"),
                                                       quantity=quantity))


def test_item_rules():
    v = Violations()
    rules.check_item(v, "x" * 121, 0, -1, 0, 101, None, None)
    assert {i.field for i in v.items} == {"title", "points_price", "cash_price", "units", "per_member_limit",
                                          "starts_at", "ends_at"}
    now = datetime(2026, 1, 1)
    item = PointsMallItem("pmi_1", "m", 1, "fls", "sku", "prd", "t", 10, 0, 100, 5, 1, now,
                          now + timedelta(hours=1), ItemState.ACTIVE, now)
    assert item.open_at(now) and not item.open_at(now + timedelta(hours=1)) and item.points_for(3) == 30
    item.end()
    with pytest.raises(FailedPrecondition) as closed:
        item.require_open(now)
    assert closed.value.reason == "POINTS_MALL_NOT_OPEN"
    with pytest.raises(FailedPrecondition):
        item.change("new", 5)


async def test_an_order_is_priced_at_cash_and_holds_the_points_as_its_price(v):
    w = v.world
    sku = w.sku(5000)
    m = mall(v, sku)
    item = await an_item(v, m, sku)
    placed = await order(v, m, item.id, 2)
    assert placed.payable == 2000 and placed.activity.kind == "POINTS_MALL"
    assert (placed.activity.activity_id, placed.activity.points_price) == (item.id, 600)
    assert placed.value.points == 600 and placed.value.points_discount == 0 and not placed.value.coupon_id
    assert v.members.held[placed.id] == (w.member_id, 600) and v.members.available[w.member_id] == 400
    # Paid: spent. A refund of one unit: its 300 points back; the other: all 600.
    await paid(w, placed)
    await v.lifecycle.paid(w.merchant_id, placed.id)
    assert v.members.spent == {placed.id: 600}
    line = placed.lines[0].line_id
    for units, back in ((1, 300), (1, 600)):
        refund_id, after = await refund(w, placed.id, {line: units})
        await v.lifecycle.refunded(w.merchant_id, placed.id, refund_id, after)
        assert v.members.returned(placed.id) == back


async def test_a_cancelled_order_releases_its_points(v):
    w = v.world
    sku = w.sku(5000)
    m = mall(v, sku)
    placed = await order(v, m, (await an_item(v, m, sku, points=250)).id)
    stored = await w.orders.get(w.merchant_id, placed.id)
    with w.as_member():
        await w.order_cases.cancel(placed.id)
    await v.lifecycle.cancelled(w.merchant_id, stored.id)
    assert placed.id in v.members.released and v.members.available[w.member_id] == 1000


async def test_too_few_points_hold_nothing_and_give_the_units_back(v):
    w = v.world
    sku = w.sku(5000)
    m = mall(v, sku)
    item = await an_item(v, m, sku, points=600)
    with pytest.raises(FailedPrecondition) as short:
        await order(v, m, item.id, 2)
    assert short.value.reason == "POINTS_INSUFFICIENT"
    assert len(w.catalog.released) == 1 and not w.orders.orders and not v.members.held
    assert v.members.available[w.member_id] == 1000


async def test_refusals_before_anything_is_reserved(v):
    w = v.world
    sku = w.sku(5000)
    m = mall(v, sku)
    item = await an_item(v, m, sku)
    with w.as_staff("OPERATOR"):
        await m.end(item.id)
    with pytest.raises(FailedPrecondition):
        await order(v, m, item.id)
    with pytest.raises(NotFound):
        await order(v, m, new_id("pmi"))
    with pytest.raises(InvalidArgument):
        await order(v, m, "pmi_bad")
    assert not w.catalog.reserved
    with w.as_staff("GUIDE"), pytest.raises(PermissionDenied):
        await m.create(ItemDraft(sku, "", 1, 0, 1, 1, w.clock.now, w.clock.now + timedelta(hours=1)), "k2")


def test_a_points_mall_order_spreads_its_points_by_units_not_by_discount():
    class Line:
        def __init__(self, line_id, quantity):
            self.line_id, self.quantity, self.steps = line_id, quantity, ()

        def step_amount(self, step):
            return 0

    class Activity:
        kind = "POINTS_MALL"

    class AnOrder:
        activity = Activity()
        lines = [Line("oln_a", 2), Line("oln_b", 1)]

    assert points_shares(AnOrder()) == [("oln_a", 2, 2), ("oln_b", 1, 1)]
    AnOrder.activity = None
    assert points_shares(AnOrder()) == [("oln_a", 2, 0), ("oln_b", 1, 0)]


async def test_a_cash_price_the_catalog_refuses_is_named_as_the_cash_price(v):
    w = v.world
    sku = w.sku(5000)
    m = mall(v, sku)

    async def refuse(*args, **kw):
        raise InvalidArgument("too dear", reason="INVALID_FIELDS",
                              violations=[FieldViolation("price.amount", "must be below the list price 5000")])
    m.pools.create_pool = refuse
    with w.as_staff("OPERATOR"), pytest.raises(InvalidArgument) as refused:
        await m.create(ItemDraft(sku, "", 1, 5000, 1, 1, w.clock.now, w.clock.now + timedelta(hours=1)), "k")
    assert [x.field for x in refused.value.violations] == ["cash_price"]
