"""The order events the funnels and purchase facts consume: what each adds, on which day,
once per cause; recharges are no sales."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit import protos
from siyu_kit.events.consumer import Poison
from siyu_kit.ids import new_id

from services.content.application.cohorts import CohortUseCases
from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.domain.funnels import Counters
from services.content.entrypoint.events import subscriptions
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas, FakePurchases

MERCHANT = "mch_A"
PLACED = datetime(2026, 6, 1, 15, 0, tzinfo=timezone.utc)  # 2026-06-01 23:00 in Shanghai
PAID = datetime(2026, 6, 1, 16, 30, tzinfo=timezone.utc)  # 2026-06-02 00:30 in Shanghai
REFUNDED = datetime(2026, 6, 9, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def w():
    class World:
        funnels, purchases = FakeFunnels(), FakePurchases()
    world = World()
    personas = PersonaUseCases(FakePersonas())
    cases = FunnelUseCases(world.funnels, personas, ContentUseCases(FakeContents(), FakePersonas()))
    world.handlers = {s.payload_type: s.handler for s in subscriptions(cases, CohortUseCases(world.purchases))}
    return world


def envelope(at: datetime) -> common_pb2.EventEnvelope:
    return common_pb2.EventEnvelope(event_id=new_id("evt"), merchant_id=MERCHANT, occurred_at=protos.timestamp(at))


def an_order(amount: int = 10_000, refunded: int = 0, kind=order_pb2.ORDER_KIND_UNSPECIFIED) -> order_pb2.Order:
    return order_pb2.Order(
        order_id="ord_1", member_id="mem_1", kind=kind, payable=protos.money(amount), paid_at=protos.timestamp(PAID),
        refunded_amount=protos.money(refunded),
        attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_LIVE, persona_id="per_1"))


def refund_event(order: order_pb2.Order, refund_id: str, amount: int) -> events_pb2.OrderRefunded:
    return events_pb2.OrderRefunded(order=order, refund=order_pb2.Refund(refund_id=refund_id,
                                                                         amount=protos.money(amount)))


def day_of(w, dimension: str, ref: str, day: str) -> Counters:
    return w.funnels.buckets[(MERCHANT, dimension, ref, day)].counters


async def test_placed_paid_and_two_refunds_land_on_their_days_once_each(w):
    await w.handlers[events_pb2.OrderPlaced](envelope(PLACED), events_pb2.OrderPlaced(order=an_order()))
    paid = envelope(PAID)
    for _ in range(2):
        await w.handlers[events_pb2.OrderPaid](paid, events_pb2.OrderPaid(order=an_order()))
    first = refund_event(an_order(refunded=4_000), "rfd_1", 4_000)
    rest = refund_event(an_order(refunded=10_000), "rfd_2", 6_000)
    for event in (first, rest, first, rest):  # replays, each under a new event id
        await w.handlers[events_pb2.OrderRefunded](envelope(REFUNDED), event)
    assert day_of(w, "persona", "per_1", "2026-06-01") == Counters(orders=1)
    # Refunds count on the day the order was paid; the last one takes the order off paid orders.
    assert day_of(w, "persona", "per_1", "2026-06-02") == Counters(paid_orders=0, gmv=0, refunds=2, refunded=10_000)
    assert day_of(w, "channel", "LIVE", "2026-06-02") == day_of(w, "persona", "per_1", "2026-06-02")
    [fact] = await w.purchases.orders(MERCHANT, 0)
    assert (fact.paid, fact.refunded, fact.purchase, fact.month) == (10_000, 10_000, False, "2026-06")
    [first_purchase] = await w.purchases.firsts(MERCHANT, "2026-06", "2026-06")
    assert (first_purchase.channel, first_purchase.persona_id) == ("LIVE", "per_1")


async def test_a_partial_refund_keeps_the_order_paid(w):
    await w.handlers[events_pb2.OrderPaid](envelope(PAID), events_pb2.OrderPaid(order=an_order()))
    await w.handlers[events_pb2.OrderRefunded](envelope(REFUNDED), refund_event(an_order(refunded=3_000), "rfd_1",
                                                                                3_000))
    assert day_of(w, "persona", "per_1", "2026-06-02") == Counters(paid_orders=1, gmv=7_000, refunds=1,
                                                                   refunded=3_000)


async def test_recharges_are_no_sales(w):
    recharge = an_order(kind=order_pb2.ORDER_KIND_RECHARGE)
    await w.handlers[events_pb2.OrderPlaced](envelope(PLACED), events_pb2.OrderPlaced(order=recharge))
    await w.handlers[events_pb2.OrderPaid](envelope(PAID), events_pb2.OrderPaid(order=recharge))
    await w.handlers[events_pb2.OrderRefunded](envelope(REFUNDED), refund_event(recharge, "rfd_1", 100))
    assert w.funnels.buckets == {} and w.purchases.facts == {}


async def test_an_unusable_refund_is_poison(w):
    with pytest.raises(Poison):
        await w.handlers[events_pb2.OrderRefunded](envelope(REFUNDED), refund_event(an_order(), "rfd.1", 1))
    with pytest.raises(Poison):
        await w.handlers[events_pb2.OrderRefunded](envelope(REFUNDED), refund_event(an_order(), "rfd_1", -1))
    assert w.funnels.buckets == {}
