"""Order events carrying commissions, crafted as the order service sends them (the whole
order in each), for the member service to consume: paid, completed, settled, refunded."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from siyu_kit.protos import money, timestamp

PAID_AT = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
LEVELS = {1: common_pb2.COMMISSION_LEVEL_1, 2: common_pb2.COMMISSION_LEVEL_2, 3: common_pb2.COMMISSION_LEVEL_GUIDE}
STATES = {"PAID": order_pb2.ORDER_STATE_PAID, "COMPLETED": order_pb2.ORDER_STATE_COMPLETED}


class CommissionOrder:
    """One order of one line whose commissions go to `beneficiaries` (level → id, rate bp)."""

    def __init__(self, merchant_id: str, buyer_id: str, paid: int, beneficiaries: dict[int, tuple[str, int]]):
        self.merchant_id, self.buyer_id, self.paid = merchant_id, buyer_id, paid
        self.order_id, self.line_id = new_id("ord"), new_id("oln")
        self.beneficiaries = beneficiaries
        self.version = 1

    def amount(self, level: int) -> int:
        return self.paid * self.beneficiaries[level][1] // 10_000

    def order(self, state: str, refunded: int = 0, settled: bool = False) -> order_pb2.Order:
        commissions = []
        for level, (who, rate) in self.beneficiaries.items():
            amount = self.amount(level)
            voided = amount if refunded >= self.paid else amount * refunded // self.paid
            commissions.append(order_pb2.OrderCommission(
                line_id=self.line_id, level=LEVELS[level], beneficiary_id=who, rate_bp=rate, base=money(self.paid),
                amount=money(amount), voided=money(voided)))
        order = order_pb2.Order(
            order_id=self.order_id, member_id=self.buyer_id, state=STATES[state], payable=money(self.paid),
            paid_at=timestamp(PAID_AT), commissions=commissions,
            lines=[order_pb2.OrderLine(line_id=self.line_id, quantity=1, paid_amount=money(self.paid),
                                       refunded_amount=money(refunded), commission_eligible=True)])
        if settled:
            order.settled_at.CopyFrom(timestamp(PAID_AT))
        return order

    def event(self, kind: str, refunded: int = 0):
        """paid, completed, settled or refunded (after settlement when `kind` is refunded_settled)."""
        self.version += 1
        if kind == "paid":
            subject, payload = "siyu.order.order.paid", order_events.OrderPaid(order=self.order("PAID", refunded))
        elif kind == "completed":
            subject, payload = "siyu.order.order.completed", order_events.OrderCompleted(
                order=self.order("COMPLETED", refunded))
        elif kind == "settled":
            subject, payload = "siyu.order.order.settled", order_events.OrderSettled(
                order=self.order("COMPLETED", refunded, settled=True))
        else:
            settled = kind == "refunded_settled"
            subject, payload = "siyu.order.order.refunded", order_events.OrderRefunded(
                order=self.order("COMPLETED" if settled else "PAID", refunded, settled=settled))
        return make_event(subject, merchant_id=self.merchant_id, aggregate_id=self.order_id,
                          aggregate_version=self.version, payload=payload, channel="MINI_PROGRAM")
