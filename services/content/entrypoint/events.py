"""Order events that feed the funnels and the purchase facts. Each handler is idempotent
by its cause: the order event's id (placed, paid) or the refund's id (refunded), so a
replay changes nothing."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2 as member_events
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import is_id
from siyu_kit.protos import CHANNEL_BY_NAME, CHANNEL_NAME

from services.content.application.cohorts import CohortUseCases, PaidFact, RefundFact
from services.content.application.funnels import FunnelUseCases, OrderFact
from services.content.application.recommendation_ports import PaidOrderFact
from services.content.domain import funnels
from services.content.domain import recommendations as rules


def _checked(envelope: common_pb2.EventEnvelope) -> None:
    if not is_id(envelope.event_id, "evt"):
        raise Poison(f"event id {envelope.event_id!r} is not an evt_ id")
    if not envelope.merchant_id:
        raise Poison("event without a merchant")
    if not envelope.HasField("occurred_at"):
        raise Poison("event without a time")


def _fact(envelope: common_pb2.EventEnvelope, order, change, cause: str = "", at=None) -> OrderFact:
    _checked(envelope)
    a = order.attribution
    return OrderFact(event_id=cause or envelope.event_id, merchant_id=envelope.merchant_id,
                     occurred_at=at or envelope.occurred_at.ToDatetime(tzinfo=timezone.utc),
                     persona_id=a.persona_id, content_id=a.content_id, live_session_id=a.live_session_id,
                     change=change, currency=order.payable.currency, channel=CHANNEL_NAME.get(a.channel, ""),
                     share_code=a.share_code)


def _social_fact(envelope: common_pb2.EventEnvelope, persona_id: str, channel: str, share_code: str,
                 change, currency: str = "") -> OrderFact:
    """A group or bargain event counted on the persona, channel and share code it carries,
    once by its event id, on the day it happened."""
    _checked(envelope)
    return OrderFact(event_id=envelope.event_id, merchant_id=envelope.merchant_id,
                     occurred_at=envelope.occurred_at.ToDatetime(tzinfo=timezone.utc), persona_id=persona_id,
                     content_id="", live_session_id="", change=change, currency=currency,
                     channel=channel if channel in CHANNEL_BY_NAME else "", share_code=share_code)


def _group_fact(envelope: common_pb2.EventEnvelope, ref: events_pb2.GroupOrderRef) -> OrderFact:
    return _social_fact(envelope, ref.persona_id, ref.channel, ref.share_code, funnels.group_joined())


def _bargain_fact(envelope: common_pb2.EventEnvelope, bargain: events_pb2.BargainEvent, change) -> OrderFact:
    return _social_fact(envelope, bargain.persona_id, CHANNEL_NAME.get(bargain.channel, ""), bargain.share_code,
                        change, bargain.price.currency)


def _paid_at(envelope: common_pb2.EventEnvelope, order):
    """When the order was paid: the day its sale (and any refund of it) counts on."""
    source = order.paid_at if order.HasField("paid_at") else envelope.occurred_at
    return source.ToDatetime(tzinfo=timezone.utc)


def _recharge(order) -> bool:
    """A stored-value recharge is no sale: the orders its balance later pays for are."""
    return order.kind == order_pb2.ORDER_KIND_RECHARGE


def paid_change(order):
    """What order.paid adds to a funnel; None for a recharge. A poison message when the
    amount cannot be one."""
    if _recharge(order):
        return None
    try:
        return funnels.order_paid(order.payable.amount)
    except ValueError as error:
        raise Poison(str(error)) from error


def refunded_change(order, refund):
    """What order.refunded takes from a funnel (the order shows its refunded total with
    this refund in it); None for a recharge. A poison message when it cannot be one."""
    if _recharge(order):
        return None
    if not funnels.valid_cause(refund.refund_id):
        raise Poison(f"refund id {refund.refund_id!r} is not one")
    amount = refund.amount.amount
    after = order.refunded_amount.amount
    fully = after >= order.payable.amount > after - amount
    try:
        return funnels.order_refunded(amount, fully)
    except ValueError as error:
        raise Poison(str(error)) from error


def subscriptions(use_cases: FunnelUseCases, cohorts: CohortUseCases | None = None) -> list[Subscription]:
    async def on_placed(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPlaced) -> None:
        if not _recharge(payload.order):
            await use_cases.record(_fact(envelope, payload.order, funnels.order_placed()))

    async def on_paid(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPaid) -> None:
        order = payload.order
        change = paid_change(order)
        if change is None:
            return
        await use_cases.record(_fact(envelope, order, change, at=_paid_at(envelope, order)))
        if cohorts is not None and order.member_id:
            a = order.attribution
            await cohorts.record_paid(PaidFact(
                merchant_id=envelope.merchant_id, member_id=order.member_id, order_id=order.order_id,
                paid_at=_paid_at(envelope, order), amount=order.payable.amount,
                channel=CHANNEL_NAME.get(a.channel, ""), persona_id=a.persona_id))

    async def on_refunded(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderRefunded) -> None:
        order, refund = payload.order, payload.refund
        change = refunded_change(order, refund)
        if change is None:
            return
        await use_cases.record(_fact(envelope, order, change, cause=refund.refund_id, at=_paid_at(envelope, order)))
        if cohorts is not None and order.member_id:
            await cohorts.record_refund(RefundFact(merchant_id=envelope.merchant_id, member_id=order.member_id,
                                                   order_id=order.order_id, refund_id=refund.refund_id, amount=refund.amount.amount))

    # A paid order that opened or joined a group takes one slot: one group join each.
    async def on_group(envelope: common_pb2.EventEnvelope, payload) -> None:
        await use_cases.record(_group_fact(envelope, payload.order))

    async def on_bargain_started(envelope: common_pb2.EventEnvelope, payload: events_pb2.BargainStarted) -> None:
        await use_cases.record(_bargain_fact(envelope, payload.bargain, funnels.bargain_started()))

    async def on_bargain_helped(envelope: common_pb2.EventEnvelope, payload: events_pb2.BargainHelped) -> None:
        await use_cases.record(_bargain_fact(envelope, payload.bargain, funnels.bargain_helped()))

    return [
        Subscription.to("content-funnel-order-placed", events_pb2.OrderPlaced, on_placed),
        Subscription.to("content-funnel-order-paid", events_pb2.OrderPaid, on_paid),
        Subscription.to("content-funnel-order-refunded", events_pb2.OrderRefunded, on_refunded),
        Subscription.to("content-funnel-group-opened", events_pb2.GroupOpened, on_group),
        Subscription.to("content-funnel-group-joined", events_pb2.GroupJoined, on_group),
        Subscription.to("content-funnel-bargain-started", events_pb2.BargainStarted, on_bargain_started),
        Subscription.to("content-funnel-bargain-helped", events_pb2.BargainHelped, on_bargain_helped),
    ]


# ---- recommendations ----
def recommendation_subscriptions(recommendations) -> list[Subscription]:
    """order.paid feeds co-purchase pairs, the member's purchases and units sold by day
    (each once per event id); the member's profile events keep the personalisation switch
    (newest profile version wins, older or repeated events change nothing)."""
    async def on_paid(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPaid) -> None:
        order = payload.order
        if _recharge(order):
            return
        _checked(envelope)
        try:
            units = rules.units_by_product((line.product_id, line.quantity) for line in order.lines)
        except ValueError as error:
            raise Poison(str(error)) from error
        if not all(is_id(p, "prd") for p in units):
            raise Poison("an order line's product is not a prd_ id")
        paid_ms = int(_paid_at(envelope, order).timestamp() * 1000)
        await recommendations.record_paid(PaidOrderFact(event_id=envelope.event_id, merchant_id=envelope.merchant_id,
                                                        member_id=order.member_id, paid_ms=paid_ms, units=units))

    async def on_profile(envelope: common_pb2.EventEnvelope, payload: member_events.MemberProfileUpdated) -> None:
        if "personalised_recommendations" not in payload.changed:
            return
        profile = payload.profile
        version = profile.version or envelope.aggregate_version
        if not (envelope.merchant_id and is_id(profile.member_id, "mem") and version > 0):
            raise Poison("a profile event needs a merchant, a member and a version")
        await recommendations.record_switch(envelope.merchant_id, profile.member_id,
                                            profile.personalised_recommendations, version)

    return [
        Subscription.to("content-recs-order-paid", events_pb2.OrderPaid, on_paid),
        Subscription.to("content-recs-profile-updated", member_events.MemberProfileUpdated, on_profile),
    ]
# ---- end of recommendations ----
