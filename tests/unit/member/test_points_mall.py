"""Points mall coupons over in-memory ports: item rules, the redemption's steps and state
machine, every refusal, the finishing job after a crash, and concurrent redemptions that
never spend more points or units than there are; and the points-price hold (no discount
rules, never more than available)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.member.application.points_mall import FINISH_GRACE, ItemDraft
from services.member.domain import points_mall as rules
from services.member.domain.points_account import PointsBook, Refused
from services.member.domain.points_mall import Redemption, RedemptionState
from siyu_kit.errors import (Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
                             Unauthenticated, Violations)
from siyu_kit.ids import new_id
from tests.fakes.coupon_world import draft
from tests.fakes.member import caller
from tests.fakes.points_mall import points_mall_world
from tests.fakes.points_world import operator, service


@pytest.fixture
async def w():
    return await points_mall_world()


def as_member(w, member_id: str | None = None):
    return caller(w.m.id, channel="H5", member_id=member_id or w.member)


async def credit(w, points: int, member_id: str | None = None) -> None:
    with operator(w):
        await w.economy.adjust(member_id or w.member, points, "gift", new_id("key")[-20:])


async def template(w, **kw) -> str:
    with operator(w):
        t = await w.coupon.cases.create_template(draft(**{"total": 100, "per_member_limit": 100, **kw}), new_id("k"))
        await w.coupon.cases.activate(t.id)
    return t.id


async def item(w, points: int = 100, units: int = 10, limit: int = 5, **kw):
    tid = kw.pop("template_id", None) or await template(w)
    with operator(w):
        return await w.mall.create(ItemDraft(tid, points, units, limit, w.clock.now - timedelta(minutes=1),
                                             w.clock.now + timedelta(hours=1)), new_id("key")[-20:])


async def available(w, member_id: str | None = None) -> int:
    return (await w.ledger.book(w.m.id, member_id or w.member)).available


# ---- rules ---------------------------------------------------------------------------------

def test_item_rules_name_every_bad_field():
    v = Violations()
    rules.check_item(v, 0, 0, 101, None, None)
    assert {i.field for i in v.items} == {"points_price", "units", "per_member_limit", "starts_at", "ends_at"}


def test_the_redemption_moves_only_forward_and_ends_in_one_of_three_states():
    r = Redemption("pmr_1", "m", "mem", "pmc", "cpt", 10, RedemptionState.TAKEN, None, "k")
    with pytest.raises(FailedPrecondition):
        r.issued("cpn_1")  # not before the points are spent
    r.points_spent()
    with pytest.raises(FailedPrecondition):
        r.undone("POINTS_INSUFFICIENT")  # spent points are returned, never just undone
    r.returned(rules.COUPON_UNAVAILABLE)
    assert r.finished and r.gives_back
    for move in (r.points_spent, lambda: r.issued("x")):
        with pytest.raises(FailedPrecondition):
            move()


def test_spending_never_takes_more_than_is_available_and_returning_needs_a_spend():
    book = PointsBook("m", "mem", balance=50, available=50, lots={"e99991231": 50})
    from datetime import datetime, timezone
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(Refused) as refused:
        rules.spend_movement(book, "pmr_1", 51, "Asia/Shanghai", now)
    assert refused.value.reason == "POINTS_INSUFFICIENT"
    with pytest.raises(Refused):
        rules.return_movement(book, "pmr_1", 50, "e99991231")
    m = rules.spend_movement(book, "pmr_1", 50, "Asia/Shanghai", now)
    assert (m.points, m.available, m.lots) == (-50, -50, {"e99991231": -50})
    book.apply(m)
    back = rules.return_movement(book, "pmr_1", 50, "e99991231")
    assert (back.points, back.available) == (50, 50)


# ---- staff ---------------------------------------------------------------------------------

async def test_staff_make_change_and_end_items_once_per_key_and_only_operators(w):
    tid = await template(w)
    d = ItemDraft(tid, 100, 5, 0, w.clock.now, w.clock.now + timedelta(days=1))
    with operator(w):
        first = await w.mall.create(d, "same-key")
        assert (await w.mall.create(d, "same-key")).id == first.id
        assert first.per_member_limit == 1 and first.left == 5 and first.name == "Spring 100-10"
        changed = await w.mall.update(first.id, 150, 3, first.version)
        assert (changed.points_price, changed.total_units, changed.left) == (150, 8, 8)
        with pytest.raises(Conflict):
            await w.mall.update(first.id, 200, 0, first.version)
        ended = await w.mall.end(first.id)
        assert ended.state is rules.ItemState.ENDED and (await w.mall.end(first.id)).version == ended.version
        with pytest.raises(FailedPrecondition):
            await w.mall.update(first.id, 200, 0, ended.version)
        with pytest.raises(InvalidArgument):
            await w.mall.create(ItemDraft("cpt_x", 0, 0, 0, None, None), "k")
        with pytest.raises(NotFound):
            await w.mall.create(ItemDraft(new_id("cpt"), 1, 1, 0, w.clock.now, w.clock.now + timedelta(hours=1)),
                                "k2")
    with operator(w, role="GUIDE"), pytest.raises(PermissionDenied):
        await w.mall.create(d, "k3")
    with as_member(w), pytest.raises(Unauthenticated):
        await w.mall.staff_list(0, "")


# ---- redeeming -------------------------------------------------------------------------------

async def test_a_redemption_spends_the_points_issues_the_coupon_and_a_repeat_answers_the_same(w):
    pmc = await item(w, points=120)
    await credit(w, 300)
    with as_member(w):
        r, coupon = await w.mall.redeem(pmc.id, "k1")
        again, same = await w.mall.redeem(pmc.id, "k1")
    assert r.state is RedemptionState.ISSUED and coupon.id == r.coupon_id == same.id and again.id == r.id
    assert await available(w) == 180
    assert w.items.items[pmc.id].left == 9 and w.counters.used[(pmc.id, w.member)] == 1
    with as_member(w), pytest.raises(Conflict):
        await w.mall.redeem(new_id("pmc"), "k1")  # the key names another item


async def test_too_few_points_undo_the_redemption_and_give_the_unit_and_place_back(w):
    pmc = await item(w, points=500, units=1, limit=1)
    await credit(w, 499)
    with as_member(w), pytest.raises(FailedPrecondition) as refused:
        await w.mall.redeem(pmc.id, "k")
    assert refused.value.reason == "POINTS_INSUFFICIENT"
    assert w.items.items[pmc.id].left == 1 and w.counters.used[(pmc.id, w.member)] == 0
    assert await available(w) == 499
    [r] = w.redemptions.rows.values()
    assert r.state is RedemptionState.UNDONE and w.redemptions.owes_back[r.id] == 0
    await credit(w, 1)
    with as_member(w):
        assert (await w.mall.redeem(pmc.id, "k2"))[0].state is RedemptionState.ISSUED


async def test_every_refusal_before_anything_is_taken(w):
    pmc = await item(w, points=10, units=2, limit=1)
    await credit(w, 100)
    other = new_id("mem")
    from services.member.domain.members import Member
    await w.members.add(Member.register(other, w.m.id, "H5", "", w.clock.now))
    await credit(w, 100, other)
    with as_member(w):
        await w.mall.redeem(pmc.id, "a")
        with pytest.raises(FailedPrecondition) as limit:
            await w.mall.redeem(pmc.id, "b")
    assert limit.value.reason == "POINTS_MALL_LIMIT_REACHED" and w.items.items[pmc.id].left == 1
    with as_member(w, other):
        await w.mall.redeem(pmc.id, "c")
    with as_member(w, other), pytest.raises(FailedPrecondition) as sold_out:
        await w.mall.redeem(pmc.id, "c2")
    assert sold_out.value.reason == "POINTS_MALL_SOLD_OUT" and w.items.items[pmc.id].left == 0
    later = await item(w)
    w.clock.now += timedelta(hours=2)
    with as_member(w), pytest.raises(FailedPrecondition) as closed:
        await w.mall.redeem(later.id, "d")
    assert closed.value.reason == "POINTS_MALL_NOT_OPEN"
    with as_member(w), pytest.raises(NotFound):
        await w.mall.redeem(new_id("pmc"), "e")
    with as_member(w), pytest.raises(InvalidArgument):
        await w.mall.redeem("pmc_x", "")
    assert await available(w) == 90


async def test_a_template_that_cannot_issue_returns_the_points_and_the_unit(w):
    tid = await template(w, total=1)
    pmc = await item(w, points=50, units=5, template_id=tid)
    await credit(w, 200)
    with as_member(w):
        await w.mall.redeem(pmc.id, "first")
        with pytest.raises(FailedPrecondition) as refused:
            await w.mall.redeem(pmc.id, "second")
    assert refused.value.reason == "POINTS_MALL_COUPON_UNAVAILABLE"
    assert await available(w) == 150, "the second redemption's points came back"
    assert w.items.items[pmc.id].left == 4 and w.counters.used[(pmc.id, w.member)] == 1
    states = sorted(r.state.value for r in w.redemptions.rows.values())
    assert states == ["ISSUED", "RETURNED"]


async def test_the_job_finishes_a_redemption_a_crash_left_in_the_middle_once(w):
    pmc = await item(w, points=40)
    await credit(w, 100)
    # A crash right after the unit and the place were taken and the redemption stored.
    await w.items.take_unit(w.m.id, pmc.id)
    await w.counters.take_place(w.m.id, pmc.id, w.member, 5)
    stuck = Redemption(new_id("pmr"), w.m.id, w.member, pmc.id, pmc.template_id, 40, RedemptionState.TAKEN,
                       w.clock.now, "crashed")
    await w.redemptions.add(stuck)
    assert await w.mall.finish_unfinished() == 0, "not before its grace"
    w.clock.now += FINISH_GRACE + timedelta(seconds=1)
    # Three replicas run the job at once: each redemption is leased by one of them.
    done = await asyncio.gather(*(w.mall.finish_unfinished() for _ in range(3)))
    assert sum(done) == 1
    assert w.redemptions.rows[stuck.id].state is RedemptionState.ISSUED and await available(w) == 60
    assert await w.mall.finish_unfinished() == 0
    with as_member(w):
        r, coupon = await w.mall.redeem(pmc.id, "crashed")
    assert r.id == stuck.id and coupon is not None and await available(w) == 60


async def test_concurrent_redemptions_never_spend_more_points_or_units_than_there_are(w):
    pmc = await item(w, points=100, units=50, limit=20)
    await credit(w, 300)

    async def one(i: int):
        with as_member(w):
            try:
                return (await w.mall.redeem(pmc.id, f"k{i}"))[0].state
            except (FailedPrecondition, Conflict) as error:
                return error.reason
    outcomes = await asyncio.gather(*(one(i) for i in range(10)))
    assert outcomes.count(RedemptionState.ISSUED) == 3 and await available(w) == 0
    assert w.items.items[pmc.id].left == 47 and w.counters.used[(pmc.id, w.member)] == 3


async def test_lists_show_open_items_to_members_and_every_item_to_staff(w):
    open_item = await item(w)
    ended = await item(w)
    with operator(w):
        await w.mall.end(ended.id)
        staff, _ = await w.mall.staff_list(0, "")
    with as_member(w):
        listed, _ = await w.mall.listed(0, "")
        await credit(w, 100)
        await w.mall.redeem(open_item.id, "x")
        mine, token = await w.mall.my_redemptions(1, "")
    assert [i.id for i in listed] == [open_item.id]
    assert {i.id for i in staff} == {open_item.id, ended.id}
    assert len(mine) == 1 and token == ""


# ---- the points-price hold -------------------------------------------------------------------

async def test_a_points_price_hold_skips_the_discount_rules_but_never_exceeds_available(w):
    await credit(w, 130)
    order = new_id("ord")
    with service(w):
        # 130 points: below the floor (100 is met), not a whole step of 100, over the share
        # of a 1-fen payable: a discount would be refused on each; a price is held.
        with pytest.raises(FailedPrecondition):
            await w.economy.hold(w.member, new_id("ord"), 130, 1)
        held, value, applied = await w.economy.hold(w.member, order, 130, 1, as_price=True)
        assert (held, value, applied) == (130, 0, True)
        assert (await w.economy.hold(w.member, order, 130, 1, as_price=True))[2] is False
        with pytest.raises(FailedPrecondition) as short:
            await w.economy.hold(w.member, new_id("ord"), 1, 0, as_price=True)
    assert short.value.reason == "POINTS_INSUFFICIENT"
    assert (await w.ledger.book(w.m.id, w.member)).held == 130
