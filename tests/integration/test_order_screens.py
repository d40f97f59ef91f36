"""The order service's everyday reads for the screens, over its real gRPC port with the
real catalog, embedded MongoDB and NATS: the order list by tab and the counts of every
tab, staff cancelling an unpaid order (cancel_reason STAFF), and an idempotency key
reused for another request."""
from __future__ import annotations

import asyncio

import grpc
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2 as OS, order_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import field_violations, new_merchant_id, reason, rpc_error, stub_fixture, wait_until
from tests.support.fulfilment import pay, ship, staff
from tests.support.order import events_found, make_skus, member, place, stock

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)

TAB = OS.OrderTab


def tab(order, md, which, page_size: int = 100, page_token: str = "") -> OS.ListMyOrdersResponse:
    return order.ListMyOrders(OS.ListMyOrdersRequest(tab=which, page_size=page_size, page_token=page_token),
                              metadata=md)


def counts(order, md) -> dict[str, int]:
    return {TAB.Name(c.tab): c.count for c in order.CountMyOrders(OS.CountMyOrdersRequest(), metadata=md).counts}


def test_tabs_list_and_count_the_members_orders_by_state_and_refunds(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 50))
    member_id = new_id("mem")
    md = member(mid, member_id)
    unpaid = [place(order, md, new_id("k"), (sku, 1)) for _ in range(2)]
    to_ship = pay(order, md, place(order, md, new_id("k"), (sku, 1)))
    shipped = pay(order, md, place(order, md, new_id("k"), (sku, 1)))
    ship(order, mid, shipped.order_id)
    refunded = pay(order, md, place(order, md, new_id("k"), (sku, 2)))
    order.RequestRefund(OS.RequestRefundRequest(order_id=refunded.order_id, idempotency_key="r",
                                                lines=[OS.RefundLineInput(line_id=refunded.lines[0].line_id,
                                                                          quantity=1)]), metadata=md)
    place(order, member(mid), new_id("k"), (sku, 1))  # another member's

    assert [o.order_id for o in tab(order, md, TAB.ORDER_TAB_UNPAID).orders] == \
        sorted((o.order_id for o in unpaid), reverse=True)
    assert [o.order_id for o in tab(order, md, TAB.ORDER_TAB_TO_SHIP).orders] == \
        sorted([to_ship.order_id, refunded.order_id], reverse=True)
    assert [o.order_id for o in tab(order, md, TAB.ORDER_TAB_SHIPPED).orders] == [shipped.order_id]
    assert tab(order, md, TAB.ORDER_TAB_COMPLETED).orders == []
    assert [o.order_id for o in tab(order, md, TAB.ORDER_TAB_REFUNDS).orders] == [refunded.order_id]
    assert len(tab(order, md, TAB.ORDER_TAB_UNSPECIFIED).orders) == 5
    first = tab(order, md, TAB.ORDER_TAB_UNPAID, page_size=1)
    second = tab(order, md, TAB.ORDER_TAB_UNPAID, page_size=1, page_token=first.next_page_token)
    assert [o.order_id for o in [*first.orders, *second.orders]] == sorted((o.order_id for o in unpaid), reverse=True)
    assert second.next_page_token == ""
    assert counts(order, md) == {"ORDER_TAB_UNPAID": 2, "ORDER_TAB_TO_SHIP": 2, "ORDER_TAB_SHIPPED": 1,
                                 "ORDER_TAB_COMPLETED": 0, "ORDER_TAB_REFUNDS": 1}
    # Another merchant's member with the same id sees nothing.
    assert set(counts(order, member(new_merchant_id(), member_id)).values()) == {0}
    assert tab(order, member(new_merchant_id(), member_id), TAB.ORDER_TAB_UNPAID).orders == []


def test_bad_tab_input_is_invalid_argument(order):
    md = member(new_merchant_id())
    for request, field in ((OS.ListMyOrdersRequest(tab=99), "tab"),
                           (OS.ListMyOrdersRequest(tab=TAB.ORDER_TAB_UNPAID, page_size=101), "page_size")):
        error = rpc_error(order.ListMyOrders, request, metadata=md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(error)
    error = rpc_error(order.CountMyOrders, OS.CountMyOrdersRequest(), metadata=staff(new_merchant_id()))
    assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def test_staff_cancel_an_unpaid_order_releases_its_stock_with_reason_staff(stack, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (1000, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 2))
    cancel = OS.CancelOrderAsStaffRequest(order_id=placed.order_id)
    for who in (staff(mid, "FINANCE"), staff(new_merchant_id(), "OPERATOR"), md):
        error = rpc_error(order.CancelOrderAsStaff, cancel, metadata=who)
        assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND,
                                grpc.StatusCode.UNAUTHENTICATED), who
    error = rpc_error(order.CancelOrderAsStaff, OS.CancelOrderAsStaffRequest(order_id="ord_x"),
                      metadata=staff(mid, "OPERATOR"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "order_id" in field_violations(error)
    assert order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order.state == \
        OS.ORDER_STATE_PENDING_PAYMENT

    cancelled = order.CancelOrderAsStaff(cancel, metadata=staff(mid, "OPERATOR")).order
    assert (cancelled.state, cancelled.cancel_reason) == (OS.ORDER_STATE_CANCELLED, "STAFF")
    assert order.CancelOrderAsStaff(cancel, metadata=staff(mid, "OPERATOR")).order == cancelled
    wait_until(lambda: stock(catalog, mid, sku).available == 5, message="stock released")
    (event,) = asyncio.run(events_found(stack, "siyu.order.order.cancelled", placed.order_id))
    payload = events_pb2.OrderCancelled()
    assert event.payload.Unpack(payload) and payload.reason == "STAFF"

    paid = pay(order, md, place(order, md, "k2", (sku, 1)))
    error = rpc_error(order.CancelOrderAsStaff, OS.CancelOrderAsStaffRequest(order_id=paid.order_id),
                      metadata=staff(mid, "OPERATOR"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_CANCELLABLE"


def test_a_key_reused_for_another_order_or_refund_is_refused_and_changes_nothing(order, catalog):
    mid = new_merchant_id()
    a, b = make_skus(catalog, mid, (1000, 10), (500, 10))
    md = member(mid)
    first = place(order, md, "k-1", (a, 2))
    assert place(order, md, "k-1", (a, 2)) == first
    for lines, extra in ((((a, 3),), {}), (((b, 2),), {}), (((a, 2),), {"remark": "gift"})):
        error = rpc_error(place, order, md, "k-1", *lines, **extra)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS and reason(error) == "IDEMPOTENCY_KEY_REUSED"
    assert (stock(catalog, mid, a).reserved, stock(catalog, mid, b).reserved) == (2, 0)

    paid = pay(order, md, first)
    line = paid.lines[0].line_id
    request = OS.RequestRefundRequest(order_id=paid.order_id, idempotency_key="r",
                                      lines=[OS.RefundLineInput(line_id=line, quantity=1)])
    refund = order.RequestRefund(request, metadata=md).refund
    assert order.RequestRefund(request, metadata=md).refund == refund
    error = rpc_error(order.RequestRefund, OS.RequestRefundRequest(
        order_id=paid.order_id, idempotency_key="r", lines=[OS.RefundLineInput(line_id=line, quantity=2)]),
        metadata=md)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and reason(error) == "IDEMPOTENCY_KEY_REUSED"
    refunds = order.ListOrderRefunds(OS.ListOrderRefundsRequest(order_id=paid.order_id), metadata=md).refunds
    assert [r.refund_id for r in refunds] == [refund.refund_id]
