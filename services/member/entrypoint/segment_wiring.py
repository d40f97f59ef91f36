"""The tags, RFM and segments part of the member service's wiring: member statistics from
order events (durable consumers of order.paid and order.refunded; recharge orders are
not purchases and are skipped) and from the content service's persona follow events, and the job that derives RFM scores, automatic tags and
365-day figures into each member's facts document.

The job runs every SIYU_MEMBER_RFM_JOB_INTERVAL_S (60 s by default) on every replica: it
takes the members whose statistics changed, then once a day every member (recency moves
with time); writes are conditional on the statistics' version, so replicas agree."""
from __future__ import annotations

import re
from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.content.v1 import events_pb2 as content_events
from siyu.order.v1 import events_pb2 as order_events
from siyu.order.v1 import order_pb2

from siyu.member.v1 import events_pb2 as member_events

from services.member.adapters import segment_store
from services.member.application.ports import MemberRepository, MerchantRepository
from services.member.application.coupons import CouponUseCases
from services.member.application.segments import FollowFact, MemberStatistics, OrderFact, SegmentAudience, Segments
from services.member.domain.coupons import SEGMENT_AUDIENCE
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.protos import CHANNEL_NAME


def interval_s() -> float:
    return env_seconds("MEMBER_RFM_JOB_INTERVAL_S", 60)


def use_cases(members: MemberRepository, merchants: MerchantRepository) -> Segments:
    segment_store.ensure_indexes()
    stats = MemberStatistics(segment_store.StatsRepository(), segment_store.FactsRepository(),
                             segment_store.RfmSettingsRepository(), segment_store.MemberSideRepository(),
                             segment_store.SweepProgressRepository(), merchants)
    return Segments(stats, segment_store.TagRepository(), segment_store.SegmentRepository(), members)


def _paid_at(envelope: common_pb2.EventEnvelope, order: order_pb2.Order):
    return (order.paid_at if order.HasField("paid_at") else envelope.occurred_at).ToDatetime(tzinfo=timezone.utc)


def paid_fact(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> OrderFact:
    order = paid.order
    if not (envelope.merchant_id and order.order_id and order.member_id) or order.payable.amount < 0:
        raise Poison("an OrderPaid needs merchant, order, member and a payable amount ≥ 0")
    return OrderFact(envelope.merchant_id, order.member_id, order.order_id, _paid_at(envelope, order),
                     order.payable.amount, CHANNEL_NAME.get(envelope.channel, ""))


def refund_fact(envelope: common_pb2.EventEnvelope, refunded: order_events.OrderRefunded) -> OrderFact:
    order, refund = refunded.order, refunded.refund
    if not (envelope.merchant_id and order.order_id and order.member_id and refund.refund_id) \
            or refund.amount.amount < 0:
        raise Poison("an OrderRefunded needs merchant, order, member, refund and an amount ≥ 0")
    return OrderFact(envelope.merchant_id, order.member_id, order.order_id, _paid_at(envelope, order),
                     refund.amount.amount, refund_id=refund.refund_id)


# A persona id becomes a field name in the statistics (`follows.<persona id>`).
_PERSONA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def follow_fact(envelope: common_pb2.EventEnvelope,
                event: content_events.PersonaFollowed | content_events.PersonaUnfollowed) -> FollowFact:
    if not (envelope.merchant_id and event.member_id and _PERSONA_ID.match(event.persona_id)):
        raise Poison("a persona follow event needs merchant, member and a persona id")
    at = event.at if event.HasField("at") else envelope.occurred_at
    if not at.seconds and not at.nanos:
        raise Poison("a persona follow event needs its time")
    return FollowFact(envelope.merchant_id, event.member_id, event.persona_id,
                      int(at.ToDatetime(tzinfo=timezone.utc).timestamp() * 1000),
                      isinstance(event, content_events.PersonaFollowed))


def subscriptions(segments: Segments) -> list[Subscription]:
    stats = segments.statistics

    async def on_paid(envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> None:
        if paid.HasField("recharge") or paid.order.kind == order_pb2.ORDER_KIND_RECHARGE:
            return
        await stats.on_paid(paid_fact(envelope, paid))

    async def on_refunded(envelope: common_pb2.EventEnvelope, refunded: order_events.OrderRefunded) -> None:
        if refunded.order.kind == order_pb2.ORDER_KIND_RECHARGE:
            return
        await stats.on_refunded(refund_fact(envelope, refunded))

    # A member's own facts (registration, birthday, consent) follow at once, not at the sweep.
    async def on_registered(envelope: common_pb2.EventEnvelope, registered: member_events.MemberRegistered) -> None:
        await stats.refresh(envelope.merchant_id, registered.member.member_id)

    async def on_profile(envelope: common_pb2.EventEnvelope, updated: member_events.MemberProfileUpdated) -> None:
        await stats.refresh(envelope.merchant_id, updated.profile.member_id)

    async def on_consent(envelope: common_pb2.EventEnvelope, changed: member_events.MarketingConsentChanged) -> None:
        await stats.refresh(envelope.merchant_id, changed.member_id)

    async def on_follow(envelope: common_pb2.EventEnvelope,
                        event: content_events.PersonaFollowed | content_events.PersonaUnfollowed) -> None:
        await stats.on_follow(follow_fact(envelope, event))

    return [Subscription.to("member-stats-order-paid", order_events.OrderPaid, on_paid),
            Subscription.to("member-stats-persona-followed", content_events.PersonaFollowed, on_follow),
            Subscription.to("member-stats-persona-unfollowed", content_events.PersonaUnfollowed, on_follow),
            Subscription.to("member-stats-order-refunded", order_events.OrderRefunded, on_refunded),
            Subscription.to("member-facts-registered", member_events.MemberRegistered, on_registered),
            Subscription.to("member-facts-profile", member_events.MemberProfileUpdated, on_profile),
            Subscription.to("member-facts-consent", member_events.MarketingConsentChanged, on_consent)]


def grant_audience(coupons: CouponUseCases, segments: Segments) -> None:
    """Coupon grants may go to a segment's members."""
    coupons.audiences[SEGMENT_AUDIENCE] = SegmentAudience(segments, segment_store.GrantTargetRepository())


def jobs(segments: Segments) -> list[service.Job]:
    return [service.Job("member-rfm-recompute", interval_s(), segments.statistics.recompute)]
