"""Group-buy activities, groups and tickets in MongoDB.

A group keeps its members in a map keyed by member id and its orders in a map keyed by
order id, so "neither this member nor this order is in it yet" is part of the one
conditional update that takes a slot (`members.<member>` and `orders.<order>` absent),
with `paid` raised by `$inc` and guarded by the size: a group never has more paid members
than its size. The group's events live in its own outbox."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.events.outbox import Event, add_to_update, committed, for_insert
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import save_change

from services.order.adapters import group_buy_messages as gm
from services.order.application.group_buy_ports import OrderRef, Ticket
from services.order.domain.group_buys import (ActivityState, ActivityTerms, Expiry, FullGroupPayment, Group,
                                              GroupBuyActivity, GroupBuySku, GroupMember, GroupState)


class GroupBuyActivityDoc(Document):
    id = StringField(primary_key=True)  # gba_…
    merchant_id = StringField(required=True)
    idempotency_key = StringField(required=True)
    state = StringField(required=True)
    ends_ms = IntField(required=True)
    version = IntField(required=True)

    meta = {"collection": "group_buy_activities", "strict": False,
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True},
                        {"fields": ["merchant_id", "state", "ends_ms"]}]}


class GroupDoc(Document):
    id = StringField(primary_key=True)  # grp_…
    merchant_id = StringField(required=True)
    activity_id = StringField(required=True)
    state = StringField(required=True)
    paid = IntField(required=True)
    size = IntField(required=True)
    expires_at = DateTimeField(required=True)
    expires_ms = IntField(required=True)

    meta = {"collection": "group_buy_groups", "strict": False,
            "indexes": [{"fields": ["state", "expires_ms"]},
                        {"fields": ["merchant_id", "activity_id", "state", "expires_ms"]}]}


class GroupTicketDoc(Document):
    id = StringField(primary_key=True)  # the order id
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    group_id = StringField(required=True)

    meta = {"collection": "group_buy_tickets", "strict": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}]}


def ensure_indexes() -> None:
    for doc in (GroupBuyActivityDoc, GroupDoc, GroupTicketDoc):
        doc.ensure_indexes()


def outbox_collections() -> list:
    return [GroupDoc._get_collection()]


# ---- activities ---------------------------------------------------------------------

def _terms_doc(t: ActivityTerms) -> dict:
    return {"title": t.title, "product_id": t.product_id,
            "skus": [{"sku_id": s.sku_id, "group_price": s.group_price, "leader_price": s.leader_price,
                      "units": s.units, "pool_id": s.pool_id} for s in t.skus],
            "starts_ms": epoch_ms(t.starts_at), "ends_ms": epoch_ms(t.ends_at), "group_size": t.group_size,
            "group_hours": t.group_hours, "per_member_limit": t.per_member_limit,
            "virtual_fill_bp": t.virtual_fill_bp, "full_group_payment": t.full_group_payment.value,
            "allow_coupons": int(t.allow_coupons), "pay_commission": int(t.pay_commission)}


def _utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _terms_of(d: dict) -> ActivityTerms:
    return ActivityTerms(
        title=d["title"], product_id=d["product_id"],
        skus=tuple(GroupBuySku(sku_id=s["sku_id"], group_price=int(s["group_price"]),
                               leader_price=int(s.get("leader_price") or 0), units=int(s["units"]),
                               pool_id=s.get("pool_id") or "") for s in d["skus"]),
        starts_at=_utc_ms(int(d["starts_ms"])), ends_at=_utc_ms(int(d["ends_ms"])), group_size=int(d["group_size"]),
        group_hours=int(d["group_hours"]), per_member_limit=int(d["per_member_limit"]),
        virtual_fill_bp=int(d.get("virtual_fill_bp") or 0),
        full_group_payment=FullGroupPayment(d.get("full_group_payment") or "REFUND"),
        allow_coupons=bool(d.get("allow_coupons")), pay_commission=bool(d.get("pay_commission")))


def _activity_of(d: dict) -> GroupBuyActivity:
    return GroupBuyActivity(id=d["_id"], merchant_id=d["merchant_id"], idempotency_key=d["idempotency_key"],
                            terms=_terms_of(d["terms"]), created_at=aware(d["created_at"]),
                            state=ActivityState(d["state"]), version=int(d["version"]),
                            request_hash=d.get("request_hash") or "")


class MongoGroupBuyActivities:
    # A job and the consumers read the same activity many times a second; staff changes
    # to it are seen within this long.
    CACHE_S = 2.0

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, GroupBuyActivity]] = {}

    @staticmethod
    def _c():
        return GroupBuyActivityDoc._get_collection()

    def _add(self, a: GroupBuyActivity) -> bool:
        try:
            self._c().insert_one({"_id": a.id, "merchant_id": a.merchant_id, "idempotency_key": a.idempotency_key,
                                  "terms": _terms_doc(a.terms), "state": a.state.value,
                                  "ends_ms": epoch_ms(a.terms.ends_at), "created_at": a.created_at,
                                  "version": a.version, "request_hash": a.request_hash})
        except DuplicateKeyError:
            return False
        return True

    async def add(self, activity: GroupBuyActivity) -> bool:
        return await run_sync(self._add, activity)

    def _one(self, query: dict) -> GroupBuyActivity | None:
        d = self._c().find_one(query)
        return _activity_of(d) if d else None

    async def by_key(self, merchant_id: str, idempotency_key: str) -> GroupBuyActivity | None:
        return await run_sync(self._one, {"merchant_id": merchant_id, "idempotency_key": idempotency_key})

    async def get(self, merchant_id: str, activity_id: str) -> GroupBuyActivity | None:
        return await run_sync(self._one, {"_id": activity_id, "merchant_id": merchant_id})

    async def cached(self, merchant_id: str, activity_id: str) -> GroupBuyActivity | None:
        key = (merchant_id, activity_id)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self.get(merchant_id, activity_id)
        if found is not None:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.CACHE_S, found)
        return found

    async def save(self, activity: GroupBuyActivity) -> None:
        if not activity.changed:
            return
        await run_sync(save_change, self._c(), {"_id": activity.id, "merchant_id": activity.merchant_id},
                       {"$set": {"terms": _terms_doc(activity.terms), "state": activity.state.value}},
                       version=activity.version)
        activity.version += 1
        activity.changed = False
        self._cache.pop((activity.merchant_id, activity.id), None)

    def _page(self, merchant_id: str, before_id: str, limit: int, on_ms: int | None) -> list[GroupBuyActivity]:
        query: dict = {"merchant_id": merchant_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        if on_ms is not None:
            query["state"] = ActivityState.ACTIVE.value
            query["ends_ms"] = {"$gt": on_ms}
        return [_activity_of(d) for d in self._c().find(query).sort("_id", DESCENDING).limit(limit)]

    async def page(self, merchant_id: str, before_id: str, limit: int, *, on_at: datetime | None = None
                   ) -> list[GroupBuyActivity]:
        return await run_sync(self._page, merchant_id, before_id, limit,
                              epoch_ms(on_at) if on_at is not None else None)


# ---- groups -------------------------------------------------------------------------

def _member_doc(m: GroupMember) -> dict:
    return {"order_id": m.order_id, "leader": int(m.leader), "joined_ms": epoch_ms(m.joined_at),
            "nickname": m.nickname, "avatar_url": m.avatar_url, "share_code": m.share_code,
            "persona_id": m.persona_id, "channel": m.channel}


def _group_of(d: dict) -> Group:
    members = tuple(GroupMember(member_id=mid, order_id=m["order_id"], leader=bool(m.get("leader")),
                                joined_at=_utc_ms(int(m["joined_ms"])), nickname=m.get("nickname") or "",
                                avatar_url=m.get("avatar_url") or "", share_code=m.get("share_code") or "",
                                persona_id=m.get("persona_id") or "", channel=m.get("channel") or "")
                    for mid, m in (d.get("members") or {}).items())
    return Group(id=d["_id"], merchant_id=d["merchant_id"], activity_id=d["activity_id"], sku_id=d["sku_id"],
                 size=int(d["size"]), state=GroupState(d["state"]), opened_at=_utc_ms(int(d["opened_ms"])),
                 expires_at=_utc_ms(int(d["expires_ms"])),
                 members=tuple(sorted(members, key=lambda m: (not m.leader, m.joined_at, m.member_id))),
                 placeholders=int(d.get("placeholders") or 0), failed_reason=d.get("failed_reason") or "")


class MongoGroupBuyGroups:
    @staticmethod
    def _c():
        return GroupDoc._get_collection()

    def _open(self, g: Group, ref: OrderRef) -> bool:
        leader = g.members[0]
        events: list[Event] = [gm.opened(g, ref, g.opened_at)]
        doc = {"_id": g.id, "merchant_id": g.merchant_id, "activity_id": g.activity_id, "sku_id": g.sku_id,
               "size": g.size, "state": g.state.value, "paid": 1, "placeholders": 0, "failed_reason": "",
               "opened_ms": epoch_ms(g.opened_at), "expires_at": g.expires_at, "expires_ms": epoch_ms(g.expires_at),
               "members": {leader.member_id: _member_doc(leader)}, "orders": {leader.order_id: leader.member_id},
               "updated_ms": epoch_ms(g.opened_at), **for_insert(*events)}
        try:
            self._c().insert_one(doc)
        except DuplicateKeyError:
            return False
        committed(self._c(), g.id, [e.event_id for e in events])
        return True

    async def open(self, group: Group, ref: OrderRef) -> bool:
        return await run_sync(self._open, group, ref)

    def _take(self, g: Group, m: GroupMember, ref: OrderRef, now: datetime, last: bool) -> bool:
        query = {"_id": g.id, "merchant_id": g.merchant_id, "state": GroupState.OPEN.value,
                 "expires_ms": {"$gt": epoch_ms(now)},
                 f"members.{m.member_id}": {"$exists": False}, f"orders.{m.order_id}": {"$exists": False},
                 "paid": g.size - 1 if last else {"$lt": g.size - 1}}
        after = Group(**{**g.__dict__, "members": g.members + (m,)})
        events = [gm.joined(after, ref, now)]
        sets = {f"members.{m.member_id}": _member_doc(m), f"orders.{m.order_id}": m.member_id,
                "updated_ms": epoch_ms(now)}
        if last:
            # The members read are the group's: they change only with `paid`, which the
            # filter holds at size − 1.
            after = Group(**{**after.__dict__, "state": GroupState.FORMED})
            events.append(gm.formed(after, now))
            sets["state"] = GroupState.FORMED.value
        update = add_to_update({"$set": sets, "$inc": {"paid": 1}}, *events)
        if self._c().update_one(query, update).modified_count != 1:
            return False
        committed(self._c(), g.id, [e.event_id for e in events])
        return True

    async def take(self, group: Group, member: GroupMember, ref: OrderRef, now: datetime, *, last: bool) -> bool:
        return await run_sync(self._take, group, member, ref, now, last)

    def _get(self, merchant_id: str, group_id: str) -> Group | None:
        d = self._c().find_one({"_id": group_id, "merchant_id": merchant_id})
        return _group_of(d) if d else None

    async def get(self, merchant_id: str, group_id: str) -> Group | None:
        return await run_sync(self._get, merchant_id, group_id)

    def _expired(self, now_ms: int, limit: int) -> list[Group]:
        query = {"state": GroupState.OPEN.value, "expires_ms": {"$lte": now_ms}}
        return [_group_of(d) for d in self._c().find(query).sort("expires_ms", ASCENDING).limit(limit)]

    async def expired(self, now: datetime, limit: int) -> list[Group]:
        return await run_sync(self._expired, epoch_ms(now), limit)

    def _close(self, g: Group, outcome: Expiry, now: datetime) -> bool:
        after = Group(**{**g.__dict__, "state": outcome.state, "placeholders": outcome.placeholders,
                         "failed_reason": outcome.reason})
        event = gm.formed(after, now) if outcome.state is GroupState.FORMED else gm.failed(after, now)
        try:
            save_change(self._c(), {"_id": g.id, "merchant_id": g.merchant_id, "state": GroupState.OPEN.value,
                                    "paid": g.paid},
                        {"$set": {"state": outcome.state.value, "placeholders": outcome.placeholders,
                                  "failed_reason": outcome.reason, "updated_ms": epoch_ms(now)}}, [event])
        except StaleVersion:
            return False
        return True

    async def close(self, group: Group, outcome: Expiry, now: datetime) -> bool:
        return await run_sync(self._close, group, outcome, now)

    def _joinable(self, merchant_id: str, activity_id: str, now_ms: int, limit: int) -> list[Group]:
        query = {"merchant_id": merchant_id, "activity_id": activity_id, "state": GroupState.OPEN.value,
                 "expires_ms": {"$gt": now_ms}}
        return [_group_of(d) for d in self._c().find(query).sort("expires_ms", ASCENDING).limit(limit)]

    async def joinable(self, merchant_id: str, activity_id: str, now: datetime, limit: int) -> list[Group]:
        return await run_sync(self._joinable, merchant_id, activity_id, epoch_ms(now), limit)

    def _among(self, merchant_id: str, group_ids: list[str]) -> list[Group]:
        if not group_ids:
            return []
        return [_group_of(d) for d in self._c().find({"merchant_id": merchant_id, "_id": {"$in": group_ids}})]

    async def among(self, merchant_id: str, group_ids: list[str]) -> list[Group]:
        return await run_sync(self._among, merchant_id, list(group_ids))


# ---- tickets ------------------------------------------------------------------------

def _ticket_of(d: dict) -> Ticket:
    return Ticket(order_id=d["_id"], merchant_id=d["merchant_id"], member_id=d["member_id"],
                  activity_id=d["activity_id"], group_id=d["group_id"], leader=bool(d.get("leader")),
                  nickname=d.get("nickname") or "", avatar_url=d.get("avatar_url") or "",
                  created_at=aware(d["created_at"]))


class MongoGroupBuyTickets:
    @staticmethod
    def _c():
        return GroupTicketDoc._get_collection()

    def _put(self, t: Ticket) -> None:
        try:
            self._c().insert_one({"_id": t.order_id, "merchant_id": t.merchant_id, "member_id": t.member_id,
                                  "activity_id": t.activity_id, "group_id": t.group_id, "leader": int(t.leader),
                                  "nickname": t.nickname, "avatar_url": t.avatar_url, "created_at": t.created_at})
        except DuplicateKeyError:
            pass

    async def put(self, ticket: Ticket) -> None:
        await run_sync(self._put, ticket)

    def _get(self, merchant_id: str, order_id: str) -> Ticket | None:
        d = self._c().find_one({"_id": order_id, "merchant_id": merchant_id})
        return _ticket_of(d) if d else None

    async def get(self, merchant_id: str, order_id: str) -> Ticket | None:
        return await run_sync(self._get, merchant_id, order_id)

    def _of_member(self, merchant_id: str, member_id: str, limit: int) -> list[Ticket]:
        found = self._c().find({"merchant_id": merchant_id, "member_id": member_id}).sort("_id", DESCENDING)
        return [_ticket_of(d) for d in found.limit(limit)]

    async def of_member(self, merchant_id: str, member_id: str, limit: int) -> list[Ticket]:
        return await run_sync(self._of_member, merchant_id, member_id, limit)

