"""Wires the catalog process: servicer, outbox collections, order-event consumers, sweeper."""
from __future__ import annotations

from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit import service
from siyu_kit.service import Parts, Runtime

from services.catalog.adapters import flash_sales as flash_store
from services.catalog.adapters.documents import ReservationDoc, ensure_indexes
from services.catalog.adapters.orders import OrderClient
from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.stock import StockUseCases
from services.catalog.entrypoint import events, jobs
from services.catalog.entrypoint.servicer import CatalogServicer


def build(runtime: Runtime) -> Parts:
    ensure_indexes()
    flash_store.ensure_indexes()
    stock = StockUseCases(runtime.events_committed, OrderClient(runtime.channel("order")))
    flash = FlashSaleUseCases(runtime.events_committed)
    full_name = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
    return Parts(
        servicers=[(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, CatalogServicer(stock, flash),
                    full_name)],
        outbox_collections=[ReservationDoc._get_collection()],
        subscriptions=events.subscriptions(stock),
        jobs=jobs.jobs(stock, flash),
    )


def main() -> None:
    service.run("catalog", build)
