"""The order service over its real gRPC port, with the real catalog, embedded MongoDB
and NATS: placing, reading, cancelling and paying orders."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2, content_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2, order_pb2_grpc

from siyu_kit.config import load
from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, reason, wait_until, rpc_error, stub_fixture
from tests.support.order import events_found, make_skus, member, my_orders, place, staff, stock

OS = order_pb2
PENDING, PAID, CANCELLED = OS.ORDER_STATE_PENDING_PAYMENT, OS.ORDER_STATE_PAID, OS.ORDER_STATE_CANCELLED


order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
content = stub_fixture("content", content_pb2_grpc.ContentServiceStub)



def events_of(stack, subject: str, aggregate_id: str, want: int = 1) -> list:
    return asyncio.run(events_found(stack, subject, aggregate_id, want))


def test_place_reserves_stock_and_replay_returns_the_first_order(order, catalog, content):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (1999, 10), (500, 3))
    md = member(mid)
    # An attributed persona must be the merchant's own.
    persona = content.UpsertPersona(content_pb2.UpsertPersonaRequest(code="guide", name="导购"), metadata=metadata(
        mid, staff_id=new_id("stf"), roles=("OPERATOR",))).persona.persona_id
    first = place(order, md, "k-1", (a, 2), (b, 1),
                  attribution=common_pb2.Attribution(persona_id=persona, share_code="s1"))
    assert first.state == PENDING and first.version == 1
    assert first.order_id.startswith("ord_") and first.reservation_id.startswith("rsv_")
    assert first.total.amount == 4498 and first.payable.amount == 4498 and first.payable.currency == "CNY"
    assert [(l.sku_id, l.quantity, l.unit_price.amount, l.paid_amount.amount) for l in first.lines] == \
        [(a, 2, 1999, 3998), (b, 1, 500, 500)]
    assert all(l.line_id.startswith("oln_") for l in first.lines)
    assert first.attribution.channel == common_pb2.CHANNEL_H5 and first.attribution.persona_id == persona
    assert first.expires_at.seconds - first.created_at.seconds == 30 * 60
    assert (stock(catalog, mid, a).reserved, stock(catalog, mid, a).available) == (2, 8)
    assert stock(catalog, mid, b).reserved == 1

    replay = place(order, md, "k-1", (a, 2), (b, 1),
                   attribution=common_pb2.Attribution(persona_id=persona, share_code="s1"))
    assert replay == first
    assert stock(catalog, mid, a).reserved == 2
    assert [o.order_id for o in my_orders(order, md)] == [first.order_id]
    got = order.GetOrder(OS.GetOrderRequest(order_id=first.order_id), metadata=md).order
    assert got == first


def test_bad_place_input_is_rejected_and_changes_nothing(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 5))
    md = member(mid)
    cases = [
        (dict(idempotency_key="", lines=[OS.OrderLineInput(sku_id=sku, quantity=1)]), {"idempotency_key"}),
        (dict(idempotency_key="k", lines=[]), {"lines"}),
        (dict(idempotency_key="k", lines=[OS.OrderLineInput(sku_id=sku, quantity=1),
                                          OS.OrderLineInput(sku_id=sku, quantity=1000),
                                          OS.OrderLineInput(sku_id="prd_1", quantity=0)]),
         {"lines[1].quantity", "lines[2].sku_id", "lines[2].quantity"}),
        # One line per SKU is judged once every line is well-formed.
        (dict(idempotency_key="k", lines=[OS.OrderLineInput(sku_id=sku, quantity=1),
                                          OS.OrderLineInput(sku_id=sku, quantity=2)]), {"lines[1].sku_id"}),
        (dict(idempotency_key="k", lines=[OS.OrderLineInput(sku_id=sku, quantity=1)],
              attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_LIVE, persona_id="cnt_x",
                                                 content_id=new_id("per"), live_session_id="liv_bad")),
         {"attribution.persona_id", "attribution.content_id", "attribution.live_session_id"}),
        (dict(idempotency_key="k", lines=[OS.OrderLineInput(sku_id=sku, quantity=1)],
              attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_LIVE)), {"attribution.channel"}),
    ]
    for fields, expected in cases:
        error = rpc_error(order.PlaceOrder, OS.PlaceOrderRequest(**fields), metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(error)) == expected
    assert my_orders(order, md) == []
    assert stock(catalog, mid, sku).reserved == 0


def test_unknown_or_unlisted_sku_is_not_found_and_reserves_nothing(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 5))
    (draft,) = make_skus(catalog, mid, (100, 5), status=catalog_pb2.PRODUCT_STATUS_DRAFT)
    md = member(mid)
    error = rpc_error(place, order, md, "k", (sku, 1), (new_id("sku"), 1))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "lines[1].sku_id" in error.details() and set(field_violations(error)) == {"lines[1].sku_id"}
    error = rpc_error(place, order, md, "k", (draft, 1))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "lines[0].sku_id" in error.details()
    assert stock(catalog, mid, sku).reserved == 0 and stock(catalog, mid, draft).reserved == 0
    assert my_orders(order, md) == []


def test_out_of_stock_reserves_nothing(order, catalog):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (100, 5), (100, 1))
    md = member(mid)
    error = rpc_error(place, order, md, "k", (a, 2), (b, 2))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "OUT_OF_STOCK"
    assert "lines[1].quantity" in field_violations(error)
    wait_until(lambda: stock(catalog, mid, a).reserved == 0, message="no stock held for line 0")
    assert stock(catalog, mid, b).reserved == 0
    assert my_orders(order, md) == []


def test_thirty_buyers_for_the_last_five_units(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (990, 5))

    def buy(i: int):
        try:
            return place(order, member(mid), f"k{i}", (sku, 1)).order_id
        except grpc.RpcError as error:
            return (error.code(), reason(error))

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(buy, range(30)))
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if not isinstance(r, str)]
    assert len(won) == 5 and len(set(won)) == 5
    assert set(lost) == {(grpc.StatusCode.FAILED_PRECONDITION, "OUT_OF_STOCK")}
    s = stock(catalog, mid, sku)
    assert (s.on_hand, s.reserved, s.available) == (5, 5, 0)


def test_pay_then_callback_marks_paid_once_and_publishes_order_paid(stack, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (2500, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 2))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p1"), metadata=md).payment
    assert payment.payment_id.startswith("pay_") and payment.state == OS.PAYMENT_STATE_PENDING
    assert payment.amount.amount == 5000 and payment.method == OS.PAYMENT_METHOD_SANDBOX
    again = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p1"), metadata=md).payment
    assert again == payment

    done = order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id),
                                        metadata=md)
    assert done.payment.state == OS.PAYMENT_STATE_SUCCEEDED
    assert done.callback.provider_txn_id.startswith("sbx_txn_") and done.callback.result == "SUCCESS"
    assert done.payment.provider_txn_id == done.callback.provider_txn_id
    paid = order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order
    assert paid.state == PAID and paid.payment_id == payment.payment_id and paid.version == 2
    assert paid.paid_at.seconds > 0

    # The provider repeats its notification: nothing changes.
    repeat = order.HandleSandboxPaymentCallback(done.callback)
    assert repeat.applied is False and repeat.payment == done.payment
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order == paid

    found = events_of(stack, "siyu.order.order.paid", placed.order_id)
    assert len(found) == 1
    event = events_pb2.OrderPaid()
    assert found[0].payload.Unpack(event)
    assert event.order.state == PAID and event.payment.payment_id == payment.payment_id
    assert found[0].merchant_id == mid and found[0].channel == common_pb2.CHANNEL_H5
    # The catalog commits the reservation on order.paid.
    wait_until(lambda: stock(catalog, mid, sku).on_hand == 3, message="stock committed")

    error = rpc_error(order.CancelOrder, OS.CancelOrderRequest(order_id=placed.order_id), metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = rpc_error(order.PayOrder, OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p2"),
                      metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_PAYABLE"


def test_bad_or_mismatched_callbacks_change_nothing(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (700, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    base = dict(payment_id=payment.payment_id, provider_txn_id="sbx_txn_x", amount=700, currency="CNY",
                result="SUCCESS", timestamp=int(time.time()))
    from services.order.adapters.sandbox_payments import sign
    from services.order.domain.payments import Notification
    secret = load("order").sandbox_payment_secret

    for signature in ("", "0" * 64, sign("wrong-secret", Notification(**base))):
        error = rpc_error(order.HandleSandboxPaymentCallback,
                          OS.HandleSandboxPaymentCallbackRequest(**base, signature=signature))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and reason(error) == "BAD_SIGNATURE"
    tampered = dict(base, amount=1)
    error = rpc_error(order.HandleSandboxPaymentCallback,
                      OS.HandleSandboxPaymentCallbackRequest(**tampered, signature=sign(secret, Notification(**base))))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    for change, field in (({"amount": 699}, "amount"), ({"currency": "USD"}, "currency")):
        fields = dict(base, **change)
        error = rpc_error(order.HandleSandboxPaymentCallback, OS.HandleSandboxPaymentCallbackRequest(
            **fields, signature=sign(secret, Notification(**fields))))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(error)

    fail = dict(base, result="FAIL", provider_txn_id="sbx_txn_fail")
    request = OS.HandleSandboxPaymentCallbackRequest(**fail, signature=sign(secret, Notification(**fail)))
    first = order.HandleSandboxPaymentCallback(request)
    assert first.applied is True and first.payment.state == OS.PAYMENT_STATE_PENDING
    assert order.HandleSandboxPaymentCallback(request).applied is False

    current = order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order
    assert current == placed
    # Still payable after a failed attempt.
    done = order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id),
                                        metadata=md)
    assert done.payment.state == OS.PAYMENT_STATE_SUCCEEDED


def test_callback_for_a_cancelled_order_refunds_the_payment(stack, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (300, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    order.CancelOrder(OS.CancelOrderRequest(order_id=placed.order_id), metadata=md)
    done = order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id),
                                        metadata=md)
    assert done.payment.state == OS.PAYMENT_STATE_REFUNDED
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order.state == CANCELLED
    assert order.HandleSandboxPaymentCallback(done.callback).applied is False
    (refunded,) = events_of(stack, "siyu.order.payment.refunded", payment.payment_id)
    event = events_pb2.PaymentRefunded()
    assert refunded.payload.Unpack(event) and event.reason == "ORDER_CANCELLED"
    assert event.payment.state == OS.PAYMENT_STATE_REFUNDED


def test_second_successful_payment_is_refunded(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (300, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    p1 = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="a"), metadata=md).payment
    p2 = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="b"), metadata=md).payment
    assert p1.payment_id != p2.payment_id
    complete = lambda p: order.CompleteSandboxPayment(  # noqa: E731
        OS.CompleteSandboxPaymentRequest(payment_id=p.payment_id), metadata=md).payment
    assert complete(p1).state == OS.PAYMENT_STATE_SUCCEEDED
    assert complete(p2).state == OS.PAYMENT_STATE_REFUNDED
    got = order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order
    assert got.state == PAID and got.payment_id == p1.payment_id


def test_cancel_is_idempotent_and_the_catalog_releases_the_stock(stack, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 3))
    assert stock(catalog, mid, sku).reserved == 3
    cancelled = order.CancelOrder(OS.CancelOrderRequest(order_id=placed.order_id), metadata=md).order
    assert cancelled.state == CANCELLED and cancelled.version == 2 and cancelled.cancelled_at.seconds > 0
    assert order.CancelOrder(OS.CancelOrderRequest(order_id=placed.order_id), metadata=md).order == cancelled
    wait_until(lambda: stock(catalog, mid, sku).available == 5, message="stock released")
    (event,) = events_of(stack, "siyu.order.order.cancelled", placed.order_id)
    payload = events_pb2.OrderCancelled()
    assert event.payload.Unpack(payload) and payload.reason == "MEMBER"
    error = rpc_error(order.PayOrder, OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"),
                      metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_PAYABLE"


def test_list_my_orders_newest_first_with_a_cursor(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 50))
    md = member(mid)
    ids = [place(order, md, f"k{i}", (sku, 1)).order_id for i in range(3)]
    first = order.ListMyOrders(OS.ListMyOrdersRequest(page_size=2), metadata=md)
    assert [o.order_id for o in first.orders] == ids[::-1][:2] and first.next_page_token
    second = order.ListMyOrders(OS.ListMyOrdersRequest(page_size=2, page_token=first.next_page_token), metadata=md)
    assert [o.order_id for o in second.orders] == [ids[0]] and second.next_page_token == ""
    assert len(order.ListMyOrders(OS.ListMyOrdersRequest(), metadata=md).orders) == 3


def test_bad_input_for_every_rpc_is_invalid_argument(order):
    md = member(new_merchant_id())
    calls = [
        (order.GetOrder, OS.GetOrderRequest(order_id="nope"), "order_id"),
        (order.CancelOrder, OS.CancelOrderRequest(order_id=""), "order_id"),
        (order.ListMyOrders, OS.ListMyOrdersRequest(page_size=101), "page_size"),
        (order.ListMyOrders, OS.ListMyOrdersRequest(page_token="garbage"), "page_token"),
        (order.PayOrder, OS.PayOrderRequest(order_id="ord_1", idempotency_key="k"), "order_id"),
        (order.PayOrder, OS.PayOrderRequest(order_id=new_id("ord"), idempotency_key=""), "idempotency_key"),
        (order.PayOrder, OS.PayOrderRequest(order_id=new_id("ord"), idempotency_key="k", method=7), "method"),
        (order.CompleteSandboxPayment, OS.CompleteSandboxPaymentRequest(payment_id="ord_1"), "payment_id"),
    ]
    for rpc, request, field in calls:
        error = rpc_error(rpc, request, metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc
        assert field in field_violations(error)


def test_other_members_and_merchants_see_nothing(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 5))
    owner = new_id("mem")
    md = member(mid, owner)
    placed = place(order, md, "k", (sku, 1))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    strangers = [member(mid), member(new_merchant_id(), owner)]
    for other in strangers:
        for rpc, request in [
            (order.GetOrder, OS.GetOrderRequest(order_id=placed.order_id)),
            (order.CancelOrder, OS.CancelOrderRequest(order_id=placed.order_id)),
            (order.PayOrder, OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="x")),
            (order.CompleteSandboxPayment, OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id)),
        ]:
            assert rpc_error(rpc, request, metadata=other).code() == grpc.StatusCode.NOT_FOUND
        assert my_orders(order, other) == []
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order == placed
    assert stock(catalog, mid, sku).reserved == 1
    # Another member's same idempotency key is their own order, not a replay of this one.
    assert place(order, strangers[0], "k", (sku, 1)).order_id != placed.order_id
    # Merchant B cannot buy merchant A's SKU.
    error = rpc_error(place, order, strangers[1], "k2", (sku, 1))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert stock(catalog, mid, sku).reserved == 2


def test_callers_without_a_member_token_are_turned_away(order):
    mid = new_merchant_id()
    for md in (metadata(mid, channel="H5"), staff(mid), ()):
        error = rpc_error(order.ListMyOrders, OS.ListMyOrdersRequest(), metadata=md)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
