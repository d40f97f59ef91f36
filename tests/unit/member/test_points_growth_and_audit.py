"""Growth value (成长值) follows the net amount paid: a refund takes back the growth of the
refunded part, once per refund, never below zero, and the tier follows growth down as well
as up. Staff's points adjustments and settings are in the audit trail. Over in-memory ports."""
from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from siyu_kit.ids import new_id

from services.member.application.pricing import MemberPricing
from services.member.domain import admin as audit_rules
from services.member.domain.points_account import growth_to_reverse
from services.member.domain.points_settings import PointsSettings
from tests.fakes.points_world import book, earn, operator, points_world, service


async def growth(w) -> int:
    return (await w.ledger.account(w.m.id, w.member)).growth


async def test_a_refund_takes_back_the_growth_of_the_refunded_part_once_and_the_tier_follows():
    w = await points_world()
    order_id = await earn(w, 150_000)  # ¥1,500: 1,500 growth, SILVER
    pricing = MemberPricing(w.merchants, w.ledger, config_ttl_s=0)
    with service(w):
        assert (await pricing.of(w.member))[0] == "SILVER"
        refund_id = new_id("rfd")
        entry, applied = await w.economy.reverse(w.member, order_id, refund_id, 0, 0, refunded=60_000, paid=150_000)
        assert applied and entry.growth == -600
        again, applied = await w.economy.reverse(w.member, order_id, refund_id, 0, 0, refunded=60_000, paid=150_000)
        assert not applied and again.id == entry.id
        assert await growth(w) == 900
        # Growth reflects the net amount paid: below the SILVER threshold the tier drops.
        assert (await pricing.of(w.member))[0] == "REGULAR"
    moved = [e for e in w.ledger.events if type(e).__name__ == "PointsMoved"]
    assert moved[-1].entry.growth == -600


async def test_refunds_given_in_points_take_growth_back_in_the_same_proportion():
    w = await points_world()
    order_id = await earn(w, 20_000)  # 200 points, 200 growth
    with service(w):
        first, _ = await w.economy.reverse(w.member, order_id, new_id("rfd"), 50, 0)
        second, _ = await w.economy.reverse(w.member, order_id, new_id("rfd"), 150, 0)
    assert (first.growth, second.growth) == (-50, -150)
    assert await growth(w) == 0


async def test_other_orders_growth_stays_when_one_order_is_refunded_in_full():
    w = await points_world()
    kept = await earn(w, 30_000)
    refunded = await earn(w, 10_000)
    with service(w):
        await w.economy.reverse(w.member, refunded, new_id("rfd"), 0, 0, refunded=10_000, paid=10_000)
    assert await growth(w) == 300
    assert kept


def test_growth_to_reverse_never_exceeds_what_the_member_has_nor_the_order_earned():
    assert growth_to_reverse(100, 0, 50, 100, 1_000) == 50
    assert growth_to_reverse(100, 50, 100, 100, 1_000) == 50
    assert growth_to_reverse(100, 0, 100, 100, 30) == 30  # never below zero
    assert growth_to_reverse(100, 0, 500, 100, 1_000) == 100  # never more than earned
    assert growth_to_reverse(0, 0, 10, 10, 10) == 0 and growth_to_reverse(10, 0, 10, 0, 10) == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(100, 10**7), st.lists(st.integers(1, 100), min_size=1, max_size=6), st.randoms())
def test_refunding_every_part_in_any_order_takes_back_exactly_the_orders_growth(paid, weights, rnd):
    async def run():
        w = await points_world()
        order_id = await earn(w, paid)
        earned = await growth(w)
        parts = [paid * x // sum(weights) for x in weights]
        parts[-1] += paid - sum(parts)
        rnd.shuffle(parts)
        with service(w):
            for part in parts:
                await w.economy.reverse(w.member, order_id, new_id("rfd"), 0, 0, refunded=part, paid=paid)
                assert await growth(w) >= 0
        taken = -sum(e.growth for _, _, e in w.ledger.rows if e.kind == "REVERSE")
        assert (taken, await growth(w)) == (earned, 0)

    asyncio.run(run())


# ---- the audit trail -------------------------------------------------------------------------------

async def test_staff_adjustments_and_settings_are_audited_once_per_change():
    w = await points_world()
    key = new_id("key")[-20:]
    with operator(w):
        await w.economy.adjust(w.member, 300, "welcome", key)
        await w.economy.adjust(w.member, 300, "welcome", key)  # a replay: no second entry
        _, _, version = await w.economy.settings()
        await w.economy.update_settings(PointsSettings(min_points=200), 10, version)
    rows = [(e.action, e.target_id, e.before, e.after) for e in w.audit.entries]
    assert [r[0] for r in rows] == [audit_rules.POINTS_ADJUSTED, audit_rules.POINTS_SETTINGS_UPDATED]
    assert rows[0][1] == w.member and rows[0][3]["points"] == "300" and rows[0][3]["reason"] == "welcome"
    assert rows[1][1] == audit_rules.POINTS_SETTINGS_TARGET
    assert (rows[1][2]["after_sales_days"], rows[1][3]["after_sales_days"]) == ("7", "10")
    assert {r[0] for r in rows} <= set(audit_rules.ACTIONS)
    assert (await book(w)).balance == 300
