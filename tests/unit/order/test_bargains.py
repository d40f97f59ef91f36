"""Bargain use cases over fakes: start (one open bargain per member and activity), helps
to the floor, every refusal, the help limits given back, racing helpers, ordering once,
the expiry job and the invitee binding."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.order.application.bargains import BargainUseCases, PlaceBargainOrderInput
from services.order.application.ports import FlashReservation
from services.order.domain import bargains as bg
from services.order.domain.bargains import ActivityTerms, BargainState
from tests.fakes.bargains import FakeBargainActivities, FakeBargains, FakeHelpCounters, FakeInvitees, FakePools
from tests.unit.order.conftest import World


class Bw:
    """A World with bargains."""

    def __init__(self, world: World):
        self.w = world
        self.activities, self.bargains = FakeBargainActivities(), FakeBargains()
        self.counters, self.pools, self.invitees = FakeHelpCounters(), FakePools(), FakeInvitees()
        self.sku_id = world.sku(20_000)
        self.cases = BargainUseCases(
            activities=self.activities, bargains=self.bargains, counters=self.counters, pools=self.pools,
            invitees=self.invitees, skus=world.catalog, orders=world.orders, settings=world.settings, catalog=world.catalog,
            checkout=world.checkout, order_cases=world.order_cases, clock=world.clock, new_seed=lambda: 7)

    def terms(self, **over) -> ActivityTerms:
        now = self.w.clock()
        base = dict(product_id="", sku_id=self.sku_id, title="", start_price=10_000, floor_price=1_000,
                    helpers_needed=3, time_limit_s=86_400, starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(days=6), units=10, per_member_limit=1)
        base.update(over)
        return ActivityTerms(**base)

    async def activity(self, **over):
        with self.w.as_staff("OPERATOR"):
            return await self.cases.create_activity(new_id("key"), self.terms(**over))

    async def start(self, activity_id: str, member_id: str = ""):
        with self.w.as_member(member_id):
            return await self.cases.start(activity_id, {"share_code": "sc1", "persona_id": ""})

    async def help(self, bargain_id: str, member_id: str, nickname: str = "张三"):
        with self.w.as_member(member_id):
            return await self.cases.help(bargain_id, nickname)


@pytest.fixture
def bw(world) -> Bw:
    return Bw(world)


async def test_helpers_bring_the_price_to_the_floor_exactly(bw):
    a = await bw.activity()
    b, created = await bw.start(a.id)
    assert created and b.price == 10_000 and b.cuts == bg.cuts(10_000, 1_000, 3, 7)
    prices = []
    for _ in range(3):
        r = await bw.help(b.id, new_id("mem"))
        prices.append(r.bargain.price)
    assert prices[-1] == 1_000 and prices == sorted(prices, reverse=True)
    stored = bw.bargains.rows[b.id]
    assert stored.state == BargainState.SUCCEEDED and [h.nickname for h in stored.helps] == ["张**"] * 3
    assert bw.bargains.event_types(b.id) == ["BargainStarted", "BargainHelped", "BargainHelped", "BargainHelped",
                                             "BargainSucceeded"]


async def test_starting_again_answers_the_open_bargain(bw):
    a = await bw.activity()
    first, _ = await bw.start(a.id)
    again, created = await bw.start(a.id)
    assert again.id == first.id and not created
    other, created = await bw.start(a.id, new_id("mem"))
    assert created and other.id != first.id


async def test_a_closed_activity_starts_nothing(bw):
    a = await bw.activity()
    with bw.w.as_staff("OPERATOR"):
        await bw.cases.end_activity(a.id)
    with pytest.raises(FailedPrecondition) as e:
        await bw.start(a.id)
    assert e.value.reason == bg.ACTIVITY_NOT_OPEN


async def test_activity_terms_are_refused_field_by_field_and_nothing_is_made(bw):
    with bw.w.as_staff("OPERATOR"), pytest.raises(InvalidArgument) as e:
        await bw.cases.create_activity("k", bw.terms(start_price=100, floor_price=95, helpers_needed=10))
    assert {v.field for v in e.value.violations} == {"activity.helpers_needed"}
    with bw.w.as_staff("OPERATOR"), pytest.raises(InvalidArgument) as e:
        await bw.cases.create_activity("k", bw.terms(start_price=30_000))
    assert {v.field for v in e.value.violations} == {"activity.start_price"}
    assert bw.activities.rows == {} and bw.pools.pools == {}
    with bw.w.as_staff("OPERATOR"), pytest.raises(NotFound):
        await bw.cases.create_activity("k", bw.terms(sku_id=new_id("sku")))


async def test_creating_twice_with_one_key_makes_one_activity(bw):
    with bw.w.as_staff("OPERATOR"):
        one = await bw.cases.create_activity("same", bw.terms())
        two = await bw.cases.create_activity("same", bw.terms())
    assert one.id == two.id and len(bw.pools.pools) == 1


@pytest.mark.parametrize("case,reason", [
    ("own", bg.OWN_BARGAIN), ("again", bg.ALREADY_HELPED), ("finished", bg.BARGAIN_FINISHED),
    ("expired", bg.BARGAIN_EXPIRED)])
async def test_every_refused_help_gives_its_reason_and_takes_no_help(bw, case, reason):
    a = await bw.activity(helps_per_day=10, helps_per_member=10)
    b, _ = await bw.start(a.id)
    helper = new_id("mem")
    if case == "again":
        await bw.help(b.id, helper)
    if case == "finished":
        for _ in range(3):
            await bw.help(b.id, new_id("mem"))
    if case == "expired":
        bw.w.clock.advance(hours=25)
    who = bw.w.member_id if case == "own" else helper
    before = dict(bw.counters.counts)
    with pytest.raises(FailedPrecondition) as e:
        await bw.help(b.id, who)
    assert e.value.reason == reason
    assert bw.counters.counts == before


async def test_help_limits_per_activity_and_per_day(bw):
    a = await bw.activity(helps_per_member=2, helps_per_day=1, time_limit_s=5 * 86_400)
    helper = new_id("mem")
    b1, _ = await bw.start(a.id, new_id("mem"))
    b2, _ = await bw.start(a.id, new_id("mem"))
    b3, _ = await bw.start(a.id, new_id("mem"))
    await bw.help(b1.id, helper)
    with pytest.raises(FailedPrecondition) as e:
        await bw.help(b2.id, helper)
    assert e.value.reason == bg.HELP_LIMIT_REACHED
    bw.w.clock.advance(days=1)
    await bw.help(b2.id, helper)
    bw.w.clock.advance(days=1)
    with pytest.raises(FailedPrecondition) as e:
        await bw.help(b3.id, helper)
    assert e.value.reason == bg.HELP_LIMIT_REACHED


async def test_a_help_refused_after_the_limits_were_taken_gives_them_back(bw):
    a = await bw.activity(helpers_needed=1, helps_per_member=1, helps_per_day=1)
    b, _ = await bw.start(a.id)
    helper, late = new_id("mem"), new_id("mem")
    bw.bargains.interleave = True
    # Both pass the early checks; one wins the last cut, the other is refused and its
    # counters come back so it can still help another bargain.
    results = await asyncio.gather(bw.help(b.id, helper), bw.help(b.id, late), return_exceptions=True)
    refused = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(refused) == 1 and refused[0].reason == bg.BARGAIN_FINISHED
    other, _ = await bw.start(a.id, new_id("mem"))
    loser = late if isinstance(results[1], FailedPrecondition) else helper
    await bw.help(other.id, loser)


async def test_racing_helpers_take_exactly_the_needed_cuts(bw):
    a = await bw.activity(helpers_needed=10, start_price=50_000 // 5, floor_price=1_000)
    b, _ = await bw.start(a.id)
    bw.bargains.interleave = True
    results = await asyncio.gather(*(bw.help(b.id, new_id("mem")) for _ in range(40)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 10
    assert all(isinstance(e, FailedPrecondition) and e.reason == bg.BARGAIN_FINISHED for e in lost)
    stored = bw.bargains.rows[b.id]
    assert stored.price == 1_000 and stored.helped == 10 and stored.state == BargainState.SUCCEEDED
    assert sorted(r.cut for r in won) == sorted(stored.cuts)


async def test_a_new_helper_is_bound_and_a_failing_binding_never_fails_the_help(bw):
    a = await bw.activity(bind_new_helpers=True)
    b, _ = await bw.start(a.id)
    helper = new_id("mem")
    r = await bw.help(b.id, helper)
    assert r.bound_as_invitee and bw.invitees.calls == [(bw.w.member_id, helper, f"bargain:{b.id}")]
    bw.invitees.fail = RuntimeError("member service away")
    r = await bw.help(b.id, new_id("mem"))
    assert not r.bound_as_invitee and r.bargain.helped == 2


async def test_no_binding_unless_the_activity_asks(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    await bw.help(b.id, new_id("mem"))
    assert bw.invitees.calls == []


async def test_expired_bargains_fail_once(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    assert await bw.cases.fail_due() == 0
    bw.w.clock.advance(hours=24)
    assert await bw.cases.fail_due() == 1
    assert await bw.cases.fail_due() == 0
    assert bw.bargains.rows[b.id].state == BargainState.FAILED
    assert bw.bargains.event_types(b.id)[-1] == "BargainFailed"
    # A new bargain may be started once the old one is closed.
    bw.w.clock.advance(minutes=1)
    again, created = await bw.start(a.id)
    assert created and again.id != b.id


async def test_a_bargain_is_seen_by_any_member_of_the_merchant_and_listed_for_its_starter(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    with bw.w.as_member(new_id("mem")):
        assert (await bw.cases.get(b.id)).id == b.id
        with pytest.raises(NotFound):
            await bw.cases.get(new_id("bgn"))
    with bw.w.as_member():
        rows, token = await bw.cases.mine(0, "")
    assert [r.id for r in rows] == [b.id] and token == ""


async def order(bw, b, key="k1"):
    bw.w.catalog.flash_won = FlashReservation(bw.sku_id, b.floor_price)
    with bw.w.as_member():
        return await bw.cases.place_order(PlaceBargainOrderInput(bargain_id=b.id, idempotency_key=key))


async def test_the_starter_orders_once_at_the_price_reached(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    for _ in range(3):
        await bw.help(b.id, new_id("mem"))
    placed, bargain = await order(bw, b)
    assert placed.lines[0].line_amount == 1_000
    assert [s.step for s in placed.lines[0].steps][0] == "BARGAIN_PRICE"
    assert placed.activity.kind == "BARGAIN" and placed.activity.bargain_id == b.id
    assert bargain.state == BargainState.ORDERED and bargain.order_id == placed.id
    again, _ = await order(bw, b)
    assert again.id == placed.id
    with pytest.raises(FailedPrecondition) as e:
        await order(bw, b, key="k2")
    assert e.value.reason == bg.BARGAIN_FINISHED


async def test_ordering_before_the_floor_only_when_allowed(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    await bw.help(b.id, new_id("mem"))
    with pytest.raises(FailedPrecondition) as e:
        await order(bw, b)
    assert e.value.reason == bg.BARGAIN_NOT_REACHED
    early = await bw.activity(buy_before_floor=True)
    b2, _ = await bw.start(early.id)
    await bw.help(b2.id, new_id("mem"))
    placed, _ = await order(bw, bw.bargains.rows[b2.id], key="k3")
    assert placed.lines[0].line_amount == bw.bargains.rows[b2.id].price


async def test_a_failed_order_gives_the_bargain_back(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    for _ in range(3):
        await bw.help(b.id, new_id("mem"))
    bw.w.catalog.refuse_flash = FailedPrecondition("sold out", reason="SOLD_OUT")
    with bw.w.as_member(), pytest.raises(FailedPrecondition):
        await bw.cases.place_order(PlaceBargainOrderInput(bargain_id=b.id, idempotency_key="k"))
    assert bw.bargains.rows[b.id].state == BargainState.SUCCEEDED


async def test_only_the_starter_orders(bw):
    a = await bw.activity()
    b, _ = await bw.start(a.id)
    with bw.w.as_member(new_id("mem")), pytest.raises(NotFound):
        await bw.cases.place_order(PlaceBargainOrderInput(bargain_id=b.id, idempotency_key="k"))
