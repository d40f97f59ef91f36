"""Coupon moves that arrive out of order: the lock sweep against a late payment, a release
that overtakes its order's lock, and what the template's stats count when coupons are
used (with the order's amount) and given back. Over in-memory ports."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.errors import FailedPrecondition, InvalidArgument
from siyu_kit.ids import new_id

from services.member.application.coupons import LOCK_GRACE
from services.member.domain import coupons as rules
from services.member.domain.coupons import CouponKind, CouponLine, CouponRule, CouponState, TemplateDraft, Validity
from tests.fakes.coupon_world import START, coupon_world, member, operator, order_service

PAY_WITHIN = timedelta(minutes=30)
FIVE_OFF = CouponRule(CouponKind.NO_THRESHOLD, amount_off=500)
SEVEN_DAYS = Validity(days=7)
CART = [CouponLine("sku_tea", "prd_tea", ("cat_drinks",), 4_000, 2)]


@pytest.fixture
def w():
    return coupon_world()


async def holding(w, validity: Validity = SEVEN_DAYS, member_id: str = "mem_1") -> str:
    with operator():
        template = await w.cases.create_template(TemplateDraft("five off", FIVE_OFF, validity, 100), new_id("k"))
        await w.cases.activate(template.id)
    with member(member_id):
        return (await w.cases.claim(template.id, "k")).id


async def lock(w, coupon_id: str, order_id: str, member_id: str = "mem_1"):
    with order_service():
        return await w.cases.lock(coupon_id, member_id, order_id, CART, rules.NORMAL, w.clock.now + PAY_WITHIN)


async def move(w, name: str, coupon_id: str, order_id: str, *args):
    with order_service():
        return await getattr(w.cases, name)(coupon_id, order_id, *args)


async def refused(w, name: str, coupon_id: str, order_id: str) -> str:
    with pytest.raises(FailedPrecondition) as error:
        await move(w, name, coupon_id, order_id)
    return error.value.reason


def subjects(w) -> list[str]:
    return [e.subject for e in w.coupons.events]


# ---- the sweep and a late payment ---------------------------------------------------------------

async def test_the_sweep_waits_for_the_payment_deadline_and_the_grace_to_the_second(w):
    coupon_id = await holding(w)
    await lock(w, coupon_id, "ord_1")
    pay_by = START + PAY_WITHIN
    assert w.coupons.items[coupon_id].locked_until == pay_by + LOCK_GRACE
    w.clock.now = pay_by + LOCK_GRACE - timedelta(seconds=1)
    assert await w.cases.release_overdue_locks() == 0
    assert w.coupons.items[coupon_id].state == CouponState.LOCKED
    w.clock.now = pay_by + LOCK_GRACE + timedelta(seconds=1)
    assert await w.cases.release_overdue_locks() == 1
    assert w.coupons.items[coupon_id].state == CouponState.AVAILABLE


async def sweep(w, coupon_id: str, order_id: str = "ord_1") -> None:
    await lock(w, coupon_id, order_id)
    w.clock.now = START + PAY_WITHIN + LOCK_GRACE + timedelta(seconds=1)
    assert await w.cases.release_overdue_locks() == 1


async def test_a_payment_after_the_sweep_uses_the_coupon_nobody_took_and_counts_in_the_stats(w):
    coupon_id = await holding(w)
    await sweep(w, coupon_id)
    used = await move(w, "use", coupon_id, "ord_1", 7_500)
    assert (used.state, used.order_id, used.discount, used.order_amount) == (CouponState.USED, "ord_1", 500, 7_500)
    assert subjects(w)[-3:] == [rules.COUPON_LOCKED, rules.COUPON_RELEASED, rules.COUPON_USED]
    with operator():
        stats = await w.cases.template_stats(used.template_id)
    assert (stats.used, stats.locked, stats.discount_given, stats.gmv) == (1, 0, 500, 7_500)


async def test_a_payment_after_the_sweep_is_refused_in_use_when_another_order_holds_or_used_it(w):
    coupon_id = await holding(w)
    await sweep(w, coupon_id)
    await lock(w, coupon_id, "ord_2")
    assert await refused(w, "use", coupon_id, "ord_1") == rules.IN_USE
    await move(w, "use", coupon_id, "ord_2")
    assert await refused(w, "use", coupon_id, "ord_1") == rules.IN_USE
    assert w.coupons.items[coupon_id].order_id == "ord_2"


async def test_a_payment_after_the_sweep_is_refused_once_the_coupon_expired_or_the_order_was_cancelled(w):
    short = await holding(w, Validity(days=1))
    await lock(w, short, "ord_1")
    w.clock.now = START + timedelta(days=2)  # the sweep comes after the validity ended
    assert await w.cases.release_overdue_locks() == 1
    assert w.coupons.items[short].state == CouponState.EXPIRED
    assert await refused(w, "use", short, "ord_1") == rules.EXPIRED_REASON

    w2 = coupon_world()
    coupon_id = await holding(w2)
    await sweep(w2, coupon_id)
    await move(w2, "release", coupon_id, "ord_1")  # the order service cancelled it meanwhile
    assert not w2.coupons.items[coupon_id].swept_order_id
    assert await refused(w2, "use", coupon_id, "ord_1") == rules.NOT_AVAILABLE


async def test_an_order_released_by_the_order_service_cannot_use_the_coupon_later(w):
    coupon_id = await holding(w)
    await lock(w, coupon_id, "ord_1")
    await move(w, "release", coupon_id, "ord_1")
    assert await refused(w, "use", coupon_id, "ord_1") == rules.NOT_AVAILABLE


# ---- a lock after its order's release -----------------------------------------------------------

async def test_a_release_that_overtakes_its_lock_makes_the_late_lock_refused(w):
    coupon_id = await holding(w)
    before = len(w.coupons.events)
    released = await move(w, "release", coupon_id, "ord_1")
    assert released.state == CouponState.AVAILABLE and released.returned_by == ("ord_1",)
    assert len(w.coupons.events) == before  # a note, not a movement: no event
    with pytest.raises(FailedPrecondition) as late:
        await lock(w, coupon_id, "ord_1")
    assert late.value.reason == rules.LOCK_ENDED
    assert w.coupons.items[coupon_id].state == CouponState.AVAILABLE
    # Another order still takes it.
    assert (await lock(w, coupon_id, "ord_2")).coupon.state == CouponState.LOCKED
    # The release again is a repeat: nothing is written.
    saves = w.coupons.saves
    await move(w, "release", coupon_id, "ord_1")
    assert w.coupons.saves == saves


async def test_the_sweep_ends_the_lock_for_good_for_that_order(w):
    coupon_id = await holding(w)
    await sweep(w, coupon_id)
    with pytest.raises(FailedPrecondition) as late:
        await lock(w, coupon_id, "ord_1")
    assert late.value.reason == rules.LOCK_ENDED


@settings(max_examples=60, deadline=None)
@given(st.permutations(["lock", "release", "sweep", "use"]))
def test_any_order_of_lock_release_sweep_and_use_leaves_one_consistent_state(steps):
    """Whatever order the order service's calls and the sweep arrive in, the coupon ends
    USED only if the order used it while nobody else did, never LOCKED by a released order,
    and each move is either applied or refused with a declared reason."""
    import asyncio

    async def run():
        w = coupon_world()
        coupon_id = await holding(w)
        declared = {rules.LOCK_ENDED, rules.NOT_AVAILABLE, rules.IN_USE, rules.TRANSITION, rules.EXPIRED_REASON}
        released = False
        for step in steps:
            try:
                if step == "lock":
                    await lock(w, coupon_id, "ord_1")
                elif step == "release":
                    await move(w, "release", coupon_id, "ord_1")
                    released = True
                elif step == "use":
                    await move(w, "use", coupon_id, "ord_1")
                else:
                    w.clock.now = START + PAY_WITHIN + LOCK_GRACE + timedelta(minutes=1)
                    await w.cases.release_overdue_locks()
            except FailedPrecondition as error:
                assert error.reason in declared
        final = w.coupons.items[coupon_id]
        if released and final.state == CouponState.LOCKED:
            raise AssertionError("a released order holds the coupon")
        if final.state == CouponState.USED:
            assert final.order_id == "ord_1"

    asyncio.run(run())


# ---- the order's amount and the stats -----------------------------------------------------------

async def test_use_takes_the_orders_amount_for_the_gmv_and_a_restore_leaves_the_stats(w):
    coupon_id = await holding(w)
    await lock(w, coupon_id, "ord_1")
    with pytest.raises(InvalidArgument):
        await move(w, "use", coupon_id, "ord_1", -1)
    used = await move(w, "use", coupon_id, "ord_1", 9_999)
    template_id = used.template_id
    with operator(role="FINANCE"):
        assert (await w.cases.template_stats(template_id)).gmv == 9_999
    await move(w, "restore", coupon_id, "ord_1")
    assert subjects(w)[-1] == rules.COUPON_RESTORED
    with operator(role="FINANCE"):
        stats = await w.cases.template_stats(template_id)
    assert (stats.issued, stats.used, stats.discount_given, stats.gmv) == (1, 0, 0, 0)
    # Used again by another order without an amount: the goods amount the lock saw.
    await lock(w, coupon_id, "ord_2")
    await move(w, "use", coupon_id, "ord_2")
    with operator(role="FINANCE"):
        stats = await w.cases.template_stats(template_id)
    assert (stats.used, stats.discount_given, stats.gmv) == (1, 500, 8_000)
