"""Proto mapping of the staff's member views (search and 360°)."""
from __future__ import annotations

from datetime import timezone

from siyu.member.v1 import member_pb2

from services.member.adapters.profile_messages import profile_proto
from services.member.application.member_views import Member360, MemberCard, SearchQuery
from siyu_kit.protos import CHANNEL_BY_NAME, CHANNEL_NAME, timestamp


def _tier(name: str) -> int:
    return member_pb2.Tier.Value(f"TIER_{name}") if name else member_pb2.TIER_UNSPECIFIED


def _tier_name(value: int) -> str:
    """"" for unspecified; a number outside the enum gives a name the use case refuses."""
    if not value:
        return ""
    try:
        return member_pb2.Tier.Name(value).removeprefix("TIER_")
    except ValueError:
        return str(value)


def query_of(request: member_pb2.SearchMembersRequest) -> SearchQuery:
    def moment(name: str):
        return getattr(request, name).ToDatetime(tzinfo=timezone.utc) if request.HasField(name) else None

    consent = {member_pb2.CONSENT_FILTER_GIVEN: True, member_pb2.CONSENT_FILTER_NOT_GIVEN: False}
    channel = CHANNEL_NAME.get(request.channel, str(request.channel)) if request.channel else ""
    return SearchQuery(phone_suffix=request.phone_suffix, tier=_tier_name(request.tier),
                       registered_from=moment("registered_from"), registered_before=moment("registered_before"),
                       channel=channel, consent=consent.get(request.consent), tags=tuple(request.tags),
                       rfm_group=request.rfm_group, segment_id=request.segment_id, page_size=request.page_size,
                       page_token=request.page_token)


def card_proto(card: MemberCard) -> member_pb2.MemberCard:
    return member_pb2.MemberCard(
        member_id=card.member_id, nickname=card.nickname, avatar_url=card.avatar_url,
        phone_masked=card.phone_masked, tier=_tier(card.tier), growth=card.growth,
        registered_at=timestamp(card.registered_at), registered_channel=CHANNEL_BY_NAME.get(card.channel, 0),
        marketing_consent=card.consent, tags=list(card.tags), rfm_group=card.rfm_group)


def member_360_proto(view: Member360) -> member_pb2.Member360:
    s = view.standing
    out = member_pb2.Member360(
        profile=profile_proto(view.profile), tier=_tier(s.level.tier), growth=s.growth,
        next_tier=_tier(s.next_tier), growth_to_next_tier=s.growth_needed,
        points=member_pb2.MemberPointsOverview(
            balance=view.points.balance, available=view.points.available, frozen=view.points.frozen,
            expiring=[member_pb2.PointsExpiring(points=e.points, expires_at=timestamp(e.expires_at))
                      for e in view.points.expiring]),
        coupons=[member_pb2.CouponStateCount(state=member_pb2.MemberCouponState.Value(f"MEMBER_COUPON_STATE_{k}"),
                                             count=n) for k, n in view.coupons.items()],
        registered_at=timestamp(view.card.registered_at),
        registered_channel=CHANNEL_BY_NAME.get(view.card.channel, 0))
    if view.balance is not None:
        out.balance.principal, out.balance.bonus = view.balance
    if view.facts is not None:
        f = view.facts
        out.tags.extend(f.tags)
        if f.recency or f.frequency or f.monetary or f.rfm_group:
            out.rfm.CopyFrom(member_pb2.RfmScores(recency=f.recency, frequency=f.frequency, monetary=f.monetary,
                                                  group=f.rfm_group))
    o = view.orders
    if o is None:
        out.orders.available = False
    else:
        out.orders.CopyFrom(member_pb2.MemberOrdersOverview(
            available=True, order_count=o.order_count, paid_count=o.paid_count, paid_amount=o.paid_amount,
            refunded_amount=o.refunded_amount, last_order_id=o.last_order_id,
            last_order_at=timestamp(o.last_order_at), last_order_state=o.last_order_state,
            last_order_payable=o.last_order_payable))
    r = view.referral
    out.referral.invitee_count = r.invitee_count
    if r.referrer is not None:
        out.referral.referrer.CopyFrom(card_proto(r.referrer))
    out.referral.invitees.extend(card_proto(c) for c in r.invitees)
    return out
