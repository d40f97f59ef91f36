"""Group buy ⇄ proto: activities, groups (as a member, the member themself, or staff see
them) and the group events."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import money, timestamp

from services.order.application.group_buy_ports import OrderRef
from services.order.application.ports import ActivityPool
from services.order.domain.group_buys import (ActivityTerms, FullGroupPayment, Group, GroupBuyActivity, GroupBuySku,
                                              GroupState)

_PAYMENT = {FullGroupPayment.REFUND: order_pb2.FULL_GROUP_PAYMENT_REFUND,
            FullGroupPayment.OPEN_NEW_GROUP: order_pb2.FULL_GROUP_PAYMENT_OPEN_NEW_GROUP}
_PAYMENT_OF = {v: k for k, v in _PAYMENT.items()}


def full_group_payment_of(value: int) -> FullGroupPayment | None:
    """None for unspecified (the default, or unchanged)."""
    return _PAYMENT_OF.get(value)


def terms_of(msg: order_pb2.GroupBuyActivityInput) -> ActivityTerms:
    return ActivityTerms(
        title=msg.title, product_id=msg.product_id,
        skus=tuple(GroupBuySku(sku_id=s.sku_id, group_price=s.group_price.amount, leader_price=s.leader_price.amount,
                               units=s.units) for s in msg.skus),
        starts_at=msg.starts_at.ToDatetime(tzinfo=timezone.utc), ends_at=msg.ends_at.ToDatetime(tzinfo=timezone.utc),
        group_size=msg.group_size, group_hours=msg.group_hours, per_member_limit=msg.per_member_limit,
        virtual_fill_bp=msg.virtual_fill_bp,
        full_group_payment=full_group_payment_of(msg.full_group_payment) or FullGroupPayment.REFUND,
        allow_coupons=msg.allow_coupons, pay_commission=msg.pay_commission)


def activity(a: GroupBuyActivity, pools: dict[str, ActivityPool] | None = None) -> order_pb2.GroupBuyActivity:
    t = a.terms
    pools = pools or {}
    skus = []
    for s in t.skus:
        p = pools.get(s.sku_id)
        skus.append(order_pb2.GroupBuySku(
            sku_id=s.sku_id, group_price=money(s.group_price), leader_price=money(s.leader_price or s.group_price),
            list_price=money(p.list_price if p else 0), pool_id=s.pool_id, units=s.units,
            units_left=p.available if p else 0))
    return order_pb2.GroupBuyActivity(
        activity_id=a.id, title=t.title, product_id=t.product_id, skus=skus, group_size=t.group_size,
        group_hours=t.group_hours, starts_at=timestamp(t.starts_at), ends_at=timestamp(t.ends_at),
        per_member_limit=t.per_member_limit, virtual_fill_bp=t.virtual_fill_bp,
        full_group_payment=_PAYMENT[t.full_group_payment], allow_coupons=t.allow_coupons,
        pay_commission=t.pay_commission,
        state=order_pb2.GroupBuyActivityState.Value(f"GROUP_BUY_ACTIVITY_STATE_{a.state.value}"), version=a.version)


def group(g: Group, now: datetime, *, staff: bool = False, viewer: str = "") -> order_pb2.GroupBuyGroup:
    """Members in the order they joined; member and order ids only for staff, or the
    viewer's own entry."""
    leader = g.leader
    members = [order_pb2.GroupMember(
        nickname=m.nickname, avatar_url=m.avatar_url, leader=m.leader, joined_at=timestamp(m.joined_at),
        member_id=m.member_id if staff or m.member_id == viewer else "",
        order_id=m.order_id if staff or m.member_id == viewer else "")
        for m in sorted(g.members, key=lambda m: (not m.leader, m.joined_at))]
    return order_pb2.GroupBuyGroup(
        group_id=g.id, activity_id=g.activity_id, sku_id=g.sku_id,
        state=order_pb2.GroupState.Value(f"GROUP_STATE_{g.state.value}"), size=g.size, paid=g.paid,
        slots_left=g.slots_left if g.state is GroupState.OPEN and not g.is_expired(now) else 0,
        placeholders=g.placeholders, opened_at=timestamp(g.opened_at), expires_at=timestamp(g.expires_at),
        seconds_left=g.seconds_left(now), members=members, failed_reason=g.failed_reason,
        leader_nickname=leader.nickname if leader else "", leader_avatar_url=leader.avatar_url if leader else "")


def _ref(r: OrderRef) -> events_pb2.GroupOrderRef:
    return events_pb2.GroupOrderRef(order_id=r.order_id, member_id=r.member_id, share_code=r.share_code,
                                    persona_id=r.persona_id, channel=r.channel, leader=r.leader)


def refs_of(g: Group) -> list[OrderRef]:
    return [OrderRef(order_id=m.order_id, member_id=m.member_id, leader=m.leader, share_code=m.share_code,
                     persona_id=m.persona_id, channel=m.channel) for m in g.members]


def _event(payload, g: Group, version: int, at: datetime, channel: str = "") -> Event:
    return event_for(payload, merchant_id=g.merchant_id, aggregate_id=g.id, aggregate_version=version,
                     channel=channel, occurred_at=at)


def opened(g: Group, ref: OrderRef, at: datetime) -> Event:
    return _event(events_pb2.GroupOpened(group=group(g, at, staff=True), order=_ref(ref)), g, g.paid, at,
                  ref.channel)


def joined(g: Group, ref: OrderRef, at: datetime) -> Event:
    return _event(events_pb2.GroupJoined(group=group(g, at, staff=True), order=_ref(ref)), g, g.paid, at,
                  ref.channel)


def formed(g: Group, at: datetime) -> Event:
    return _event(events_pb2.GroupFormed(group=group(g, at, staff=True), orders=[_ref(r) for r in refs_of(g)]),
                  g, g.paid + 1, at)


def failed(g: Group, at: datetime) -> Event:
    return _event(events_pb2.GroupFailed(group=group(g, at, staff=True), orders=[_ref(r) for r in refs_of(g)],
                                         reason=g.failed_reason), g, g.paid + 1, at)
