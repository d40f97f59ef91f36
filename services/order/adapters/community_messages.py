"""Protobuf views of community group buy: leaders (the phone masked), campaigns, pick
lists, the leader's dashboard, settings; and its outbox events."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import CHANNEL_BY_NAME, money, timestamp

from services.order.domain.community import (Campaign, CampaignClosed, CampaignState, CommunityLeader,
                                             CommunitySettings, LeaderPick, PickLine, PickupPoint, UncollectedAction,
                                             mask_phone)
from services.order.domain.orders import Order

LEADER_STATE = {"PENDING": order_pb2.COMMUNITY_LEADER_STATE_PENDING,
                "APPROVED": order_pb2.COMMUNITY_LEADER_STATE_APPROVED,
                "REJECTED": order_pb2.COMMUNITY_LEADER_STATE_REJECTED}
LEADER_STATE_BACK = {v: k for k, v in LEADER_STATE.items()}
CAMPAIGN_STATE = {CampaignState.SCHEDULED: order_pb2.CAMPAIGN_STATE_SCHEDULED,
                  CampaignState.OPEN: order_pb2.CAMPAIGN_STATE_OPEN,
                  CampaignState.CLOSED: order_pb2.CAMPAIGN_STATE_CLOSED}
ACTION = {UncollectedAction.REFUND: order_pb2.UNCOLLECTED_ACTION_REFUND,
          UncollectedAction.KEEP: order_pb2.UNCOLLECTED_ACTION_KEEP}
ACTION_BACK = {v: k for k, v in ACTION.items()}


def pickup_point_of(p: order_pb2.PickupPoint) -> PickupPoint:
    return PickupPoint(pickup_point_id="", name=p.name, region_code=p.region_code, detail=p.detail,
                       opening_hours=p.opening_hours, capacity_per_day=p.capacity_per_day,
                       contact_phone=p.contact_phone)


def pickup_point(p: PickupPoint) -> order_pb2.PickupPoint:
    return order_pb2.PickupPoint(pickup_point_id=p.pickup_point_id, name=p.name, region_code=p.region_code,
                                 detail=p.detail, opening_hours=p.opening_hours, capacity_per_day=p.capacity_per_day,
                                 contact_phone=mask_phone(p.contact_phone))


def leader(l: CommunityLeader) -> order_pb2.CommunityLeader:
    return order_pb2.CommunityLeader(leader_id=l.id, member_id=l.member_id, name=l.name,
                                     pickup_point=pickup_point(l.pickup_point), state=LEADER_STATE[l.state.value],
                                     enabled=l.enabled, reject_reason=l.reject_reason,
                                     created_at=timestamp(l.created_at))


def campaign(c: Campaign, state: CampaignState, shown_leader: CommunityLeader | None = None,
             currency: str = "CNY") -> order_pb2.CommunityCampaign:
    msg = order_pb2.CommunityCampaign(
        campaign_id=c.id, title=c.title,
        lines=[order_pb2.CampaignLine(sku_id=l.sku_id, title=l.title, price=money(l.price, currency),
                                      list_price=money(l.list_price, currency), per_member_limit=l.per_member_limit)
               for l in c.lines],
        starts_at=timestamp(c.starts_at), cut_off_at=timestamp(c.cut_off_at), pickup_date=c.pickup_date,
        leader_rate_bp=c.leader_rate_bp, state=CAMPAIGN_STATE[state])
    if shown_leader is not None:
        msg.leader.CopyFrom(leader(shown_leader))
    return msg


def pick_lines(lines: Sequence[PickLine]) -> list[order_pb2.PickListLine]:
    return [order_pb2.PickListLine(sku_id=l.sku_id, title=l.title, units=l.units) for l in lines]


def leader_pick(p: LeaderPick, who: CommunityLeader | None) -> order_pb2.LeaderPickList:
    msg = order_pb2.LeaderPickList(leader_id=p.leader_id, orders=p.orders, lines=pick_lines(p.lines))
    if who is not None:
        msg.leader_name = who.name
        msg.pickup_point.CopyFrom(pickup_point(who.pickup_point))
    return msg


def mask_member(member_id: str) -> str:
    return f"{member_id[:6]}***{member_id[-4:]}" if len(member_id) > 10 else "***"


def dashboard_order(o: Order, picked_up: bool) -> order_pb2.LeaderDashboardOrder:
    return order_pb2.LeaderDashboardOrder(order_id=o.id, buyer=mask_member(o.member_id),
                                          state=order_pb2.OrderState.Value(f"ORDER_STATE_{o.state.value}"),
                                          payable=money(o.payable, o.currency), picked_up=picked_up)


def settings(s: CommunitySettings) -> order_pb2.CommunitySettings:
    return order_pb2.CommunitySettings(uncollected_days=s.uncollected_days,
                                       uncollected_action=ACTION[s.uncollected_action])


def settings_of(m: order_pb2.CommunitySettings) -> CommunitySettings:
    return CommunitySettings(uncollected_days=m.uncollected_days,
                             uncollected_action=ACTION_BACK.get(m.uncollected_action, UncollectedAction.REFUND))


# ---- events ----------------------------------------------------------------------------

def campaign_event(c: Campaign, e, version: int) -> Event:
    if isinstance(e, CampaignClosed):
        payload = events_pb2.CommunityCampaignClosed(campaign_id=c.id, cut_off_at=timestamp(c.cut_off_at))
        return event_for(payload, merchant_id=c.merchant_id, aggregate_id=c.id, aggregate_version=version,
                         occurred_at=e.at)
    raise TypeError(f"no event for {type(e).__name__}")


def batch_event(b, key: str, order_ids: Sequence[str], version: int) -> Event:
    payload = events_pb2.CommunityBatchDelivered(campaign_id=b.campaign_id, leader_id=b.leader_id,
                                                 order_ids=list(order_ids))
    return event_for(payload, merchant_id=b.merchant_id, aggregate_id=key, aggregate_version=version,
                     occurred_at=b.delivered_at)


def pickup_event(merchant_id: str, o: Order, confirmed_by: str, at: datetime) -> Event:
    a = o.attribution
    payload = events_pb2.CommunityPickupConfirmed(
        campaign_id=o.activity.activity_id, leader_id=o.activity.leader_id, order_id=o.id, member_id=o.member_id,
        attribution=common_pb2.Attribution(channel=CHANNEL_BY_NAME.get(a.get("channel", ""), 0),
                                           persona_id=a.get("persona_id", ""), content_id=a.get("content_id", ""),
                                           live_session_id=a.get("live_session_id", ""),
                                           share_code=a.get("share_code", "")),
        confirmed_by=confirmed_by)
    return event_for(payload, merchant_id=merchant_id, aggregate_id=o.id, aggregate_version=1, channel=o.channel,
                     occurred_at=at)
