"""The stored order document ⇄ the order aggregate, and the event messages of its domain
events: the shape stays what it was, every move maps to the subject its message declares."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import decode
from siyu_kit.sealing import Sealer, new_key
from tests.fakes.order import address

from services.order.adapters import messages
from services.order.adapters.documents import order_doc, order_of
from services.order.domain.orders import AppliedRefund, Order, OrderActivity, OrderLine, PriceStep, RefundedUnits
from services.order.domain.refunds import Refund, RefundState

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


def placed() -> Order:
    line = OrderLine(line_id="oln_1", sku_id="sku_1", product_id="prd_1", title="Tea", quantity=2, unit_price=500,
                     line_total=1000, line_amount=900, paid_amount=900, steps=(PriceStep("TIER_DISCOUNT", 100, "GOLD"),))
    order = Order.place(order_id="ord_1", merchant_id="mch_1", member_id="mem_1", idempotency_key="k",
                        lines=[line], currency="CNY", total=1000, payable=900, reservation_id="rsv_1",
                        created_at=NOW, expires_at=NOW + timedelta(minutes=30), tier="GOLD",
                        attribution={"channel": "H5"}, flash_sale_id="fls_1")
    return order


def test_a_new_order_is_stored_as_it_always_was():
    doc = order_doc(placed())
    assert set(doc) == {"_id", "merchant_id", "member_id", "idempotency_key", "state", "lines", "currency", "total",
                        "payable", "order_steps", "shipping_fee", "tier", "attribution", "remark", "reservation_id",
                        "created_at", "expires_at", "version", "flash_sale_id"}
    assert doc["lines"][0] == {"line_id": "oln_1", "sku_id": "sku_1", "product_id": "prd_1", "title": "Tea",
                               "quantity": 2, "unit_price": 500, "line_total": 1000, "line_amount": 900,
                               "paid_amount": 900, "steps": [{"step": "TIER_DISCOUNT", "amount": 100,
                                                              "detail": "GOLD"}]}


def test_every_move_round_trips_through_the_document():
    order = placed()
    order.pay("pay_1", NOW)
    order.ship("SF", "SF1", NOW_MS, auto_confirm_days=7, open_refunds=0)
    order.deliver(NOW)
    order.complete(NOW)
    order.apply_refund("rfd_1", AppliedRefund(300, 0, False, (RefundedUnits("oln_1", "sku_1", 1, 300),)),
                       [replace(order.lines[0], refunded_quantity=1, refunded_amount=300)], NOW)
    order.pull_events()
    assert order_of(order_doc(order)) == order


def test_each_domain_event_goes_out_on_its_subject_with_the_order_as_saved():
    order = placed()
    order.pay("pay_1", NOW, payment=order_pb2.Payment(payment_id="pay_1"))
    order.ship("SF", "SF1", NOW_MS, auto_confirm_days=7, open_refunds=0)
    events = order.pull_events()
    out = messages.order_events(order, events, order.next_version)
    assert [e.subject for e in out] == ["siyu.order.order.placed", "siyu.order.order.paid",
                                        "siyu.order.order.shipped"]
    envelope = decode(out[1].data)
    paid = events_pb2.OrderPaid()
    assert envelope.payload.Unpack(paid)
    assert (paid.order.version, paid.order.state, paid.payment.payment_id) == (2, order_pb2.ORDER_STATE_SHIPPED,
                                                                               "pay_1")
    assert (envelope.aggregate_id, envelope.aggregate_version, envelope.merchant_id) == ("ord_1", 2, "mch_1")


def test_cancel_and_refund_events_carry_their_reason_and_refund():
    order = placed()
    order.pull_events()
    order.cancel(NOW)
    [cancelled] = messages.order_events(order, order.pull_events(), 2)
    payload = events_pb2.OrderCancelled()
    assert decode(cancelled.data).payload.Unpack(payload) and payload.reason == "MEMBER"
    paid = placed()
    paid.pay("pay_1", NOW)
    paid.pull_events()
    paid.apply_refund("rfd_1", AppliedRefund(300, 0, True, ()), [], NOW,
                      refund=Refund(id="rfd_1", merchant_id="mch_1", version=2, order_id="ord_1", member_id="mem_1",
                                    requested_by="MEMBER", idempotency_key="k", state=RefundState.APPROVED, lines=(),
                                    amount=300, currency="CNY", created_at=NOW))
    [refunded] = messages.order_events(paid, paid.pull_events(), 3)
    payload = events_pb2.OrderRefunded()
    assert decode(refunded.data).payload.Unpack(payload)
    assert (refunded.subject, payload.refund.refund_id, payload.order.refunded_amount.amount) == (
        "siyu.order.order.refunded", "rfd_1", 300)


def test_an_order_with_an_address_keeps_it_with_the_phone_sealed_and_shows_it_masked():
    sealer = Sealer.from_setting(new_key())
    home = replace(address(phone="13812348000"), phone_sealed=sealer.seal("13812348000", "mch_1"))
    order = replace(placed(), shipping_address=home, shipping_rule="广东省: first 1 unit ¥8 + ¥2 per 1 unit more")
    doc = order_doc(order)
    assert "13812348000" not in str(doc)
    assert doc["shipping_address"]["phone_masked"] == "138****8000"
    assert sealer.open(doc["shipping_address"]["phone_sealed"], "mch_1") == "13812348000"
    back = order_of(doc)
    assert (back.shipping_address, back.shipping_rule) == (home, order.shipping_rule)
    shown = messages.order_of(order)
    assert (shown.shipping_address.phone, shown.shipping_address.city_name, shown.shipping_rule) == (
        "138****8000", "深圳市", order.shipping_rule)
    assert "13812348000" not in str(shown)
    # An order placed without an address is stored as it always was.
    assert "shipping_address" not in order_doc(placed()) and "shipping_rule" not in order_doc(placed())


def test_the_activity_an_order_was_bought_through_is_stored_with_its_ties_and_shown_with_its_kind():
    group = OrderActivity(kind="GROUP_BUY", activity_id="gba_1", group_id="grp_1", group_leader=True)
    order = replace(placed(), activity=group)
    doc = order_doc(order)
    assert doc["activity"] == {"kind": "GROUP_BUY", "activity_id": "gba_1", "group_id": "grp_1", "group_leader": True}
    assert order_of(doc).activity == group and order_of(order_doc(placed())).activity is None
    msg = messages.order(doc)
    assert msg.kind == order_pb2.ORDER_KIND_GROUP_BUY and msg.activity.group_id == "grp_1"
    assert msg.activity.group_leader and not msg.activity.bargain_id
