"""Bargain activities, bargains and the per-member help counters in MongoDB.

A bargain is one document: its cuts (drawn at start), its helps (an array of
sub-documents replaced whole by `$set` under the version check, never `$push`), its state
and its outbox. `open_key` ((activity, member) while ACTIVE or SUCCEEDED, unset after) has a
sparse unique index: a member has one open bargain per activity however many starts race.
Times queried by range are epoch milliseconds written at insert (`expires_ms`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms
from siyu_kit.repository import insert_new, save_change

from services.order.adapters import bargain_messages as bm
from services.order.domain.bargains import (OPEN_STATES, ActivityState, ActivityTerms, Attribution, Bargain,
                                            BargainActivity, BargainState, Help)


class BargainActivityDoc(Document):
    id = StringField(primary_key=True)  # bga_…
    merchant_id = StringField(required=True)
    key = StringField(required=True)  # the creating call's idempotency key
    version = IntField(required=True)
    state = StringField(required=True)
    starts_ms = IntField(required=True)
    ends_ms = IntField(required=True)

    meta = {"collection": "bargain_activities", "strict": False,
            "indexes": [{"fields": ["merchant_id", "key"], "unique": True},
                        {"fields": ["merchant_id", "state"]}]}


class BargainDoc(Document):
    id = StringField(primary_key=True)  # bgn_…
    merchant_id = StringField(required=True)
    version = IntField(required=True)
    activity_id = StringField(required=True)
    member_id = StringField(required=True)
    state = StringField(required=True)
    expires_at = DateTimeField(required=True)
    expires_ms = IntField(required=True)
    open_key = StringField()

    meta = {"collection": "bargains", "strict": False,
            "indexes": [{"fields": ["open_key"], "unique": True, "sparse": True},
                        {"fields": ["merchant_id", "member_id"]},
                        {"fields": ["state", "expires_ms"]}]}


class BargainHelpCounterDoc(Document):
    id = StringField(primary_key=True)  # merchant:activity:member[:day]
    merchant_id = StringField(required=True)
    n = IntField(required=True)

    meta = {"collection": "bargain_help_counters", "strict": False}


def ensure_indexes() -> None:
    for doc in (BargainActivityDoc, BargainDoc, BargainHelpCounterDoc):
        doc.ensure_indexes()


def outbox_collections() -> list:
    return [BargainDoc._get_collection()]


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# ---- activities -------------------------------------------------------------------------

def _terms_doc(t: ActivityTerms) -> dict[str, Any]:
    return {"product_id": t.product_id, "sku_id": t.sku_id, "title": t.title, "start_price": t.start_price,
            "floor_price": t.floor_price, "helpers_needed": t.helpers_needed, "time_limit_s": t.time_limit_s,
            "starts_ms": epoch_ms(t.starts_at), "ends_ms": epoch_ms(t.ends_at), "units": t.units,
            "per_member_limit": t.per_member_limit, "helps_per_member": t.helps_per_member,
            "helps_per_day": t.helps_per_day, "buy_before_floor": int(t.buy_before_floor),
            "bind_new_helpers": int(t.bind_new_helpers)}


def activity_of(doc: dict | None) -> BargainActivity | None:
    if doc is None:
        return None
    t = ActivityTerms(
        product_id=doc["product_id"], sku_id=doc["sku_id"], title=doc.get("title") or "",
        start_price=doc["start_price"], floor_price=doc["floor_price"], helpers_needed=doc["helpers_needed"],
        time_limit_s=doc["time_limit_s"], starts_at=_ms_time(doc["starts_ms"]), ends_at=_ms_time(doc["ends_ms"]),
        units=doc["units"], per_member_limit=doc["per_member_limit"], helps_per_member=doc["helps_per_member"],
        helps_per_day=doc["helps_per_day"], buy_before_floor=bool(doc["buy_before_floor"]),
        bind_new_helpers=bool(doc["bind_new_helpers"]))
    return BargainActivity(id=doc["_id"], merchant_id=doc["merchant_id"], version=doc["version"], terms=t,
                           pool_id=doc["pool_id"], list_price=doc["list_price"], state=ActivityState(doc["state"]),
                           created_at=aware(doc["created_at"]))


class MongoBargainActivities:
    @staticmethod
    def _c():
        return BargainActivityDoc._get_collection()

    async def get(self, merchant_id: str, activity_id: str) -> BargainActivity | None:
        return await run_sync(lambda: activity_of(self._c().find_one({"_id": activity_id, "merchant_id": merchant_id})))

    async def by_key(self, merchant_id: str, idempotency_key: str) -> BargainActivity | None:
        return await run_sync(lambda: activity_of(self._c().find_one({"merchant_id": merchant_id,
                                                                      "key": idempotency_key})))

    async def add(self, activity: BargainActivity, idempotency_key: str) -> bool:
        a = activity
        doc = {"_id": a.id, "merchant_id": a.merchant_id, "key": idempotency_key, "version": a.version,
               "pool_id": a.pool_id, "list_price": a.list_price, "state": a.state.value, "created_at": a.created_at,
               **_terms_doc(a.terms)}
        return await run_sync(insert_new, self._c(), doc)

    async def save(self, activity: BargainActivity) -> None:
        a = activity
        await run_sync(save_change, self._c(), {"_id": a.id, "merchant_id": a.merchant_id},
                       {"$set": {"state": a.state.value, **_terms_doc(a.terms)}}, version=a.version)
        a.version += 1

    async def page(self, merchant_id: str, before_id: str, limit: int, open_at: datetime | None = None,
                   ) -> list[BargainActivity]:
        query: dict[str, Any] = {"merchant_id": merchant_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        if open_at is not None:
            now = epoch_ms(open_at)
            query.update(state=ActivityState.ACTIVE.value, starts_ms={"$lte": now}, ends_ms={"$gt": now})

        def read() -> list[BargainActivity]:
            return [activity_of(d) for d in self._c().find(query).sort("_id", DESCENDING).limit(limit)]
        return await run_sync(read)


# ---- bargains ------------------------------------------------------------------------------

def _open_key(b: Bargain) -> str:
    return f"{b.merchant_id}:{b.activity_id}:{b.member_id}"


def _helps_doc(helps) -> list[dict]:
    return [{"m": h.member_id, "n": h.nickname, "c": h.cut, "at_ms": epoch_ms(h.at)} for h in helps]


def bargain_of(doc: dict | None) -> Bargain | None:
    if doc is None:
        return None
    a = doc.get("attribution") or {}
    return Bargain(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=doc["version"], activity_id=doc["activity_id"],
        member_id=doc["member_id"], sku_id=doc["sku_id"], start_price=doc["start_price"],
        floor_price=doc["floor_price"], seed=doc["seed"], cuts=tuple(doc["cuts"]), state=BargainState(doc["state"]),
        started_at=_ms_time(doc["started_ms"]), expires_at=_ms_time(doc["expires_ms"]),
        attribution=Attribution(channel=a.get("channel", ""), persona_id=a.get("persona_id", ""),
                                share_code=a.get("share_code", "")),
        helps=tuple(Help(member_id=h["m"], nickname=h.get("n") or "", cut=h["c"], at=_ms_time(h["at_ms"]))
                    for h in doc.get("helps") or []),
        buy_before_floor=bool(doc.get("buy_before_floor")), order_id=doc.get("order_id") or "",
        finished_at=_ms_time(doc["finished_ms"]) if doc.get("finished_ms") else None)


class MongoBargains:
    @staticmethod
    def _c():
        return BargainDoc._get_collection()

    async def get(self, merchant_id: str, bargain_id: str) -> Bargain | None:
        return await run_sync(lambda: bargain_of(self._c().find_one({"_id": bargain_id, "merchant_id": merchant_id})))

    async def open_of(self, merchant_id: str, activity_id: str, member_id: str) -> Bargain | None:
        key = f"{merchant_id}:{activity_id}:{member_id}"
        return await run_sync(lambda: bargain_of(self._c().find_one({"open_key": key})))

    async def add(self, bargain: Bargain) -> bool:
        b = bargain
        doc = {"_id": b.id, "merchant_id": b.merchant_id, "version": b.version, "activity_id": b.activity_id,
               "member_id": b.member_id, "sku_id": b.sku_id, "start_price": b.start_price,
               "floor_price": b.floor_price, "seed": b.seed, "cuts": list(b.cuts), "state": b.state.value,
               "started_ms": epoch_ms(b.started_at), "expires_at": b.expires_at, "expires_ms": epoch_ms(b.expires_at),
               "attribution": {"channel": b.attribution.channel, "persona_id": b.attribution.persona_id,
                               "share_code": b.attribution.share_code},
               "helps": [], "buy_before_floor": int(b.buy_before_floor), "order_id": "", "open_key": _open_key(b)}
        return await run_sync(insert_new, self._c(), doc, bm.events(b, b.version, b.started_at))

    async def save(self, bargain: Bargain) -> None:
        """The change and its events in one update on the version read (StaleVersion when
        another help, order or the expiry job came first)."""
        b = bargain
        version = b.next_version
        update: dict[str, Any] = {"$set": {"state": b.state.value, "helps": _helps_doc(b.helps),
                                           "order_id": b.order_id,
                                           "finished_ms": epoch_ms(b.finished_at) if b.finished_at else 0}}
        if b.state in OPEN_STATES:
            update["$set"]["open_key"] = _open_key(b)
        else:
            update["$unset"] = {"open_key": ""}
        events = bm.events(b, version, b.finished_at or (b.helps[-1].at if b.helps else b.started_at))
        await run_sync(save_change, self._c(), {"_id": b.id, "merchant_id": b.merchant_id}, update, events,
                       version=b.version)
        b.version = version

    async def of_member(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[Bargain]:
        query: dict[str, Any] = {"merchant_id": merchant_id, "member_id": member_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        return await run_sync(lambda: [bargain_of(d) for d in
                                       self._c().find(query).sort("_id", DESCENDING).limit(limit)])

    async def due(self, now: datetime, limit: int) -> list[Bargain]:
        query = {"state": {"$in": [s.value for s in OPEN_STATES]}, "expires_ms": {"$lte": epoch_ms(now)}}
        return await run_sync(lambda: [bargain_of(d) for d in self._c().find(query).limit(limit)])


# ---- help counters ----------------------------------------------------------------------

class MongoHelpCounters:
    """A counter per (activity, member) and per (activity, member, day): inserted empty
    first (a duplicate key means it exists), then one `$inc` conditional on being under the
    limit, so racing helps of one member never pass it."""

    @staticmethod
    def _c():
        return BargainHelpCounterDoc._get_collection()

    async def take(self, merchant_id: str, key: str, limit: int) -> bool:
        _id = f"{merchant_id}:{key}"

        def write() -> bool:
            try:
                self._c().insert_one({"_id": _id, "merchant_id": merchant_id, "n": 0})
            except DuplicateKeyError:
                pass
            return self._c().update_one({"_id": _id, "n": {"$lt": limit}}, {"$inc": {"n": 1}}).modified_count == 1
        return await run_sync(write)

    async def give_back(self, merchant_id: str, key: str) -> None:
        _id = f"{merchant_id}:{key}"
        await run_sync(lambda: self._c().update_one({"_id": _id, "n": {"$gt": 0}}, {"$inc": {"n": -1}}))
