"""The points economy's use cases over in-memory ports: earn, unfreeze, hold, spend,
release, refund reversal with owed points, expiry, staff adjustments and reads."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from siyu_kit.ids import new_id

from services.member.application.points import (CompletedOrder, NotEarnedYet)
from services.member.domain.points import PointsEarned, PointsMoved
from services.member.domain.points_settings import PointsSettings
from tests.fakes.member import caller
from tests.fakes.points_world import PAID_AT, book, earn, operator, points_world, service

@pytest.fixture
async def w():
    return await points_world()


async def credit(w, points: int) -> None:
    with operator(w):
        await w.economy.adjust(w.member, points, "welcome", new_id("key")[-20:])


async def test_earned_points_unfreeze_after_the_after_sales_window_of_the_completed_order(w):
    order_id = await earn(w, 12_345)
    b = await book(w)
    assert (b.balance, b.frozen, b.available) == (123, 123, 0)
    # The unfreeze job finds nothing before the order completes…
    assert await w.economy.unfreeze_due() == 0
    completed = PAID_AT + timedelta(days=3)
    assert await w.orders.on_order_completed(CompletedOrder(w.m.id, order_id, w.member, completed))
    w.clock.now = completed + timedelta(days=7) - timedelta(seconds=1)
    assert await w.economy.unfreeze_due() == 0
    w.clock.now = completed + timedelta(days=7)
    assert await w.economy.unfreeze_due() == 1
    b = await book(w)
    assert (b.balance, b.frozen, b.available, b.lots) == (123, 0, 123, {"e20261231": 123})
    # A replayed completion and another pass change nothing.
    assert not await w.orders.on_order_completed(CompletedOrder(w.m.id, order_id, w.member, completed))
    assert await w.economy.unfreeze_due() == 0
    assert [type(e) for e in w.ledger.events] == [PointsEarned, PointsMoved]
    assert w.ledger.events[1].entry.kind == "UNFREEZE"


async def test_a_completion_before_its_payment_is_processed_waits_for_the_earning(w):
    with pytest.raises(NotEarnedYet):
        await w.orders.on_order_completed(CompletedOrder(w.m.id, new_id("ord"), w.member, PAID_AT))


async def test_a_hold_is_spent_at_payment_and_every_call_is_idempotent_by_order(w):
    await credit(w, 1_000)
    order_id = new_id("ord")
    with service(w):
        assert await w.economy.hold(w.member, order_id, 300, 10_000) == (300, 300, True)
        assert await w.economy.hold(w.member, order_id, 300, 10_000) == (300, 300, False)
        with pytest.raises(FailedPrecondition) as other:
            await w.economy.hold(w.member, order_id, 400, 10_000)
        assert other.value.reason == "POINTS_HOLD_EXISTS"
        b = await book(w)
        assert (b.balance, b.available, b.held) == (1_000, 700, 300)
        assert await w.economy.spend(w.member, order_id) == (300, True)
        assert await w.economy.spend(w.member, order_id) == (300, False)
        with pytest.raises(FailedPrecondition) as spent:
            await w.economy.release(w.member, order_id)
        assert spent.value.reason == "POINTS_SPENT"
    b = await book(w)
    assert (b.balance, b.available, b.held) == (700, 700, 0)


async def test_a_released_hold_gives_the_points_back_and_a_late_hold_is_refused(w):
    await credit(w, 1_000)
    order_id, late = new_id("ord"), new_id("ord")
    with service(w):
        await w.economy.hold(w.member, order_id, 500, 10_000)
        assert await w.economy.release(w.member, order_id) == (500, True)
        assert await w.economy.release(w.member, order_id) == (500, False)
        with pytest.raises(FailedPrecondition) as ended:
            await w.economy.hold(w.member, order_id, 500, 10_000)
        assert ended.value.reason == "POINTS_HOLD_ENDED"
        # A release that finds nothing held (the hold call was lost) still bars the hold.
        assert await w.economy.release(w.member, late) == (0, True)
        with pytest.raises(FailedPrecondition):
            await w.economy.hold(w.member, late, 100, 10_000)
        with pytest.raises(FailedPrecondition) as never:
            await w.economy.spend(w.member, new_id("ord"))
        assert never.value.reason == "POINTS_NOT_HELD"
    b = await book(w)
    assert (b.balance, b.available, b.held) == (1_000, 1_000, 0)


@pytest.mark.parametrize("points, payable, reason", [
    (150, 10_000, "POINTS_STEP"), (6_000, 10_000, "POINTS_OVER_LIMIT"), (2_000, 100_000, "POINTS_INSUFFICIENT")])
async def test_holds_outside_the_merchants_terms_are_refused_and_write_nothing(w, points, payable, reason):
    await credit(w, 1_000)
    moves = w.ledger.moves
    with service(w), pytest.raises(FailedPrecondition) as refused:
        await w.economy.hold(w.member, new_id("ord"), points, payable)
    assert refused.value.reason == reason and w.ledger.moves == moves


async def test_frozen_points_cannot_be_held(w):
    await earn(w, 100_000)
    with service(w), pytest.raises(FailedPrecondition) as refused:
        await w.economy.hold(w.member, new_id("ord"), 100, 10_000)
    assert refused.value.reason == "POINTS_INSUFFICIENT"


async def test_concurrent_holds_never_take_more_than_the_balance(w):
    await credit(w, 1_000)
    orders = [new_id("ord") for _ in range(8)]
    with service(w):
        results = await asyncio.gather(*(w.economy.hold(w.member, o, 300, 100_000) for o in orders),
                                       return_exceptions=True)
    held = [r for r in results if isinstance(r, tuple)]
    assert len(held) == 3 and all(isinstance(r, FailedPrecondition) for r in results if r not in held)
    b = await book(w)
    assert (b.available, b.held) == (100, 900)


async def test_a_move_that_loses_to_another_writer_is_decided_again(w):
    await credit(w, 1_000)
    w.ledger.lose_moves = 2
    with service(w):
        assert (await w.economy.hold(w.member, new_id("ord"), 100, 10_000))[2]
    w.ledger.lose_moves = 100
    with service(w), pytest.raises(Conflict):
        await w.economy.hold(w.member, new_id("ord"), 100, 10_000)


async def test_a_refund_before_the_window_closes_takes_the_frozen_points_so_they_never_unfreeze(w):
    order_id = await earn(w, 10_000)  # 100 points
    with service(w):
        entry, applied = await w.economy.reverse(w.member, order_id, new_id("rfd"), 100, 0)
    assert applied and (entry.points, entry.frozen_delta) == (-100, -100)
    assert not await w.orders.on_order_completed(CompletedOrder(w.m.id, order_id, w.member, PAID_AT))
    w.clock.now = PAID_AT + timedelta(days=30)
    assert await w.economy.unfreeze_due() == 0
    b = await book(w)
    assert (b.balance, b.frozen, b.available, b.owed) == (0, 0, 0, 0)


async def test_points_already_spent_are_owed_and_paid_off_by_the_next_earning(w):
    order_id = await earn(w, 50_000)  # 500 points
    await w.orders.on_order_completed(CompletedOrder(w.m.id, order_id, w.member, PAID_AT))
    w.clock.now = PAID_AT + timedelta(days=7)
    await w.economy.unfreeze_due()
    spending = new_id("ord")
    with service(w):
        await w.economy.hold(w.member, spending, 400, 100_000)
        await w.economy.spend(w.member, spending)
        refund = new_id("rfd")
        entry, _ = await w.economy.reverse(w.member, order_id, refund, 500, 0)
        assert (entry.points, entry.owed) == (-100, 400)
        again, applied = await w.economy.reverse(w.member, order_id, refund, 500, 0)
        assert not applied and again.id == entry.id
        with pytest.raises(FailedPrecondition) as too_much:
            await w.economy.reverse(w.member, order_id, new_id("rfd"), 1, 0)
        assert too_much.value.reason == "POINTS_REVERSAL_TOO_LARGE"
    b = await book(w)
    assert (b.balance, b.available, b.owed) == (0, 0, 400)
    await earn(w, 30_000)  # 300 points: all go to what is owed
    b = await book(w)
    assert (b.balance, b.frozen, b.owed) == (0, 0, 100)
    # Returning the spent points of the refunded order pays off the rest.
    with service(w):
        entry, _ = await w.economy.reverse(w.member, spending, new_id("rfd"), 0, 400)
    b = await book(w)
    assert (entry.owed, b.owed, b.available, b.balance) == (-100, 0, 300, 300)


async def test_lots_expire_at_the_end_of_the_year_after_once_whatever_the_copies_of_the_job(w):
    await credit(w, 700)
    w.clock.now = datetime(2026, 12, 31, 15, 59, tzinfo=timezone.utc)
    assert await w.economy.expire_due() == 0
    w.clock.now = datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc)
    moved = await asyncio.gather(w.economy.expire_due(), w.economy.expire_due(), w.economy.expire_due())
    assert sum(moved) == 1
    b = await book(w)
    assert (b.balance, b.available) == (0, 0)
    expiries = [e for _, _, e in w.ledger.rows if e.kind == "EXPIRE"]
    assert len(expiries) == 1 and expiries[0].points == -700


async def test_staff_adjust_once_per_key_with_a_reason_and_roles(w):
    with operator(w):
        entry, applied, summary = await w.economy.adjust(w.member, 250, "compensation", "k-1")
        again, applied_again, _ = await w.economy.adjust(w.member, 999, "other", "k-1")
        with pytest.raises(FailedPrecondition) as short:
            await w.economy.adjust(w.member, -300, "too much", "k-2")
        with pytest.raises(NotFound):
            await w.economy.adjust(new_id("mem"), 10, "r", "k-3")
        with pytest.raises(InvalidArgument):
            await w.economy.adjust(w.member, 0, " ", "")
    assert applied and not applied_again and again.id == entry.id and summary.available == 250
    assert short.value.reason == "POINTS_INSUFFICIENT" and entry.reason == "compensation"
    with operator(w, "GUIDE"), pytest.raises(PermissionDenied):
        await w.economy.adjust(w.member, 10, "r", "k-4")
    with caller(new_id("mch"), staff_id=new_id("stf"), roles=("OPERATOR",)), pytest.raises(NotFound):
        await w.economy.adjust(w.member, 10, "r", "k-5")


async def test_the_member_sees_counters_what_expires_when_and_pages_the_history(w):
    await credit(w, 300)
    await earn(w, 10_000)
    for _ in range(3):
        await credit(w, 100)
    with caller(w.m.id, channel="H5", member_id=w.member):
        summary, latest = await w.economy.my_points()
        first, token = await w.economy.my_history(2, "")
        second, token2 = await w.economy.my_history(2, token)
        third, end = await w.economy.my_history(2, token2)
        with pytest.raises(InvalidArgument):
            await w.economy.my_history(2, "garbage")
    assert (summary.balance, summary.available, summary.frozen) == (700, 600, 100)
    assert [(e.points, e.expires_at) for e in summary.expiring] == \
        [(600, datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc))]
    ids = [e.id for e in first + second + third]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5 == len(latest) and end == ""


async def test_staff_see_the_account_with_an_audit_of_its_ledger(w):
    await credit(w, 500)
    order_id = await earn(w, 20_000)
    with service(w):
        await w.economy.reverse(w.member, order_id, new_id("rfd"), 50, 0)
    with operator(w, "FINANCE"):
        summary, problems, count = await w.economy.member_points(w.member)
    assert (summary.balance, problems, count) == (650, [], 3)
    # A counter that no longer agrees with the ledger is reported.
    w.ledger.books[(w.m.id, w.member)].available += 1
    with operator(w):
        _, problems, _ = await w.economy.member_points(w.member)
    assert problems and "available" in problems[0]


async def test_the_quote_terms_give_the_most_usable_points(w):
    await credit(w, 3_456)
    with service(w):
        terms = await w.economy.points_terms(w.member, 10_000)
        assert (terms.available, terms.max_usable, terms.max_discount) == (3_456, 3_400, 3_400)
        assert (await w.economy.points_terms(new_id("mem"), 10_000)).max_usable == 0
        with pytest.raises(InvalidArgument):
            await w.economy.points_terms("stf_1", -1)


async def test_points_settings_change_on_the_version_read_and_are_audited(w):
    with operator(w):
        settings, days, version = await w.economy.settings()
        assert (settings, days) == (PointsSettings(), 7)
        new = PointsSettings(points_per_yuan=50, min_points=200, max_share_bp=3_000, step=100, expiry_years=-1)
        changed, days, newer = await w.economy.update_settings(new, 0, version)
        assert (changed, days, newer) == (new, 0, version + 1)
        with pytest.raises(Conflict):
            await w.economy.update_settings(new, 0, version)
        with pytest.raises(InvalidArgument) as bad:
            await w.economy.update_settings(PointsSettings(points_per_yuan=300, min_points=150), 31, newer)
    assert {v.field for v in bad.value.violations} == {"settings.step", "settings.min_points",
                                                       "settings.after_sales_days"}
    assert w.audit.entries[-1].action == "POINTS_SETTINGS_UPDATED"
    with operator(w, "GUIDE"), pytest.raises(PermissionDenied):
        await w.economy.settings()


async def test_refunds_in_proportion_take_back_exactly_what_the_order_earned(w):
    order_id = await earn(w, 9_999)  # 99 points
    with service(w):
        first, _ = await w.economy.reverse(w.member, order_id, new_id("rfd"), 0, 0, refunded=5_000, paid=9_999)
        second, _ = await w.economy.reverse(w.member, order_id, new_id("rfd"), 0, 0, refunded=4_999, paid=9_999)
        with pytest.raises(InvalidArgument) as both:
            await w.economy.reverse(w.member, order_id, new_id("rfd"), 5, 0, refunded=1, paid=0)
    assert (first.points, second.points) == (-49, -50)
    assert {v.field for v in both.value.violations} == {"earned_points_to_take_back", "paid_amount"}
    assert (await book(w)).balance == 0


async def test_a_refund_that_overtakes_the_payments_earning_waits_for_it(w):
    order_id, refund = new_id("ord"), new_id("rfd")
    with service(w):
        with pytest.raises(Unavailable) as early:
            await w.economy.reverse(w.member, order_id, refund, 0, 0, refunded=5_000, paid=10_000)
    assert early.value.reason == "POINTS_NOT_EARNED_YET"
    await earn(w, 10_000, order_id)  # 100 points
    with service(w):
        entry, applied = await w.economy.reverse(w.member, order_id, refund, 0, 0, refunded=5_000, paid=10_000)
    assert applied and entry.points == -50, "the retry takes back the refunded half once the points are there"


async def test_a_completion_of_an_unknown_members_order_is_nothing_to_unfreeze(w):
    assert not await w.orders.on_order_completed(CompletedOrder(w.m.id, new_id("ord"), new_id("mem"), PAID_AT))


@settings(max_examples=60, deadline=None)
@given(st.integers(100, 10**7), st.lists(st.integers(1, 100), min_size=1, max_size=8), st.randoms())
def test_refunding_every_part_in_any_order_takes_back_exactly_the_earning(paid, weights, rnd):
    async def run():
        w = await points_world()
        order_id = await earn(w, paid)
        earned = (await book(w)).balance
        parts = [paid * x // sum(weights) for x in weights]
        parts[-1] += paid - sum(parts)
        rnd.shuffle(parts)
        with service(w):
            for part in parts:
                await w.economy.reverse(w.member, order_id, new_id("rfd"), 0, 0, refunded=part, paid=paid)
        b = await book(w)
        taken = -sum(e.points for _, _, e in w.ledger.rows if e.kind == "REVERSE")
        assert (taken, b.balance, b.frozen, b.owed) == (earned, 0, 0, 0)

    asyncio.run(run())
