"""Funnel buckets and purchase facts in MongoDB.

A day's bucket keeps counters. What makes each count apply once is its cause: while a
cause is recent, a mark in the bucket (`marks.<cause>`), written by the same update that
adds the count; once a bucket holds MARK_LIMIT marks, they move out to guard documents
(`funnel_guards`, one per bucket and cause, removed by a TTL index after GUARD_DAYS) and
the bucket's generation `gen` moves on. A writer checks the guard, then updates the
bucket on the generation it read and only while its mark is absent, so:

- a cause already counted and still marked: the update matches nothing, the mark is there;
- a cause counted and moved out: the guard is there (and a writer that read the bucket
  before the move finds the generation changed, reads again and sees the guard);
- two first writes to a new bucket: one upsert inserts it, the other gets the duplicate
  key of the bucket's `_id` and tries again, now matching it: both counts land.

The count and its mark are one single-document write, so a process that dies after it
leaves nothing half done: a replay finds the mark. No multi-document transaction is used.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from mongoengine import DateTimeField, Document, DictField, IntField, LongField, StringField
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict

from services.content.domain.cohorts import FirstPurchase, PaidOrder
from services.content.domain.funnels import Counters, Funnel, OrderCounted, bucket_key

# Marks a bucket holds before they move to guard documents (a few KB of keys).
MARK_LIMIT = 200
# How long a moved-out cause is remembered: far beyond any redelivery or dead-letter replay.
GUARD_DAYS = 60
_ATTEMPTS = 8


class FunnelBucketDoc(Document):
    """One day of one funnel. `_id` = merchant:dimension:ref_id:day, so it is bound to
    its merchant by construction; `marks` holds the recent causes (at most about
    MARK_LIMIT), `gen` counts how often they moved out to guards."""
    meta = {"collection": "funnel_buckets", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "dimension", "ref_id", "day"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    dimension = StringField(required=True)
    ref_id = StringField(required=True)
    day = StringField(required=True)
    unique_viewers = LongField(default=0)
    product_clicks = LongField(default=0)
    orders = LongField(default=0)
    paid_orders = LongField(default=0)
    gmv = LongField(default=0)
    refunds = LongField(default=0)
    refunded = LongField(default=0)
    group_joins = LongField(default=0)
    bargain_starts = LongField(default=0)
    bargain_helps = LongField(default=0)
    currency = StringField(default="CNY")
    gen = IntField(default=0)
    marks_n = IntField(default=0)
    marks = DictField()


class FunnelGuardDoc(Document):
    """A cause counted into a bucket whose mark moved out. `_id` = bucket id | cause."""
    meta = {"collection": "funnel_guards", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    expires_at = DateTimeField(required=True)


class OrderFactDoc(Document):
    """One paid order as repeat-purchase reports need it. `_id` = merchant:order_id;
    `refunds` maps each refund counted to its amount (an order has a handful at most)."""
    meta = {"collection": "order_facts", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "paid_ms"]}, {"fields": ["merchant_id", "member_id"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    member_id = StringField()
    order_id = StringField()
    paid_ms = LongField()
    month = StringField()
    paid = LongField(default=0)
    refunded = LongField(default=0)
    refunds = DictField()


class FirstPurchaseDoc(Document):
    """A member's first paid order (the earliest seen wins). `_id` = merchant:member_id."""
    meta = {"collection": "first_purchases", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "month"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    paid_ms = LongField(required=True)
    month = StringField(required=True)
    channel = StringField(default="")
    persona_id = StringField(default="")


ALL = (FunnelBucketDoc, FunnelGuardDoc, OrderFactDoc, FirstPurchaseDoc)


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()


# ---- the query and update shapes (tests/conformance/test_funnel_shapes.py) -------------

def guard_id(key: str, cause: str) -> str:
    return f"{key}|{cause}"


def count_query(key: str, gen: int, cause: str) -> dict:
    return {"_id": key, "gen": gen, f"marks.{cause}": {"$exists": False}}


def count_update(fields: dict, cause: str, change: Counters) -> dict:
    return {"$inc": {**change.as_increments(), "marks_n": 1}, "$set": {f"marks.{cause}": 1, **fields}}


def marked_query(key: str, cause: str) -> dict:
    return {"_id": key, f"marks.{cause}": {"$exists": True}}


def settle_update(causes: list[str]) -> dict:
    return {"$unset": {f"marks.{c}": "" for c in causes}, "$inc": {"gen": 1, "marks_n": -len(causes)}}


def range_query(merchant_id: str, dimension: str, ref_id: str, from_day: str, to_day: str) -> dict:
    return {"merchant_id": merchant_id, "dimension": dimension, "ref_id": ref_id,
            "day": {"$gte": from_day, "$lte": to_day}}


COUNTER_PROJECTION = {name: 1 for name in (*Counters.names(), "currency", "day")}


class Buckets:
    """Counting into buckets once per cause, over pymongo collections (or stand-ins with
    their semantics): the algorithm the module docstring describes."""

    def __init__(self, buckets, guards, mark_limit: int = MARK_LIMIT, guard_days: int = GUARD_DAYS):
        self.buckets, self.guards = buckets, guards
        self.mark_limit, self.guard_days = mark_limit, guard_days

    def apply_once(self, key: str, fields: dict, cause: str, change: Counters) -> bool:
        """Adds `change` to the bucket `key` unless `cause` was counted there; False: it was."""
        for _ in range(_ATTEMPTS):
            doc = self.buckets.find_one({"_id": key}, {"gen": 1, "marks_n": 1})
            if doc is not None and "gen" not in doc:
                # A bucket from before generations: give it one, then read it again.
                self.buckets.update_one({"_id": key, "marks_n": {"$exists": False}}, {"$set": {"gen": 0, "marks_n": 0}})
                continue
            gen = int(doc["gen"]) if doc else 0
            if self.guards.find_one({"_id": guard_id(key, cause)}, {"_id": 1}) is not None:
                return False
            try:
                result = self.buckets.update_one(count_query(key, gen, cause), count_update(fields, cause, change),
                                                 upsert=doc is None)
            except DuplicateKeyError:
                continue  # another writer created the bucket between our read and our upsert
            if result.matched_count or result.upserted_id is not None:
                if doc is not None and int(doc.get("marks_n") or 0) + 1 >= self.mark_limit:
                    self.settle(key, fields["merchant_id"])
                return True
            if self.buckets.find_one(marked_query(key, cause), {"_id": 1}) is not None:
                return False  # counted by an earlier delivery
            # the marks moved out since we read the bucket: read it again
        raise Conflict("the funnel bucket kept changing; try again", reason="VERSION_CONFLICT")

    def settle(self, key: str, merchant_id: str) -> int:
        """Moves a bucket's marks out to guard documents; how many moved (0: another
        writer moved them first)."""
        doc = self.buckets.find_one({"_id": key}, {"gen": 1, "marks": 1})
        causes = sorted((doc or {}).get("marks") or {})
        if not causes:
            return 0
        expires_at = datetime.now(timezone.utc) + timedelta(days=self.guard_days)
        for cause in causes:
            try:
                self.guards.insert_one({"_id": guard_id(key, cause), "merchant_id": merchant_id,
                                        "expires_at": expires_at})
            except DuplicateKeyError:
                pass  # a settle that stopped half way, or a concurrent one
        result = self.buckets.update_one({"_id": key, "gen": int(doc["gen"])}, settle_update(causes))
        return len(causes) if result.modified_count else 0


class FunnelRepository:
    def __init__(self, buckets: Buckets | None = None):
        self._buckets = buckets

    @property
    def buckets(self) -> Buckets:
        if self._buckets is None:
            self._buckets = Buckets(FunnelBucketDoc._get_collection(), FunnelGuardDoc._get_collection())
        return self._buckets

    async def save(self, funnel: Funnel) -> int:
        counted = 0
        for event in funnel.pull_events():
            if isinstance(event, OrderCounted) and await run_sync(self._count_once, funnel, event):
                counted += 1
        return counted

    def _count_once(self, funnel: Funnel, counted: OrderCounted) -> bool:
        fields = {"merchant_id": funnel.merchant_id, "dimension": funnel.dimension, "ref_id": funnel.ref_id,
                  "day": counted.day, "currency": counted.currency}
        key = bucket_key(funnel.merchant_id, funnel.dimension, funnel.ref_id, counted.day)
        return self.buckets.apply_once(key, fields, counted.event_id, counted.change)

    async def load(self, merchant_id: str, dimension: str, ref_id: str) -> Funnel:
        docs = await run_sync(lambda: list(FunnelBucketDoc._get_collection().find(
            {"merchant_id": merchant_id, "dimension": dimension, "ref_id": ref_id}, COUNTER_PROJECTION)))
        total, currency = Counters(), ""
        for doc in docs:
            total = total + _counters(doc)
            currency = currency or doc.get("currency", "")
        return Funnel.of(merchant_id, dimension, ref_id, total, currency)

    async def days(self, merchant_id: str, dimension: str, ref_id: str, from_day: str,
                   to_day: str) -> tuple[dict[str, Counters], str]:
        docs = await run_sync(lambda: list(FunnelBucketDoc._get_collection().find(
            range_query(merchant_id, dimension, ref_id, from_day, to_day), COUNTER_PROJECTION)))
        currency = next((d.get("currency", "") for d in docs if d.get("currency")), "")
        return {d["day"]: _counters(d) for d in docs}, currency

    async def any_counted(self, merchant_id: str, dimension: str, ref_id: str) -> bool:
        doc = await run_sync(FunnelBucketDoc._get_collection().find_one,
                             {"merchant_id": merchant_id, "dimension": dimension, "ref_id": ref_id}, {"_id": 1})
        return doc is not None

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        return await run_sync(forget_member_marks, FunnelBucketDoc._get_collection(),
                              FunnelGuardDoc._get_collection(), merchant_id, member_id)


def member_causes(marks: dict, member_id: str) -> list[str]:
    """The causes that name a member: their viewer of a day (`v:<member>`) and their clicks
    (`c:<member>-<client id>`)."""
    return sorted(c for c in marks if c == f"v:{member_id}" or c.startswith(f"c:{member_id}-"))


def member_guards_query(merchant_id: str, member_id: str) -> dict:
    return {"merchant_id": merchant_id, "_id": {"$regex": rf"\|(v:{re.escape(member_id)}$|c:{re.escape(member_id)}-)"}}


def forget_member_marks(buckets, guards, merchant_id: str, member_id: str) -> int:
    """Removes the marks and guards that name a member from the merchant's buckets; the
    counts they made stay (a number, not a person). An erased member never views or
    clicks again, so no later cause of theirs can be counted twice. How many marks went."""
    removed = 0
    for doc in list(buckets.find({"merchant_id": merchant_id}, {"marks": 1})):
        for cause in member_causes(doc.get("marks") or {}, member_id):
            # Conditional on the mark, so marks_n moves once per mark removed.
            removed += buckets.update_one({"_id": doc["_id"], f"marks.{cause}": {"$exists": True}},
                                          {"$unset": {f"marks.{cause}": ""}, "$inc": {"marks_n": -1}}).modified_count
    guards.delete_many(member_guards_query(merchant_id, member_id))
    return removed


def _counters(doc: dict) -> Counters:
    return Counters(*(int(doc.get(name) or 0) for name in Counters.names()))


# ---- purchase facts -----------------------------------------------------------------------

def fact_id(merchant_id: str, order_id: str) -> str:
    return f"{merchant_id}:{order_id}"


def paid_update(merchant_id: str, member_id: str, order_id: str, paid_ms: int, month: str, paid: int) -> dict:
    return {"$set": {"merchant_id": merchant_id, "member_id": member_id, "order_id": order_id, "paid_ms": paid_ms,
                     "month": month, "paid": paid}}


def refund_query(merchant_id: str, order_id: str, refund_id: str) -> dict:
    return {"_id": fact_id(merchant_id, order_id), f"refunds.{refund_id}": {"$exists": False}}


def refund_update(merchant_id: str, member_id: str, order_id: str, refund_id: str, amount: int) -> dict:
    return {"$inc": {"refunded": amount},
            "$set": {f"refunds.{refund_id}": amount, "merchant_id": merchant_id, "member_id": member_id,
                     "order_id": order_id}}


def first_doc(merchant_id: str, first: FirstPurchase, paid_ms: int) -> dict:
    return {"_id": fact_id(merchant_id, first.member_id), "merchant_id": merchant_id, "member_id": first.member_id,
            "paid_ms": paid_ms, "month": first.month, "channel": first.channel, "persona_id": first.persona_id}


def earlier_query(merchant_id: str, member_id: str, paid_ms: int) -> dict:
    return {"_id": fact_id(merchant_id, member_id), "paid_ms": {"$gt": paid_ms}}


def cohort_query(merchant_id: str, from_month: str, to_month: str) -> dict:
    return {"merchant_id": merchant_id, "month": {"$gte": from_month, "$lte": to_month}}


def facts_query(merchant_id: str, since_ms: int) -> dict:
    return {"merchant_id": merchant_id, "paid_ms": {"$gte": since_ms}}


def member_query(merchant_id: str, member_id: str, first: bool = False) -> dict:
    """A member's first purchase (`first`) or order facts."""
    if first:
        return {"_id": fact_id(merchant_id, member_id), "merchant_id": merchant_id}
    return {"merchant_id": merchant_id, "member_id": member_id}


def upsert_retrying(collection, query: dict, update: dict) -> bool:
    """One upserting update; a duplicate key means another writer created the document
    between our match and our insert, so the update runs again and now matches. False:
    the document exists and the query does not match it (the change was applied)."""
    try:
        result = collection.update_one(query, update, upsert=True)
        return result.matched_count == 1 or result.upserted_id is not None
    except DuplicateKeyError:
        return collection.update_one(query, update).matched_count == 1


class PurchaseRepository:
    """Order facts and first purchases, kept from order.paid and order.refunded."""

    async def paid(self, merchant_id: str, order_id: str, paid_ms: int, paid: int, first: FirstPurchase) -> None:
        await run_sync(self._paid, merchant_id, order_id, paid_ms, paid, first)

    @staticmethod
    def _paid(merchant_id: str, order_id: str, paid_ms: int, paid: int, first: FirstPurchase) -> None:
        # Setting the same values again is harmless, so a replay needs no guard.
        upsert_retrying(OrderFactDoc._get_collection(), {"_id": fact_id(merchant_id, order_id)},
                        paid_update(merchant_id, first.member_id, order_id, paid_ms, first.month, paid))
        firsts = FirstPurchaseDoc._get_collection()
        try:
            firsts.insert_one(first_doc(merchant_id, first, paid_ms))
        except DuplicateKeyError:
            # An earlier order wins, whichever event arrives first.
            firsts.update_one(earlier_query(merchant_id, first.member_id, paid_ms),
                              {"$set": {k: v for k, v in first_doc(merchant_id, first, paid_ms).items() if k != "_id"}})

    async def refunded(self, merchant_id: str, member_id: str, order_id: str, refund_id: str, amount: int) -> bool:
        return await run_sync(upsert_retrying, OrderFactDoc._get_collection(),
                              refund_query(merchant_id, order_id, refund_id),
                              refund_update(merchant_id, member_id, order_id, refund_id, amount))

    async def forget_member(self, merchant_id: str, member_id: str) -> int:
        return await run_sync(self._forget, merchant_id, member_id)

    @staticmethod
    def _forget(merchant_id: str, member_id: str) -> int:
        FirstPurchaseDoc._get_collection().delete_one(member_query(merchant_id, member_id, first=True))
        return OrderFactDoc._get_collection().delete_many(member_query(merchant_id, member_id)).deleted_count

    async def firsts(self, merchant_id: str, from_month: str, to_month: str) -> list[FirstPurchase]:
        docs = await run_sync(lambda: list(FirstPurchaseDoc._get_collection().find(
            cohort_query(merchant_id, from_month, to_month),
            {"member_id": 1, "month": 1, "channel": 1, "persona_id": 1})))
        return [FirstPurchase(member_id=d["member_id"], month=d["month"], channel=d.get("channel", ""),
                              persona_id=d.get("persona_id", "")) for d in docs]

    async def orders(self, merchant_id: str, since_ms: int) -> list[PaidOrder]:
        docs = await run_sync(lambda: list(OrderFactDoc._get_collection().find(
            facts_query(merchant_id, since_ms), {"member_id": 1, "order_id": 1, "month": 1, "paid": 1,
                                                 "refunded": 1})))
        return [PaidOrder(member_id=d["member_id"], order_id=d.get("order_id", ""), month=d["month"],
                          paid=int(d.get("paid") or 0), refunded=int(d.get("refunded") or 0)) for d in docs]
