"""Time-driven and failure paths of orders and payments, run through the use cases
against the service's real database with an injected clock, next to the running
service and catalog."""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2 as OS, order_pb2_grpc

from siyu_kit import clients, config, db
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow
from tests.integration.test_order_api import events_found, make_skus, member, place, reason, rpc_error, stock
from tests.support import new_merchant_id, wait_until, stub_fixture

from services.order.adapters.catalog import CatalogClient
from services.order.adapters.documents import OrderSettingsDoc, PaymentDoc
from services.order.adapters.ledger import Ledger
from services.order.adapters.payments import Payments
from services.order.adapters.repositories import MongoOrders
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.application.orders import OrderUseCases
from services.order.application.payments import PaymentUseCases
from services.order.domain.payments import Notification

LATER = timedelta(minutes=31)


order = stub_fixture("order", order_pb2_grpc.OrderServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)


@pytest.fixture(scope="module")
def storage(stack):
    settings = config.load("order")
    db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4)
    return settings


def order_cases(stack, shift: timedelta) -> OrderUseCases:
    catalog = CatalogClient(clients.channel(f"127.0.0.1:{stack.ports['catalog']}", "order"))
    return OrderUseCases(orders=MongoOrders(), catalog=catalog, clock=lambda: utcnow() + shift)


def payment_cases(storage, shift: timedelta) -> PaymentUseCases:
    return PaymentUseCases(orders=MongoOrders(), payments=Payments(), entries=Ledger(),
                           provider=SandboxProvider(storage.sandbox_payment_secret),
                           clock=lambda: utcnow() + shift)


def stored(payment) -> dict:
    """The payment as it is stored."""
    return PaymentDoc._get_collection().find_one({"_id": payment.id})


def success(storage, payment: OS.Payment) -> Notification:
    n = Notification(payment_id=payment.payment_id, provider_txn_id=f"sbx_txn_{new_id('t')[-8:]}",
                     amount=payment.amount.amount, currency=payment.amount.currency, result="SUCCESS",
                     timestamp=int(time.time()))
    return replace(n, signature=SandboxProvider(storage.sandbox_payment_secret).sign(n))


def get(order, md, order_id: str) -> OS.Order:
    return order.GetOrder(OS.GetOrderRequest(order_id=order_id), metadata=md).order


async def expire_until(cases: OrderUseCases, probe) -> None:
    for _ in range(50):
        if probe():
            return
        await cases.expire_due(limit=500)
    assert probe(), "the order did not expire"


async def test_expired_orders_are_cancelled_and_their_stock_released(stack, storage, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 2))
    # On time: nothing to expire yet.
    await order_cases(stack, timedelta(0)).expire_due(limit=500)
    assert get(order, md, placed.order_id).state == OS.ORDER_STATE_PENDING_PAYMENT

    await expire_until(order_cases(stack, LATER),
                       lambda: get(order, md, placed.order_id).state == OS.ORDER_STATE_CANCELLED)
    expired = get(order, md, placed.order_id)
    assert expired.version == 2 and expired.cancelled_at.seconds > 0
    (event,) = await events_found(stack, "siyu.order.order.cancelled", placed.order_id)
    payload = events_pb2.OrderCancelled()
    assert event.payload.Unpack(payload) and payload.reason == "TIMEOUT"
    wait_until(lambda: stock(catalog, mid, sku).available == 5, message="stock released after expiry")
    error = rpc_error(order.PayOrder, OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"),
                      metadata=md)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "ORDER_NOT_PAYABLE"


