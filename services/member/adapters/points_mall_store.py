"""Points mall coupons over MongoDB, implementing the ports of
services.member.application.points_mall.

- `points_mall_coupons`: one item per document; `left` changes only by one conditional
  `$inc` (`left >= 1` to take), never read and written back; `version` guards staff edits.
  Its window is kept as epoch milliseconds (`starts_ms`, `ends_ms`) for exact ranges. The
  idempotency key is unique per merchant (`key` = "<merchant>:<key>").
- `points_mall_counters`: `_id` "<item>:<member>", `used` raced by one member's parallel
  redemptions: inserted at 0 first (a duplicate key means it exists), then `$inc` guarded
  by `used < limit` (an upsert that `$inc`s is not portable, docs/storage.md).
- `points_mall_redemptions`: one per redemption, state moved by compare-and-set on
  `version`; `owes_back` 1 while its unit and place are to go back; `lease_ms` the
  finishing job's lease. Unique `key` "<merchant>:<member>:<idempotency key>".

Every shape is in tests/conformance/test_points_mall_shapes.py.
"""
from __future__ import annotations

from datetime import datetime

import mongoengine as me
from pymongo import DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.db import run_sync
from siyu_kit.protos import aware, epoch_ms

from services.member.application.points_mall import CouponItems, MemberCounters, Redemptions
from services.member.domain.points_mall import CouponItem, ItemState, Redemption, RedemptionState

UNFINISHED = [RedemptionState.TAKEN.value, RedemptionState.POINTS_SPENT.value]


class CouponItemDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    key = me.StringField(required=True, unique=True)
    state = me.StringField(required=True)
    ends_ms = me.IntField()
    meta = {"collection": "points_mall_coupons", "strict": False,
            "indexes": [{"fields": ["merchant_id", "state", "ends_ms"]}]}


class CounterDoc(me.Document):
    id = me.StringField(primary_key=True)
    meta = {"collection": "points_mall_counters", "strict": False}


class RedemptionDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    key = me.StringField(required=True, unique=True)
    state = me.StringField()
    created_ms = me.IntField()
    lease_ms = me.IntField()
    owes_back = me.IntField()
    meta = {"collection": "points_mall_redemptions", "strict": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}, {"fields": ["state", "created_ms", "lease_ms"]},
                        {"fields": ["owes_back", "lease_ms"]}]}


def ensure_indexes() -> None:
    for doc in (CouponItemDoc, CounterDoc, RedemptionDoc):
        doc.ensure_indexes()


def _items() -> Collection:
    return CouponItemDoc._get_collection()


def _counters() -> Collection:
    return CounterDoc._get_collection()


def _redemptions() -> Collection:
    return RedemptionDoc._get_collection()


# ---- documents --------------------------------------------------------------------------------

def item_doc(item: CouponItem) -> dict:
    return {"_id": item.id, "merchant_id": item.merchant_id, "key": f"{item.merchant_id}:{item.idempotency_key}",
            "template_id": item.template_id, "name": item.name, "points_price": item.points_price,
            "total_units": item.total_units, "left": item.left, "per_member_limit": item.per_member_limit,
            "starts_at": item.starts_at, "ends_at": item.ends_at, "starts_ms": epoch_ms(item.starts_at),
            "ends_ms": epoch_ms(item.ends_at), "state": item.state.value, "version": item.version,
            "created_at": item.created_at}


def item_of(doc: dict) -> CouponItem:
    return CouponItem(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]),
                      template_id=doc["template_id"], name=doc.get("name") or "",
                      points_price=int(doc["points_price"]), total_units=int(doc["total_units"]),
                      left=int(doc["left"]), per_member_limit=int(doc["per_member_limit"]),
                      starts_at=aware(doc["starts_at"]), ends_at=aware(doc["ends_at"]),
                      state=ItemState(doc["state"]), created_at=aware(doc["created_at"]),
                      idempotency_key=doc["key"].split(":", 1)[1])


def redemption_doc(r: Redemption) -> dict:
    return {"_id": r.id, "merchant_id": r.merchant_id, "member_id": r.member_id,
            "key": f"{r.merchant_id}:{r.member_id}:{r.idempotency_key}", "item_id": r.item_id,
            "template_id": r.template_id, "points": r.points, "state": r.state.value, "coupon_id": r.coupon_id,
            "failure_reason": r.failure_reason, "created_at": r.created_at, "created_ms": epoch_ms(r.created_at),
            "version": r.version, "owes_back": 0, "lease_ms": 0}


