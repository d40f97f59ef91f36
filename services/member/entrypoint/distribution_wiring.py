"""The distribution and guide part of the member service's wiring: the use cases over the
MongoDB stores, and the durable consumers of

- content's share_code.opened: a signed-in member who opens a distributor's or a guide's
  share code is bound by the merchant's rules (each binding change is one conditional
  update, so a redelivery finds it done);
- order.paid and order.refunded: each order's paid amount net of refunds counts once in
  the member's spend, which makes them a distributor at the merchant's threshold
  (recharge orders are not purchases and are skipped)."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.content.v1 import events_pb2 as content_events
from siyu.order.v1 import events_pb2 as order_events
from siyu.order.v1 import order_pb2

from services.member.adapters import distribution_store as store
from services.member.adapters import member_view_store, repositories, segment_store
from services.member.application.distribution import Distribution
from services.member.application.ports import PhoneBook
from siyu_kit.events.invalidation import TtlCache
from siyu_kit import logging as slog
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import is_id

log = slog.get("siyu.member.distribution")


# How long a replica that did not make a change of the distribution settings may price
# orders' referrals by the old ones (no event announces a change).
SETTINGS_TTL_S = 5.0


def use_cases(phones: PhoneBook) -> Distribution:
    store.ensure_indexes()
    cards = store.MemberCardsReader(member_view_store.MemberSearchStore(), phones,
                                    member_view_store.MemberFactsStore(), segment_store.StatsRepository())
    return Distribution(store.SettingsRepository(), store.LevelRepository(), store.DistributorRepository(),
                        store.CustomerRepository(), store.BindingHistoryRepository(), store.GuideProfileRepository(),
                        store.SpendRepository(), cards, store.StaffGuides(repositories.StaffRepository()),
                        repositories.AuditLogRepository(), settings_cache=TtlCache(SETTINGS_TTL_S))


def _net(order: order_pb2.Order) -> int:
    return max(order.payable.amount - order.refunded_amount.amount, 0)


def subscriptions(distribution: Distribution) -> list[Subscription]:
    async def on_share_opened(envelope: common_pb2.EventEnvelope, opened: content_events.ShareCodeOpened) -> None:
        if not (envelope.merchant_id and is_id(opened.member_id, "mem")
                and (is_id(opened.sharer_id, "mem") or is_id(opened.sharer_id, "stf"))):
            raise Poison("a ShareCodeOpened needs merchant, a mem_ member and a mem_ or stf_ sharer")
        outcome = await distribution.on_share_opened(envelope.merchant_id, opened.member_id, opened.sharer_id)
        log.info("distribution.share_opened", outcome=outcome)

    async def on_order(envelope: common_pb2.EventEnvelope, order: order_pb2.Order) -> None:
        if order.kind == order_pb2.ORDER_KIND_RECHARGE:
            return
        if not (envelope.merchant_id and order.order_id and order.member_id):
            raise Poison("an order event needs merchant, order and member")
        await distribution.on_spend(envelope.merchant_id, order.member_id, order.order_id, _net(order))

    async def on_paid(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> None:
        if paid.HasField("recharge"):
            return
        await on_order(envelope, paid.order)

    async def on_refunded(envelope: common_pb2.EventEnvelope, refunded: order_events.OrderRefunded) -> None:
        await on_order(envelope, refunded.order)

    return [Subscription.to("member-distribution-share-opened", content_events.ShareCodeOpened, on_share_opened),
            Subscription.to("member-distribution-order-paid", order_events.OrderPaid, on_paid),
            Subscription.to("member-distribution-order-refunded", order_events.OrderRefunded, on_refunded)]
