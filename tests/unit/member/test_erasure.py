"""Members' erasure over in-memory ports: EraseMe marks the member ERASING once (one
member.erased, sessions ended), the member service erases its own part and acknowledges,
the member is ERASED only once all four services acknowledged, repeats and replays change
nothing, a crash half-way is finished by the consumer, and acknowledgements of a member not
being erased are refused. The order side cancels unpaid orders, anonymises and
acknowledges in the member's merchant, also on a replay."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.member.application.personal_data import Erasures
from services.member.domain.personal_data import SERVICES
from services.order.application.personal_data import OrderErasure
from services.order.domain.orders import OrderState
from siyu_kit.errors import AlreadyExists, FailedPrecondition
from siyu_kit.ids import new_id
from tests.fakes.callers import caller
from tests.fakes.order import FakeOrders
from tests.fakes.order_money import MEMBER, MERCHANT, an_order
from tests.fakes.personal_data import FakeAcknowledger, FakeErasures, FakeMemberOrders

NOW = datetime(2026, 6, 1, 4, tzinfo=timezone.utc)
SHOP = new_id("mch")


def world() -> tuple[FakeErasures, Erasures, str]:
    store = FakeErasures()
    member_id = new_id("mem")
    store.add_member(SHOP, member_id, phone="13800138000", unionid="u-1", nickname="小美")
    return store, Erasures(store, clock=lambda: NOW), member_id


def as_member(member_id: str):
    return caller(SHOP, channel="H5", member_id=member_id)


def internal():
    return caller(SHOP)


async def test_erase_me_marks_once_erases_the_member_services_part_and_waits_for_the_others():
    store, use, member_id = world()
    with as_member(member_id):
        erasure = await use.erase_me("k-1")
        again = await use.erase_me("k-1")
    assert (erasure.state, erasure.acknowledged) == ("ERASING", frozenset({"member"}))
    assert again == erasure and store.events == [(SHOP, member_id)]
    member = store.members[(SHOP, member_id)]
    assert member["data"] == {} and member["token_version"] == 2
    assert store.guard == {f"{SHOP}:phone:13800138000": member_id, f"{SHOP}:unionid:u-1": member_id}
    with internal():
        for service in ("order", "content"):
            assert (await use.acknowledge(member_id, service)).state == "ERASING"
        assert (await use.acknowledge(member_id, "catalog")).state == "ERASED"
        # Replays of any acknowledgement leave it ERASED.
        for service in SERVICES:
            assert (await use.acknowledge(member_id, service)).state == "ERASED"
    assert store.events == [(SHOP, member_id)]


async def test_the_erasure_key_answers_its_member_and_is_refused_to_another():
    store, use, member_id = world()
    other = new_id("mem")
    store.add_member(SHOP, other, phone="13900139000")
    with as_member(member_id):
        first = await use.erase_me("k-1")
    assert store.keys == {(SHOP, "k-1"): member_id}
    # The same key of the same member: the same answer, nothing else written.
    with as_member(member_id):
        assert await use.erase_me("k-1") == first
    assert store.events == [(SHOP, member_id)]
    # Another member with that key: refused, and that member is not erased.
    with as_member(other), pytest.raises(AlreadyExists) as refused:
        await use.erase_me("k-1")
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert store.members[(SHOP, other)]["state"] == "" and store.members[(SHOP, other)]["data"]
    # Its own new key erases it; keys are the merchant's, so another shop's k-1 is free.
    with as_member(other):
        assert (await use.erase_me("k-2")).member_id == other
    store.add_member("mch_other", "mem_x")
    with caller("mch_other", channel="H5", member_id="mem_x"):
        assert (await use.erase_me("k-1")).member_id == "mem_x"


async def test_a_crash_after_the_mark_is_finished_by_the_consumer_and_a_replay_changes_nothing():
    store, use, member_id = world()
    store.fail_erase = 1
    with as_member(member_id), pytest.raises(ConnectionError):
        await use.erase_me("k-1")
    assert store.members[(SHOP, member_id)]["state"] == "ERASING" and store.events == [(SHOP, member_id)]
    assert store.members[(SHOP, member_id)]["data"]  # nothing erased yet
    # The member service's own consumer of member.erased finishes it, and again on a replay.
    done = await use.erase_own(SHOP, member_id)
    assert done.acknowledged == frozenset({"member"}) and store.members[(SHOP, member_id)]["data"] == {}
    assert await use.erase_own(SHOP, member_id) == done
    assert len(store.guard) == 2


async def test_only_members_being_erased_are_acknowledged_or_erased_by_the_consumer():
    store, use, member_id = world()
    with internal(), pytest.raises(FailedPrecondition) as refused:
        await use.acknowledge(member_id, "order")
    assert refused.value.reason == "MEMBER_NOT_ERASING"
    assert await use.erase_own(SHOP, member_id) is None
    assert store.members[(SHOP, member_id)]["data"]  # untouched
    other = new_id("mch")
    with caller(other), pytest.raises(FailedPrecondition):
        await use.acknowledge(member_id, "order")


async def test_the_order_side_cancels_unpaid_orders_anonymises_and_acknowledges_on_every_delivery():
    orders = FakeOrders()
    unpaid = an_order(new_id("ord"), created_at=NOW)
    paid = an_order(new_id("ord"), created_at=NOW, state=OrderState.PAID, payment_id=new_id("pay"))
    others = an_order(new_id("ord"), created_at=NOW, member_id=new_id("mem"))
    for order in (unpaid, paid, others):
        orders.orders[order.id] = order
    records, acks = FakeMemberOrders(orders), FakeAcknowledger()
    erasure = OrderErasure(orders, records, acks, lambda: NOW)
    await erasure.on_member_erased(MERCHANT, MEMBER)
    assert orders.stored(unpaid.id).state is OrderState.CANCELLED
    assert orders.stored(paid.id).state is OrderState.PAID  # kept for the legal period
    assert orders.stored(others.id).state is OrderState.PENDING_PAYMENT
    assert orders.event_types(unpaid.id) == ["OrderCancelled"]
    assert records.anonymised == [(MERCHANT, MEMBER)] and acks.acks == [(MERCHANT, MEMBER, "order")]
    # A replayed member.erased cancels nothing more and acknowledges again.
    await erasure.on_member_erased(MERCHANT, MEMBER)
    assert orders.event_types(unpaid.id) == ["OrderCancelled"] and len(acks.acks) == 2
