"""The distribution consumers read what they need from the events: an order's paid amount
net of refunds (recharge orders are not purchases), a share code's member and sharer; an
event without them is poison."""
from __future__ import annotations

import pytest
from siyu.common.v1 import common_pb2
from siyu.content.v1 import events_pb2 as content_events
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from services.member.entrypoint.distribution_wiring import subscriptions
from siyu_kit.events.consumer import Poison
from siyu_kit.protos import money

ENVELOPE = common_pb2.EventEnvelope(merchant_id="mch_1")
MEMBER, SHARER = "mem_" + "A" * 26, "mem_" + "B" * 26


class Recorder:
    def __init__(self):
        self.spend: list[tuple] = []
        self.shares: list[tuple] = []

    async def on_spend(self, merchant_id: str, member_id: str, order_id: str, net: int) -> bool:
        self.spend.append((merchant_id, member_id, order_id, net))
        return False

    async def on_share_opened(self, merchant_id: str, member_id: str, sharer_id: str) -> str:
        self.shares.append((merchant_id, member_id, sharer_id))
        return "BOUND"


def handlers(recorder: Recorder) -> dict:
    return {s.durable: s.handler for s in subscriptions(recorder)}


def order(refunded: int, kind=order_pb2.ORDER_KIND_UNSPECIFIED) -> order_pb2.Order:
    return order_pb2.Order(order_id="ord_1", member_id=MEMBER, payable=money(10000), refunded_amount=money(refunded),
                           kind=kind)


async def test_orders_count_their_paid_amount_net_of_refunds():
    r = Recorder()
    h = handlers(r)
    await h["member-distribution-order-paid"](ENVELOPE, order_events.OrderPaid(order=order(0)))
    await h["member-distribution-order-refunded"](ENVELOPE, order_events.OrderRefunded(order=order(3000)))
    await h["member-distribution-order-paid"](ENVELOPE, order_events.OrderPaid(
        order=order(0, order_pb2.ORDER_KIND_RECHARGE)))
    assert r.spend == [("mch_1", MEMBER, "ord_1", 10000), ("mch_1", MEMBER, "ord_1", 7000)]
    with pytest.raises(Poison):
        await h["member-distribution-order-paid"](common_pb2.EventEnvelope(), order_events.OrderPaid(order=order(0)))


async def test_a_share_code_opened_names_member_and_sharer():
    r = Recorder()
    h = handlers(r)
    await h["member-distribution-share-opened"](ENVELOPE, content_events.ShareCodeOpened(
        code="C", sharer_id=SHARER, member_id=MEMBER))
    assert r.shares == [("mch_1", MEMBER, SHARER)]
    with pytest.raises(Poison):
        await h["member-distribution-share-opened"](ENVELOPE, content_events.ShareCodeOpened(
            code="C", sharer_id="someone", member_id=MEMBER))
