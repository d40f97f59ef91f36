"""A member's coupons at checkout and through an order's life: the cart's usable and
unusable coupons, lock on placing, use on payment, release on cancellation or expiry,
restore after a full refund, the expiry job, and two orders racing for one coupon."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit.ids import new_id
from siyu_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound

from services.member.domain import coupons as rules
from services.member.domain.coupons import (CouponKind, CouponLine, CouponRule, CouponState, Scope, TemplateDraft,
                                            Validity)
from tests.fakes.coupon_world import M, START, coupon_world, member, operator, order_service

PAY_WITHIN = timedelta(minutes=30)
HUNDRED_OFF_TEN = CouponRule(CouponKind.AMOUNT_OFF, threshold=10_000, amount_off=1_000)
FIVE_OFF = CouponRule(CouponKind.NO_THRESHOLD, amount_off=500)
DRINKS_20_PERCENT = CouponRule(CouponKind.PERCENT_OFF, percent_off_bp=2_000, cap=3_000, scope=Scope.CATEGORIES,
                               category_ids=("cat_drinks",))

CART = [CouponLine("sku_tea", "prd_tea", ("cat_drinks", "cat_tea"), 4_000, 2),
        CouponLine("sku_bread", "prd_bread", ("cat_food",), 3_000, 1)]


@pytest.fixture
def w():
    return coupon_world()


async def holding(w, rule: CouponRule, member_id: str = "mem_1", **kw) -> str:
    """A coupon of a new active template, claimed by the member; its id."""
    values = dict(name="coupon", rule=rule, validity=Validity(days=7), total=100)
    values.update(kw)
    with operator():
        template = await w.cases.create_template(TemplateDraft(**values), new_id("k"))
        await w.cases.activate(template.id)
    with member(member_id):
        return (await w.cases.claim(template.id, "k")).id


async def lock(w, coupon_id: str, order_id: str, lines=CART, kind: str = rules.NORMAL, member_id: str = "mem_1"):
    with order_service():
        return await w.cases.lock(coupon_id, member_id, order_id, lines, kind, w.clock.now + PAY_WITHIN)


async def move(w, name: str, coupon_id: str, order_id: str):
    with order_service():
        return await getattr(w.cases, name)(coupon_id, order_id)


# ---- the cart ---------------------------------------------------------------------------------------

async def test_the_cart_lists_usable_coupons_best_first_and_says_why_the_others_do_not_apply(w):
    ten = await holding(w, HUNDRED_OFF_TEN)
    five = await holding(w, FIVE_OFF)
    drinks = await holding(w, DRINKS_20_PERCENT)
    later = await holding(w, FIVE_OFF, validity=Validity(START + timedelta(days=2), START + timedelta(days=3)))
    with member():
        options = await w.cases.for_cart(CART, rules.NORMAL)
    seen = [(o.coupon.id, o.usable, o.discount.amount, o.discount.reason) for o in options]
    assert seen == [(drinks, True, 1_600, ""), (ten, True, 1_000, ""), (five, True, 500, ""),
                    (later, False, 0, rules.NOT_STARTED)]
    drinks_option = options[0]
    assert drinks_option.discount.shares == (1_600, 0)  # bread is out of the drinks scope
    with member():
        small = await w.cases.for_cart([CART[1]], rules.NORMAL)
    reasons = {o.coupon.id: o.discount.reason for o in small}
    assert reasons[ten] == rules.BELOW_THRESHOLD and reasons[drinks] == rules.OUT_OF_SCOPE
    assert next(o for o in small if o.coupon.id == ten).discount.shortfall == 7_000
    with member():
        flash = await w.cases.for_cart(CART, rules.FLASH_SALE)
    assert {o.discount.reason for o in flash} == {rules.WRONG_ORDER_KIND, rules.NOT_STARTED}


async def test_the_cart_refuses_bad_lines_with_field_violations(w):
    with member(), pytest.raises(InvalidArgument) as refused:
        await w.cases.for_cart([CouponLine("s", "p", (), 100, 0)], "PRESALE")
    assert {v.field for v in refused.value.violations} == {"order_kind", "lines[0].quantity"}


async def test_my_coupons_by_state(w):
    first = await holding(w, FIVE_OFF)
    second = await holding(w, HUNDRED_OFF_TEN)
    await lock(w, second, "ord_1")
    with member():
        assert [c.id for c in (await w.cases.my_coupons((CouponState.AVAILABLE,), 10, ""))[0]] == [first]
        assert [c.id for c in (await w.cases.my_coupons((CouponState.LOCKED,), 10, ""))[0]] == [second]
        page, token = await w.cases.my_coupons((), 1, "")
        rest, end = await w.cases.my_coupons((), 1, token)
        assert {c.id for c in page + rest} == {first, second} and end == ""
        with pytest.raises(InvalidArgument):
            await w.cases.my_coupons((CouponState.CLAIMING,), 10, "")
        with pytest.raises(InvalidArgument):
            await w.cases.my_coupons((CouponState.USED,), 1, token)
    with member("mem_2"):
        assert await w.cases.my_coupons((), 10, "") == ([], "")


# ---- the quote -------------------------------------------------------------------------------------

async def test_the_quote_applies_the_chosen_coupon_or_the_best_and_locks_nothing(w):
    ten = await holding(w, HUNDRED_OFF_TEN)
    drinks = await holding(w, DRINKS_20_PERCENT)
    with order_service():
        chosen = await w.cases.quote("mem_1", ten, CART, rules.NORMAL)
        assert (chosen.coupon.id, chosen.discount.amount, chosen.discount.shares) == (ten, 1_000, (727, 273))
        best = await w.cases.quote("mem_1", "", CART, rules.NORMAL)
        assert (best.coupon.id, best.discount.amount) == (drinks, 1_600)
        assert await w.cases.quote("mem_1", "", CART, rules.FLASH_SALE) is None
        assert await w.cases.quote("mem_2", "", CART, rules.NORMAL) is None
        with pytest.raises(FailedPrecondition) as refused:
            await w.cases.quote("mem_1", ten, [CART[1]], rules.NORMAL)
        assert refused.value.reason == rules.BELOW_THRESHOLD
        with pytest.raises(NotFound):
            await w.cases.quote("mem_2", ten, CART, rules.NORMAL)
    await lock(w, ten, "ord_1")
    with order_service(), pytest.raises(FailedPrecondition) as refused:
        await w.cases.quote("mem_1", ten, CART, rules.NORMAL)
    assert refused.value.reason == rules.NOT_AVAILABLE
    assert w.coupons.items[drinks].state == CouponState.AVAILABLE


# ---- an order's moves --------------------------------------------------------------------------------

async def test_lock_use_and_their_repeats_record_one_event_each(w):
    coupon_id = await holding(w, HUNDRED_OFF_TEN)
    locked = await lock(w, coupon_id, "ord_1")
    assert (locked.coupon.state, locked.discount.amount, locked.discount.shares) == (CouponState.LOCKED, 1_000,
                                                                                     (727, 273))
    assert (await lock(w, coupon_id, "ord_1")).coupon.version == locked.coupon.version  # a replay writes nothing
    assert (await move(w, "use", coupon_id, "ord_1")).state == CouponState.USED
    assert (await move(w, "use", coupon_id, "ord_1")).state == CouponState.USED
    assert [type(e).__name__ for e in w.coupons.events] == ["CouponClaimed", "CouponLocked", "CouponUsed"]


async def test_a_coupon_that_does_not_apply_or_is_not_the_members_is_not_locked(w):
    coupon_id = await holding(w, HUNDRED_OFF_TEN)
    with pytest.raises(FailedPrecondition) as refused:
        await lock(w, coupon_id, "ord_1", [CART[1]])
    assert refused.value.reason == rules.BELOW_THRESHOLD
    with pytest.raises(FailedPrecondition) as refused:
        await lock(w, coupon_id, "ord_1", kind=rules.GROUP_BUY)
    assert refused.value.reason == rules.WRONG_ORDER_KIND
    with pytest.raises(NotFound):
        await lock(w, coupon_id, "ord_1", member_id="mem_2")
    with order_service("mer_2"), pytest.raises(NotFound):
        await w.cases.lock(coupon_id, "mem_1", "ord_1", CART, rules.NORMAL, START + PAY_WITHIN)
    w.clock.now = START + timedelta(days=7)
    with pytest.raises(FailedPrecondition) as refused:
        await lock(w, coupon_id, "ord_1")
    assert refused.value.reason == rules.EXPIRED_REASON
    assert w.coupons.items[coupon_id].state == CouponState.AVAILABLE


async def test_two_orders_racing_for_one_coupon_one_wins(w):
    coupon_id = await holding(w, FIVE_OFF)
    results = await asyncio.gather(*(lock(w, coupon_id, f"ord_{i}") for i in range(10)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    losers = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, (FailedPrecondition, Conflict)) for r in losers)
    assert all(r.reason in (rules.IN_USE, "CONCURRENT_UPDATE") for r in losers)
    stored = w.coupons.items[coupon_id]
    assert stored.order_id == winners[0].coupon.order_id
    assert [type(e).__name__ for e in w.coupons.events].count("CouponLocked") == 1


async def test_a_lost_compare_and_set_is_read_again(w):
    coupon_id = await holding(w, FIVE_OFF)
    w.coupons.writes_by_others = 2
    assert (await lock(w, coupon_id, "ord_1")).coupon.state == CouponState.LOCKED
    w.coupons.writes_by_others = 3
    with pytest.raises(Conflict):
        await move(w, "use", coupon_id, "ord_1")


async def test_a_cancelled_order_gives_a_valid_coupon_back_once(w):
    coupon_id = await holding(w, FIVE_OFF)
    await lock(w, coupon_id, "ord_1")
    assert (await move(w, "release", coupon_id, "ord_other")).state == CouponState.LOCKED
    assert (await move(w, "release", coupon_id, "ord_1")).state == CouponState.AVAILABLE
    assert (await move(w, "release", coupon_id, "ord_1")).state == CouponState.AVAILABLE
    with pytest.raises(FailedPrecondition):
        await lock(w, coupon_id, "ord_1")  # the cancelled order placed again late
    assert (await lock(w, coupon_id, "ord_2")).coupon.state == CouponState.LOCKED
    assert [type(e).__name__ for e in w.coupons.events].count("CouponReleased") == 1


async def test_an_order_expiring_after_the_coupon_ended_expires_it(w):
    coupon_id = await holding(w, FIVE_OFF)
    await lock(w, coupon_id, "ord_1")
    w.clock.now = START + timedelta(days=8)
    assert (await move(w, "release", coupon_id, "ord_1")).state == CouponState.EXPIRED
    assert w.coupons.events[-1].state == CouponState.EXPIRED


async def test_a_paid_order_cannot_release_its_coupon(w):
    coupon_id = await holding(w, FIVE_OFF)
    await lock(w, coupon_id, "ord_1")
    await move(w, "use", coupon_id, "ord_1")
    with pytest.raises(FailedPrecondition):
        await move(w, "release", coupon_id, "ord_1")


async def test_a_full_refund_restores_the_coupon_when_the_merchant_allows_and_it_is_valid(w):
    coupon_id = await holding(w, FIVE_OFF)
    await lock(w, coupon_id, "ord_1")
    await move(w, "use", coupon_id, "ord_1")
    w.settings.switch[M] = False
    assert (await move(w, "restore", coupon_id, "ord_1")).state == CouponState.USED
    w.settings.switch[M] = True
    assert (await move(w, "restore", coupon_id, "ord_1")).state == CouponState.AVAILABLE
    assert (await move(w, "restore", coupon_id, "ord_1")).state == CouponState.AVAILABLE
    assert [type(e).__name__ for e in w.coupons.events].count("CouponRestored") == 1
    late = await holding(w, FIVE_OFF, member_id="mem_2")
    await lock(w, late, "ord_2", member_id="mem_2")
    await move(w, "use", late, "ord_2")
    w.clock.now = START + timedelta(days=7)
    assert (await move(w, "restore", late, "ord_2")).state == CouponState.USED


async def test_order_moves_need_an_order_id_and_a_known_coupon(w):
    with pytest.raises(InvalidArgument):
        await move(w, "use", "cpn_x", "")
    with pytest.raises(NotFound):
        await move(w, "use", "cpn_x", "ord_1")


async def test_a_lock_needs_an_order_and_a_payment_deadline_within_a_day(w):
    coupon_id = await holding(w, FIVE_OFF)
    with order_service(), pytest.raises(InvalidArgument) as refused:
        await w.cases.lock(coupon_id, "mem_1", "", CART, rules.NORMAL, START + timedelta(days=2))
    assert {v.field for v in refused.value.violations} == {"order_id", "pay_by"}
    with order_service(), pytest.raises(InvalidArgument):
        await w.cases.lock(coupon_id, "mem_1", "ord_1", CART, rules.NORMAL, START)
    assert w.coupons.items[coupon_id].state == CouponState.AVAILABLE


async def test_a_lock_whose_order_never_came_is_released_after_the_deadline_and_grace(w):
    orphan = await holding(w, FIVE_OFF)
    paid = await holding(w, FIVE_OFF)
    await lock(w, orphan, "ord_crashed")  # the order was never stored
    await lock(w, paid, "ord_paid")
    await move(w, "use", paid, "ord_paid")
    w.clock.now = START + PAY_WITHIN
    assert await w.cases.release_overdue_locks() == 0  # within the grace a late payment still finds it
    w.clock.now = START + PAY_WITHIN + timedelta(minutes=3)
    assert await w.cases.release_overdue_locks() == 1
    assert await w.cases.release_overdue_locks() == 0
    assert (w.coupons.items[orphan].state, w.coupons.items[paid].state) == (CouponState.AVAILABLE, CouponState.USED)
    assert w.coupons.items[orphan].swept_order_id == "ord_crashed"
    # The order is paid after all: nobody took the coupon and it is valid, so it is used.
    used = await move(w, "use", orphan, "ord_crashed")
    assert used.state == CouponState.USED and used.order_id == "ord_crashed" and not used.swept_order_id
    assert (await move(w, "use", orphan, "ord_crashed")).state == CouponState.USED


async def test_template_stats_count_issued_locked_used_the_discount_and_gmv(w):
    used = await holding(w, HUNDRED_OFF_TEN)
    template_id = w.coupons.items[used].template_id
    with member("mem_2"):
        locked = (await w.cases.claim(template_id, "k")).id
    with member("mem_3"):
        await w.cases.claim(template_id, "k")
    await lock(w, used, "ord_1")
    await move(w, "use", used, "ord_1")
    await lock(w, locked, "ord_2", member_id="mem_2")
    with operator():
        stats = await w.cases.template_stats(template_id)
    assert (stats.issued, stats.locked, stats.used, stats.expired) == (3, 1, 1, 0)
    assert (stats.discount_given, stats.gmv) == (1_000, 11_000)
    with operator("mer_2"), pytest.raises(NotFound):
        await w.cases.template_stats(template_id)


# ---- the expiry job ------------------------------------------------------------------------------------

async def test_the_expiry_job_expires_available_coupons_past_their_end_only(w):
    short = await holding(w, FIVE_OFF, validity=Validity(days=1))
    locked = await holding(w, FIVE_OFF, validity=Validity(days=1))
    long = await holding(w, FIVE_OFF, validity=Validity(days=30))
    await lock(w, locked, "ord_1")
    assert await w.cases.expire_due() == 0
    w.clock.now = START + timedelta(days=1)
    assert await w.cases.expire_due() == 1
    assert await w.cases.expire_due() == 0
    states = {i: w.coupons.items[i].state for i in (short, locked, long)}
    assert states == {short: CouponState.EXPIRED, locked: CouponState.LOCKED, long: CouponState.AVAILABLE}
    assert type(w.coupons.events[-1]).__name__ == "CouponExpired"
