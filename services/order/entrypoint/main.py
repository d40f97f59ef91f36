"""Wires the order service for siyu_kit.service.run."""
from __future__ import annotations

import os

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import service

from services.order.adapters.catalog import CatalogClient
from services.order.adapters.documents import OrderDoc, PaymentDoc
from services.order.adapters.repositories import Orders, Payments, Settings, ensure_indexes
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.application.orders import OrderUseCases
from services.order.application.payments import PaymentUseCases
from services.order.entrypoint.servicer import OrderServicer

NAME = "order"


def expiry_interval_s() -> float:
    raw = os.environ.get("SIYU_ORDER_EXPIRY_INTERVAL_S", "5")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_ORDER_EXPIRY_INTERVAL_S must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError("SIYU_ORDER_EXPIRY_INTERVAL_S must be positive")
    return value


def build(runtime: service.Runtime) -> service.Parts:
    ensure_indexes()
    orders, payments = Orders(), Payments()
    order_cases = OrderUseCases(orders=orders, settings=Settings(), catalog=CatalogClient(runtime.channel("catalog")),
                                committed=runtime.events_committed)
    payment_cases = PaymentUseCases(orders=orders, payments=payments,
                                    provider=SandboxProvider(runtime.settings.sandbox_payment_secret),
                                    committed=runtime.events_committed)
    full_name = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
    return service.Parts(
        servicers=[(order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(order_cases, payment_cases),
                    full_name)],
        outbox_collections=[OrderDoc._get_collection(), PaymentDoc._get_collection()],
        jobs=[service.Job("order-expiry", expiry_interval_s(), order_cases.expire_due)],
    )


def main() -> None:
    service.run(NAME, build)
