"""Wires the catalog process: repositories into use cases, the servicer, outbox
collections, order-event consumers and jobs."""
from __future__ import annotations

from dataclasses import dataclass

from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit import service
from siyu_kit.service import Parts, Runtime

from siyu_kit import erasure
from siyu_kit.erasure import ErasureAcknowledgements
from services.catalog.adapters.personal_data_store import MemberRecordStore
from services.catalog.application.personal_data import CatalogDataExport

from services.catalog.adapters import flash_sales as flash_store
from services.catalog.adapters.documents import ReservationDoc, ensure_indexes
from services.catalog.adapters.flash_sales import MongoFlashSales
from services.catalog.adapters.member import MemberClient
from services.catalog.adapters.orders import OrderClient
from services.catalog.adapters.repositories import (MongoCategories, MongoLedger, MongoProducts, MongoReservations,
                                                    MongoStock)
from services.catalog.application.categories import CategoryUseCases
from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.inventory import InventoryUseCases
from services.catalog.application.ledger import Ledger
from services.catalog.application.pools import Pools
from services.catalog.application.sold_out import ForgetOnRelease, SoldOut
from services.catalog.application.ports import MemberPricing, OrderVerdicts
from services.catalog.application.products import ProductUseCases
from services.catalog.application.staff_lists import StaffLists
from services.catalog.application.stock import StockUseCases
from services.catalog.entrypoint import events, jobs
from services.catalog.entrypoint.servicer import CatalogServicer


@dataclass(frozen=True)
class UseCases:
    products: ProductUseCases
    categories: CategoryUseCases
    inventory: InventoryUseCases
    stock: StockUseCases
    flash: FlashSaleUseCases
    staff_lists: StaffLists


def use_cases(orders: OrderVerdicts, pricing: MemberPricing | None = None) -> UseCases:
    """Every catalog use case on the MongoDB repositories."""
    products, categories, stock = MongoProducts(), MongoCategories(), MongoStock()
    movements, reservations = MongoLedger(), MongoReservations()
    # A pool seen empty is answered from memory until a release here gives units back.
    sold_out = SoldOut()
    sales = ForgetOnRelease(MongoFlashSales(), sold_out)
    ledger = Ledger(movements)
    pools = Pools(sales, ledger)
    stock_cases = StockUseCases(reservations, stock, ledger, pools, orders)
    return UseCases(
        products=ProductUseCases(products, categories, stock, ledger, pricing),
        categories=CategoryUseCases(categories),
        inventory=InventoryUseCases(stock, movements, ledger),
        stock=stock_cases,
        flash=FlashSaleUseCases(sales, products, stock, reservations, ledger, pools, stock_cases,
                               sold_out=sold_out),
        staff_lists=StaffLists(products, stock, categories, sales))


def build(runtime: Runtime) -> Parts:
    ensure_indexes()
    flash_store.ensure_indexes()
    cases = use_cases(OrderClient(runtime.channel("order")), MemberClient(runtime.channel("member")))
    full_name = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
    return Parts(
        servicers=[(catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
                    CatalogServicer(cases.products, cases.categories, cases.inventory, cases.stock, cases.flash,
                                    cases.staff_lists, personal_data=CatalogDataExport(MemberRecordStore())),
                    full_name)],
        outbox_collections=[ReservationDoc._get_collection(), flash_store.FlashSaleDoc._get_collection()],
        subscriptions=events.subscriptions(cases.stock) + [erasure.subscription(
            "catalog-member-erased", erasure.acknowledge_only("catalog", ErasureAcknowledgements(runtime.channel("member"))))],
        jobs=jobs.jobs(cases.stock, cases.inventory, cases.flash) + [jobs.live_room_job()],
    )


def main() -> None:
    service.run("catalog", build)

