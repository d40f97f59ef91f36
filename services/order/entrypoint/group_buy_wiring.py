"""Wires group buy (拼团) into the order service: the use cases, the job that closes
expired groups, and the consumers of the order's own grouping event and of the group's
formed and failed events."""
from __future__ import annotations

from dataclasses import dataclass

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.errors import NotFound
from siyu_kit.events.consumer import Poison, Subscription

from services.order.adapters import group_buy_store
from services.order.adapters.group_buy_store import MongoGroupBuyActivities, MongoGroupBuyGroups, MongoGroupBuyTickets
from services.order.adapters.member_profiles import MemberProfileClient
from services.order.application.checkout import Checkout
from services.order.application.group_buy_ports import GroupRefunds
from services.order.application.group_buys import GroupBuyUseCases
from services.order.application.orders import OrderUseCases
from services.order.application.ports import ActivityPools, Catalog, FlashCatalog, OrderRepository, SettingsRepository


def group_sweep_interval_s() -> float:
    return env_seconds("ORDER_GROUP_SWEEP_INTERVAL_S", 3)


@dataclass
class GroupBuyParts:
    group_buys: GroupBuyUseCases
    jobs: list[service.Job]
    subscriptions: list[Subscription]
    outbox_collections: list

    def attach(self, servicer):
        """Gives the OrderServicer's GroupBuyRpcs their use cases; returns the servicer."""
        servicer.group_buys = self.group_buys
        return servicer


def build(*, orders: OrderRepository, settings: SettingsRepository, catalog: Catalog, pools: ActivityPools,
          flash_catalog: FlashCatalog, checkout: Checkout, order_cases: OrderUseCases, refunds: GroupRefunds,
          member_channel) -> GroupBuyParts:
    group_buy_store.ensure_indexes()
    cases = GroupBuyUseCases(
        activities=MongoGroupBuyActivities(), groups=MongoGroupBuyGroups(), tickets=MongoGroupBuyTickets(),
        profiles=MemberProfileClient(member_channel), pools=pools, catalog=flash_catalog, skus=catalog,
        orders=orders, settings=settings, checkout=checkout, order_cases=order_cases, refunds=refunds)
    return GroupBuyParts(group_buys=cases,
                         jobs=[service.Job("order-group-sweep", group_sweep_interval_s(), cases.sweep)],
                         subscriptions=subscriptions(cases),
                         outbox_collections=group_buy_store.outbox_collections())


def subscriptions(cases: GroupBuyUseCases) -> list[Subscription]:
    async def grouping(envelope: common_pb2.EventEnvelope, payload: order_events.OrderGrouping) -> None:
        if not payload.order.order_id:
            raise Poison("order.grouping without an order")
        try:
            await cases.take_slot(envelope.merchant_id, payload.order.order_id)
        except NotFound as error:
            raise Poison(f"order {payload.order.order_id}: {error}") from error

    async def formed(envelope: common_pb2.EventEnvelope, payload: order_events.GroupFormed) -> None:
        if not payload.group.group_id:
            raise Poison("group.formed without a group")
        await cases.formed(envelope.merchant_id, payload.group.group_id)

    async def failed(envelope: common_pb2.EventEnvelope, payload: order_events.GroupFailed) -> None:
        if not payload.group.group_id:
            raise Poison("group.failed without a group")
        await cases.failed(envelope.merchant_id, payload.group.group_id)

    return [Subscription.to("order-group-grouping", order_events.OrderGrouping, grouping),
            Subscription.to("order-group-formed", order_events.GroupFormed, formed),
            Subscription.to("order-group-failed", order_events.GroupFailed, failed)]
