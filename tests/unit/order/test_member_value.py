"""Coupons and points through checkout, over in-memory fakes: the quote prices them in
their places and the order charges what the quote showed; placing locks the coupon and
holds the points all-or-nothing with the stock, behind an intent the sweep uses after a
crash; the order's paid, cancelled and refunded events use, release and reverse them, and
replays change nothing."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import FailedPrecondition, InvalidArgument, Unavailable
from siyu_kit.ids import new_id

from services.order.application.flash_orders import PlaceFlashSaleOrderInput
from services.order.application.member_value import ValueHolds, ValueLifecycle, whole_order_refund_id
from services.order.application.ports import FlashReservation, LimitedTimePrice
from services.order.domain.member_value import (LinePoints, PointsTerms, ValueAsk, ValueHoldIntent, points_by_line,
                                                points_problem, points_to_return)
from services.order.domain.orders import AppliedRefund, RefundedUnits
from services.order.domain.pricing import COUPON, POINTS
from services.order.domain.settings import OrderSettings, ThresholdReduction
from tests.fakes.member_value import AVAILABLE, LOCKED, USED, FakeCoupon, FakeMemberValue, FakeValueHoldIntents
from tests.unit.order.conftest import World


@dataclass
class Value:
    world: World
    members: FakeMemberValue
    intents: FakeValueHoldIntents
    holds: ValueHolds
    lifecycle: ValueLifecycle

    def coupon(self, **more) -> str:
        return self.members.give(FakeCoupon(coupon_id=new_id("cpn"), member_id=self.world.member_id, **more))


@pytest.fixture
def v(world: World) -> Value:
    members, intents = FakeMemberValue(), FakeValueHoldIntents()
    members.available[world.member_id] = 1000
    holds = ValueHolds(member_value=members, intents=intents, orders=world.orders, clock=world.clock)
    world.checkout.member_value = members
    world.order_cases.value_holds = holds
    return Value(world, members, intents, holds, ValueLifecycle(orders=world.orders, member_value=members))


def steps_of(line) -> dict[str, int]:
    return {s.step: s.amount for s in line.steps}


async def quote(w: World, lines, **ask):
    with w.as_member():
        return await w.checkout.quote(list(lines), ask=ValueAsk(**ask))


# ---- quote ------------------------------------------------------------------------------

async def test_the_quote_takes_the_coupon_from_lines_in_scope_then_points_from_every_line(v):
    w = v.world
    tea, cup = w.sku(8000, product_id="prd_tea"), w.sku(4000, product_id="prd_cup")
    coupon_id = v.coupon(threshold=5000, amount_off=1000, products=frozenset({"prd_tea"}))
    priced = await quote(w, [(tea, 1), (cup, 1)], coupon_id=coupon_id, points=300)
    q = priced.quote
    tea_line, cup_line = q.lines
    # Points by largest remainder on what is left after the coupon: 300 × 7000/11000 and 4000/11000.
    assert steps_of(tea_line) == {COUPON: 1000, POINTS: 191}
    assert steps_of(cup_line) == {POINTS: 109}, "a line out of the coupon's scope shares only the points"
    assert q.payable == 12000 - 1000 - 300 and q.shipping_fee == 0
    assert priced.value.coupon.coupon_id == coupon_id and priced.value.points_discount == 300
    assert priced.value.payable_before_points == 11000
    # The quote shows the terms on what is left after the coupon: half of ¥110, all 1,000 points.
    assert priced.value.terms.max_usable == 1000
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.members.points_held(w.member_id) == 0


async def test_the_best_coupon_is_the_one_that_saves_most_and_none_when_none_fits(v):
    w = v.world
    tea = w.sku(10000)
    v.coupon(amount_off=500)
    best = v.coupon(amount_off=1500)
    v.coupon(threshold=50000, amount_off=5000)
    priced = await quote(w, [(tea, 1)], best_coupon=True)
    assert priced.value.coupon.coupon_id == best and priced.quote.payable == 8500
    cheap = w.sku(100)
    priced = await quote(w, [(cheap, 1)], best_coupon=True)
    assert priced.value.coupon is None and priced.quote.payable == 100


async def test_a_quote_without_an_ask_still_shows_the_points_terms(v):
    priced = await quote(v.world, [(v.world.sku(4000), 1)])
    assert priced.value.terms == PointsTerms(available=1000, max_usable=1000, max_discount=1000)
    assert priced.value.used.is_empty and v.members.calls == ["points_terms"]


async def test_points_off_step_or_below_floor_are_a_field_violation_over_what_is_allowed_a_precondition(v):
    w = v.world
    tea = w.sku(1000)
    with pytest.raises(InvalidArgument) as bad:
        await quote(w, [(tea, 1)], points=150)
    assert [x.field for x in bad.value.violations] == ["points"]
    with pytest.raises(FailedPrecondition) as over:
        await quote(w, [(tea, 1)], points=600)  # at most 50% of ¥10
    assert over.value.reason == "POINTS_OVER_LIMIT"
    v.members.available[w.member_id] = 100
    with pytest.raises(FailedPrecondition) as short:
        await quote(w, [(tea, 1)], points=200)
    assert short.value.reason == "POINTS_INSUFFICIENT"


async def test_bad_coupon_ids_are_refused_before_anything_is_read(v):
    w = v.world
    with pytest.raises(InvalidArgument) as bad:
        await quote(w, [(w.sku(1000), 1)], coupon_id="cpn_x", best_coupon=True, points=-1)
    assert {x.field for x in bad.value.violations} == {"coupon_id", "best_coupon", "points"}
    assert v.members.calls == []


def test_points_problems_follow_the_terms():
    terms = PointsTerms(available=500, max_usable=300, max_discount=300)
    assert points_problem(300, terms) is None
    assert points_problem(50, terms)[0] == "POINTS_STEP"
    assert points_problem(250, terms)[0] == "POINTS_STEP"
    assert points_problem(400, terms)[0] == "POINTS_OVER_LIMIT"
    assert points_problem(600, terms)[0] == "POINTS_INSUFFICIENT"


# ---- placing --------------------------------------------------------------------------

async def test_placing_locks_the_coupon_holds_the_points_and_charges_the_quote(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    quoted = await quote(w, [(tea, 2)], coupon_id=coupon_id, points=500)
    order = await w.place((tea, 2), coupon_id=coupon_id, points=500)
    assert order.payable == quoted.quote.payable == 12000 - 1000 - 500
    assert [l.paid_amount for l in order.lines] == [l.paid_amount for l in quoted.quote.lines]
    assert order.value.coupon_id == coupon_id and order.value.coupon_name == "满100减10"
    assert (order.value.coupon_discount, order.value.points, order.value.points_discount) == (1000, 500, 500)
    assert order.lines[0].step_amount(COUPON) == 1000 and order.lines[0].step_amount(POINTS) == 500
    assert v.members.coupons[coupon_id].state == LOCKED and v.members.coupons[coupon_id].order_id == order.id
    assert v.members.held[order.id] == (w.member_id, 500)
    assert v.intents.intents == {}, "the intent goes once the order is written"
    again = await w.place((tea, 2), coupon_id=coupon_id, points=500, key=order.idempotency_key)
    assert again.id == order.id


async def test_a_refused_points_hold_releases_the_coupon_and_the_stock_and_writes_nothing(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    v.members.fail["hold_points"] = FailedPrecondition("gone", reason="POINTS_INSUFFICIENT")
    with pytest.raises(FailedPrecondition) as refused:
        await w.place((tea, 2), coupon_id=coupon_id, points=500)
    assert refused.value.reason == "POINTS_INSUFFICIENT"
    assert w.orders.orders == {}
    assert v.members.coupons[coupon_id].state == AVAILABLE
    assert set(w.catalog.released) == set(w.catalog.reserved)
    assert v.intents.intents == {}


async def test_a_coupon_locked_for_a_different_amount_is_released_and_refused(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    original = v.members.lock_coupon

    async def changed(*args, **kwargs):
        v.members.coupons[coupon_id].amount_off = 500
        return await original(*args, **kwargs)

    v.members.lock_coupon = changed
    with pytest.raises(FailedPrecondition) as refused:
        await w.place((tea, 2), coupon_id=coupon_id)
    assert refused.value.reason == "MEMBER_VALUE_CHANGED"
    assert v.members.coupons[coupon_id].state == AVAILABLE and w.orders.orders == {}


async def test_a_failed_order_write_releases_coupon_points_and_stock(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()

    async def broken(order):
        raise Unavailable("database away")

    w.orders.add = broken
    with pytest.raises(Unavailable):
        await w.place((tea, 2), coupon_id=coupon_id, points=500)
    assert v.members.coupons[coupon_id].state == AVAILABLE
    assert v.members.available[w.member_id] == 1000 and v.members.held == {}
    assert set(w.catalog.released) == set(w.catalog.reserved) and v.intents.intents == {}


async def test_a_release_that_fails_leaves_the_intent_for_the_sweep(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    v.members.fail["hold_points"] = FailedPrecondition("no", reason="POINTS_INSUFFICIENT")
    v.members.fail["release_coupon"] = Unavailable("member service away")
    with pytest.raises(FailedPrecondition):
        await w.place((tea, 2), coupon_id=coupon_id, points=500)
    assert v.members.coupons[coupon_id].state == LOCKED and len(v.intents.intents) == 1
    assert await v.holds.sweep() == 0, "not before its grace"
    w.clock.advance(seconds=121)
    with w.as_service():
        assert await v.holds.sweep() == 1
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.intents.intents == {}


async def test_the_sweep_releases_intents_without_an_order_and_drops_those_with_one(v):
    """A crash between holding and writing the order leaves an intent and held value."""
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    order = await w.place((tea, 2), coupon_id=coupon_id, points=200)
    orphan = new_id("ord")
    v.members.available[w.member_id] -= 300
    v.members.held[orphan] = (w.member_id, 300)
    now = w.clock()
    await v.intents.add(ValueHoldIntent(orphan, w.merchant_id, w.member_id, "", 300, now))
    await v.intents.add(ValueHoldIntent(order.id, w.merchant_id, w.member_id, coupon_id, 200, now))
    w.clock.advance(seconds=60)
    assert await v.holds.sweep() == 0 and len(v.intents.intents) == 2
    w.clock.advance(seconds=61)
    assert await v.holds.sweep() == 1
    assert v.intents.intents == {}
    assert orphan in v.members.released and v.members.held[order.id] == (w.member_id, 200)
    assert v.members.coupons[coupon_id].state == LOCKED, "the written order keeps its coupon"


async def test_a_second_sweeper_does_not_take_a_leased_intent(v):
    w = v.world
    await v.intents.add(ValueHoldIntent(new_id("ord"), w.merchant_id, w.member_id, "", 100, w.clock()))
    w.clock.advance(seconds=200)
    v.members.fail["release_points"] = Unavailable("away")
    assert await v.holds.sweep() == 0
    assert await v.holds.sweep() == 0 and v.members.calls.count("release_points") == 1, "leased to the first"
    w.clock.advance(seconds=61)
    assert await v.holds.sweep() == 1 and v.intents.intents == {}


async def test_an_order_written_too_late_for_its_intent_is_refused_and_released(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    original = v.holds.hold

    async def slow(*args, **kwargs):
        held_at = await original(*args, **kwargs)
        w.clock.advance(seconds=61)
        return held_at

    v.holds.hold = slow
    with pytest.raises(Unavailable):
        await w.place((tea, 2), coupon_id=coupon_id, points=200)
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.members.held == {} and w.orders.orders == {}


async def test_flash_orders_ask_for_the_coupon_as_flash_sale_orders(v):
    w = v.world
    tea = w.sku(20000)
    w.catalog.flash_won = FlashReservation(sku_id=tea, unit_price=15000)
    refusing = v.coupon()
    with w.as_member(), pytest.raises(FailedPrecondition) as refused:
        await w.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="k1",
                                                     coupon_id=refusing))
    assert refused.value.reason == "COUPON_WRONG_ORDER_KIND"
    assert set(w.catalog.released) == set(w.catalog.reserved)
    taking = v.coupon(flash_sale_ok=True)
    with w.as_member():
        order = await w.flash.place(PlaceFlashSaleOrderInput(flash_sale_id=new_id("fls"), idempotency_key="k2",
                                                             coupon_id=taking, points=100))
    assert order.payable == 15000 - 1000 - 100 and order.value.coupon_id == taking


# ---- lifecycle --------------------------------------------------------------------------

async def paid(w: World, order):
    stored = await w.orders.get(w.merchant_id, order.id)
    stored.pay(new_id("pay"), w.clock())
    await w.orders.save(stored)
    return stored


async def refund(w: World, order_id: str, takes: dict[str, int]):
    """Applies a refund of `takes` (line id → units) to the stored order; its refund id and
    each line's refunded units right after it (what the event carries)."""
    order = await w.orders.get(w.merchant_id, order_id)
    refund_id = new_id("rfd")
    lines = {l.line_id: l for l in order.lines}
    units = tuple(RefundedUnits(lid, lines[lid].sku_id, q, lines[lid].paid_amount * q // lines[lid].quantity)
                  for lid, q in takes.items())

    @dataclass
    class After:
        line_id: str
        refunded_quantity: int
        refunded_amount: int

    after = [After(lid, lines[lid].refunded_quantity + q, lines[lid].refunded_amount + u.amount)
             for (lid, q), u in zip(takes.items(), units)]
    order.apply_refund(refund_id, AppliedRefund(amount=sum(u.amount for u in units), shipping_fee_refund=0,
                                                restock=True, lines=units), after, w.clock())
    await w.orders.save(order)
    return refund_id, {l.line_id: l.refunded_quantity for l in order.lines}


async def test_paid_uses_the_coupon_and_spends_the_points_and_replays_change_nothing(v):
    w = v.world
    coupon_id = v.coupon()
    order = await w.place((w.sku(6000), 2), coupon_id=coupon_id, points=400)
    await paid(w, order)
    for _ in range(2):
        await v.lifecycle.paid(w.merchant_id, order.id)
    assert v.members.coupons[coupon_id].state == USED and v.members.spent == {order.id: 400}
    assert v.members.available[w.member_id] == 600


async def test_cancelled_or_expired_unpaid_orders_release_coupon_and_points(v):
    w = v.world
    tea = w.sku(6000)
    coupon_id = v.coupon()
    order = await w.place((tea, 2), coupon_id=coupon_id, points=400)
    with w.as_member():
        await w.order_cases.cancel(order.id)
    for _ in range(2):
        await v.lifecycle.cancelled(w.merchant_id, order.id)
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.members.available[w.member_id] == 1000

    second = await w.place((tea, 2), coupon_id=coupon_id, points=400)
    w.clock.advance(seconds=OrderSettings().unpaid_expiry_s + 1)
    assert await w.order_cases.expire_due() == 1
    await v.lifecycle.cancelled(w.merchant_id, second.id)
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.members.available[w.member_id] == 1000


async def test_a_paid_order_cancelled_for_missing_stock_returns_everything(v):
    w = v.world
    coupon_id = v.coupon()
    order = await w.place((w.sku(6000), 2), coupon_id=coupon_id, points=400)
    stored = await paid(w, order)
    stored.cancel_unfulfillable(w.clock())
    await w.orders.save(stored)
    await v.lifecycle.cancelled(w.merchant_id, order.id)
    assert v.members.spent == {order.id: 400}
    assert v.members.reversals[whole_order_refund_id(order.id)][:2] == (order.id, 400)
    assert v.members.coupons[coupon_id].state == AVAILABLE and v.members.available[w.member_id] == 1000


async def test_refunds_return_the_refunded_units_points_and_a_full_unshipped_refund_the_coupon(v):
    w = v.world
    tea, cup = w.sku(6000), w.sku(3000)
    coupon_id = v.coupon()
    order = await w.place((tea, 3), (cup, 1), coupon_id=coupon_id, points=700)
    await paid(w, order)
    tea_line, cup_line = (l.line_id for l in order.lines)
    first, after = await refund(w, order.id, {tea_line: 1})
    await v.lifecycle.refunded(w.merchant_id, order.id, first, after)
    await v.lifecycle.refunded(w.merchant_id, order.id, first, after)  # a replay
    assert v.members.spent == {order.id: 700}, "paid before reversed, whatever the events' order"
    share = points_by_line(700, [(l.line_id, l.quantity, l.step_amount(POINTS)) for l in order.lines])
    tea_points = share[0].points
    assert v.members.returned(order.id) == tea_points // 3
    assert v.members.coupons[coupon_id].state == USED
    second, after = await refund(w, order.id, {tea_line: 2, cup_line: 1})
    await v.lifecycle.refunded(w.merchant_id, order.id, second, after)
    assert v.members.returned(order.id) == 700
    assert v.members.coupons[coupon_id].state == AVAILABLE, "a full refund before shipping"
    assert [r[3] for r in v.members.reversals.values()] == [order.payable] * 2, "earned points: in proportion"


# ---- properties -------------------------------------------------------------------------

@st.composite
def baskets(draw):
    n = draw(st.integers(1, 4))
    lines = [(draw(st.integers(1, 30000)), draw(st.integers(1, 5)), draw(st.booleans())) for _ in range(n)]
    return dict(
        lines=lines,
        tier_bp=draw(st.sampled_from([10000, 9500, 9000, 8500])),
        flash=draw(st.one_of(st.none(), st.integers(0, 30000))),
        reduction=draw(st.one_of(st.none(), st.tuples(st.integers(1, 50000), st.integers(1, 20000)))),
        coupon=draw(st.one_of(st.none(), st.tuples(st.integers(0, 30000), st.integers(1, 30000)))),
        points_steps=draw(st.integers(0, 30)),
        shipping=draw(st.tuples(st.integers(0, 2000), st.integers(0, 50000))),
        refund_order=draw(st.randoms(use_true_random=False)),
    )


@settings(max_examples=60, deadline=None)
@given(basket=baskets())
def test_any_mix_of_prices_coupon_points_and_shipping_adds_up_and_refunds_return_exactly_what_was_taken(basket):
    asyncio.run(_any_mix(basket))


async def _any_mix(basket) -> None:
    w = World()
    w.members.tier, w.members.discount_bp = "SILVER", basket["tier_bp"]
    members, intents = FakeMemberValue(), FakeValueHoldIntents()
    members.available[w.member_id] = 100_000
    w.checkout.member_value = members
    w.order_cases.value_holds = ValueHolds(member_value=members, intents=intents, orders=w.orders, clock=w.clock)
    fee, free_over = basket["shipping"]
    reductions = (ThresholdReduction(*sorted(basket["reduction"], reverse=True)),) if basket["reduction"] else ()
    w.settings.by_merchant[w.merchant_id] = OrderSettings(shipping_fee=fee, free_shipping_over=free_over,
                                                          threshold_reductions=reductions)
    lines = []
    for price, quantity, in_scope in basket["lines"]:
        activity = None if basket["flash"] is None else LimitedTimePrice(basket["flash"], None, None)
        sku_id = w.sku(price, product_id="prd_in" if in_scope else "prd_out", limited_time=activity)
        lines.append((sku_id, quantity))
    coupon_id = ""
    if basket["coupon"]:
        threshold, off = basket["coupon"]
        coupon_id = members.give(FakeCoupon(new_id("cpn"), w.member_id, threshold=threshold, amount_off=off,
                                            products=frozenset({"prd_in"})))
    ask = {"coupon_id": coupon_id}
    try:
        priced = await quote(w, lines, **ask)
    except FailedPrecondition:
        return  # the coupon does not fit this basket: nothing to check
    usable = priced.value.terms.max_usable
    points = min(basket["points_steps"] * 100, usable)
    points = points if points >= 100 else 0
    priced = await quote(w, lines, points=points, **ask)
    q = priced.quote
    assert q.payable >= 0 and all(l.paid_amount >= 0 for l in q.lines)
    assert sum(l.paid_amount for l in q.lines) + q.shipping_fee == q.payable
    assert q.total - q.line_discount - q.order_discount + q.shipping_fee == q.payable
    coupon_steps = [l for l in q.lines for s in l.steps if s.step == COUPON]
    assert all(l.product_id == "prd_in" for l in coupon_steps), "never a line out of the coupon's scope"
    assert sum(s.amount for l in q.lines for s in l.steps if s.step == POINTS) == priced.value.points_discount

    order = await w.place(*lines, **ask, points=points)
    assert order.payable == q.payable and [l.paid_amount for l in order.lines] == [l.paid_amount for l in q.lines]
    stored = await paid(w, order)
    await v_lifecycle(w, members).paid(w.merchant_id, order.id)
    units = [(l.line_id, 1) for l in stored.lines for _ in range(l.quantity)]
    basket["refund_order"].shuffle(units)
    lifecycle = v_lifecycle(w, members)
    while units:
        take, units = units[:2], units[2:]
        takes: dict[str, int] = {}
        for line_id, q1 in take:
            takes[line_id] = takes.get(line_id, 0) + q1
        refund_id, after = await refund(w, order.id, takes)
        await lifecycle.refunded(w.merchant_id, order.id, refund_id, after)
    assert members.returned(order.id) == points
    assert members.available[w.member_id] == 100_000
    if coupon_id and order.value is not None and order.value.coupon_id:
        assert members.coupons[coupon_id].state == AVAILABLE


def v_lifecycle(w: World, members: FakeMemberValue) -> ValueLifecycle:
    return ValueLifecycle(orders=w.orders, member_value=members)


@given(quantity=st.integers(1, 20), points=st.integers(0, 5000), cuts=st.lists(st.integers(1, 20), max_size=20))
def test_spent_points_come_back_exactly_over_any_split_of_the_units(quantity, points, cuts):
    line = [LinePoints("oln_1", quantity, points)]
    refunded, returned = 0, 0
    for cut in cuts + [quantity]:
        after = min(refunded + cut, quantity)
        returned += points_to_return(line, {"oln_1": refunded}, {"oln_1": after})
        refunded = after
    assert returned == points



async def test_a_shipped_order_refunded_in_full_keeps_its_coupon_used(v):
    w = v.world
    coupon_id = v.coupon()
    order = await w.place((w.sku(6000), 2), coupon_id=coupon_id, points=200)
    stored = await paid(w, order)
    stored.ship("SF", "SF1", w.clock.ms(), auto_confirm_days=10, open_refunds=0)
    await w.orders.save(stored)
    refund_id, after = await refund(w, order.id, {order.lines[0].line_id: 2})
    await v.lifecycle.refunded(w.merchant_id, order.id, refund_id, after)
    assert v.members.returned(order.id) == 200
    assert v.members.coupons[coupon_id].state == USED and "restore_coupon" not in v.members.calls


async def test_orders_without_coupon_or_points_only_give_earned_points_back_on_refunds(v):
    w = v.world
    order = await w.place((w.sku(6000), 2))
    assert order.value is None and v.intents.intents == {} and v.members.calls == []
    await paid(w, order)
    await v.lifecycle.paid(w.merchant_id, order.id)
    refund_id, after = await refund(w, order.id, {order.lines[0].line_id: 1})
    await v.lifecycle.refunded(w.merchant_id, order.id, refund_id, after)
    assert v.members.calls == ["reverse_points"]
    assert v.members.reversals[refund_id] == (order.id, 0, 6000, 12000)
    with w.as_member():
        other = await w.place((w.sku(100), 1))
        await w.order_cases.cancel(other.id)
    await v.lifecycle.cancelled(w.merchant_id, other.id)
    assert v.members.calls == ["reverse_points"], "an unpaid order without coupon or points asks nothing"
