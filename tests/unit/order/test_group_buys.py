"""Group buy against in-memory ports: the group's rules (open, join, full, expired,
virtual fill, a member twice, their own group), pricing, each refusal, the GROUPING order,
the slot taken once whatever the interleaving, the failure refunded once, the formed
group's orders promoted once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit.aggregate import Move
from siyu_kit.errors import FailedPrecondition, InvalidArgument
from siyu_kit.ids import new_id
from tests.fakes.group_buy import FakeActivities, FakeGroups, FakePools, FakeProfiles, FakeTickets
from tests.fakes.order_money import FakeLedger, FakePayments, FakeProvider

from services.order.application.group_buys import GroupBuyUseCases, PlaceGroupBuyOrderInput, new_group_id_for
from services.order.application.payments import PaymentUseCases
from services.order.application.ports import FlashReservation
from services.order.domain import group_buys as gb
from services.order.domain.commissions import Referral
from services.order.domain.group_buys import (ActivityTerms, FullGroupPayment, Group, GroupBuySku, GroupMember,
                                              GroupState, Slot)
from services.order.domain.orders import OrderState, ReservationVerdict, member_cancel, CancelDecision

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


# ---- the group's rules ------------------------------------------------------------------

def a_group(size: int = 3, paid: int = 1, state: GroupState = GroupState.OPEN, expires_in_h: int = 1) -> Group:
    members = tuple(GroupMember(member_id=f"mem_{i}", order_id=f"ord_{i}", leader=i == 0, joined_at=T0)
                    for i in range(paid))
    return Group(id="grp_1", merchant_id="mch_1", activity_id="gba_1", sku_id="sku_1", size=size, state=state,
                 opened_at=T0, expires_at=T0 + timedelta(hours=expires_in_h), members=members)


def test_a_slot_is_joined_then_the_last_one_forms_the_group():
    assert gb.take_slot(a_group(paid=1), "mem_x", "ord_x", T0) is Slot.JOINED
    assert gb.take_slot(a_group(paid=2), "mem_x", "ord_x", T0) is Slot.FORMED
    assert gb.take_slot(a_group(paid=3), "mem_x", "ord_x", T0) is Slot.FULL


def test_a_full_open_group_answers_full():
    g = a_group(size=2, paid=2)
    assert g.state is GroupState.OPEN and gb.take_slot(g, "mem_x", "ord_x", T0) is Slot.FULL


def test_a_repeat_an_expired_group_a_member_twice_and_a_closed_group():
    g = a_group(paid=2)
    assert gb.take_slot(g, "mem_1", "ord_1", T0) is Slot.REPEAT
    assert gb.take_slot(g, "mem_1", "ord_other", T0) is Slot.CLOSED
    assert gb.take_slot(g, "mem_x", "ord_x", T0 + timedelta(hours=1)) is Slot.CLOSED
    assert gb.take_slot(a_group(paid=1, state=GroupState.FAILED), "mem_x", "ord_x", T0) is Slot.CLOSED
    assert gb.take_slot(a_group(paid=3, state=GroupState.FORMED), "mem_x", "ord_x", T0) is Slot.FULL
    assert gb.refusal_reason(Slot.FULL) == "GROUP_FULL" and gb.refusal_reason(Slot.CLOSED) == "GROUP_CLOSED"


def test_join_refusals_name_their_reason():
    g = a_group(paid=2)
    assert gb.join_refusal(g, "mem_0", T0)[0] == gb.GROUP_OWN
    assert gb.join_refusal(g, "mem_1", T0)[0] == gb.GROUP_ALREADY_JOINED
    assert gb.join_refusal(g, "mem_x", T0) is None
    assert gb.join_refusal(a_group(size=2, paid=2), "mem_x", T0)[0] == gb.GROUP_NOT_JOINABLE
    assert gb.join_refusal(g, "mem_x", T0 + timedelta(hours=2))[0] == gb.GROUP_NOT_JOINABLE
    assert gb.join_refusal(None, "mem_x", T0)[0] == gb.GROUP_NOT_JOINABLE


@pytest.mark.parametrize("size,bp,paid,expected", [
    (3, 6700, 2, (GroupState.FORMED, 1)), (3, 6700, 1, (GroupState.FAILED, 0)), (3, 0, 2, (GroupState.FAILED, 0)),
    (2, 5000, 1, (GroupState.FORMED, 1)), (10, 10000, 9, (GroupState.FAILED, 0)), (5, 8000, 4, (GroupState.FORMED, 1)),
])
def test_an_expired_group_fails_unless_its_virtual_fill_share_was_reached(size, bp, paid, expected):
    outcome = gb.expiry_outcome(a_group(size=size, paid=paid), bp)
    assert (outcome.state, outcome.placeholders) == expected
    assert outcome.reason == ("" if outcome.state is GroupState.FORMED else gb.GROUP_EXPIRED)


def test_a_groups_deadline_is_its_hours_capped_at_the_activitys_end():
    a = an_activity(hours=24, ends_at=T0 + timedelta(hours=30))
    assert a.group_deadline(T0) == T0 + timedelta(hours=24)
    assert a.group_deadline(T0 + timedelta(hours=20)) == T0 + timedelta(hours=30)


@given(st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=1, max_size=40), st.integers(2, 6))
@settings(max_examples=150, deadline=None)
def test_no_interleaving_of_reads_and_takes_overfills_a_group(steps, size):
    """Members read the group at any moment (stale reads included) and send the store's
    guarded update: the group never has more members than its size, and forms once."""
    import asyncio
    groups = FakeGroups()
    g = a_group(size=size, paid=1)
    groups.by_id[g.id] = g
    reads: dict[int, Group] = {}

    async def run():
        for who, read_again in steps:
            if read_again or who not in reads:
                reads[who] = groups.by_id[g.id]
            seen = reads[who]
            slot = gb.take_slot(seen, f"mem_j{who}", f"ord_j{who}", T0)
            if slot in (Slot.JOINED, Slot.FORMED):
                m = GroupMember(member_id=f"mem_j{who}", order_id=f"ord_j{who}", leader=False, joined_at=T0)
                await groups.take(seen, m, None, T0, last=slot is Slot.FORMED)
    asyncio.run(run())
    final = groups.by_id[g.id]
    assert final.paid <= size
    assert len({m.member_id for m in final.members}) == final.paid
    assert [e for _, e in groups.events].count("formed") == (1 if final.state is GroupState.FORMED else 0)
    assert (final.state is GroupState.FORMED) == (final.paid == size)


def test_activity_terms_are_checked():
    v = gb.Violations()
    terms = ActivityTerms(title="t", product_id="prd_1", starts_at=T0, ends_at=T0 - timedelta(hours=1),
                          skus=(GroupBuySku("sku_a", 900, leader_price=950, units=0),), group_size=51,
                          group_hours=24, per_member_limit=1)
    gb.check_terms(terms, v, {"sku_a": ("prd_2", 800)})
    fields = {f.field for f in v.items}
    assert {"activity.group_size", "activity.ends_at", "activity.skus[0].leader_price", "activity.skus[0].units",
            "activity.skus[0].sku_id", "activity.skus[0].group_price"} <= fields


def test_pool_keys_fit_and_follow_the_activity_key():
    key = gb.pool_key("k" * 64, "sku_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert len(key) <= 64 and key == gb.pool_key("k" * 64, "sku_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert key != gb.pool_key("k" * 63, "sku_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert gb.mask_nickname("张三丰") == "张**" and gb.mask_nickname("") == "**"


# ---- the world: group buy over the order and payment use cases ---------------------------

def an_activity(hours: int = 24, ends_at: datetime | None = None, **terms) -> gb.GroupBuyActivity:
    return gb.GroupBuyActivity(id=new_id("gba"), merchant_id="mch_1", idempotency_key="k", created_at=T0,
                               terms=ActivityTerms(title="t", product_id="prd_1", starts_at=T0 - timedelta(hours=1),
                                                   ends_at=ends_at or T0 + timedelta(days=3), group_hours=hours,
                                                   skus=(), group_size=2, per_member_limit=1, **terms))


class GroupWorld:
    def __init__(self, world):
        self.w = world
        self.activities, self.groups, self.tickets = FakeActivities(), FakeGroups(), FakeTickets()
        self.pools, self.provider, self.payments_repo = FakePools(), FakeProvider(), FakePayments()
        self.ledger = FakeLedger()
        self.payments = PaymentUseCases(orders=world.orders, payments=self.payments_repo, provider=self.provider,
                                        entries=self.ledger, clock=world.clock)
        self.cases = GroupBuyUseCases(
            activities=self.activities, groups=self.groups, tickets=self.tickets, profiles=FakeProfiles(),
            pools=self.pools, catalog=world.catalog, skus=world.catalog, orders=world.orders,
            settings=world.settings, checkout=world.checkout, order_cases=world.order_cases, refunds=self.payments,
            clock=world.clock)
        self.sku = world.sku(10000)

    async def activity(self, size: int = 2, ends_in_h: int = 48, **more) -> gb.GroupBuyActivity:
        with self.w.as_staff("OPERATOR"):
            return await self.cases.create_activity(new_id("key"), ActivityTerms(
                title="两人团", product_id="prd_1", starts_at=self.w.clock.now - timedelta(minutes=1),
                ends_at=self.w.clock.now + timedelta(hours=ends_in_h), group_size=size,
                skus=(GroupBuySku(self.sku, 6000, leader_price=5000, units=50),), **more))

    async def buy(self, activity, member_id: str, group_id: str = "", **more):
        self.w.catalog.flash_won = FlashReservation(self.sku, 6000)
        with self.w.as_member(member_id):
            return await self.cases.place(PlaceGroupBuyOrderInput(
                activity_id=activity.id, sku_id=self.sku, idempotency_key=new_id("key"), group_id=group_id, **more))

    async def pay(self, order):
        """Paid through the sandbox: the order becomes GROUPING; then its slot is taken
        (the order.grouping consumer)."""
        with self.w.as_member(order.member_id):
            payment = await self.payments.pay(order.id, new_id("key"), "")
        await self.payments.succeeded(payment, f"txn_{payment.id}")
        return await self.cases.take_slot(self.w.merchant_id, order.id)

    def state(self, order_id: str) -> OrderState:
        return self.w.orders.orders[order_id].state


@pytest.fixture
def g(world) -> GroupWorld:
    return GroupWorld(world)


def mem() -> str:
    return new_id("mem")


async def test_an_activity_makes_one_pool_per_sku_once_per_key(g):
    with g.w.as_staff("OPERATOR"):
        terms = ActivityTerms(title="t", product_id="prd_1", starts_at=g.w.clock.now,
                              ends_at=g.w.clock.now + timedelta(days=1),
                              skus=(GroupBuySku(g.sku, 6000, units=5),))
        first = await g.cases.create_activity("key-1", terms)
        again = await g.cases.create_activity("key-1", terms)
    assert again.id == first.id and len(g.pools.by_key) == 1
    assert (first.terms.group_size, first.terms.group_hours, first.terms.per_member_limit) == (2, 24, 1)
    assert not first.terms.allow_coupons and not first.terms.pay_commission
    assert first.terms.full_group_payment is FullGroupPayment.REFUND


async def test_a_group_price_not_below_the_list_price_is_refused_before_any_pool(g):
    with g.w.as_staff("OPERATOR"), pytest.raises(InvalidArgument):
        await g.cases.create_activity("key-2", ActivityTerms(
            title="t", product_id="prd_1", starts_at=g.w.clock.now, ends_at=g.w.clock.now + timedelta(days=1),
            skus=(GroupBuySku(g.sku, 10000, units=5),)))
    assert g.pools.calls == 0


async def test_the_leader_pays_the_leader_price_and_a_joiner_the_group_price(g):
    activity = await g.activity()
    leader = await g.buy(activity, mem())
    assert leader.activity.group_leader and leader.activity.group_id == new_group_id_for(leader.id)
    assert leader.lines[0].line_amount == 5000 and leader.lines[0].steps[0].step == "GROUP_BUY_PRICE"
    await g.pay(leader)
    joiner = await g.buy(activity, mem(), leader.activity.group_id)
    assert joiner.lines[0].line_amount == 6000 and not joiner.activity.group_leader


async def test_each_refusal_when_placing(g):
    activity = await g.activity(size=2)
    leader_id = mem()
    with pytest.raises(FailedPrecondition) as e:
        await g.buy(activity, leader_id, coupon_id=new_id("cpn"))
    assert e.value.reason == gb.COUPON_NOT_ALLOWED
    leader = await g.buy(activity, leader_id)
    with pytest.raises(FailedPrecondition) as e:  # not open yet: its leader has not paid
        await g.buy(activity, mem(), leader.activity.group_id)
    assert e.value.reason == gb.GROUP_NOT_JOINABLE
    await g.pay(leader)
    with pytest.raises(FailedPrecondition) as e:
        await g.buy(activity, leader_id, leader.activity.group_id)
    assert e.value.reason == gb.GROUP_OWN
    await g.pay(await g.buy(activity, mem(), leader.activity.group_id))  # full now
    with pytest.raises(FailedPrecondition) as e:
        await g.buy(activity, mem(), leader.activity.group_id)
    assert e.value.reason == gb.GROUP_NOT_JOINABLE
    with g.w.as_staff("OPERATOR"):
        await g.cases.end_activity(activity.id)
    with pytest.raises(FailedPrecondition) as e:
        await g.buy(activity, mem())
    assert e.value.reason == gb.ACTIVITY_NOT_ACTIVE


async def test_a_paid_order_waits_grouping_not_shippable_nor_cancellable_and_keeps_its_units(g):
    activity = await g.activity(size=3)
    order = await g.buy(activity, mem())
    await g.pay(order)
    stored = g.w.orders.orders[order.id]
    assert stored.state is OrderState.GROUPING and stored.paid_at is not None
    assert g.w.orders.event_types(order.id)[-1] == "OrderGrouping"  # no order.paid yet
    assert member_cancel(stored.state) is CancelDecision.TOO_LATE
    assert stored.reservation_verdict(stored.reservation_id) is ReservationVerdict.KEEP
    with pytest.raises(FailedPrecondition):
        stored.shipping()
    assert sorted(e.kind for e in g.ledger.of_order(order.id)) == ["ORDER_PAYMENT"]


async def test_the_last_slot_forms_the_group_and_its_orders_are_promoted_once(g):
    activity = await g.activity(size=3)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    group_id = leader.activity.group_id
    a = await g.buy(activity, mem(), group_id)
    b = await g.buy(activity, mem(), group_id)
    assert await g.pay(a) is Slot.JOINED
    assert await g.pay(b) is Slot.FORMED
    assert g.groups.by_id[group_id].state is GroupState.FORMED
    assert await g.cases.formed(g.w.merchant_id, group_id) == 3
    assert await g.cases.formed(g.w.merchant_id, group_id) == 0  # a redelivery
    for o in (leader, a, b):
        assert g.state(o.id) is OrderState.PAID
        assert g.w.orders.event_types(o.id).count("OrderPaid") == 1
    assert await g.cases.take_slot(g.w.merchant_id, a.id) is None  # order.grouping again: nothing


async def test_commission_is_owed_at_formation_only_when_the_activity_pays_it(g):
    for pays in (False, True):
        activity = await g.activity(size=2, pay_commission=pays)
        leader = await g.buy(activity, mem())
        await g.pay(leader)
        joiner_id = mem()
        g.w.referrals.answers[joiner_id] = Referral(distributor_id=new_id("mem"), distributor_rate_bp=1000)
        joiner = await g.buy(activity, joiner_id, leader.activity.group_id)
        await g.pay(joiner)
        await g.cases.formed(g.w.merchant_id, leader.activity.group_id)
        assert bool(g.w.orders.orders[joiner.id].commissions) is pays


async def test_a_payment_for_a_full_group_is_refunded_once(g):
    activity = await g.activity(size=2)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    group_id = leader.activity.group_id
    first, late = await g.buy(activity, mem(), group_id), await g.buy(activity, mem(), group_id)
    assert await g.pay(first) is Slot.FORMED
    assert await g.pay(late) is Slot.FULL  # formed meanwhile
    stored = g.w.orders.orders[late.id]
    assert stored.state is OrderState.CANCELLED and stored.cancel_reason == "GROUP_FULL"
    assert stored.refunded_amount == stored.payable
    await g.payments.refund_grouping(g.w.merchant_id, late.id, "GROUP_FULL")  # a redelivery
    assert [p for p, _ in g.provider.refunds] == [stored.payment_id]
    assert g.groups.by_id[group_id].paid == 2 and not g.groups.by_id[group_id].has_order(late.id)
    kinds = sorted(e.kind for e in g.ledger.of_order(late.id))
    assert kinds == ["ORDER_PAYMENT", "STOCK_REFUND"]


async def test_with_open_new_group_a_late_payment_leads_a_new_group(g):
    activity = await g.activity(size=2, full_group_payment=FullGroupPayment.OPEN_NEW_GROUP)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    group_id = leader.activity.group_id
    first, late = await g.buy(activity, mem(), group_id), await g.buy(activity, mem(), group_id)
    await g.pay(first)
    await g.pay(late)
    assert g.state(late.id) is OrderState.GROUPING and not g.provider.refunds
    opened = g.groups.by_id[new_group_id_for(late.id)]
    assert opened.leader.order_id == late.id and opened.state is GroupState.OPEN
    with g.w.as_member(late.member_id):
        mine = await g.cases.my_groups(10)
    assert [x.id for x in mine] == [opened.id]


async def test_an_expired_group_fails_once_with_three_sweeps_and_each_order_is_refunded_once(g):
    activity = await g.activity(size=3)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    joiner = await g.buy(activity, mem(), leader.activity.group_id)
    await g.pay(joiner)
    g.w.clock.advance(hours=25)
    closed = [await g.cases.sweep() for _ in range(3)]  # three replicas
    assert closed == [1, 0, 0]
    group_id = leader.activity.group_id
    assert g.groups.by_id[group_id].state is GroupState.FAILED
    assert [e for gid, e in g.groups.events if gid == group_id].count("failed") == 1
    for _ in range(2):  # group.failed delivered twice
        await g.cases.failed(g.w.merchant_id, group_id)
    for o in (leader, joiner):
        stored = g.w.orders.orders[o.id]
        assert stored.state is OrderState.CANCELLED and stored.cancel_reason == "GROUP_FAILED"
        assert g.w.orders.event_types(o.id).count("OrderCancelled") == 1
    assert sorted(p for p, _ in g.provider.refunds) == sorted(
        g.w.orders.orders[o.id].payment_id for o in (leader, joiner))


async def test_a_join_after_the_deadline_is_refunded_as_closed(g):
    activity = await g.activity(size=3)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    g.w.clock.advance(hours=23, minutes=55)
    joiner = await g.buy(activity, mem(), leader.activity.group_id)
    with g.w.as_member(joiner.member_id):
        payment = await g.payments.pay(joiner.id, "p", "")
    await g.payments.succeeded(payment, "txn")
    g.w.clock.advance(minutes=10)  # the slot is asked for after the group's deadline
    assert await g.cases.take_slot(g.w.merchant_id, joiner.id) is Slot.CLOSED
    assert g.state(joiner.id) is OrderState.CANCELLED and len(g.provider.refunds) == 1


async def test_a_virtual_fill_forms_the_group_with_placeholders(g):
    activity = await g.activity(size=3, virtual_fill_bp=6700)
    leader = await g.buy(activity, mem())
    await g.pay(leader)
    await g.pay(await g.buy(activity, mem(), leader.activity.group_id))
    g.w.clock.advance(hours=25)
    assert await g.cases.sweep() == 1
    group = g.groups.by_id[leader.activity.group_id]
    assert (group.state, group.placeholders, group.paid) == (GroupState.FORMED, 1, 2)
    assert await g.cases.formed(g.w.merchant_id, group.id) == 2
    assert not g.provider.refunds


async def test_joinable_groups_are_open_unexpired_with_slots(g):
    activity = await g.activity(size=2)
    a = await g.buy(activity, mem())
    await g.pay(a)
    b = await g.buy(activity, mem())
    await g.pay(b)
    await g.pay(await g.buy(activity, mem(), b.activity.group_id))
    with g.w.as_member(mem()):
        found = await g.cases.joinable(activity.id, 10)
    assert [x.id for x in found] == [a.activity.group_id]


def test_grouping_moves():
    from services.order.domain.orders import decide
    assert decide(OrderState.GROUPING, OrderState.SHIPPED) is Move.REFUSE
    assert decide(OrderState.GROUPING, OrderState.PAID) is Move.APPLY
