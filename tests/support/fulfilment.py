"""Paid orders, signed payment notifications, and the staff's shipping and order views."""
from __future__ import annotations

import time
from dataclasses import replace

from siyu.order.v1 import order_pb2 as OS

from siyu_kit.ids import new_id
from tests.support import metadata
from tests.support.order import make_skus, member, place

from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.domain.payments import Notification


def staff(mid: str, *roles: str):
    return metadata(mid, staff_id=new_id("stf"), roles=roles or ("OPERATOR", "FINANCE"))


def pay(order, md, placed: OS.Order) -> OS.Order:
    payment = order.PayOrder(OS.PayOrderRequest(order_id=placed.order_id, idempotency_key="pay"), metadata=md).payment
    order.CompleteSandboxPayment(OS.CompleteSandboxPaymentRequest(payment_id=payment.payment_id), metadata=md)
    paid = order.GetOrder(OS.GetOrderRequest(order_id=placed.order_id), metadata=md).order
    assert paid.state == OS.ORDER_STATE_PAID
    return paid


def paid_order(order, catalog, mid: str, *specs: tuple[int, int, int], md=None) -> tuple[OS.Order, list[str], tuple]:
    """A paid order of one line per (price, stock, quantity); returns it, the sku ids and
    the member's metadata."""
    md = md or member(mid)
    skus = make_skus(catalog, mid, *[(price, stock) for price, stock, _ in specs])
    placed = place(order, md, new_id("k"), *[(s, q) for s, (_, _, q) in zip(skus, specs)])
    return pay(order, md, placed), skus, md


def ship(order, mid: str, order_id: str, carrier: str = "顺丰", tracking: str = "SF-1234567") -> OS.Order:
    return order.ShipOrder(OS.ShipOrderRequest(order_id=order_id, carrier=carrier, tracking_number=tracking),
                           metadata=staff(mid, "OPERATOR")).order


def as_staff(order, mid: str, order_id: str) -> OS.GetOrderAsStaffResponse:
    return order.GetOrderAsStaff(OS.GetOrderAsStaffRequest(order_id=order_id), metadata=staff(mid))


def success(storage, payment: OS.Payment) -> Notification:
    n = Notification(payment_id=payment.payment_id, provider_txn_id=f"sbx_txn_{new_id('t')[-8:]}",
                     amount=payment.amount.amount, currency=payment.amount.currency, result="SUCCESS",
                     timestamp=int(time.time()))
    return replace(n, signature=SandboxProvider(storage.sandbox_payment_secret).sign(n))
