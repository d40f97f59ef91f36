"""Refunds and the payment ledger over the order service's real gRPC port, with the real
catalog (stock comes back for units never shipped), the embedded MongoDB and NATS."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2 as OS, order_pb2_grpc

from siyu_kit import clients, config, db
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, utcnow
from tests.support import (database_fixture, field_violations, new_merchant_id, reason, rpc_error, stub_fixture,
                           wait_until)
from tests.support.fulfilment import as_staff, paid_order, ship, staff, success
from tests.support.order import events_found, make_skus, member, place, stock

from services.order.adapters.catalog import CatalogClient
from services.order.adapters.documents import OrderSettingsDoc
from services.order.adapters.ledger import Ledger
from services.order.adapters.payments import Payments
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import MongoOrders, MongoSettings, Settings
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.application.orders import OrderUseCases
from services.order.application.payments import PaymentUseCases
from services.order.application.refunds import RefundUseCases

order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)
database = database_fixture("order")

REFUNDED, REQUESTED, REJECTED = OS.REFUND_STATE_REFUNDED, OS.REFUND_STATE_REQUESTED, OS.REFUND_STATE_REJECTED


@pytest.fixture(scope="module")
def storage(stack):
    settings = config.load("order")
    db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4)
    return settings


def line(line_id: str, quantity: int, amount: int | None = None) -> OS.RefundLineInput:
    return OS.RefundLineInput(line_id=line_id, quantity=quantity, **({} if amount is None else {"amount": amount}))


def request(order, md, order_id: str, *lines: OS.RefundLineInput, key: str = "") -> OS.Refund:
    return order.RequestRefund(OS.RequestRefundRequest(order_id=order_id, idempotency_key=key or new_id("k"),
                                                       lines=lines, reason="尺码不合适"), metadata=md).refund


def create(order, mid: str, order_id: str, *lines: OS.RefundLineInput, key: str = "") -> OS.Refund:
    return order.CreateRefund(OS.CreateRefundRequest(order_id=order_id, idempotency_key=key or new_id("k"),
                                                     lines=lines), metadata=staff(mid)).refund


def approve(order, mid: str, refund_id: str) -> OS.Refund:
    return order.ApproveRefund(OS.ApproveRefundRequest(refund_id=refund_id), metadata=staff(mid)).refund


def ledger(order, mid: str, order_id: str) -> OS.GetPaymentLedgerResponse:
    return order.GetPaymentLedger(OS.GetPaymentLedgerRequest(order_id=order_id), metadata=staff(mid, "FINANCE"))


def committed(catalog, mid: str, sku: str, on_hand: int) -> None:
    """The catalog committed the paid order's reservation (it does so on order.paid)."""
    wait_until(lambda: (stock(catalog, mid, sku).on_hand, stock(catalog, mid, sku).reserved) == (on_hand, 0),
               message="reservation committed")


def audit(catalog, mid: str, sku: str) -> catalog_pb2.AuditStockResponse:
    return catalog.AuditStock(catalog_pb2.AuditStockRequest(sku_id=sku), metadata=staff(mid))