def redemption_of(doc: dict) -> Redemption:
    return Redemption(id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                      item_id=doc["item_id"], template_id=doc["template_id"], points=int(doc["points"]),
                      state=RedemptionState(doc["state"]), created_at=aware(doc["created_at"]),
                      idempotency_key=doc["key"].split(":", 2)[2], version=int(doc["version"]),
                      coupon_id=doc.get("coupon_id") or "", failure_reason=doc.get("failure_reason") or "")


# ---- the query shapes (tests/conformance/test_points_mall_shapes.py runs each) ----------------

def take_unit_update(merchant_id: str, item_id: str) -> tuple[dict, dict]:
    return ({"_id": item_id, "merchant_id": merchant_id, "state": ItemState.ACTIVE.value, "left": {"$gte": 1}},
            {"$inc": {"left": -1}})


def give_back_unit_update(merchant_id: str, item_id: str) -> tuple[dict, dict]:
    return {"_id": item_id, "merchant_id": merchant_id}, {"$inc": {"left": 1}}


def item_save_update(item: CouponItem, add_units: int) -> tuple[dict, dict]:
    return ({"_id": item.id, "merchant_id": item.merchant_id, "version": item.version},
            {"$set": {"points_price": item.points_price, "total_units": item.total_units,
                      "state": item.state.value},
             "$inc": {"version": 1, "left": add_units}})


def page_query(merchant_id: str, after: str, open_ms: int | None) -> dict:
    query: dict = {"merchant_id": merchant_id}
    if after:
        query["_id"] = {"$lt": after}
    if open_ms is not None:
        query.update({"state": ItemState.ACTIVE.value, "starts_ms": {"$lte": open_ms}, "ends_ms": {"$gt": open_ms}})
    return query


def counter_id(item_id: str, member_id: str) -> str:
    return f"{item_id}:{member_id}"


def take_place_update(merchant_id: str, item_id: str, member_id: str, limit: int) -> tuple[dict, dict]:
    return ({"_id": counter_id(item_id, member_id), "merchant_id": merchant_id, "used": {"$lt": limit}},
            {"$inc": {"used": 1}})


def give_back_place_update(merchant_id: str, item_id: str, member_id: str) -> tuple[dict, dict]:
    return ({"_id": counter_id(item_id, member_id), "merchant_id": merchant_id, "used": {"$gte": 1}},
            {"$inc": {"used": -1}})


def redemption_save_update(r: Redemption, owes_back: bool) -> tuple[dict, dict]:
    return ({"_id": r.id, "merchant_id": r.merchant_id, "version": r.version},
            {"$set": {"state": r.state.value, "coupon_id": r.coupon_id, "failure_reason": r.failure_reason,
                      **({"owes_back": 1} if owes_back else {})},
             "$inc": {"version": 1}})


def gave_back_update(merchant_id: str, redemption_id: str) -> tuple[dict, dict]:
    return {"_id": redemption_id, "merchant_id": merchant_id, "owes_back": 1}, {"$set": {"owes_back": 0}}


def unfinished_query(made_before_ms: int, now_ms: int) -> dict:
    # Two flat queries rather than an $or: each runs in SQL on the embedded server.
    return {"state": {"$in": UNFINISHED}, "created_ms": {"$lt": made_before_ms}, "lease_ms": {"$lt": now_ms}}


def owing_query(made_before_ms: int, now_ms: int) -> dict:
    return {"owes_back": 1, "created_ms": {"$lt": made_before_ms}, "lease_ms": {"$lt": now_ms}}


def member_page_query(merchant_id: str, member_id: str, after: str) -> dict:
    query: dict = {"merchant_id": merchant_id, "member_id": member_id}
    if after:
        query["_id"] = {"$lt": after}
    return query


# ---- the ports ------------------------------------------------------------------------------------

