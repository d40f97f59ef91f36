"""Wires the points mall into the order service: the items over MongoDB, their pools in
the catalog, and ordering through the same checkout, order writing and value holds as
any order (so the order's lifecycle spends, releases and returns the points)."""
from __future__ import annotations

from dataclasses import dataclass

from services.order.adapters import points_mall_store
from services.order.application.checkout import Checkout
from services.order.application.orders import OrderUseCases
from services.order.application.points_mall import PointsMallUseCases
from services.order.application.ports import ActivityPools, FlashCatalog, OrderRepository, SettingsRepository


@dataclass
class PointsMallParts:
    points_mall: PointsMallUseCases

    def attach(self, servicer):
        """Gives the OrderServicer's PointsMallRpcs their use cases; returns the servicer."""
        servicer.points_mall = self.points_mall
        return servicer


def build(*, pools: ActivityPools, catalog: FlashCatalog, orders: OrderRepository, settings: SettingsRepository,
          checkout: Checkout, order_cases: OrderUseCases) -> PointsMallParts:
    points_mall_store.ensure_indexes()
    return PointsMallParts(PointsMallUseCases(
        items=points_mall_store.MongoPointsMallItems(), pools=pools, catalog=catalog, orders=orders,
        settings=settings, checkout=checkout, order_cases=order_cases))
