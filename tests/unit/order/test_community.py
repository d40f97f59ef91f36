"""Community group buy against in-memory ports: leader approval, campaign states and the
cut-off, ordering at campaign prices without shipping, pickup codes, delivery of a batch,
the uncollected rule, and the leader's commission."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.order.application.community import CommunityUseCases, NewCampaign, PlaceCommunityOrderInput
from services.order.domain import community as rules
from services.order.domain.commissions import CommissionLevel, Referral
from services.order.domain.community import (Campaign, CampaignState, CommunitySettings, PickupPoint,
                                             UncollectedAction)
from services.order.domain.orders import CONFIRMED_BY_AUTO, OrderState
from tests.fakes.community import (FakeBatches, FakeCampaigns, FakeCommunityOrders, FakeCommunitySettings,
                                   FakeFullRefunds, FakeLeaders, FakeMemberLimits, FakePickupCodes, FakePickups)

POINT = PickupPoint(pickup_point_id="", name="幸福小区便利店", region_code="440305", detail="科技园路 1 号",
                    opening_hours="9:00–21:00", capacity_per_day=200, contact_phone="13800138000")


class Community:
    def __init__(self, world):
        self.w = world
        self.campaigns = FakeCampaigns()
        self.leaders = FakeLeaders()
        self.settings = FakeCommunitySettings()
        self.batches = FakeBatches()
        self.pickups = FakePickups()
        self.codes = FakePickupCodes()
        self.limits = FakeMemberLimits()
        self.full_refunds = FakeFullRefunds(world.orders)
        self.uc = CommunityUseCases(
            leaders=self.leaders, campaigns=self.campaigns, settings=self.settings,
            community_orders=FakeCommunityOrders(world.orders), codes=self.codes, limits=self.limits,
            batches=self.batches, pickups=self.pickups, orders=world.orders, order_settings=world.settings,
            open_refunds=world.open_refunds, catalog=world.catalog, checkout=world.checkout,
            order_cases=world.order_cases, refunds=self.full_refunds, clock=world.clock)

    async def leader(self, member_id: str = "", approve: bool = True):
        member_id = member_id or new_id("mem")
        with self.w.as_member(member_id):
            leader = await self.uc.apply("王姐团购", POINT)
        if approve:
            with self.w.as_staff("OPERATOR"):
                leader = await self.uc.review(leader.id, True, "")
        return leader

    async def campaign(self, *lines: tuple[str, int, int], starts_in: timedelta = timedelta(0),
                       cut_off_in: timedelta = timedelta(hours=10), rate_bp: int = 0) -> Campaign:
        now = self.w.clock.now
        with self.w.as_staff("OPERATOR"):
            return await self.uc.create_campaign(NewCampaign(
                idempotency_key=new_id("key"), title="周末鲜果", lines=list(lines),
                starts_at=now + starts_in if starts_in else None, cut_off_at=now + cut_off_in,
                pickup_date="2026-03-03", leader_rate_bp=rate_bp))

    async def order(self, campaign: Campaign, leader, *lines: tuple[str, int], member_id: str = "", key: str = ""):
        with self.w.as_member(member_id or self.w.member_id):
            return await self.uc.place(PlaceCommunityOrderInput(
                campaign_id=campaign.id, leader_id=leader.id, lines=list(lines), idempotency_key=key or new_id("key")))

    async def pay(self, order_id: str):
        o = await self.w.orders.get(self.w.merchant_id, order_id)
        o.pay(new_id("pay"), self.w.clock.now)
        await self.w.orders.save(o)
        return o

    async def paid_order(self, campaign, leader, *lines, **kw):
        return await self.pay((await self.order(campaign, leader, *lines, **kw)).id)

    async def deliver(self, campaign, leader):
        with self.w.as_staff("OPERATOR"):
            return await self.uc.mark_delivered(campaign.id, leader.id)


@pytest.fixture
def c(world) -> Community:
    return Community(world)


def reason_of(excinfo) -> str:
    return excinfo.value.reason


# ---- leaders -------------------------------------------------------------------------

async def test_a_leader_takes_orders_only_once_approved_and_enabled(c):
    sku = c.w.sku(1000)
    camp = await c.campaign((sku, 800, 0))
    pending = await c.leader(approve=False)
    assert pending.state is rules.LeaderState.PENDING
    with pytest.raises(FailedPrecondition) as refused:
        await c.order(camp, pending, (sku, 1))
    assert reason_of(refused) == rules.LEADER_NOT_ACTIVE
    with c.w.as_staff("OPERATOR"):
        approved = await c.uc.review(pending.id, True, "")
        assert (await c.uc.review(pending.id, True, "")).version == approved.version  # a repeat changes nothing
        with pytest.raises(FailedPrecondition) as decided:
            await c.uc.review(pending.id, False, "too far")
        assert reason_of(decided) == rules.LEADER_NOT_PENDING
        await c.uc.set_enabled(pending.id, False)
    with pytest.raises(FailedPrecondition) as disabled:
        await c.order(camp, pending, (sku, 1))
    assert reason_of(disabled) == rules.LEADER_NOT_ACTIVE
    with c.w.as_staff("OPERATOR"):
        await c.uc.set_enabled(pending.id, True)
    assert (await c.order(camp, pending, (sku, 1))).state is OrderState.PENDING_PAYMENT


async def test_one_leader_per_member_and_a_rejection_needs_a_reason(c):
    member = new_id("mem")
    first = await c.leader(member, approve=False)
    again = await c.leader(member, approve=False)
    assert again.id == first.id
    with c.w.as_member(member), pytest.raises(FailedPrecondition) as other:
        await c.uc.apply("另一个名字", POINT)
    assert reason_of(other) == rules.LEADER_EXISTS
    with c.w.as_staff("OPERATOR"), pytest.raises(InvalidArgument):
        await c.uc.review(first.id, False, " ")
    with c.w.as_staff("OPERATOR"):
        rejected = await c.uc.review(first.id, False, "地址不在配送范围")
    assert rejected.state is rules.LeaderState.REJECTED and rejected.reject_reason
    # A rejected applicant may apply again with new details: pending again, the same leader.
    with c.w.as_member(member):
        again = await c.uc.apply("新名字", replace(POINT, detail="科技园路 2 号"))
    assert (again.id, again.state, again.pickup_point.detail) == (first.id, rules.LeaderState.PENDING, "科技园路 2 号")
    assert again.pickup_point.pickup_point_id == first.pickup_point.pickup_point_id


async def test_another_merchants_leader_is_not_found(c):
    leader = await c.leader()
    c.w.merchant_id = new_id("mch")
    with c.w.as_staff("OPERATOR"), pytest.raises(NotFound):
        await c.uc.get_leader(leader.id)


# ---- campaigns and the cut-off -------------------------------------------------------

async def test_campaign_states_follow_the_clock(c):
    sku = c.w.sku(1000)
    camp = await c.campaign((sku, 800, 0), starts_in=timedelta(hours=1), cut_off_in=timedelta(hours=2))
    assert camp.state_at(c.w.clock.now) is CampaignState.SCHEDULED
    assert camp.state_at(c.w.clock.now + timedelta(hours=1)) is CampaignState.OPEN
    assert camp.state_at(c.w.clock.now + timedelta(hours=2)) is CampaignState.CLOSED


async def test_a_campaign_price_must_be_below_the_list_price(c):
    sku = c.w.sku(1000)
    with pytest.raises(InvalidArgument) as bad:
        await c.campaign((sku, 1000, 0))
    assert {v.field for v in bad.value.violations} == {"lines[0].price"}
    assert not c.campaigns.campaigns


async def test_orders_are_refused_before_the_start_and_from_the_cut_off(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0), starts_in=timedelta(hours=1), cut_off_in=timedelta(hours=2))
    with pytest.raises(FailedPrecondition) as early:
        await c.order(camp, leader, (sku, 1))
    assert reason_of(early) == rules.CAMPAIGN_NOT_STARTED
    c.w.clock.advance(hours=1)
    await c.order(camp, leader, (sku, 1))
    c.w.clock.advance(hours=1)  # exactly the cut-off
    with pytest.raises(FailedPrecondition) as late:
        await c.order(camp, leader, (sku, 1))
    assert reason_of(late) == rules.CAMPAIGN_CLOSED
    assert len(c.w.catalog.reserved) == 1


async def test_the_job_closes_a_campaign_once_even_when_replicas_race(c):
    camp = await c.campaign((c.w.sku(1000), 800, 0), cut_off_in=timedelta(hours=1))
    assert await c.uc.close_due() == 0
    c.w.clock.advance(hours=1)
    c.campaigns.stale_saves = 1  # another replica wrote first
    assert await c.uc.close_due() == 0
    assert await c.uc.close_due() == 1
    assert await c.uc.close_due() == 0
    assert [type(e).__name__ for _, e in c.campaigns.events] == ["CampaignClosed"]
    assert c.campaigns.campaigns[camp.id].closed_at is not None


# ---- ordering ------------------------------------------------------------------------

async def test_an_order_is_priced_at_the_campaign_price_with_no_shipping_and_carries_its_pickup(c):
    c.w.settings.by_merchant[c.w.merchant_id] = replace(await c.w.settings.of_merchant(c.w.merchant_id),
                                                         shipping_fee=1200)
    a, b = c.w.sku(1000), c.w.sku(2500)
    leader = await c.leader()
    camp = await c.campaign((a, 800, 0), (b, 1990, 0))
    order = await c.order(camp, leader, (a, 2), (b, 1))
    assert (order.payable, order.shipping_fee, order.shipping_address) == (800 * 2 + 1990, 0, None)
    act = order.activity
    assert (act.kind, act.activity_id, act.leader_id, act.pickup_point_id) == (
        "COMMUNITY", camp.id, leader.id, leader.pickup_point.pickup_point_id)
    assert len(act.pickup_code) == 8 and act.pickup_code.isdigit()
    assert order.referral.community_leader_id == leader.member_id
    assert order.referral.community_leader_rate_bp == rules.DEFAULT_LEADER_RATE_BP


async def test_a_sku_outside_the_campaign_is_refused_before_anything_is_reserved(c):
    leader = await c.leader()
    camp = await c.campaign((c.w.sku(1000), 800, 0))
    with pytest.raises(InvalidArgument) as bad:
        await c.order(camp, leader, (c.w.sku(1000), 1))
    assert {v.field for v in bad.value.violations} == {"lines[0].sku_id"}
    assert not c.w.catalog.reserved


async def test_the_per_member_limit_counts_across_orders_and_is_given_back_on_failure(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 3))
    await c.order(camp, leader, (sku, 2))
    with pytest.raises(FailedPrecondition) as over:
        await c.order(camp, leader, (sku, 2))
    assert reason_of(over) == rules.CAMPAIGN_LIMIT_REACHED
    c.w.catalog.refuse_reserve = FailedPrecondition("out of stock", reason="OUT_OF_STOCK")
    with pytest.raises(FailedPrecondition):
        await c.order(camp, leader, (sku, 1))
    c.w.catalog.refuse_reserve = None
    await c.order(camp, leader, (sku, 1))  # the failed order's unit came back
    assert await c.order(camp, leader, (sku, 1), member_id=new_id("mem"))  # another member has their own


async def test_the_same_key_returns_the_first_order(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0))
    first = await c.order(camp, leader, (sku, 1), key="k1")
    again = await c.order(camp, leader, (sku, 1), key="k1")
    assert again.id == first.id and len(c.w.catalog.reserved) == 1


# ---- pickup codes --------------------------------------------------------------------

@given(st.lists(st.integers(min_value=0, max_value=10 ** 8 - 1), min_size=1, max_size=20))
def test_a_pickup_code_is_always_eight_digits(draws):
    it = iter(draws)
    for _ in draws:
        code = rules.new_pickup_code(lambda n: next(it))
        assert len(code) == 8 and code.isdigit()


async def test_a_code_taken_in_the_batch_is_drawn_again(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0))
    codes = iter(["11111111", "11111111", "22222222"])
    c.uc.new_code = lambda: next(codes)
    first = await c.order(camp, leader, (sku, 1))
    second = await c.order(camp, leader, (sku, 1))
    assert (first.activity.pickup_code, second.activity.pickup_code) == ("11111111", "22222222")


async def test_pickup_completes_the_order_and_a_wrong_code_changes_nothing(c):
    sku = c.w.sku(1000)
    leader_member = new_id("mem")
    leader = await c.leader(leader_member)
    other_member = new_id("mem")
    await c.leader(other_member)
    camp = await c.campaign((sku, 800, 0))
    order = await c.paid_order(camp, leader, (sku, 1))
    code = order.activity.pickup_code
    with c.w.as_member(leader_member), pytest.raises(FailedPrecondition) as early:
        await c.uc.confirm_by_leader(camp.id, code, order.id)
    assert reason_of(early) == rules.ORDER_NOT_AT_PICKUP_POINT
    assert await c.deliver(camp, leader) == (1, 0)
    wrong = "00000000" if code != "00000000" else "11111111"
    with c.w.as_member(leader_member), pytest.raises(FailedPrecondition) as mismatch:
        await c.uc.confirm_by_leader(camp.id, wrong, order.id)
    assert reason_of(mismatch) == rules.PICKUP_CODE_MISMATCH
    with c.w.as_member(leader_member), pytest.raises(FailedPrecondition) as unknown:
        await c.uc.confirm_by_leader(camp.id, wrong, "")
    assert reason_of(unknown) == rules.PICKUP_CODE_MISMATCH
    assert c.w.orders.stored(order.id).state is OrderState.DELIVERED
    with c.w.as_member(other_member), pytest.raises(NotFound):  # another leader's order
        await c.uc.confirm_by_leader(camp.id, code, order.id)
    with c.w.as_member(leader_member):
        done = await c.uc.confirm_by_leader(camp.id, code, "")
        again = await c.uc.confirm_by_leader(camp.id, code, order.id)
    assert done.state is OrderState.COMPLETED and done.confirmed_by == rules.CONFIRMED_BY_PICKUP
    assert again.version == done.version and c.pickups.recorded == {order.id: "LEADER"}


# ---- delivery and pick lists ---------------------------------------------------------

async def test_pick_lists_count_paid_units_per_leader_and_delivery_is_idempotent(c):
    a, b = c.w.sku(1000), c.w.sku(2000)
    l1, l2 = await c.leader(), await c.leader()
    camp = await c.campaign((a, 800, 0), (b, 1500, 0))
    await c.paid_order(camp, l1, (a, 2), (b, 1))
    await c.paid_order(camp, l1, (a, 1))
    await c.paid_order(camp, l2, (b, 4))
    await c.order(camp, l2, (a, 9))  # unpaid: not picked
    with c.w.as_staff("OPERATOR"):
        per_leader, total = await c.uc.pick_list(camp.id, "")
        only_l2, _ = await c.uc.pick_list(camp.id, l2.id)
    got = {p.leader_id: {l.sku_id: l.units for l in p.lines} for p, _ in per_leader}
    assert got == {l1.id: {a: 3, b: 1}, l2.id: {b: 4}}
    assert {l.sku_id: l.units for l in total} == {a: 3, b: 5}
    assert [p.leader_id for p, _ in only_l2] == [l2.id]
    assert await c.deliver(camp, l1) == (2, 0)
    assert await c.deliver(camp, l1) == (0, 0)
    delivered = [o for o in c.w.orders.orders.values() if o.state is OrderState.DELIVERED]
    assert len(delivered) == 2 and all(o.shipment.carrier == rules.CARRIER for o in delivered)
    assert not any(o.is_due_for_auto_confirm(c.w.clock.ms() + 30 * 86_400_000) for o in delivered)


async def test_an_order_with_an_open_refund_is_left_out_of_the_batch(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0))
    order = await c.paid_order(camp, leader, (sku, 1))
    c.w.open_refunds.open_by_order[order.id] = 1
    assert await c.deliver(camp, leader) == (0, 1)
    assert c.w.orders.stored(order.id).state is OrderState.PAID


# ---- the uncollected rule ------------------------------------------------------------

async def test_uncollected_orders_are_refunded_once_after_the_merchants_days(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0))
    c.settings.by_merchant[c.w.merchant_id] = CommunitySettings(uncollected_days=2)
    collected = await c.paid_order(camp, leader, (sku, 1))
    forgotten = await c.paid_order(camp, leader, (sku, 2))
    await c.deliver(camp, leader)
    with c.w.as_staff("OPERATOR"):
        await c.uc.confirm_by_staff(camp.id, leader.id, collected.activity.pickup_code, collected.id)
    c.w.clock.advance(days=1, hours=23)
    assert await c.uc.apply_uncollected() == 0
    c.w.clock.advance(hours=1)
    # Three replicas run the job: one refund, of the forgotten order only.
    assert sum([await c.uc.apply_uncollected() for _ in range(3)]) == 1
    assert list(c.full_refunds.created) == [(forgotten.id, "community-uncollected")]
    refund = c.full_refunds.created[(forgotten.id, "community-uncollected")]
    assert [(l.quantity, l.amount) for l in refund.lines] == [(2, None)]


async def test_keep_completes_uncollected_orders_as_auto_confirmed(c):
    sku = c.w.sku(1000)
    leader = await c.leader()
    camp = await c.campaign((sku, 800, 0))
    c.settings.by_merchant[c.w.merchant_id] = CommunitySettings(uncollected_days=1,
                                                                uncollected_action=UncollectedAction.KEEP)
    order = await c.paid_order(camp, leader, (sku, 1))
    await c.deliver(camp, leader)
    c.w.clock.advance(days=1)
    assert await c.uc.apply_uncollected() == 1
    assert await c.uc.apply_uncollected() == 0
    stored = c.w.orders.stored(order.id)
    assert (stored.state, stored.confirmed_by) == (OrderState.COMPLETED, CONFIRMED_BY_AUTO)
    assert not c.full_refunds.calls


def test_is_uncollected_at_exactly_n_days():
    s = CommunitySettings(uncollected_days=7)
    now = datetime(2026, 3, 10, tzinfo=timezone.utc)
    assert rules.is_uncollected(now - timedelta(days=7), s, now)
    assert not rules.is_uncollected(now - timedelta(days=7) + timedelta(seconds=1), s, now)
    assert not rules.is_uncollected(None, s, now)


# ---- the leader's commission ---------------------------------------------------------

async def test_the_leader_earns_commission_on_each_lines_paid_amount(c):
    a, b = c.w.sku(1000), c.w.sku(3000)
    leader = await c.leader()
    c.w.referrals.answers[c.w.member_id] = Referral(distributor_id=new_id("mem"), distributor_rate_bp=500)
    camp = await c.campaign((a, 999, 0), (b, 2599, 0), rate_bp=1500)
    order = await c.paid_order(camp, leader, (a, 3), (b, 1))
    by_level = {}
    for com in order.commissions:
        by_level.setdefault(com.level, []).append(com)
    leader_coms = by_level[CommissionLevel.COMMUNITY_LEADER]
    assert {com.beneficiary_id for com in leader_coms} == {leader.member_id}
    assert sorted(com.amount for com in leader_coms) == sorted([2997 * 1500 // 10000, 2599 * 1500 // 10000])
    assert len(by_level[CommissionLevel.LEVEL_1]) == 2  # the distributor keeps their level too


async def test_the_dashboard_shows_orders_pickups_and_commission(c):
    sku = c.w.sku(1000)
    leader_member = new_id("mem")
    leader = await c.leader(leader_member)
    camp = await c.campaign((sku, 800, 0))
    o1 = await c.paid_order(camp, leader, (sku, 1))
    await c.paid_order(camp, leader, (sku, 2))
    await c.deliver(camp, leader)
    with c.w.as_member(leader_member):
        await c.uc.confirm_by_leader(camp.id, o1.activity.pickup_code, "")
        d = await c.uc.dashboard(camp.id)
    assert (len(d.orders), d.picked_up, d.waiting) == (2, 1, 1)
    assert (d.commission.confirmed, d.commission.pending) == (80, 160)
    with c.w.as_member(new_id("mem")), pytest.raises(NotFound):
        await c.uc.dashboard(camp.id)


def test_a_referral_with_only_a_leader_owes_the_leader_level_on_each_eligible_line():
    from services.order.domain.commissions import commissions_at_paid

    class Line:
        def __init__(self, line_id, paid, eligible=True):
            self.line_id, self.paid_amount, self.refunded_amount, self.commission_eligible = line_id, paid, 0, eligible

    referral = Referral(community_leader_id="mem_L", community_leader_rate_bp=1000)
    assert not referral.is_empty
    owed = commissions_at_paid([Line("l1", 999), Line("l2", 5000, eligible=False), Line("l3", 0)], referral)
    assert [(c.line_id, c.level, c.beneficiary_id, c.amount) for c in owed] == [
        ("l1", CommissionLevel.COMMUNITY_LEADER, "mem_L", 99)]
    assert commissions_at_paid([Line("l1", 999)], Referral(community_leader_id="mem_L")) == ()  # no rate, nothing
