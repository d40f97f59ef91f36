"""Bargains ⇄ protobuf: the API's messages and the events' payloads."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import CHANNEL_BY_NAME, money, timestamp

from services.order.domain import bargains as d
from services.order.domain.bargains import ActivityState, ActivityTerms, Bargain, BargainActivity

DEFAULT_TIME_LIMIT_S = int(d.DEFAULT_TIME_LIMIT.total_seconds())

ACTIVITY_STATE = {ActivityState.ACTIVE: order_pb2.BARGAIN_ACTIVITY_STATE_ACTIVE,
                  ActivityState.ENDED: order_pb2.BARGAIN_ACTIVITY_STATE_ENDED}
STATE = {d.BargainState.ACTIVE: order_pb2.BARGAIN_STATE_ACTIVE,
         d.BargainState.SUCCEEDED: order_pb2.BARGAIN_STATE_SUCCEEDED,
         d.BargainState.ORDERED: order_pb2.BARGAIN_STATE_ORDERED,
         d.BargainState.FAILED: order_pb2.BARGAIN_STATE_FAILED}


def _at(ts) -> datetime:
    return ts.ToDatetime(tzinfo=timezone.utc)


def terms_of(p: order_pb2.BargainActivityInput) -> ActivityTerms:
    return ActivityTerms(
        product_id="", sku_id=p.sku_id, title=p.title, start_price=p.start_price.amount,
        floor_price=p.floor_price.amount, helpers_needed=p.helpers_needed,
        time_limit_s=p.time_limit_s or DEFAULT_TIME_LIMIT_S, starts_at=_at(p.starts_at), ends_at=_at(p.ends_at),
        units=p.units, per_member_limit=p.per_member_limit or 1,
        helps_per_member=p.helps_per_member or d.DEFAULT_HELPS_PER_ACTIVITY,
        helps_per_day=p.helps_per_day or d.DEFAULT_HELPS_PER_DAY, buy_before_floor=p.buy_before_floor,
        bind_new_helpers=p.bind_new_helpers)


def activity(a: BargainActivity, units_left: int | None = None, staff: bool = False) -> order_pb2.BargainActivity:
    t = a.terms
    return order_pb2.BargainActivity(
        activity_id=a.id, product_id=t.product_id, sku_id=t.sku_id, title=t.title, list_price=money(a.list_price),
        start_price=money(t.start_price), floor_price=money(t.floor_price), helpers_needed=t.helpers_needed,
        time_limit_s=t.time_limit_s, starts_at=timestamp(t.starts_at), ends_at=timestamp(t.ends_at), units=t.units,
        units_left=units_left or 0, per_member_limit=t.per_member_limit, helps_per_member=t.helps_per_member,
        helps_per_day=t.helps_per_day, buy_before_floor=t.buy_before_floor, bind_new_helpers=t.bind_new_helpers,
        state=ACTIVITY_STATE[a.state], pool_id=a.pool_id if staff else "")


def bargain(b: Bargain, *, viewer_id: str = "", now: datetime, staff: bool = False) -> order_pb2.Bargain:
    mine = bool(viewer_id) and viewer_id == b.member_id
    return order_pb2.Bargain(
        bargain_id=b.id, activity_id=b.activity_id, sku_id=b.sku_id, start_price=money(b.start_price),
        floor_price=money(b.floor_price), price=money(b.price), helpers_needed=b.helpers_needed,
        helpers_left=b.helpers_needed - b.helped,
        helps=[order_pb2.BargainHelp(nickname=h.nickname, cut=money(h.cut), helped_at=timestamp(h.at),
                                     mine=bool(viewer_id) and h.member_id == viewer_id,
                                     member_id=h.member_id if staff else "") for h in b.helps],
        state=STATE[b.state], started_at=timestamp(b.started_at), expires_at=timestamp(b.expires_at),
        seconds_left=b.seconds_left(now), mine=mine, buy_before_floor=b.buy_before_floor,
        order_id=b.order_id if (mine or staff) else "", member_id=b.member_id if staff else "",
        seed=b.seed if staff else 0)


def _payload(b: Bargain) -> events_pb2.BargainEvent:
    return events_pb2.BargainEvent(
        bargain_id=b.id, activity_id=b.activity_id, member_id=b.member_id, sku_id=b.sku_id, price=money(b.price),
        helped=b.helped, helpers_needed=b.helpers_needed, channel=CHANNEL_BY_NAME.get(b.attribution.channel, 0),
        persona_id=b.attribution.persona_id, share_code=b.attribution.share_code)


def events(b: Bargain, version: int, now: datetime) -> list[Event]:
    """The bargain's recorded events as outbox entries, each carrying the start's attribution."""
    out = []
    for e in b.pull_events():
        p = _payload(b)
        if isinstance(e, d.BargainStarted):
            msg = events_pb2.BargainStarted(bargain=p)
        elif isinstance(e, d.BargainHelped):
            p.price.CopyFrom(money(e.price))
            msg = events_pb2.BargainHelped(bargain=p, helper_id=e.helper_id, cut=money(e.cut))
        elif isinstance(e, d.BargainSucceeded):
            msg = events_pb2.BargainSucceeded(bargain=p)
        elif isinstance(e, d.BargainOrdered):
            msg = events_pb2.BargainOrdered(bargain=p, order_id=e.order_id)
        elif isinstance(e, d.BargainFailed):
            msg = events_pb2.BargainFailed(bargain=p)
        else:
            raise TypeError(f"unknown bargain event {type(e).__name__}")
        out.append(event_for(msg, merchant_id=b.merchant_id, aggregate_id=b.id, aggregate_version=version,
                             channel=b.attribution.channel, occurred_at=now))
    return out
