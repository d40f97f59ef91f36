"""The order aggregate: every move checks its rule, changes the order and records its event."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.errors import FailedPrecondition

from services.order.domain import orders as domain
from services.order.domain.orders import AppliedRefund, Order, OrderLine, OrderState, RefundedUnits

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


def line(line_id: str = "oln_1", quantity: int = 2, paid: int = 1000) -> OrderLine:
    return OrderLine(line_id=line_id, sku_id="sku_1", product_id="prd_1", title="Tea", quantity=quantity,
                     unit_price=paid // quantity, line_total=paid, line_amount=paid, paid_amount=paid)


def placed(**changes) -> Order:
    order = Order.place(order_id="ord_1", merchant_id="mch_1", member_id="mem_1", idempotency_key="k",
                        lines=[line()], currency="CNY", total=1000, payable=1000, reservation_id="rsv_1",
                        created_at=NOW, expires_at=NOW + timedelta(minutes=30), attribution={"channel": "H5"})
    order.pull_events()
    for name, value in changes.items():
        setattr(order, name, value)
    return order


def kinds(order: Order) -> list[str]:
    return [type(e).__name__ for e in order.pull_events()]


def test_place_records_placed():
    order = Order.place(order_id="ord_1", merchant_id="mch_1", member_id="mem_1", idempotency_key="k",
                        lines=[line()], currency="CNY", total=1000, payable=1000, reservation_id="rsv_1",
                        created_at=NOW, expires_at=NOW + timedelta(minutes=30))
    assert order.state is OrderState.PENDING_PAYMENT and order.version == 1
    assert kinds(order) == ["OrderPlaced"]
    assert order.pull_events() == []


def test_pay_while_payable():
    order = placed()
    order.pay("pay_1", NOW, payment={"_id": "pay_1"})
    assert (order.state, order.payment_id, order.paid_at) == (OrderState.PAID, "pay_1", NOW)
    [event] = order.pull_events()
    assert isinstance(event, domain.OrderPaid) and event.payment_id == "pay_1"


@pytest.mark.parametrize("changes,at", [({}, NOW + timedelta(minutes=30)), ({"state": OrderState.CANCELLED}, NOW),
                                        ({"state": OrderState.PAID}, NOW)])
def test_pay_refused(changes, at):
    order = placed(**changes)
    with pytest.raises(FailedPrecondition) as refused:
        order.pay("pay_1", at)
    assert refused.value.reason == "ORDER_NOT_PAYABLE"
    assert order.pull_events() == []


def test_member_cancel_then_repeat():
    order = placed()
    assert order.cancel(NOW) is True
    assert (order.state, order.cancel_reason, order.cancelled_at) == (OrderState.CANCELLED, "MEMBER", NOW)
    assert order.cancel(NOW) is False
    [event] = order.pull_events()
    assert event == domain.OrderCancelled(at=NOW, reason="MEMBER")


@pytest.mark.parametrize("state", [OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED])
def test_member_cancel_too_late(state):
    with pytest.raises(FailedPrecondition) as refused:
        placed(state=state).cancel(NOW)
    assert refused.value.reason == "ORDER_NOT_CANCELLABLE"


def test_expire_only_when_due_and_unpaid():
    order = placed()
    assert order.expire(NOW) is False
    later = NOW + timedelta(minutes=30)
    assert order.expire(later) is True and order.cancel_reason == "TIMEOUT"
    assert placed(state=OrderState.PAID).expire(later) is False


def test_cancel_unfulfillable():
    order = placed(state=OrderState.PAID)
    assert order.cancel_unfulfillable(NOW) is True
    assert (order.state, order.cancel_reason, order.refunded_amount) == (OrderState.CANCELLED, "STOCK_UNAVAILABLE",
                                                                          1000)
    assert order.cancel_unfulfillable(NOW) is False
    assert kinds(order) == ["OrderCancelled"]
    with pytest.raises(FailedPrecondition) as refused:
        placed(state=OrderState.SHIPPED).cancel_unfulfillable(NOW)
    assert refused.value.reason == "ORDER_NOT_REFUNDABLE"


def test_ship_deliver_complete():
    order = placed(state=OrderState.PAID)
    assert order.ship("SF", "SF1", NOW_MS, auto_confirm_days=10, open_refunds=0) is True
    assert order.shipment == domain.Shipment("SF", "SF1", NOW_MS)
    assert order.auto_confirm_ms == NOW_MS + 10 * domain.DAY_MS
    assert order.ship("SF", "SF1", NOW_MS, auto_confirm_days=10, open_refunds=0) is False
    assert order.is_due_for_auto_confirm(order.auto_confirm_ms)
    assert order.deliver(NOW) is True and order.deliver(NOW) is False
    assert order.complete(NOW, domain.CONFIRMED_BY_AUTO) is True and order.complete(NOW) is False
    assert order.confirmed_by == "AUTO"
    assert kinds(order) == ["OrderShipped", "OrderDelivered", "OrderCompleted"]


@pytest.mark.parametrize("state,method,reason", [
    (OrderState.PENDING_PAYMENT, "ship", "ORDER_NOT_SHIPPABLE"),
    (OrderState.PAID, "deliver", "ORDER_NOT_SHIPPED"), (OrderState.PAID, "complete", "ORDER_NOT_SHIPPED"),
    (OrderState.CANCELLED, "complete", "ORDER_NOT_SHIPPED")])
def test_fulfilment_refused(state, method, reason):
    order = placed(state=state)
    with pytest.raises(FailedPrecondition) as refused:
        if method == "ship":
            order.ship("SF", "SF1", NOW_MS, auto_confirm_days=10, open_refunds=0)
        else:
            getattr(order, method)(NOW)
    assert refused.value.reason == reason


def test_ship_refused_while_a_refund_is_open_or_nothing_left():
    with pytest.raises(FailedPrecondition) as refused:
        placed(state=OrderState.PAID).ship("SF", "SF1", NOW_MS, auto_confirm_days=10, open_refunds=1)
    assert refused.value.reason == "REFUND_OPEN"
    refunded = placed(state=OrderState.PAID, lines=(line(),))
    refunded.lines = (domain.replace(line(), refunded_quantity=2, refunded_amount=1000),)
    with pytest.raises(FailedPrecondition) as refused:
        refunded.ship("SF", "SF1", NOW_MS, auto_confirm_days=10, open_refunds=0)
    assert refused.value.reason == "NOTHING_TO_SHIP"


def test_apply_refund_once():
    order = placed(state=OrderState.PAID, lines=(line("oln_1"), line("oln_2")))
    applied = AppliedRefund(amount=600, shipping_fee_refund=100, restock=True,
                            lines=(RefundedUnits("oln_1", "sku_1", 1, 500),))
    after = [domain.replace(line("oln_1"), refunded_quantity=1, refunded_amount=500)]
    assert order.apply_refund("rfd_1", applied, after, NOW, refund={"_id": "rfd_1"}) is True
    assert [(l.refunded_quantity, l.refunded_amount) for l in order.lines] == [(1, 500), (0, 0)]
    assert order.refunded_amount == 600 and order.applied_refund("rfd_1") == applied
    assert order.shipping_fee_refunded == 100
    assert order.apply_refund("rfd_1", applied, after, NOW) is False
    [event] = order.pull_events()
    assert isinstance(event, domain.OrderRefunded) and event.refund_id == "rfd_1"


def test_next_version_and_machine():
    order = placed(version=4)
    assert order.next_version == 5
    assert domain.decide(OrderState.PAID, OrderState.PAID) is domain.Move.REPEAT
    assert domain.MACHINE.is_final(OrderState.COMPLETED)