class MongoCouponItems(CouponItems):
    async def add(self, item: CouponItem) -> CouponItem:
        def insert() -> dict:
            try:
                _items().insert_one(item_doc(item))
                return item_doc(item)
            except DuplicateKeyError:
                return _items().find_one({"key": f"{item.merchant_id}:{item.idempotency_key}"})
        return item_of(await run_sync(insert))

    async def get(self, merchant_id: str, item_id: str) -> CouponItem | None:
        doc = await run_sync(_items().find_one, {"_id": item_id, "merchant_id": merchant_id})
        return item_of(doc) if doc else None

    async def save(self, item: CouponItem, add_units: int = 0) -> None:
        result = await run_sync(_items().update_one, *item_save_update(item, add_units))
        if result.modified_count != 1:
            raise StaleVersion(f"points-mall item {item.id} changed since it was read")

    async def page(self, merchant_id: str, after: str, limit: int, open_at: datetime | None) -> list[CouponItem]:
        def read() -> list[dict]:
            query = page_query(merchant_id, after, epoch_ms(open_at) if open_at else None)
            return list(_items().find(query).sort("_id", DESCENDING).limit(limit))
        return [item_of(d) for d in await run_sync(read)]

    async def take_unit(self, merchant_id: str, item_id: str) -> bool:
        result = await run_sync(_items().update_one, *take_unit_update(merchant_id, item_id))
        return result.modified_count == 1

    async def give_back_unit(self, merchant_id: str, item_id: str) -> None:
        await run_sync(_items().update_one, *give_back_unit_update(merchant_id, item_id))


class MongoMemberCounters(MemberCounters):
    async def take_place(self, merchant_id: str, item_id: str, member_id: str, limit: int) -> bool:
        def take() -> bool:
            try:
                _counters().insert_one({"_id": counter_id(item_id, member_id), "merchant_id": merchant_id,
                                        "used": 0})
            except DuplicateKeyError:
                pass  # it exists
            return _counters().update_one(*take_place_update(merchant_id, item_id, member_id, limit)) \
                .modified_count == 1
        return await run_sync(take)

    async def give_back_place(self, merchant_id: str, item_id: str, member_id: str) -> None:
        await run_sync(_counters().update_one, *give_back_place_update(merchant_id, item_id, member_id))


class MongoRedemptions(Redemptions):
    async def add(self, redemption: Redemption) -> Redemption:
        def insert() -> dict:
            try:
                _redemptions().insert_one(redemption_doc(redemption))
                return redemption_doc(redemption)
            except DuplicateKeyError:
                return _redemptions().find_one(
                    {"key": f"{redemption.merchant_id}:{redemption.member_id}:{redemption.idempotency_key}"})
        return redemption_of(await run_sync(insert))

    async def get(self, merchant_id: str, redemption_id: str) -> Redemption | None:
        doc = await run_sync(_redemptions().find_one, {"_id": redemption_id, "merchant_id": merchant_id})
        return redemption_of(doc) if doc else None

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Redemption | None:
        doc = await run_sync(_redemptions().find_one, {"key": f"{merchant_id}:{member_id}:{key}"})
        return redemption_of(doc) if doc else None

    async def save(self, redemption: Redemption, owes_back: bool = False) -> None:
        result = await run_sync(_redemptions().update_one, *redemption_save_update(redemption, owes_back))
        if result.modified_count != 1:
            raise StaleVersion(f"redemption {redemption.id} changed since it was read")

    async def gave_back(self, merchant_id: str, redemption_id: str) -> bool:
        result = await run_sync(_redemptions().update_one, *gave_back_update(merchant_id, redemption_id))
        return result.modified_count == 1

    async def claim_unfinished(self, made_before: datetime, lease_until: datetime,
                               now: datetime) -> Redemption | None:
        def claim() -> dict | None:
            lease = {"$set": {"lease_ms": epoch_ms(lease_until)}}
            for query in (unfinished_query(epoch_ms(made_before), epoch_ms(now)),
                          owing_query(epoch_ms(made_before), epoch_ms(now))):
                doc = _redemptions().find_one_and_update(query, lease, return_document=ReturnDocument.AFTER)
                if doc is not None:
                    return doc
            return None
        doc = await run_sync(claim)
        return redemption_of(doc) if doc else None

    async def page_of_member(self, merchant_id: str, member_id: str, after: str, limit: int) -> list[Redemption]:
        def read() -> list[dict]:
            return list(_redemptions().find(member_page_query(merchant_id, member_id, after))
                        .sort("_id", DESCENDING).limit(limit))
        return [redemption_of(d) for d in await run_sync(read)]
