"""Wires community group buy into the order service: its use cases over the MongoDB
stores, the job that closes campaigns at their cut-off and applies the uncollected rule,
and the outbox collections its events leave from. main.py hands in the order service's
own repositories and use cases (placing and refunding work as for any order)."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.sealing import Sealer

from services.order.adapters import community_store as store
from services.order.application.checkout import Checkout
from services.order.application.community import CommunityUseCases
from services.order.application.orders import OrderUseCases
from services.order.application.ports import Catalog, OpenRefunds, OrderRepository, SettingsRepository
from services.order.application.refunds import RefundUseCases


def sweep_interval_s() -> float:
    return env_seconds("ORDER_COMMUNITY_SWEEP_INTERVAL_S", 30)


@dataclass
class CommunityParts:
    community: CommunityUseCases
    jobs: list[service.Job]
    outbox_collections: list

    def attach(self, servicer):
        """Gives the OrderServicer's CommunityRpcs their use cases; returns the servicer."""
        servicer.community = self.community
        return servicer


def build(*, orders: OrderRepository, order_settings: SettingsRepository, open_refunds: OpenRefunds,
          catalog: Catalog, checkout: Checkout, order_cases: OrderUseCases, refunds: RefundUseCases,
          sealer: Sealer) -> CommunityParts:
    store.ensure_indexes()
    community = CommunityUseCases(
        leaders=store.MongoLeaders(sealer), campaigns=store.MongoCampaigns(), settings=store.MongoCommunitySettings(),
        community_orders=store.MongoCommunityOrders(), codes=store.MongoPickupCodes(),
        limits=store.MongoMemberLimits(), batches=store.MongoBatches(), pickups=store.MongoPickups(),
        orders=orders, order_settings=order_settings, open_refunds=open_refunds, catalog=catalog, checkout=checkout,
        order_cases=order_cases, refunds=refunds)

    async def sweep() -> int:
        return await community.close_due() + await community.apply_uncollected()

    return CommunityParts(community=community,
                          jobs=[service.Job("order-community-sweep", sweep_interval_s(), sweep)],
                          outbox_collections=store.outbox_collections())