async def test_a_payment_after_expiry_is_refunded(stack, storage, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (880, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    late = payment_cases(storage, LATER)
    with_key = success(storage, payment)
    refunded, applied = await late.handle_callback(with_key)
    refunded = stored(refunded)
    assert applied and refunded["state"] == "REFUNDED" and refunded["refund"]["reason"] == "ORDER_EXPIRED"
    assert refunded["refund"]["amount"] == 880
    assert get(order, md, placed.order_id).state == OS.ORDER_STATE_PENDING_PAYMENT
    again, applied = await late.handle_callback(with_key)
    again = stored(again)
    assert not applied and again["version"] == refunded["version"]
    await expire_until(order_cases(stack, LATER),
                       lambda: get(order, md, placed.order_id).state == OS.ORDER_STATE_CANCELLED)


async def test_payment_racing_the_timeout_ends_in_exactly_one_state(stack, storage, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (100, 20))
    md = member(mid)
    placed = [place(order, md, f"k{i}", (sku, 1)) for i in range(6)]
    payments = [order.PayOrder(OS.PayOrderRequest(order_id=o.order_id, idempotency_key="p"), metadata=md).payment
                for o in placed]
    # The payment still sees the order in time; the expiry job already sees it late.
    paying = payment_cases(storage, timedelta(minutes=29, seconds=59))
    expiring = order_cases(stack, LATER)
    await asyncio.gather(*(paying.handle_callback(success(storage, p)) for p in payments),
                         expiring.expire_due(limit=500))
    await expiring.expire_due(limit=500)
    for o, p in zip(placed, payments):
        final = get(order, md, o.order_id)
        pay_doc = await db.run_sync(PaymentDoc._get_collection().find_one, {"_id": p.payment_id, "merchant_id": mid})
        assert (final.state, pay_doc["state"]) in {(OS.ORDER_STATE_PAID, "SUCCEEDED"),
                                                   (OS.ORDER_STATE_CANCELLED, "REFUNDED")}
        assert final.version == 2
        if final.state == OS.ORDER_STATE_PAID:
            assert final.payment_id == p.payment_id


async def test_a_redelivered_callback_finishes_an_interrupted_payment(stack, storage, order, catalog):
    mid = new_merchant_id()
    (sku,) = make_skus(catalog, mid, (450, 5))
    md = member(mid)
    placed = place(order, md, "k", (sku, 1))
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="p"), metadata=md).payment
    n = success(storage, payment)
    # The process died right after the payment's own transition.
    assert (await db.run_sync(PaymentDoc._get_collection().update_one,
                              {"_id": payment.payment_id, "merchant_id": mid, "state": "PENDING"},
                              {"$set": {"state": "SUCCEEDED", "provider_txn_id": n.provider_txn_id,
                                        "succeeded_at": utcnow()}, "$inc": {"version": 1}})).modified_count == 1
    assert get(order, md, placed.order_id).state == OS.ORDER_STATE_PENDING_PAYMENT
    resp = order.HandleSandboxPaymentCallback(OS.HandleSandboxPaymentCallbackRequest(
        payment_id=n.payment_id, provider_txn_id=n.provider_txn_id, amount=n.amount, currency=n.currency,
        result=n.result, timestamp=n.timestamp, signature=n.signature))
    assert resp.applied and resp.payment.state == OS.PAYMENT_STATE_SUCCEEDED
    paid = get(order, md, placed.order_id)
    assert paid.state == OS.ORDER_STATE_PAID and paid.payment_id == payment.payment_id
    assert len(await events_found(stack, "siyu.order.order.paid", placed.order_id)) == 1


async def test_the_merchant_setting_sets_the_unpaid_expiry(stack, storage, order, catalog):
    mid = new_merchant_id()
    await db.run_sync(OrderSettingsDoc(id=new_id("ost"), merchant_id=mid, unpaid_expiry_s=600).save)
    (sku,) = make_skus(catalog, mid, (100, 5))
    placed = place(order, member(mid), "k", (sku, 1))
    assert placed.expires_at.seconds - placed.created_at.seconds == 600
    # Other merchants keep the default.
    mid_b = new_merchant_id()
    (sku_b,) = make_skus(catalog, mid_b, (100, 5))
    default = place(order, member(mid_b), "k", (sku_b, 1))
    assert default.expires_at.seconds - default.created_at.seconds == 30 * 60
