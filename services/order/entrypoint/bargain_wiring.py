"""Wires bargains into the order service: the use cases, the expiry job, the outbox of
the bargain documents."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import service
from siyu_kit.config import env_seconds

from services.order.adapters import bargain_store
from services.order.adapters.bargain_invitees import InviteeClient
from services.order.application.bargains import BargainUseCases
from services.order.application.checkout import Checkout
from services.order.application.orders import OrderUseCases
from services.order.application.ports import ActivityPools, Catalog, FlashCatalog, OrderRepository, SettingsRepository


def sweep_interval_s() -> float:
    return env_seconds("ORDER_BARGAIN_SWEEP_INTERVAL_S", 10)


@dataclass
class BargainParts:
    bargains: BargainUseCases
    jobs: list[service.Job]
    outbox_collections: list

    def attach(self, servicer):
        """Gives the OrderServicer's BargainRpcs their use cases; returns the servicer."""
        servicer.bargains = self.bargains
        return servicer


def build(*, member_channel, pools: ActivityPools, catalog: FlashCatalog, skus: Catalog, orders: OrderRepository,
          settings: SettingsRepository, checkout: Checkout, order_cases: OrderUseCases) -> BargainParts:
    bargain_store.ensure_indexes()
    cases = BargainUseCases(
        activities=bargain_store.MongoBargainActivities(), bargains=bargain_store.MongoBargains(),
        counters=bargain_store.MongoHelpCounters(), pools=pools, invitees=InviteeClient(member_channel), skus=skus,
        orders=orders, settings=settings, catalog=catalog, checkout=checkout, order_cases=order_cases)
    return BargainParts(bargains=cases,
                        jobs=[service.Job("order-bargain-sweep", sweep_interval_s(), cases.fail_due)],
                        outbox_collections=bargain_store.outbox_collections())