def test_refunds_before_shipping_return_stock_and_the_last_one_the_shipping_fee(stack, storage, order, catalog):
    mid = new_merchant_id()
    OrderSettingsDoc(id=new_id("ost"), merchant_id=mid, shipping_fee=800).save()
    paid, (a, b), md = paid_order(order, catalog, mid, (1000, 10, 3), (501, 5, 1))
    line_a, line_b = paid.lines
    fee = paid.shipping_fee.amount
    assert paid.payable.amount == 3000 + 501 + fee
    committed(catalog, mid, a, 7)
    committed(catalog, mid, b, 4)
    assert ledger(order, mid, paid.order_id).balanced

    asked = request(order, md, paid.order_id, line(line_a.line_id, 1), key="r1")
    assert (asked.state, asked.amount.amount, asked.requested_by) == (REQUESTED, 1000, "MEMBER")
    assert request(order, md, paid.order_id, line(line_a.line_id, 1), key="r1") == asked  # a replay
    error = rpc_error(ship, order, mid, paid.order_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "REFUND_OPEN"

    done = approve(order, mid, asked.refund_id)
    assert done.state == REFUNDED and done.refunded_at.seconds > 0
    assert [(l.line_id, l.quantity, l.amount.amount, l.restocked) for l in done.lines] == \
        [(line_a.line_id, 1, 1000, True)]
    assert approve(order, mid, asked.refund_id) == done  # a repeat
    assert (stock(catalog, mid, a).on_hand, stock(catalog, mid, a).available) == (8, 8)
    assert audit(catalog, mid, a).consistent
    after_one = as_staff(order, mid, paid.order_id).order
    assert after_one.refunded_amount.amount == 1000
    assert [(l.refunded_quantity, l.refunded_amount.amount) for l in after_one.lines] == [(1, 1000), (0, 0)]
    assert ledger(order, mid, paid.order_id).balanced

    rest = create(order, mid, paid.order_id, line(line_a.line_id, 2), line(line_b.line_id, 1), key="s1")
    assert rest.state == REFUNDED and rest.requested_by == "STAFF"
    assert (rest.amount.amount, rest.shipping_fee_refund.amount) == (2000 + 501 + fee, fee)
    assert create(order, mid, paid.order_id, line(line_a.line_id, 2), line(line_b.line_id, 1), key="s1") == rest  # a replay
    assert stock(catalog, mid, a).on_hand == 10 and stock(catalog, mid, b).on_hand == 5
    assert audit(catalog, mid, a).consistent and audit(catalog, mid, b).consistent
    final = as_staff(order, mid, paid.order_id)
    assert final.order.refunded_amount.amount == final.order.payable.amount
    assert [r.refund_id for r in final.refunds] == [asked.refund_id, rest.refund_id]
    view = ledger(order, mid, paid.order_id)
    assert view.balanced
    assert [(e.kind, e.amount.amount) for e in view.entries] == \
        [("ORDER_PAYMENT", paid.payable.amount), ("REFUND", 1000), ("REFUND", 2501 + fee)]
    assert {b.account: b.balance.amount for b in view.balances}[f"ORDER:{paid.order_id}"] == 0
    error = rpc_error(ship, order, mid, paid.order_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "NOTHING_TO_SHIP"
    # Nothing is left to refund.
    error = rpc_error(request, order, md, paid.order_id, line(line_b.line_id, 1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"lines[0].quantity"}

    (event, _) = asyncio.run(events_found(stack, "siyu.order.order.refunded", paid.order_id, want=2))[:2]
    payload = events_pb2.OrderRefunded()
    assert event.payload.Unpack(payload) and payload.refund.refund_id == asked.refund_id
    assert [(l.line_id, l.sku_id, l.quantity, l.amount.amount) for l in payload.refund.lines] == \
        [(line_a.line_id, a, 1, 1000)]
    assert payload.order.refunded_amount.amount == 1000 and payload.order.lines[0].refunded_quantity == 1


def test_refunds_after_shipping_keep_the_stock_and_never_exceed_what_was_paid(order, catalog):
    mid = new_merchant_id()
    paid, (sku,), md = paid_order(order, catalog, mid, (333, 10, 3))
    (paid_line,) = paid.lines
    committed(catalog, mid, sku, 7)
    ship(order, mid, paid.order_id)
    partial = approve(order, mid, request(order, md, paid.order_id, line(paid_line.line_id, 1, 300)).refund_id)
    assert (partial.state, partial.amount.amount, partial.lines[0].restocked) == (REFUNDED, 300, False)
    assert ledger(order, mid, paid.order_id).balanced
    # More units or more money than is left: refused, nothing changes.
    before = as_staff(order, mid, paid.order_id).order
    for lines, fields in (((line(paid_line.line_id, 3),), {"lines[0].quantity"}),
                          ((line(paid_line.line_id, 1, 700),), {"lines[0].amount"}),
                          ((line(new_id("oln"), 1),), {"lines[0].line_id"})):
        error = rpc_error(create, order, mid, paid.order_id, *lines)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == fields
    assert as_staff(order, mid, paid.order_id).order == before
    rest = create(order, mid, paid.order_id, line(paid_line.line_id, 2))
    assert rest.amount.amount == 999 - 300 and rest.shipping_fee_refund.amount == 0
    assert (stock(catalog, mid, sku).on_hand, stock(catalog, mid, sku).reserved) == (7, 0)
    final = as_staff(order, mid, paid.order_id).order
    assert final.refunded_amount.amount == 999 and final.lines[0].refunded_quantity == 3
    assert ledger(order, mid, paid.order_id).balanced


def test_concurrent_approvals_never_refund_more_than_was_paid(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (250, 10, 2))
    (paid_line,) = paid.lines
    ship(order, mid, paid.order_id)  # no stock movement to wait for
    # Two requests for the same two units, approved at the same time: one wins.
    both = [request(order, md, paid.order_id, line(paid_line.line_id, 2)) for _ in range(2)]

    def try_approve(refund_id: str):
        try:
            return approve(order, mid, refund_id)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(try_approve, [r.refund_id for r in both]))
    won = [r for r in results if isinstance(r, OS.Refund)]
    lost = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(won) == 1 and won[0].amount.amount == 500 and len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.FAILED_PRECONDITION and reason(lost[0]) == "REFUND_EXCEEDS_REMAINING"
    states = sorted(r.state for r in as_staff(order, mid, paid.order_id).refunds)
    assert states == sorted([REFUNDED, REJECTED])
    assert as_staff(order, mid, paid.order_id).order.refunded_amount.amount == 500
    assert ledger(order, mid, paid.order_id).balanced

    # One unit each at the same time: both fit, and together return exactly what was paid.
    paid, _, md = paid_order(order, catalog, mid, (333, 10, 2))
    (paid_line,) = paid.lines
    ship(order, mid, paid.order_id)
    halves = [request(order, md, paid.order_id, line(paid_line.line_id, 1)) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(try_approve, [r.refund_id for r in halves]))
    assert all(isinstance(r, OS.Refund) and r.state == REFUNDED for r in results)
    assert sorted(r.amount.amount for r in results) == [333, 333]
    assert as_staff(order, mid, paid.order_id).order.refunded_amount.amount == 666
    assert ledger(order, mid, paid.order_id).balanced


def test_rejected_refunds_change_nothing_and_the_order_ships_again(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (400, 10, 1))
    asked = request(order, md, paid.order_id, line(paid.lines[0].line_id, 1))
    reject = OS.RejectRefundRequest(refund_id=asked.refund_id, note="已超出售后范围")
    rejected = order.RejectRefund(reject, metadata=staff(mid)).refund
    assert (rejected.state, rejected.note) == (REJECTED, "已超出售后范围")
    assert order.RejectRefund(reject, metadata=staff(mid)).refund == rejected
    error = rpc_error(approve, order, mid, asked.refund_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "REFUND_NOT_APPROVABLE"
    assert as_staff(order, mid, paid.order_id).order == paid
    assert ship(order, mid, paid.order_id).state == OS.ORDER_STATE_SHIPPED
    listed = order.ListOrderRefunds(OS.ListOrderRefundsRequest(order_id=paid.order_id), metadata=md).refunds
    assert list(listed) == [rejected]
    by_state = order.ListRefunds(OS.ListRefundsRequest(state=REJECTED), metadata=staff(mid)).refunds
    assert [r.refund_id for r in by_state] == [asked.refund_id]
    assert order.ListRefunds(OS.ListRefundsRequest(state=REQUESTED), metadata=staff(mid)).refunds == []


def test_list_refunds_pages_newest_first(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (100, 10, 5))
    made = [request(order, md, paid.order_id, line(paid.lines[0].line_id, 1)).refund_id for _ in range(5)]
    pages, token = [], ""
    while True:
        resp = order.ListRefunds(OS.ListRefundsRequest(order_id=paid.order_id, page_size=2, page_token=token),
                                 metadata=staff(mid))
        pages.append([r.refund_id for r in resp.refunds])
        token = resp.next_page_token
        if not token:
            break
    assert pages == [made[::-1][:2], made[::-1][2:4], made[::-1][4:]]


def test_member_refunds_close_with_the_after_sales_window(order, catalog, database):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (100, 10, 2))
    ship(order, mid, paid.order_id)
    order.ConfirmReceipt(OS.ConfirmReceiptRequest(order_id=paid.order_id), metadata=md)
    assert request(order, md, paid.order_id, line(paid.lines[0].line_id, 1)).state == REQUESTED
    database.orders.update_one({"_id": paid.order_id}, {"$set": {"completed_at": utcnow() - timedelta(days=7)}})
    for call in (lambda: request(order, md, paid.order_id, line(paid.lines[0].line_id, 1)),
                 lambda: create(order, mid, paid.order_id, line(paid.lines[0].line_id, 1))):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "AFTER_SALES_CLOSED"
    unpaid = place(order, md, "unpaid", (make_skus(catalog, mid, (100, 5))[0], 1))
    error = rpc_error(request, order, md, unpaid.order_id, line(unpaid.lines[0].line_id, 1))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_REFUNDABLE"


def test_bad_refund_input_is_invalid_and_changes_nothing(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (100, 10, 2))
    line_id = paid.lines[0].line_id
    cases = [
        (dict(order_id="ord_x", idempotency_key="k", lines=[line(line_id, 1)]), {"order_id"}),
        (dict(order_id=paid.order_id, idempotency_key="", lines=[line(line_id, 1)]), {"idempotency_key"}),
        (dict(order_id=paid.order_id, idempotency_key="k", lines=[]), {"lines"}),
        (dict(order_id=paid.order_id, idempotency_key="k", lines=[line("x", 0), line(line_id, 1, 0)],
              reason="x" * 201), {"lines[0].line_id", "lines[0].quantity", "lines[1].amount", "reason"}),
        (dict(order_id=paid.order_id, idempotency_key="k", lines=[line(line_id, 1), line(line_id, 1)]),
         {"lines[1].line_id"}),
    ]
    for fields, expected in cases:
        for call, req, who in ((order.RequestRefund, OS.RequestRefundRequest(**fields), md),
                               (order.CreateRefund, OS.CreateRefundRequest(**fields), staff(mid))):
            error = rpc_error(call, req, metadata=who)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == expected
    for call, req in ((order.ApproveRefund, OS.ApproveRefundRequest(refund_id="ref_1")),
                      (order.RejectRefund, OS.RejectRefundRequest(refund_id="rfd_x")),
                      (order.GetPaymentLedger, OS.GetPaymentLedgerRequest(order_id="o"))):
        error = rpc_error(call, req, metadata=staff(mid))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and len(field_violations(error)) == 1
    error = rpc_error(order.ListRefunds, OS.ListRefundsRequest(order_id="x", state=9, page_size=101,
                                                               page_token="t"), metadata=staff(mid))
    assert set(field_violations(error)) == {"order_id", "state", "page_size", "page_token"}
    error = rpc_error(order.ListOrderRefunds, OS.ListOrderRefundsRequest(order_id="x"), metadata=md)
    assert set(field_violations(error)) == {"order_id"}
    assert as_staff(order, mid, paid.order_id).refunds == []
    assert as_staff(order, mid, paid.order_id).order == paid


def test_other_merchants_members_and_roles_are_kept_out(order, catalog):
    mid = new_merchant_id()
    paid, _, md = paid_order(order, catalog, mid, (100, 10, 2))
    asked = request(order, md, paid.order_id, line(paid.lines[0].line_id, 1))
    other = new_merchant_id()
    for who in (member(other), member(mid)):
        error = rpc_error(request, order, who, paid.order_id, line(paid.lines[0].line_id, 1))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = rpc_error(order.ListOrderRefunds, OS.ListOrderRefundsRequest(order_id=paid.order_id), metadata=who)
        assert error.code() == grpc.StatusCode.NOT_FOUND
    staff_calls = ((order.CreateRefund, OS.CreateRefundRequest(order_id=paid.order_id, idempotency_key="k",
                                                              lines=[line(paid.lines[0].line_id, 1)])),
                   (order.ApproveRefund, OS.ApproveRefundRequest(refund_id=asked.refund_id)),
                   (order.RejectRefund, OS.RejectRefundRequest(refund_id=asked.refund_id)),
                   (order.GetPaymentLedger, OS.GetPaymentLedgerRequest(order_id=paid.order_id)))
    for call, req in staff_calls:
        assert rpc_error(call, req, metadata=staff(other)).code() == grpc.StatusCode.NOT_FOUND
        assert rpc_error(call, req, metadata=md).code() in (grpc.StatusCode.UNAUTHENTICATED,
                                                            grpc.StatusCode.PERMISSION_DENIED)
    assert rpc_error(order.ListRefunds, OS.ListRefundsRequest(), metadata=md).code() in (
        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert order.ListRefunds(OS.ListRefundsRequest(order_id=paid.order_id), metadata=staff(other)).refunds == []
    # The ledger is for finance.
    error = rpc_error(order.GetPaymentLedger, OS.GetPaymentLedgerRequest(order_id=paid.order_id),
                      metadata=staff(mid, "OPERATOR"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    refunds = as_staff(order, mid, paid.order_id).refunds
    assert [(r.refund_id, r.state) for r in refunds] == [(asked.refund_id, REQUESTED)]


# ---- interrupted execution and the payment ledger ---------------------------------


def refund_cases(stack, storage, shift: timedelta = timedelta(0)) -> RefundUseCases:
    catalog = CatalogClient(clients.channel(f"127.0.0.1:{stack.ports['catalog']}", "order"))
    return RefundUseCases(orders=MongoOrders(), refunds=Refunds(), payments=Payments(), entries=Ledger(),
                          settings=MongoSettings(Settings()),
                          provider=SandboxProvider(storage.sandbox_payment_secret),
                          stock=catalog, clock=lambda: utcnow() + shift)


async def test_the_job_finishes_a_refund_cut_short_after_approval(stack, storage, order, catalog, database):
    mid = new_merchant_id()
    paid, (sku,), md = paid_order(order, catalog, mid, (700, 10, 2))
    committed(catalog, mid, sku, 8)
    asked = request(order, md, paid.order_id, line(paid.lines[0].line_id, 1))
    # The process died right after claiming the refund.
    database.refunds.update_one({"_id": asked.refund_id}, {"$set": {"state": "APPROVED", "approved_ms": epoch_ms(
        utcnow())}, "$inc": {"version": 1}})
    # Not yet stalled: a refund being executed right now is left alone.
    await refund_cases(stack, storage).resume_stalled(limit=10_000)
    assert as_staff(order, mid, paid.order_id).refunds[0].state == OS.REFUND_STATE_APPROVED
    jobs = [refund_cases(stack, storage, timedelta(minutes=1)) for _ in range(2)]
    await asyncio.gather(*(job.resume_stalled(limit=10_000) for job in jobs))
    detail = as_staff(order, mid, paid.order_id)
    assert detail.refunds[0].state == REFUNDED and detail.refunds[0].amount.amount == 700
    assert detail.order.refunded_amount.amount == 700
    assert stock(catalog, mid, sku).on_hand == 9
    assert ledger(order, mid, paid.order_id).balanced
    assert len(await events_found(stack, "siyu.order.order.refunded", paid.order_id)) == 1


async def test_payments_racing_expiry_end_in_one_state_with_a_balanced_ledger(stack, storage, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (120, 40))
    md = member(mid)
    placed = [place(order, md, f"k{i}", (sku, 1)) for i in range(20)]
    payments = [order.PayOrder(OS.PayOrderRequest(order_id=o.order_id, idempotency_key="p"), metadata=md).payment
                for o in placed]
    catalog_client = CatalogClient(clients.channel(f"127.0.0.1:{stack.ports['catalog']}", "order"))
    late = timedelta(minutes=31)
    paying = PaymentUseCases(orders=MongoOrders(), payments=Payments(), entries=Ledger(),
                             provider=SandboxProvider(storage.sandbox_payment_secret),
                             clock=lambda: utcnow() + timedelta(minutes=29, seconds=59))
    expiring = OrderUseCases(orders=MongoOrders(), catalog=catalog_client, clock=lambda: utcnow() + late)
    for o, p in zip(placed, payments):  # 20 separate races
        await asyncio.gather(paying.handle_callback(success(storage, p)), expiring.expire_due(limit=10_000))
    await expiring.expire_due(limit=10_000)
    for o, p in zip(placed, payments):
        final = as_staff(order, mid, o.order_id)
        outcome = (final.order.state, final.payments[0].state)
        assert outcome in {(OS.ORDER_STATE_PAID, OS.PAYMENT_STATE_SUCCEEDED),
                           (OS.ORDER_STATE_CANCELLED, OS.PAYMENT_STATE_REFUNDED)}
        view = ledger(order, mid, o.order_id)
        assert view.balanced
        kinds = sorted(e.kind for e in view.entries)
        assert kinds == (["ORDER_PAYMENT"] if final.order.state == OS.ORDER_STATE_PAID
                         else ["AUTO_REFUND", "UNAPPLIED_PAYMENT"])


def test_a_second_payment_is_sent_back_and_nets_to_zero_in_the_ledger(order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (640, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    first, second = (order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key=k), metadata=md)
                     .payment for k in ("p1", "p2"))
    for p in (first, second):
        order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=p.payment_id), metadata=md)
    view = ledger(order, mid, placed.order_id)
    assert view.balanced
    assert sorted((e.kind, e.payment_id) for e in view.entries) == [
        ("AUTO_REFUND", second.payment_id), ("ORDER_PAYMENT", first.payment_id),
        ("UNAPPLIED_PAYMENT", second.payment_id)]
    balances = {b.account: b.balance.amount for b in view.balances}
    assert balances == {"PROVIDER_CLEARING": 640, f"ORDER:{placed.order_id}": -640,
                        f"UNAPPLIED:{placed.order_id}": 0}
