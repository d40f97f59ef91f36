"""Wires the order service for siyu_kit.service.run."""
from __future__ import annotations

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import service
from siyu_kit.config import env_seconds

from services.order.adapters.catalog import CatalogClient
from services.order.adapters.documents import OrderDoc, PaymentDoc
from services.order.adapters.repositories import Orders, Payments, Settings, ensure_indexes
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.application.orders import OrderUseCases
from services.order.application.payments import PaymentUseCases
from services.order.entrypoint.servicer import OrderServicer

NAME = "order"


def expiry_interval_s() -> float:
    return env_seconds("ORDER_EXPIRY_INTERVAL_S", 5)


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
