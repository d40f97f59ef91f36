"""The settled order as the split reads it from an order event, and the split as the API
shows it."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from siyu_kit.protos import money

from services.order.adapters import finance_messages as fm
from services.order.domain.split import SettledLine, SplitRecord, SplitSettings, SupplyTerms

AT = datetime(2026, 3, 2, 2, tzinfo=timezone.utc)


def test_the_event_order_gives_tender_refunds_lines_and_commissions():
    o = order_pb2.Order(
        order_id="ord_1", payment_id="pay_1", payable=money(9000), refunded_amount=money(3000),
        tender=order_pb2.Tender(balance=money(2000), provider=money(7000), balance_refunded=money(600),
                                provider_refunded=money(2400)),
        lines=[order_pb2.OrderLine(line_id="oln_1", sku_id="sku_1", quantity=3, refunded_quantity=1)],
        commissions=[order_pb2.OrderCommission(line_id="oln_1", level=common_pb2.COMMISSION_LEVEL_2,
                                               beneficiary_id="mem_u", amount=money(450), voided=money(150))])
    s = fm.settled_order("mch_1", o)
    assert (s.balance_paid, s.provider_paid, s.balance_refunded, s.provider_refunded, s.gross) == \
        (2000, 7000, 600, 2400, 6000)
    assert s.lines == (SettledLine("oln_1", "sku_1", 3, 1),)
    c = s.commissions[0]
    assert (c.level, c.beneficiary_id, c.amount, c.voided, c.due) == ("COMMISSION_LEVEL_2", "mem_u", 450, 150, 300)


def test_an_order_without_a_tender_was_paid_through_the_provider():
    o = order_pb2.Order(order_id="ord_1", payable=money(5000), refunded_amount=money(1000))
    s = fm.settled_order("mch_1", o)
    assert (s.balance_paid, s.provider_paid, s.provider_refunded, s.gross) == (0, 5000, 1000, 4000)


def test_the_split_as_shown_balances():
    order = fm.settled_order("mch_1", order_pb2.Order(
        order_id="ord_1", payment_id="pay_1", payable=money(10000),
        lines=[order_pb2.OrderLine(line_id="oln_1", sku_id="sku_1", quantity=2)]))
    record = SplitRecord.write(order, {"sku_1": SupplyTerms("sup_1", 3000)}, SplitSettings(platform_fee_bp=200),
                               {"sup_1": "190001"}, 10000, AT)
    shown = fm.order_split(record)
    parts = sum(p.amount.amount for p in shown.parts)
    assert shown.gross.amount + shown.merchant_shortfall.amount == \
        parts + shown.provider_fee.amount + shown.merchant_net.amount
    assert [(x.kind, x.party_id, x.amount.amount) for x in shown.shares] == [("SUPPLIER", "sup_1", 3000)]
    assert shown.split_id == "spl_1" and shown.ledger_matches and shown.share_state == "PENDING"
