"""The referral consumers read what they need from the order events: a completion's
amounts, and a refund's order after it (whether every line was refunded); an event
without its ids is poison."""
from __future__ import annotations

import pytest
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from services.member.entrypoint.referral_wiring import finished_order, refunded_order
from siyu_kit.events.consumer import Poison
from siyu_kit.protos import money

ENVELOPE = common_pb2.EventEnvelope(merchant_id="mch_1")


def order(refunded_quantities: list[int], refunded: int) -> order_pb2.Order:
    lines = [order_pb2.OrderLine(line_id=f"l{i}", quantity=2, refunded_quantity=q)
             for i, q in enumerate(refunded_quantities)]
    return order_pb2.Order(order_id="ord_1", member_id="mem_1", payable=money(10000), refunded_amount=money(refunded),
                           lines=lines)


def test_a_completion_carries_its_amounts():
    done = finished_order(ENVELOPE, order_events.OrderCompleted(order=order([0], 0)))
    assert (done.order_id, done.member_id, done.payable, done.refunded) == ("ord_1", "mem_1", 10000, 0)


@pytest.mark.parametrize("quantities,every_line", [([2, 2], True), ([2, 1], False), ([0], False)])
def test_a_refund_says_whether_every_line_was_refunded(quantities, every_line):
    refund = order_pb2.Refund(refund_id="rfd_1")
    got = refunded_order(ENVELOPE, order_events.OrderRefunded(order=order(quantities, 9000), refund=refund))
    assert (got.refund_id, got.payable, got.refunded, got.every_line_refunded) == ("rfd_1", 10000, 9000, every_line)


def test_a_refund_without_its_ids_is_poison():
    with pytest.raises(Poison):
        refunded_order(ENVELOPE, order_events.OrderRefunded(order=order([2], 10000)))
